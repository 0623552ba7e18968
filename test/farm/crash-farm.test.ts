// Crash injection on a build farm (issue 20): test/crash/crash.test.ts's
// harness uses a local chroot, so the crash points of a shared chroot's
// steps (registrations, forget-host) never fire there. Here the chroot and
// its shared-dir= are on a GlusterFS volume (test/helpers/gluster.ts) seen
// by hosts A and B, and the crash bundle (dist/crash/warden.cjs) is killed
// on A at each of those points.
//
// After every kill:
// - no lock remains on any file of ours, on the volume or in A's state dir
//   (probed from here: glusterfs locks are not in /proc/locks; a dead
//   holder's are released asynchronously, hence `until`);
// - every session of A is active, stale or gone, never corrupt;
// - the source is unchanged;
// then after `warden recover --all` on A: every registration of host-a has
// its session here (no orphan left to block other hosts), the sessions
// end cleanly, no registration of host-a remains, the source is unchanged,
// and B's entry goes through.
//
// Root only, OFD mode only, glusterfs-server installed; otherwise skipped
// with the reason in the titles.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileLock } from '../../src/locks/index.js';
import { mountsUnder } from '../../src/union/index.js';
import { CRASH, warden, type CliEnv } from '../helpers/cli.js';
import { processesUnder, treeDigest } from '../helpers/chroots.js';
import { farmOrSkip, type Host } from '../helpers/gluster.js';
import { farmHosts, tearDownFarm } from '../helpers/farm-hosts.js';
import { until } from '../helpers/wait.js';

const test = anyTest as TestFn;

/** The crash points of a shared chroot's steps: each must be passed by some operation below. */
const FARM_POINTS = [
  'begin:registered',
  'end:registration-exclusive',
  'end:removed',
  'end:unregistered',
  'source:remote-stale-checked',
  'recover:registration-exclusive',
  'recover:reregistered',
  'forget-host:manage',
];

const { farm, skip, title } = await farmOrSkip({ needsRoot: true });
const serial = skip ? test.serial.skip : test.serial;

let local: string;
const env = {} as Record<Host, CliEnv>;
let sourceDigest: string[];
const source = () => join(farm!.mounts.A, 'src');
const sharedDir = () => join(farm!.mounts.A, 'shared');

test.before(async () => {
  if (!farm) return;
  local = mkdtempSync(join(tmpdir(), 'warden-crash-farm-'));
  Object.assign(env, await farmHosts(farm, local));
  // A clean session first: it makes .ref, manage.lock and sessions/, which every digest then includes.
  const r = warden(env.A, ['run', '-c', 'fx', '--', 'true']);
  if (r.status !== 0) throw new Error(`warm-up session failed: ${r.stderr}`);
  sourceDigest = treeDigest(source());
});

// A failed trial must not spoil the next ones.
test.afterEach.always(async () => {
  if (!farm) return;
  await untilNoProcesses().catch(() => {});
  for (const h of ['A', 'B'] as const) warden(env[h], ['recover', '--all', '--end']);
});

test.after.always((t) => tearDownFarm(t, farm, local));

/** A session on `host` whose warden died after its command wrote in it: stale, still mounted, registered. */
function staleMounted(host: Host, id: string): void {
  const r = warden(env[host], ['run', '-c', 'fx', '--id', id, '--', 'sh', '-c', 'echo crash-data > /crash-data; kill -9 $PPID']);
  if (r.signal !== 'SIGKILL') throw new Error(`could not leave a stale session on ${host}: ${r.status} ${r.stderr}`);
}

interface Operation {
  name: string;
  /** Run on host A by the crash bundle. */
  args: string[];
  prepare?: () => void;
  /** After A's recovery: what the scene left on B is ended there. */
  cleanupB?: boolean;
}

const OPERATIONS: Operation[] = [
  { name: 'automatic session (begin, run, end)', args: ['run', '-c', 'fx', '--', 'sh', '-c', 'echo crash-data > /crash-data'] },
  { name: 'recover of a stale session', args: ['recover', '-s', 'stale'], prepare: () => staleMounted('A', 'stale') },
  { name: 'source entry', args: ['source', '-c', 'fx', '--', 'true'] },
  { name: 'forget-host of a host whose session is stale', args: ['forget-host', '-c', 'fx', 'host-b'], prepare: () => staleMounted('B', 'bstale'), cleanupB: true },
];

