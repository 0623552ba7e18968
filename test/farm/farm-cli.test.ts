// Build farms through the real CLI (issue 20): one source chroot and its
// shared-dir= on a GlusterFS volume (test/helpers/gluster.ts), used by
// two "hosts", A and B: each its own mount of the volume, configuration
// (host=), state dir and sessions. What is checked is DESIGN.md's promise
// across hosts: an entry on B waits for A's sessions and names them;
// begins on A queue behind B's pending entry; a session of A whose holders
// died, or whose mount client died, blocks B's entries (exit 7, naming A)
// until A recovers; forget-host for a host gone for good.
//
// Root only, OFD mode only (a POSIX lock's owner is a process: two hosts'
// locks in one test process would not conflict), glusterfs-server
// installed; otherwise skipped with the reason in the titles.
import anyTest, { type TestFn } from 'ava';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountsUnder } from '../../src/union/index.js';
import { processesUnder } from '../helpers/chroots.js';
import { crashAt, untilOutput, warden, wardenAsync, type CliEnv, type Running } from '../helpers/cli.js';
import { farmOrSkip, type Host } from '../helpers/gluster.js';
import { farmHosts, killAll, killRunning, tearDownFarm } from '../helpers/farm-hosts.js';
import { until } from '../helpers/wait.js';

const test = anyTest as TestFn;

const { farm, skip, title } = await farmOrSkip({ needsRoot: true });
const serial = skip ? test.serial.skip : test.serial;

let local: string;
const env = {} as Record<Host, CliEnv>;
const running = new Set<Running>();

test.before(async () => {
  if (!farm) return;
  local = mkdtempSync(join(tmpdir(), 'warden-farm-cli-'));
  const t0 = Date.now();
  Object.assign(env, await farmHosts(farm, local));
  console.log(`farm: chroot bootstrapped on the volume in ${Date.now() - t0} ms`);
});

test.afterEach.always(async () => {
  if (!farm) return;
  await killRunning(running, local);
  for (const h of ['A', 'B'] as const) {
    if (!farm.clientPid(h)) await farm.remount(h);
    warden(env[h], ['recover', '--all', '--end']);
  }
  rmSync(join(farm.mounts.A, 'src', 'upgraded'), { force: true });
});

test.after.always((t) => tearDownFarm(t, farm, local));

/** An automatic session on `host` that runs until killed: prints its id once inside. */
function session(host: Host): Running {
  const r = wardenAsync(env[host], ['run', '-c', 'fx', '--', 'sh', '-c', 'echo "in $WARDEN_SESSION_ID"; exec sleep 1000'], { detached: true });
  running.add(r);
  return r;
}

/** SIGKILL to the session's warden and everything running in the session (its command has a session of its own). */
async function killHolders(r: Running, host: Host): Promise<void> {
  killAll([r.pid!, ...processesUnder(env[host].stateDir)]);
  await r.result;
}

const idOf = (r: Running) => /in (\S+)/.exec(r.output.stdout)![1]!;
const registrations = () => readdirSync(join(farm!.mounts.B, 'shared', 'sessions')).filter((n) => !n.startsWith('.'));

