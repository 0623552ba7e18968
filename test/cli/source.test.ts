// `warden source` as users and outside tools drive it: the real bundle in
// separate processes, real sessions, real locks, a python3 `.ref` user.
// Waits are observed in /proc/locks or in warden's output, never slept for.
// After each test: nothing mounted, no process in the chroot, no session,
// and nobody holding or waiting for the chroot's source or manage lock.
import anyTest, { type TestFn } from 'ava';
import { EventEmitter } from 'node:events';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { manageLockPath, sourceLockPath } from '../../src/sessions/index.js';
import { lockHolders } from '../../src/locks/index.js';
import { mountsUnder } from '../../src/union/index.js';
import { Holder, killAllHolders } from '../helpers/holder.js';
import { untilBlocked } from '../helpers/leaks.js';
import { until } from '../helpers/wait.js';
import { REPO, destroyFixture, isRoot, makeFixture, processesUnder, stateEntries, treeDigest, type Fixture, assertNothingLeftUnder } from '../helpers/chroots.js';
import { WARDEN, untilOutput, writeConfig, type CliEnv, type Result, type Running } from '../helpers/cli.js';

const test = anyTest as TestFn;
const rootSerial = isRoot ? test.serial : test.serial.skip;
// Inherited locks exist only in OFD mode; its POSIX counterpart is the "POSIX mode:" test.
const ofdSerial = isRoot && process.env.WARDEN_LOCK_MODE !== 'posix' ? test.serial : test.serial.skip;
const CRASH = join(REPO, 'dist', 'crash', 'warden.cjs');
let fx: Fixture;
let env: CliEnv;

test.before(async () => {
  if (!isRoot) return;
  fx = await makeFixture('warden-cli-source-');
  env = writeConfig(fx.tmp, `[warden]\nhooks-dir=${fx.noHooks}\nhook-timeout=10\n\n[fx]\ntype=directory\ndirectory=${fx.source}\nunion-type=overlay\n`);
});
test.after.always(() => {
  if (fx) destroyFixture(fx.tmp);
});
test.afterEach.always(async (t) => {
  await killAllHolders();
  if (!fx) return;
  assertNothingLeftUnder(t, fx.tmp, env.stateDir);
  t.deepEqual(lockHolders(ref()), [], 'nobody holds the source lock');
  t.deepEqual(lockHolders(manage()), [], 'nobody holds the manage lock');
});

const ref = () => sourceLockPath(fx.source);
const manage = () => manageLockPath(env.stateDir, 'fx');

/** The real CLI with extra environment (lock mode, crash point); stdin a pipe. */
function start(args: string[], extra: NodeJS.ProcessEnv = {}, opts: { detached?: boolean } = {}): Running {
  const child = spawn(process.execPath, [WARDEN, ...args], {
    env: { ...process.env, WARDEN_CONFIG: env.config, WARDEN_STATE_DIR: env.stateDir, WARDEN_DEBUG: '', ...extra },
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: env.top,
    detached: opts.detached,
  });
  const output = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output.stderr += d));
  const result = new Promise<Result>((resolve) => child.once('close', (status, signal) => resolve({ status, signal, ...output })));
  return Object.assign(child, { result, output });
}

function run(args: string[], extra: NodeJS.ProcessEnv = {}, input?: string): Result {
  const r = spawnSync(process.execPath, [WARDEN, ...args], {
    env: { ...process.env, WARDEN_CONFIG: env.config, WARDEN_STATE_DIR: env.stateDir, WARDEN_DEBUG: '', ...extra },
    encoding: 'utf8',
    input,
    timeout: 60_000,
    cwd: env.top,
  });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}


/** The process itself has exited (its stdio may live on in children that inherited it). */
function exited(child: Running): Promise<void> {
  return new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
}

/** A session held by a `warden run` whose command waits for a line on stdin. */
async function heldSession(id: string, extra: NodeJS.ProcessEnv = {}): Promise<Running> {
  const w = start(['run', '-c', 'fx', '--id', id, '--', '/bin/sh', '-c', 'echo started; read x'], extra);
  await untilOutput(w, /started/);
  return w;
}

