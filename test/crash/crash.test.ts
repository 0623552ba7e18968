// Crash injection: warden is SIGKILLed at every step of its protocols, and
// what it leaves behind must always be recoverable. The crash bundle
// (dist/crash/warden.cjs, the same CLI with crash points compiled in) dies
// at WARDEN_CRASH_AT=NAME@N; a first run of each operation with
// WARDEN_CRASH_TRACE lists every point it passes, so a point added to the
// code is covered without touching this file. Kills inside each hook phase
// come from a hook that SIGKILLs its parent, warden.
//
// After every kill:
// - no lock remains on any file of ours (the kernel drops a dead process's
//   locks; a lock still there would belong to something that should not
//   hold it);
// - every session directory is active, stale or gone, never corrupt, and
//   its state.json is whole (atomic writes);
// - the source is unchanged (sessions never write through to it);
// then `warden recover --all` and `list --sessions` leave only consistent
// sessions, each mounted with the data written in it before the kill, and
// they end cleanly.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileKeyOfPath, readProcLocks } from '../../src/locks/index.js';
import { mountsUnder } from '../../src/union/index.js';
import { sessionPaths } from '../../src/sessions/session.js';
import { DEFAULT_HOOKS, REPO, destroyFixture, isRoot, makeFixture, processesUnder, treeDigest, writeHooks, type Fixture } from '../helpers/chroots.js';
import { warden, writeConfig, type CliEnv } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const test = anyTest as TestFn;
const CRASH_BUNDLE = join(REPO, 'dist', 'crash', 'warden.cjs');
const PHASES = ['pre-mount', 'post-mount', 'pre-unmount', 'post-unmount'] as const;

let fx: Fixture;
let env: CliEnv;
/** Holds the phase in which the crash hook kills warden ("" for none). */
let crashPhaseFile: string;
let sourceDigest: string[];

test.before(async () => {
  if (!isRoot) return;
  fx = await makeFixture('warden-crash-');
  crashPhaseFile = join(fx.tmp, 'crash-phase');
  writeFileSync(crashPhaseFile, '');
  // The shipped default hooks plus, in every phase, one that SIGKILLs warden
  // (its parent) when this phase is the one asked for, then carries on.
  const crash = `[ "$(cat ${crashPhaseFile})" = "$1" ] && kill -9 "$PPID"; exit 0`;
  const hooks = writeHooks(fx.tmp, Object.fromEntries(PHASES.map((p) => [`${p}.d/50-crash`, crash])));
  // (executables 0755; the declarative NAME.fstab and NAME.copyfiles 0644)
  for (const name of readdirSync(join(DEFAULT_HOOKS, 'post-mount.d'))) {
    const declarative = /^[A-Za-z0-9_-]+\.(fstab|copyfiles)$/.test(name);
    if (!declarative && !/^[A-Za-z0-9_-]+$/.test(name)) continue;
    writeFileSync(join(hooks, 'post-mount.d', name), readFileSync(join(DEFAULT_HOOKS, 'post-mount.d', name)), { mode: declarative ? 0o644 : 0o755 });
  }
  env = writeConfig(fx.tmp, `[warden]\nhooks-dir=${hooks}\nhook-timeout=10\n\n[fx]\ntype=directory\ndirectory=${fx.source}\nunion-type=overlay\n`);
  spawnSync('mkfifo', ['-m', '600', join(fx.source, SOURCE_GATE)]);
  // One clean session first: it creates .ref and .manage, which every later
  // digest then includes.
  const r = warden(env, ['run', '-c', 'fx', '--', 'true']);
  if (r.status !== 0) throw new Error(`warm-up session failed: ${r.stderr}`);
  sourceDigest = treeDigest(fx.source);
});

test.after.always(() => {
  if (fx) destroyFixture(fx.tmp);
});

// A failed trial must not spoil the next ones: end whatever it left.
test.afterEach.always(async () => {
  if (!fx) return;
  writeFileSync(crashPhaseFile, '');
  await untilNoProcesses().catch(() => {});
  warden(env, ['recover', '--all', '--end']);
  for (const s of listSessions()) warden(env, ['end', '-s', s.id]);
  rmSync(join(fx.source, SOURCE_LOG), { force: true });
});