// stdout and stderr to a file, not pipes: nothing outliving warden keeps spawnSync waiting.
function runCrashBundle(args: string[], extra: Record<string, string>) {
  const out = join(local, 'crash.out');
  const fd = openSync(out, 'w');
  try {
    const r = spawnSync(process.execPath, [CRASH, ...args], {
      env: { ...process.env, WARDEN_CONFIG: env.A.config, WARDEN_STATE_DIR: env.A.stateDir, WARDEN_DEBUG: '', ...extra },
      stdio: ['ignore', fd, fd],
      cwd: env.A.top,
      timeout: 60_000,
    });
    if (r.error) throw r.error;
    return { status: r.status, signal: r.signal, output: readFileSync(out, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

/** Every crash point `op` passes on A, as NAME@N (the scene it leaves is cleaned up). */
function tracePoints(op: Operation): string[] {
  const trace = join(local, 'trace');
  rmSync(trace, { force: true });
  op.prepare?.();
  const r = runCrashBundle(op.args, { WARDEN_CRASH_TRACE: trace });
  if (r.status !== 0) throw new Error(`tracing ${op.args.join(' ')} failed: ${r.output}`);
  const points = readFileSync(trace, 'utf8').trim().split('\n');
  rmSync(trace, { force: true });
  for (const h of ['A', 'B'] as const) warden(env[h], ['recover', '--all', '--end']);
  return points;
}

/** Our lock files: the source's .ref, everything in shared-dir= and its registrations, A's session lock files. */
function lockFiles(): string[] {
  const files = [join(source(), '.ref')];
  for (const dir of [sharedDir(), join(sharedDir(), 'sessions')]) {
    for (const n of readdirSync(dir)) if (statSync(join(dir, n)).isFile()) files.push(join(dir, n));
  }
  const state = env.A.stateDir;
  if (existsSync(state)) {
    for (const n of readdirSync(state)) if (existsSync(join(state, n, 'lock'))) files.push(join(state, n, 'lock'));
  }
  return files;
}

/** The files some process (any host) still locks: whole-file EX, non-blocking, from here. */
function lockedFiles(): string[] {
  const out: string[] = [];
  for (const f of lockFiles()) {
    let lock: FileLock;
    try {
      lock = FileLock.open(f, { create: false });
    } catch {
      continue; // removed meanwhile
    }
    try {
      if (lock.tryAcquire('exclusive')) lock.release(); // explicitly: FUSE releases a closed fd's lock asynchronously
      else out.push(f);
    } finally {
      lock.close();
    }
  }
  return out;
}

function ourProcesses(): number[] {
  const marks = (['A', 'B'] as const).map((h) => Buffer.from(`\0WARDEN_STATE_DIR=${env[h].stateDir}\0`));
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    if (Number(pid) === process.pid) continue;
    try {
      const environ = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${pid}/environ`)]);
      if (marks.some((m) => environ.includes(m))) out.push(Number(pid));
    } catch {
      // gone
    }
  }
  return [...out, ...processesUnder(local)];
}

async function untilNoProcesses(): Promise<void> {
  await until(() => ourProcesses().length === 0, `no process left (still: ${ourProcesses().join(' ')})`);
}

interface Listed {
  id: string;
  status: string;
  reason?: string;
  phase?: string;
}

/** The sessions of `host`'s state dir (list --sessions also names other hosts' sessions of a shared chroot, with their host). */
function listSessions(host: Host): Listed[] {
  const r = warden(env[host], ['list', '--sessions', '--json']);
  if (r.status !== 0) throw new Error(`list --sessions on ${host} failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as (Listed & { host?: string })[]).filter((s) => s.host === undefined);
}

const registrationsOf = (host: string) =>
  readdirSync(join(sharedDir(), 'sessions'))
    .filter((n) => n.startsWith(`${host}@`))
    .map((n) => n.slice(host.length + 1))
    .sort();

const covered = new Set<string>();

async function trial(t: ExecutionContext, op: Operation, point: string): Promise<void> {
  op.prepare?.();
  const r = runCrashBundle(op.args, { WARDEN_CRASH_AT: point });
  t.is(r.signal, 'SIGKILL', `warden was killed at ${point} (status ${r.status}: ${r.output})`);
  await untilNoProcesses();

  // Right after the kill.
  await until(() => lockedFiles().length === 0, `no lock left after a kill at ${point} (still: ${lockedFiles().join(' ')})`).catch(() => {});
  t.deepEqual(lockedFiles(), [], `no lock left after a kill at ${point}`);
  for (const s of listSessions('A')) t.not(s.status, 'corrupt', `session ${s.id} after a kill at ${point}: ${s.reason}`);
  t.deepEqual(treeDigest(source()), sourceDigest, `source unchanged after a kill at ${point}`);

  // Recovery on A.
  const rec = warden(env.A, ['recover', '--all']);
  t.is(rec.status, 0, `recover --all after a kill at ${point}: ${rec.stdout}${rec.stderr}`);
  const sessions = listSessions('A');
  t.deepEqual(registrationsOf('host-a'), sessions.map((s) => s.id).sort(), `after recovery (kill at ${point}) every registration of host-a is a session of A`);
  for (const s of sessions) {
    t.not(s.status, 'corrupt', `session ${s.id} after recovery: ${s.reason}`);
    t.is(s.phase, 'active', `session ${s.id} is consistent after recovery`);
    const end = warden(env.A, ['end', '-s', s.id]);
    t.is(end.status, 0, `end -s ${s.id}: ${end.stderr}`);
  }
  t.deepEqual(registrationsOf('host-a'), [], `no registration of host-a left after a kill at ${point}`);
  if (op.cleanupB) {
    const b = warden(env.B, ['recover', '--all', '--end']);
    t.is(b.status, 0, b.stderr);
  }
  t.deepEqual(mountsUnder(local).map((m) => m.mountPoint), [], 'nothing mounted');
  t.deepEqual(treeDigest(source()), sourceDigest, `source unchanged after recovery (kill at ${point})`);
  const entry = warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']);
  t.is(entry.status, 0, `B's entry after A recovered from a kill at ${point}: ${entry.stderr}`);
  t.deepEqual(treeDigest(source()), sourceDigest, 'an entry running `true` changes nothing');
  covered.add(point.replace(/@\d+$/, ''));
}

for (const op of OPERATIONS) {
  serial(title(`${op.name} on a shared chroot: SIGKILL at each build-farm crash point, then recover --all`), async (t) => {
    const points = tracePoints(op).filter((p) => FARM_POINTS.includes(p.replace(/@\d+$/, '')));
    t.true(points.length > 0, `${op.args.join(' ')} passes no build-farm crash point`);
    for (const point of points) await trial(t, op, point);
    t.log(`killed at ${points.join(', ')}`);
  });
}

serial(title('every build-farm crash point was killed at'), (t) => {
  t.deepEqual(FARM_POINTS.filter((p) => !covered.has(p)), []);
});