rootSerial('usage: -c and a command are required (exit 2)', (t) => {
  t.regex(run(['source', '--', 'true']).stderr, /-c CHROOT is required/);
  t.is(run(['source', '--', 'true']).status, 2);
  t.is(run(['source', '-c', 'fx']).status, 2);
  t.is(run(['source', '-c', 'nope', '--', 'true']).status, 4);
  t.regex(run(['--help']).stdout, /warden source/);
  t.regex(run(['source', '--help']).stdout, /--recover-stale/);
});

rootSerial('the command runs in the source itself: stdio, exit status, 126/127, -u, -d pass through like run (needs root)', (t) => {
  const before = treeDigest(fx.source);
  const r = run(['source', '-c', 'fx', '--', '/bin/sh', '-c', 'cat; echo out; echo err >&2; echo new > /etc/from-source; exit 3'], {}, 'from stdin\n');
  t.is(r.status, 3, r.stderr);
  t.is(r.stdout, 'from stdin\nout\n');
  t.is(r.stderr, 'err\n');
  t.is(readFileSync(join(fx.source, 'etc/from-source'), 'utf8'), 'new\n', 'written into the source directory');
  t.is(run(['source', '-c', 'fx', '--', '/bin/sh', '-c', 'kill -TERM $$']).status, 128 + 15);
  t.is(run(['source', '-c', 'fx', '--', '/no/such']).status, 127);
  t.is(run(['source', '-c', 'fx', '--', '/etc/passwd']).status, 126);
  t.is(run(['source', '-c', 'fx', '-d', '/etc', '--', '/bin/sh', '-c', 'test "$(pwd)" = /etc && test -e from-source']).status, 0);
  t.is(run(['source', '-c', 'fx', '-u', 'nobody', '--', '/bin/sh', '-c', 'test "$(id -u)" = 65534']).status, 0);
  const bad = run(['source', '-c', 'fx', '-d', '/no/such/dir', '--', 'true']);
  t.is(bad.status, 125);
  t.regex(bad.stderr, /^warden: source -c fx: directory \/no\/such\/dir does not exist in the source of chroot fx$/m);
  // The command sees its locks as fds 3 (manage) and 4 (source).
  t.is(run(['source', '-c', 'fx', '--', '/bin/sh', '-c', 'test "$WARDEN_LOCK_FDS" = 3,4 && test "$WARDEN_CHROOT" = fx']).status, 0);
  rmSync(join(fx.source, 'etc/from-source'));
  t.deepEqual(treeDigest(fx.source), before);
});

rootSerial('source waits for a session, naming it; a run started meanwhile waits for the entry; no session is mounted while the command runs (needs root)', async (t) => {
  const a = await heldSession('holding');
  const entry = start(['source', '-c', 'fx', '--', '/bin/sh', '-c', 'echo entered; echo changed > /etc/entered; read x']);
  await untilBlocked([ref()], 1);
  await untilOutput(entry, /waiting for the sessions using the source to end: .*held by session holding \(pids? \d+( \d+)?, \d+ s\)/, 'stderr');
  const later = start(['run', '-c', 'fx', '--', '/bin/sh', '-c', 'cat /etc/entered']);
  await untilBlocked([manage()], 1);
  a.stdin!.end('\n');
  t.is((await a.result).status, 0);
  await untilOutput(entry, /entered/);
  t.deepEqual(mountsUnder(fx.tmp), [], 'no session is mounted over the source while it changes');
  t.deepEqual(stateEntries(env.stateDir), []);
  await untilBlocked([manage()], 1); // the run still waits
  entry.stdin!.end('\n');
  t.is((await entry.result).status, 0);
  const r = await later.result;
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, 'changed\n', 'the session began over the changed source');
  rmSync(join(fx.source, 'etc/entered'));
});