interface Operation {
  name: string;
  args: string[];
  /** Written in the session by the command, checked after recovery when the command ran. */
  data?: string;
  /** The hook phases it runs: a kill inside each is tried too. */
  phases: readonly (typeof PHASES)[number][];
  /** The fewest crash points the operation must pass (a guard against points silently lost). */
  minPoints: number;
  /** Sets the scene before each run (the trace run included). */
  prepare?: () => void;
  /** The data is there before the operation starts, so recovery must always keep it. */
  dataBefore?: boolean;
  /** Checks made right after the kill, before anything else looks at the state dir. */
  afterKill?: (t: ExecutionContext, point: string) => Promise<void>;
}

// The source entry's command writes into the source, then waits on a FIFO
// in it, so the test decides when it finishes: a kill of warden at any
// point after the command started must leave the source closed to new
// sessions for as long as the command runs (it inherited the locks).
const SOURCE_LOG = 'crash-log';
const SOURCE_GATE = 'crash-gate';

async function afterSourceKill(t: ExecutionContext, point: string): Promise<void> {
  const log = join(fx.source, SOURCE_LOG);
  // The command may still be starting: it writes "entered" first thing. A
  // kill before the entry was granted never lets it run (the held-back
  // command sees its gate close), so that case waits for no process instead.
  await until(() => existsSync(log) || ourProcesses().length === 0);
  if (existsSync(log)) {
    // The command runs (held at its gate): no overlay of the source may be mounted now.
    t.deepEqual(
      mountsUnder(env.stateDir).filter((m) => m.fsType === 'overlay').map((m) => m.mountPoint),
      [],
      `the source command of a warden killed at ${point} runs while a session of the source is mounted`,
    );
    const busy = warden(env, ['run', '-c', 'fx', '--no-wait', '--', 'true']);
    t.is(busy.status, 5, `a session cannot begin while the source command of a killed warden (${point}) still runs: ${busy.stderr}`);
    // Let the command finish; it writes "done" after the opener has gone.
    spawnSync('sh', ['-c', `echo go > ${join(fx.source, SOURCE_GATE)}`], { timeout: 10_000 });
    await untilNoProcesses();
    t.is(readFileSync(log, 'utf8'), 'entered\ndone\n');
  }
  await untilNoProcesses();
  rmSync(log, { force: true });
}

// A session whose warden died after its command wrote in it, then a
// simulated reboot: nothing of it is mounted any more.
function staleAfterReboot(): void {
  staleMounted('rebooted');
  const root = join(env.stateDir, 'rebooted', 'root');
  const u = spawnSync('umount', ['-R', root], { encoding: 'utf8' });
  if (u.status !== 0) throw new Error(`simulated reboot: ${u.stderr}`);
}

/** A session whose warden died after its command wrote in it: stale, still mounted. */
function staleMounted(id = 'stale'): void {
  const r = warden(env, ['run', '-c', 'fx', '--id', id, '--', 'sh', '-c', 'echo crash-data > /crash-data; kill -9 $PPID']);
  if (r.signal !== 'SIGKILL') throw new Error(`could not leave a stale session: ${r.status} ${r.stderr}`);
}

const OPERATIONS: Operation[] = [
  {
    name: 'automatic session (begin, run, end)',
    args: ['run', '-c', 'fx', '--', 'sh', '-c', 'echo crash-data > /crash-data'],
    data: 'crash-data\n',
    phases: PHASES,
    minPoints: 20,
  },
  {
    name: 'recover after a simulated reboot',
    args: ['recover', '-s', 'rebooted'],
    data: 'crash-data\n',
    dataBefore: true,
    // Re-mounting runs the start phases only.
    phases: ['pre-mount', 'post-mount'],
    minPoints: 5,
    prepare: staleAfterReboot,
  },
  {
    name: 'source entry',
    args: ['source', '-c', 'fx', '--', 'sh', '-c', `echo entered >> /${SOURCE_LOG}; read x < /${SOURCE_GATE}; echo done >> /${SOURCE_LOG}`],
    phases: [],
    minPoints: 5,
    afterKill: afterSourceKill,
  },
  {
    // A stale session still mounted over the source: the entry must end it
    // (unmount it) before its command may change the source.
    name: 'source entry --recover-stale over a mounted stale session',
    args: ['source', '-c', 'fx', '--recover-stale', '--', 'sh', '-c', `echo entered >> /${SOURCE_LOG}; read x < /${SOURCE_GATE}; echo done >> /${SOURCE_LOG}`],
    phases: ['pre-unmount', 'post-unmount'],
    minPoints: 6,
    prepare: () => staleMounted(),
    afterKill: afterSourceKill,
  },
];

function crashEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return { ...process.env, WARDEN_CONFIG: env.config, WARDEN_STATE_DIR: env.stateDir, WARDEN_DEBUG: '', ...extra };
}

// stdout and stderr go to files, not pipes: a command that outlives the
// killed warden (a source entry's) would otherwise hold the pipes open and
// keep spawnSync waiting for it.
function runCrashBundle(args: string[], extra: Record<string, string>) {
  const out = join(fx.tmp, 'crash.out');
  const fd = openSync(out, 'w');
  try {
    const r = spawnSync(process.execPath, [CRASH_BUNDLE, ...args], { env: crashEnv(extra), stdio: ['ignore', fd, fd], cwd: env.top, timeout: 60_000 });
    if (r.error) throw r.error;
    return { status: r.status, signal: r.signal, stderr: readFileSync(out, 'utf8') };
  } finally {
    closeSync(fd);
  }
}

/** Every crash point `args` passes through, in order, as NAME@N. */
function tracePoints(op: Operation): string[] {
  const trace = join(fx.tmp, 'trace');
  rmSync(trace, { force: true });
  // A source entry's command waits on the gate: open it for this run.
  const args = op.args;
  op.prepare?.();
  const opener = op.afterKill ? spawn('sh', ['-c', `echo go > ${join(fx.source, SOURCE_GATE)}`], { stdio: 'ignore' }) : undefined;
  let r;
  try {
    r = runCrashBundle(args, { WARDEN_CRASH_TRACE: trace });
  } finally {
    // Still blocked on the gate only if the command never ran.
    opener?.kill('SIGKILL');
  }
  if (r.status !== 0) throw new Error(`tracing ${args.join(' ')} failed: ${r.stderr}`);
  const points = readFileSync(trace, 'utf8').trim().split('\n');
  rmSync(trace, { force: true });
  rmSync(join(fx.source, SOURCE_LOG), { force: true });
  // What the operation left (a recovered session) goes before the trials.
  for (const s of listSessions()) {
    const end = warden(env, ['end', '-s', s.id]);
    if (end.status !== 0) throw new Error(`end -s ${s.id} after tracing: ${end.stderr}`);
  }
  return points;
}

/** Files whose locks are ours to check: the source lock, manage locks, session lock files. */
function lockFiles(): string[] {
  const files = [join(fx.source, '.ref')];
  const manage = join(env.stateDir, '.manage');
  if (existsSync(manage)) for (const n of readdirSync(manage)) files.push(join(manage, n));
  if (existsSync(env.stateDir)) {
    for (const n of readdirSync(env.stateDir)) {
      const f = join(env.stateDir, n, 'lock');
      if (existsSync(f)) files.push(f);
    }
  }
  return files;
}

function locksOnOurFiles(): string[] {
  const keys = new Map<string, string>();
  for (const f of lockFiles()) {
    try {
      keys.set(fileKeyOfPath(f), f);
    } catch {
      // removed meanwhile
    }
  }
  return readProcLocks()
    .filter((e) => keys.has(e.key))
    .map((e) => `${e.family} ${e.kind} pid ${e.pid} on ${keys.get(e.key)}`);
}