serial(title("B's entry with --no-wait is refused while A has a session, naming it"), async (t) => {
  const a = session('A');
  await untilOutput(a, /in \S+/);
  const id = idOf(a);
  t.deepEqual(registrations(), [`host-a@${id}`]);
  // B lists A's session from its registration; A lists it once, as its own.
  const listed = warden(env.B, ['list', '--sessions', '--json']);
  t.is(listed.status, 0, listed.stderr);
  t.like(JSON.parse(listed.stdout), [{ id, host: 'host-a', status: 'active', chroot: 'fx' }]);
  t.regex(warden(env.B, ['list', '--sessions']).stdout, new RegExp(`host-a@${id}\\s+active\\s+fx\\s.*on host-a, pids \\d+`));
  t.deepEqual(JSON.parse(warden(env.A, ['list', '--sessions', '--json']).stdout).map((e: { id: string; host?: string }) => [e.id, e.host]), [[id, undefined]]);
  const r = warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']);
  t.is(r.status, 5, r.stderr);
  t.regex(r.stderr, new RegExp(`host-a@${id} \\(pid \\d+ on host-a`));
  process.kill(-a.pid!, 'SIGTERM');
  await a.result;
  t.deepEqual(registrations(), [], 'the end removed the registration');
  t.is(warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']).status, 0);
});

serial(title("while B's entry command runs, past the entry's 1 s hold, A's --no-wait entry names it by host (its owner record lasts as long as its command)"), async (t) => {
  const b = wardenAsync(env.B, ['source', '-c', 'fx', '--', 'sh', '-c', 'echo entered; exec sleep 1000'], { detached: true });
  running.add(b);
  await untilOutput(b, /entered/);
  // The shared entry holds its locks 1 s whatever its command does (the
  // mounts' cache time): what is checked lies after that.
  const entered = Date.now();
  await until(() => Date.now() - entered > 1_500, 'past the 1 s hold');
  const r = warden(env.A, ['source', '-c', 'fx', '--no-wait', '--', 'true']);
  t.is(r.status, 5, r.stderr);
  t.regex(r.stderr, /is busy: held by a source entry on host-b \(pid \d+, since /, 'the entry on B is named by its host');
  t.notRegex(r.stderr, /holder unknown/);
  process.kill(-b.pid!, 'SIGTERM');
  await b.result;
  t.is(warden(env.A, ['source', '-c', 'fx', '--no-wait', '--', 'true']).status, 0);
});

serial(title("B's info and locks name A's session, held; once A's holders are SIGKILLed, stale, with what to run on A"), async (t) => {
  const a = session('A');
  await untilOutput(a, /in \S+/);
  const id = idOf(a);
  const pids = () => (JSON.parse(warden(env.B, ['info', 'fx', '--json']).stdout) as { sessions: { host?: string; pids?: number[] }[] }).sessions.find((s) => s.host)?.pids ?? [];
  const look = (status: 'active' | 'stale') => {
    const info = warden(env.B, ['info', 'fx']);
    t.is(info.status, 0, info.stderr);
    t.regex(info.stdout, new RegExp(`^sessions:\\s+host-a@${id} \\(${status}\\)$`, 'm'));
    const row = new RegExp(`^host-a@${id}\\s+${status}\\s+fx\\s+\\d+ s\\s+on host-a, pids ${pids().join(' ')}${status === 'stale' ? '; on host-a: warden recover --all --end' : ''}$`, 'm');
    t.regex(info.stdout, row, 'info fx');
    const infoJson = JSON.parse(warden(env.B, ['info', 'fx', '--json']).stdout) as { sessions: unknown[] };
    t.like(infoJson.sessions, [{ id, host: 'host-a', status, chroot: 'fx' }]);
    const locks = warden(env.B, ['locks']);
    t.is(locks.status, 0, locks.stderr);
    t.regex(locks.stdout, /^REGISTRATION\s+STATUS\s+CHROOT\s+AGE\s+NOTE$/m);
    t.regex(locks.stdout, row, 'locks');
    const locksJson = JSON.parse(warden(env.B, ['locks', '--json']).stdout) as { lock: string }[];
    t.like(
      locksJson.filter((l) => l.lock === 'registration'),
      [{ lock: 'registration', name: id, host: 'host-a', status, chroot: 'fx', path: join(farm!.mounts.B, 'shared', 'sessions', `host-a@${id}`) }],
    );
  };
  t.true(pids().length > 0, 'the registration names its holders');
  look('active');
  // A lists its own session once, as a local one: no registration row.
  t.notRegex(warden(env.A, ['locks']).stdout, /REGISTRATION/);
  t.deepEqual((JSON.parse(warden(env.A, ['info', 'fx', '--json']).stdout) as { sessions: unknown[] }).sessions, [{ id, status: 'active' }]);
  await killHolders(a, 'A');
  await until(() => warden(env.B, ['info', 'fx']).stdout.includes(`host-a@${id} (stale)`), 'stale for B');
  look('stale');
});

serial(title("B's entry waits for A's session; a begin on A meanwhile queues behind it and sees the upgraded source"), async (t) => {
  const a = session('A');
  await untilOutput(a, /in \S+/);
  const entry = wardenAsync(env.B, ['source', '-c', 'fx', '--', 'sh', '-c', 'echo 1 > /upgraded']);
  running.add(entry);
  await untilOutput(entry, new RegExp(`waiting for the sessions using the source to end: .*host-a@${idOf(a)}`), 'stderr');
  // B's entry holds the shared manage lock: a begin on A waits for it, naming it.
  const later = wardenAsync(env.A, ['run', '-c', 'fx', '--', 'cat', '/upgraded'], { detached: true });
  running.add(later);
  await untilOutput(later, /waiting for a source entry on host-b/, 'stderr');
  process.kill(-a.pid!, 'SIGTERM');
  t.is((await entry.result).status, 0);
  const r = await later.result;
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout.trim(), '1', 'the begin queued behind the entry and saw what it wrote');
});

serial(title("a session begun on A right after B's short entry sees what the entry changed, though A's mount cached the file and the missing name just before"), async (t) => {
  const run = (cmd: string) => warden(env.A, ['run', '-c', 'fx', '--', 'sh', '-c', cmd]);
  t.is(warden(env.B, ['source', '-c', 'fx', '--', 'sh', '-c', 'echo 1 > /upgraded; rm -f /added']).status, 0);
  // A's mount now caches /upgraded (its attributes, its content) and that /added is missing (negative-timeout=1).
  const before = run('cat /upgraded; cat /added 2>/dev/null || echo none');
  t.is(before.stdout, '1\nnone\n', before.stderr);
  const t0 = Date.now();
  const entry = warden(env.B, ['source', '-c', 'fx', '--', 'sh', '-c', 'echo 123456789 > /upgraded; echo new > /added']);
  t.is(entry.status, 0, entry.stderr);
  t.true(Date.now() - t0 >= 1000, 'a shared entry holds its locks for the mounts\' cache time (1 s)');
  const after = run('cat /upgraded /added');
  t.is(after.stdout, '123456789\nnew\n', after.stderr);
  rmSync(join(farm!.mounts.A, 'src', 'added'), { force: true });
});

serial(title("A's holders SIGKILLed with the overlay mounted: B's entry exits 7 naming A, the source untouched, until A recovers"), async (t) => {
  const a = session('A');
  await untilOutput(a, /in \S+/);
  const id = idOf(a);
  await killHolders(a, 'A');
  t.true(mountsUnder(env.A.stateDir).length > 0, "A's overlay is still mounted");
  await until(() => warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']).status === 7, 'stale for B');
  const r = warden(env.B, ['source', '-c', 'fx', '--recover-stale', '--', 'sh', '-c', 'echo 1 > /upgraded']);
  t.is(r.status, 7, '--recover-stale on B cannot end A\'s session');
  t.regex(r.stderr, new RegExp(`host-a@${id} \\(pid \\d+ on host-a, since [^)]+\\)`));
  t.regex(r.stderr, /on host-a run `warden recover --all --end`/);
  t.regex(r.stderr, /hint: only the host a session is on can end it .*`--recover-stale` cannot end them from here/);
  t.notRegex(r.stderr, /`--recover-stale` ends them/, 'no hint that --recover-stale would help');
  t.false(existsSync(join(farm!.mounts.A, 'src', 'upgraded')), 'source untouched');
  t.regex(warden(env.B, ['list', '--sessions']).stdout, new RegExp(`host-a@${id}\\s+stale\\s+fx\\s.*on host-a: warden recover --all --end`));
  const rec = warden(env.A, ['recover', '--all', '--end']);
  t.is(rec.status, 0, rec.stderr);
  t.deepEqual(registrations(), []);
  t.is(warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']).status, 0);
});

serial(title("A's mount client killed: its locks go, its registration is stale, B's entry is refused until A recovers"), async (t) => {
  const a = session('A');
  await untilOutput(a, /in \S+/);
  const id = idOf(a);
  process.kill(farm!.clientPid('A')!, 'SIGKILL');
  await until(() => warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']).status === 7, 'stale for B');
  const r = warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']);
  t.regex(r.stderr, new RegExp(`host-a@${id}`));
  // A comes back: the session's holders lost their mount; remount, end them, recover.
  await killHolders(a, 'A');
  await farm!.remount('A');
  const rec = warden(env.A, ['recover', '--all', '--end']);
  t.is(rec.status, 0, rec.stderr);
  t.deepEqual(registrations(), []);
  t.is(warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']).status, 0);
});

serial(title('forget-host: refused while the host holds a registration, and for this host; then forgets it'), async (t) => {
  const a = session('A');
  await untilOutput(a, /in \S+/);
  const id = idOf(a);
  const held = warden(env.B, ['forget-host', '-c', 'fx', 'host-a']);
  t.is(held.status, 5, held.stderr);
  t.regex(held.stderr, new RegExp(`host-a@${id}`));
  t.is(warden(env.B, ['forget-host', '-c', 'fx', 'host-b']).status, 2);
  await killHolders(a, 'A');
  await until(() => warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']).status === 7, 'stale for B');
  const r = warden(env.B, ['forget-host', '-c', 'fx', 'host-a']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, new RegExp(`forgot host-a@${id}`));
  t.is(warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']).status, 0);
  // A's session, no longer registered, is only ended by its recovery.
  const rec = warden(env.A, ['recover', '--all']);
  t.is(rec.status, 0, rec.stderr);
  t.regex(rec.stdout + rec.stderr, /ended/);
  t.deepEqual(mountsUnder(env.A.stateDir), []);
});

serial(title("an end on A that dies after removing its session dir leaves A's registration: B's entry is refused until A's recover --all removes it"), async (t) => {
  crashAt(env.A, 'end:removed', ['run', '-c', 'fx', '--', 'true']);
  const [left] = registrations();
  t.truthy(left, 'the registration outlived the session dir');
  const id = left!.slice('host-a@'.length);
  t.false(existsSync(join(env.A.stateDir, id)), 'the session dir is gone');
  await until(() => warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']).status === 7, 'stale for B');
  const refused = warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']);
  t.regex(refused.stderr, new RegExp(`host-a@${id}`));
  // B's recovery never touches A's registrations.
  const onB = warden(env.B, ['recover', '--all']);
  t.is(onB.status, 0, onB.stderr);
  t.deepEqual(registrations(), [left]);
  const rec = warden(env.A, ['recover', '--all']);
  t.is(rec.status, 0, rec.stderr);
  t.regex(rec.stdout, new RegExp(`removed registration host-a@${id} of \\[fx\\]`));
  t.deepEqual(registrations(), []);
  const r = warden(env.B, ['source', '-c', 'fx', '--no-wait', '--', 'true']);
  t.is(r.status, 0, r.stderr);
  // Nothing left to do: a second recover finds nothing, and takes no lock for it.
  t.regex(warden(env.A, ['recover', '--all']).stdout, /no stale sessions/);
});

serial(title("recover --all leaves a registration of A alone while it is held"), async (t) => {
  const a = session('A');
  await untilOutput(a, /in \S+/);
  const id = idOf(a);
  const rec = warden(env.A, ['recover', '--all']);
  t.is(rec.status, 0, rec.stderr);
  t.deepEqual(registrations(), [`host-a@${id}`], 'held: kept');
  process.kill(-a.pid!, 'SIGTERM');
  await a.result;
});