rootSerial('writer preference: with sessions starting in a loop from 3 processes, the entry gets in once the running ones end (needs root)', async (t) => {
  const LOOPS = 3;
  const events: { at: number; what: 'in' | 'waiting' | 'entered' | 'left' }[] = [];
  type What = (typeof events)[0]['what'];
  const bus = new EventEmitter();
  const count = (what: What) => events.filter((e) => e.what === what).length;
  const note = (what: What) => {
    events.push({ at: Date.now(), what });
    bus.emit(what);
  };
  /** Resolves once `n` events of that kind have happened. */
  const untilCount = (what: What, n: number) =>
    new Promise<void>((resolve) => {
      const check = () => {
        if (count(what) < n) return;
        bus.off(what, check);
        resolve();
      };
      bus.on(what, check);
      check();
    });
  let stop = false;
  const durations: number[] = [];
  const failures: string[] = [];
  const loop = async () => {
    while (!stop) {
      const began = Date.now();
      const w = start(['run', '-c', 'fx', '--', '/bin/sh', '-c', 'echo in; sleep 0.5']);
      w.stdout!.on('data', (d: string) => d.includes('in') && note('in'));
      const r = await w.result;
      if (r.status !== 0) failures.push(r.stderr);
      durations.push(Date.now() - began);
    }
  };
  const loops = Array.from({ length: LOOPS }, loop);
  // Sessions flow: each loop has been through the source at least once.
  await untilCount('in', 2 * LOOPS);
  // Right after a session's command started: it holds the source longer than warden takes to start.
  await untilCount('in', count('in') + 1);
  const requested = Date.now();
  // Every wait reported at once (warden says nothing of a wait under a second unless told).
  const entry = start(['source', '-c', 'fx', '--', '/bin/sh', '-c', 'echo entered'], { WARDEN_WAIT_QUIET_MS: '0' });
  entry.stderr!.on('data', (d: string) => d.includes('waiting for the sessions') && note('waiting'));
  await untilOutput(entry, /entered/);
  note('entered');
  const r = await entry.result;
  note('left');
  t.is(r.status, 0, r.stderr);
  // The loops go on after the entry: their begins waited, none failed.
  await untilCount('in', count('in') + 1);
  stop = true;
  await Promise.all(loops);
  t.deepEqual(failures, []);
  const enteredAt = events.find((e) => e.what === 'entered')!.at;
  const waitingAt = events.find((e) => e.what === 'waiting')?.at;
  t.truthy(waitingAt, 'the entry had to wait for running sessions');
  if (waitingAt === undefined) return;
  // From the moment the entry holds the manage lock, only sessions that were
  // already past it may still start their command: at most one per loop.
  const sneaked = events.filter((e) => e.what === 'in' && e.at > waitingAt && e.at < enteredAt).length;
  t.true(sneaked <= LOOPS, `${sneaked} sessions started after the entry took the manage lock`);
  const session = durations.reduce((a, b) => a + b, 0) / durations.length;
  t.log(`one automatic session: ${session.toFixed(0)} ms on average; entry requested -> in: ${enteredAt - requested} ms (holding manage -> in: ${enteredAt - waitingAt} ms)`);
  // Roughly the time the running sessions take to end, plus warden's own start-up: never a queue of new ones.
  t.true(enteredAt - requested < 3 * session + 2000, `entry took ${enteredAt - requested} ms with sessions of ${session.toFixed(0)} ms`);
});

rootSerial('stale sessions block with exit 7 listing them; --recover-stale ends them, then enters (needs root)', (t) => {
  const crash = spawnSync(process.execPath, [CRASH, 'run', '-c', 'fx', '--id', 'left-behind', '--', 'true'], {
    env: { ...process.env, WARDEN_CONFIG: env.config, WARDEN_STATE_DIR: env.stateDir, WARDEN_CRASH_AT: 'begin:active' },
  });
  t.is(crash.signal, 'SIGKILL');
  t.regex(run(['list', '--sessions']).stdout, /left-behind\s+stale/);
  const r = run(['source', '-c', 'fx', '--', 'true']);
  t.is(r.status, 7, r.stderr);
  t.regex(r.stderr, /^warden: source -c fx: stale session of chroot fx blocks the source entry: left-behind; recover it with `warden recover -s left-behind`/m);
  t.true(existsSync(join(env.stateDir, 'left-behind')), 'refusing touched nothing');
  t.true(mountsUnder(env.stateDir).length > 0);
  const ok = run(['source', '-c', 'fx', '--recover-stale', '--', '/bin/sh', '-c', 'echo entered']);
  t.is(ok.status, 0, ok.stderr);
  t.is(ok.stdout, 'entered\n');
  t.regex(ok.stderr, /warden: ended stale session left-behind before entering the source/);
});