/** Processes started with our state dir in their environment (hooks, commands) that are still alive. */
function ourProcesses(): number[] {
  const mark = Buffer.from(`\0WARDEN_STATE_DIR=${env.stateDir}\0`);
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    if (Number(pid) === process.pid) continue;
    try {
      const environ = Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${pid}/environ`)]);
      if (environ.includes(mark)) out.push(Number(pid));
    } catch {
      // gone
    }
  }
  return [...out, ...processesUnder(fx.tmp)];
}


/** A hook that killed warden exits right after it; so does a released source command. */
async function untilNoProcesses(): Promise<void> {
  await until(() => ourProcesses().length === 0, `no process left (still: ${ourProcesses().join(' ')})`);
}

interface Listed {
  id: string;
  status: string;
  reason?: string;
  /** The status in state.json. */
  phase?: string;
}

function listSessions(): Listed[] {
  const r = warden(env, ['list', '--sessions', '--json']);
  if (r.status !== 0) throw new Error(`list --sessions failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Listed[];
}

const overlayAt = (root: string) => mountsUnder(env.stateDir).some((m) => m.mountPoint === root && m.fsType === 'overlay');

let covered = 0;

for (const op of OPERATIONS) {
  const trial = async (t: ExecutionContext, point: string, extra: Record<string, string>, phase = '') => {
    op.prepare?.();
    writeFileSync(crashPhaseFile, phase);
    const r = runCrashBundle(op.args, extra);
    // The crash hook must kill only the warden under test, not recover.
    writeFileSync(crashPhaseFile, '');
    t.is(r.signal, 'SIGKILL', `warden was killed at ${point} (status ${r.status}: ${r.stderr})`);
    if (op.afterKill) await op.afterKill(t, point);
    await untilNoProcesses();

    // Right after the kill.
    t.deepEqual(locksOnOurFiles(), [], `no lock left after a kill at ${point}`);
    const after = listSessions();
    for (const s of after) t.not(s.status, 'corrupt', `session ${s.id} after a kill at ${point}: ${s.reason}`);
    t.deepEqual(treeDigest(fx.source), sourceDigest, `source unchanged after a kill at ${point}`);

    // Recovery.
    const rec = warden(env, ['recover', '--all']);
    t.is(rec.status, 0, `recover --all after a kill at ${point}: ${rec.stderr}`);
    t.deepEqual(locksOnOurFiles(), [], 'recover without a command holds nothing afterwards');
    for (const s of listSessions()) {
      t.not(s.status, 'corrupt', `session ${s.id} after recovery: ${s.reason}`);
      t.is(s.phase, 'active', `session ${s.id} is consistent after recovery`);
      const dir = join(env.stateDir, s.id);
      t.true(overlayAt(join(dir, 'root')), `session ${s.id} is mounted after recovery`);
      const data = join(sessionPaths(dir).upper, 'crash-data');
      if (op.dataBefore) t.true(existsSync(data), `data written in ${s.id} before the kill at ${point} survived`);
      if (op.data && existsSync(data)) t.is(readFileSync(data, 'utf8'), op.data);
      const end = warden(env, ['end', '-s', s.id]);
      t.is(end.status, 0, `end -s ${s.id}: ${end.stderr}`);
    }
    t.deepEqual(readdirSync(env.stateDir).filter((n) => n !== '.manage'), [], `nothing left in the state dir after a kill at ${point}`);
    t.deepEqual(mountsUnder(fx.tmp).map((m) => m.mountPoint), [], 'nothing mounted');
    t.deepEqual(treeDigest(fx.source), sourceDigest, 'source unchanged after recovery');
    covered++;
  };

  const rootTest = isRoot ? test.serial : test.serial.skip;
  rootTest(`${op.name}: SIGKILL at every crash point, then recover --all`, async (t) => {
    const points = tracePoints(op);
    t.true(points.length >= op.minPoints, `${op.args.join(' ')} passes ${points.length} crash points`);
    for (const point of points) await trial(t, point, { WARDEN_CRASH_AT: point });
    t.log(`${points.length} crash points`);
  });

  if (op.phases.length === 0) continue;
  rootTest(`${op.name}: SIGKILL inside each hook phase, then recover --all`, async (t) => {
    for (const phase of op.phases) await trial(t, `hook:${phase}`, {}, phase);
  });
}

test.after.always('report', (t) => {
  if (isRoot) t.log(`crash points covered: ${covered}`);
});