rootSerial('--no-wait and --timeout exit 5 with the holders; Ctrl-C while waiting exits 130; nothing is left (needs root)', async (t) => {
  const a = await heldSession('busy');
  const nw = run(['source', '-c', 'fx', '--no-wait', '--', 'true']);
  t.is(nw.status, 5, nw.stderr);
  t.regex(nw.stderr, /source of chroot fx is in use: held by session busy \(pids? \d+( \d+)?, \d+ s\)/);
  const started = Date.now();
  const to = run(['source', '-c', 'fx', '--timeout', '0.3', '--', 'true']);
  t.is(to.status, 5, to.stderr);
  t.true(Date.now() - started >= 300);
  t.regex(to.stderr, /stayed in use for 300 ms \(timed out\): held by session busy/);
  const w = start(['source', '-c', 'fx', '--', 'true']);
  await untilBlocked([ref()], 1);
  w.kill('SIGINT');
  const r = await w.result;
  t.is(r.status, 130, r.stderr);
  // What a terminal does: SIGINT to the whole process group, the command waiting at its gate included.
  const g = start(['source', '-c', 'fx', '--', '/bin/sh', '-c', 'echo ran > /etc/ran'], {}, { detached: true });
  await untilBlocked([ref()], 1);
  process.kill(-g.pid!, 'SIGINT');
  t.is((await g.result).status, 130);
  t.false(existsSync(join(fx.source, 'etc/ran')), 'the command never ran');
  // Only the session holds anything: no manage lock, no waiter.
  t.deepEqual(lockHolders(manage()), []);
  t.false(lockHolders(ref()).some((h) => h.kind === 'exclusive' || h.waiting));
  a.stdin!.end('\n');
  t.is((await a.result).status, 0);
  // An outside exclusive holder of the manage lock (another entry): --no-wait names it.
  const h = await Holder.start(manage());
  t.is(await h.lock('ofd', 'w'), 'ok');
  const m = run(['source', '-c', 'fx', '--no-wait', '--', 'true']);
  t.is(m.status, 5);
  t.regex(m.stderr, new RegExp(`held exclusive by pid ${h.pid} \\(holder\\)`));
  await h.kill();
});

/**
 * A FIFO in the source that a command can block on: `read x < /tmp/NAME`.
 * (Not our stdin pipe: Node closes its end of a child's stdin when the child
 * dies, which would end an orphaned command at once.)
 */
function gate(name: string): { path: string; open: () => void } {
  const path = join(fx.source, 'tmp', name);
  rmSync(path, { force: true });
  spawnSync('mkfifo', [path]);
  return {
    path,
    open: () => {
      writeFileSync(path, 'go\n'); // blocks until the command has the FIFO open
      rmSync(path);
    },
  };
}

rootSerial('a warden SIGKILLed while it waits leaves nothing: the command started ahead never runs (needs root)', async (t) => {
  const a = await heldSession('blocking');
  const w = start(['source', '-c', 'fx', '--', '/bin/sh', '-c', 'echo ran > /etc/ran']);
  await untilBlocked([ref()], 1);
  w.kill('SIGKILL');
  await exited(w);
  // The gated command sees its gate close and exits; with it the last copy of the manage lock.
  await until(() => lockHolders(manage()).length === 0, 'the manage lock to be free');
  a.stdin!.end('\n');
  t.is((await a.result).status, 0);
  t.false(existsSync(join(fx.source, 'etc/ran')), 'the command never ran');
  t.is(run(['run', '-c', 'fx', '--no-wait', '--', 'true']).status, 0);
});

ofdSerial('OFD: a SIGKILLed warden leaves the locks with its command; a begin waits until the command exits (needs root)', async (t) => {
  const g = gate('ofd-gate');
  const w = start(['source', '-c', 'fx', '--', '/bin/sh', '-c', 'echo entered; read x < /tmp/ofd-gate; echo late > /etc/late']);
  await untilOutput(w, /entered/);
  w.kill('SIGKILL');
  await exited(w);
  t.true(lockHolders(ref()).some((h) => h.kind === 'exclusive' && h.comm === 'sh'), 'the command holds the source lock');
  t.true(lockHolders(manage()).some((h) => h.kind === 'exclusive' && h.comm === 'sh'), 'and the manage lock');
  t.is(run(['run', '-c', 'fx', '--no-wait', '--', 'true']).status, 5);
  const later = start(['run', '-c', 'fx', '--', '/bin/sh', '-c', 'cat /etc/late']);
  await untilBlocked([manage()], 1);
  g.open();
  const r = await later.result;
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, 'late\n', 'the session began after the command finished writing');
  rmSync(join(fx.source, 'etc/late'));
});

rootSerial('POSIX mode: the entry waits and excludes sessions while warden lives; a SIGKILLed warden releases them (documented) (needs root)', async (t) => {
  const posix = { WARDEN_LOCK_MODE: 'posix' };
  const a = await heldSession('posix-held', posix);
  const g = gate('posix-gate');
  const entry = start(['source', '-c', 'fx', '--', '/bin/sh', '-c', 'echo entered; read x < /tmp/posix-gate'], posix);
  await untilBlocked([ref()], 1);
  await untilOutput(entry, /held by session posix-held/, 'stderr');
  a.stdin!.end('\n');
  t.is((await a.result).status, 0);
  await untilOutput(entry, /entered/);
  t.true(lockHolders(ref()).some((h) => h.family === 'POSIX' && h.kind === 'exclusive' && h.pid === entry.pid));
  t.is(run(['run', '-c', 'fx', '--no-wait', '--', 'true'], posix).status, 5);
  // POSIX locks belong to the warden process: killing it frees the source
  // although the command still runs. This is why warden must stay alive in POSIX mode.
  entry.kill('SIGKILL');
  await exited(entry);
  t.true(processesUnder(fx.source).length > 0, 'the command still runs');
  t.is(run(['run', '-c', 'fx', '--no-wait', '--', 'true'], posix).status, 0);
  g.open();
  await entry.result;
});

const PY = `
import fcntl, os, struct, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
if sys.argv[2] == 'hold':
    fcntl.lockf(fd, fcntl.LOCK_SH)  # F_SETLKW, F_RDLCK, whole file: what bwrap --lock-file and flatpak take
    print('locked', flush=True)
    sys.stdin.read()
else:
    out = []
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        out.append('posix:ok')
    except OSError:
        out.append('posix:busy')
    flock = struct.pack('hhxxxxqqixxxx', fcntl.F_RDLCK, os.SEEK_SET, 0, 0, 0)
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock)
        out.append('ofd:ok')
    except OSError:
        out.append('ofd:busy')
    print(' '.join(out))
`;

rootSerial('.ref interop: a python3 fcntl shared lock on <source>/.ref makes source wait; while source holds it, their shared attempts fail (needs root)', async (t) => {
  const py = spawn('python3', ['-c', PY, ref(), 'hold'], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => py.stdout.on('data', (d) => String(d).includes('locked') && resolve()));
  const w = start(['source', '-c', 'fx', '--', '/bin/sh', '-c', 'echo entered']);
  await untilBlocked([ref()], 1);
  await untilOutput(w, new RegExp(`held by other: shared by pid ${py.pid} \\(python3\\)`), 'stderr');
  t.false(w.output.stdout.includes('entered'));
  py.stdin.end();
  const r = await w.result;
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, 'entered\n');
  const inside = start(['source', '-c', 'fx', '--', '/bin/sh', '-c', 'echo entered; read x']);
  await untilOutput(inside, /entered/);
  const attempt = spawnSync('python3', ['-c', PY, ref(), 'try'], { encoding: 'utf8' });
  t.is(attempt.stdout.trim(), 'posix:busy ofd:busy');
  inside.stdin!.end('\n');
  t.is((await inside.result).status, 0);
  t.is(spawnSync('python3', ['-c', PY, ref(), 'try'], { encoding: 'utf8' }).stdout.trim(), 'posix:ok ofd:ok', 'free again afterwards');
});
