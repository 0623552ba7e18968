// The library as a user sees it: everything imported from the package's
// entry (src/index.ts; one test imports 'warden' itself through the
// package's "exports"), a real chroot, real mounts and locks. After each
// test: nothing mounted, no lock or fd of ours, no process in the chroot,
// no session left.
import anyTest, { type TestFn, type Implementation } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openWarden, LockAbortedError, NoSuchChrootError, SessionBusyError, SessionNotFoundError, type LockWait, type SessionEvent, type Warden } from '../../src/index.js';
// Test-side only: the lock a competing process would hold, and the checks.
import { manageLockPath, sourceLockPath, takeManageLock } from '../../src/sessions/index.js';
import { mountsUnder } from '../../src/union/index.js';
import { fileFds, ourLocks, untilBlocked } from '../helpers/leaks.js';
import { destroyFixture, isRoot, makeFixture, processesUnder, REPO, stateEntries, type Fixture } from '../helpers/chroots.js';
import { writeConfig, type CliEnv } from '../helpers/cli.js';
import { TestTerminal } from '../helpers/terminal.js';
import { until } from '../helpers/wait.js';

const test = anyTest as TestFn<{ fds: string[]; warden?: Warden }>;
// In POSIX lock mode one process never blocks itself in the kernel, and the
// abort test waits, in this process, for a lock this process holds.
const posixMode = process.env.WARDEN_LOCK_MODE === 'posix';
const rootSerial = ((title: string, fn: Implementation<[], { fds: string[]; warden?: Warden }>) =>
  isRoot ? test.serial(title, fn) : test.serial.skip(`${title} [skipped: needs root (mounts)]`, fn)) as typeof test.serial;
const ofdSerial = ((title: string, fn: Implementation<[], { fds: string[]; warden?: Warden }>) =>
  posixMode ? test.serial.skip(`${title} [skipped in POSIX mode: one process on both sides never blocks in the kernel]`, fn) : rootSerial(title, fn)) as typeof test.serial;
let fx: Fixture;
let cli: CliEnv;

test.before(async () => {
  if (!isRoot) return;
  fx = await makeFixture('warden-api-');
  cli = writeConfig(fx.tmp, `[warden]\nhooks-dir=${fx.noHooks}\nhook-timeout=10\n\n[fx]\ntype=directory\ndirectory=${fx.source}\nunion-type=overlay\naliases=fixture\n`);
  cli.stateDir = fx.stateDir;
});
test.after.always(() => {
  if (fx) destroyFixture(fx.tmp);
});
test.beforeEach((t) => {
  t.context.fds = fileFds();
});
test.afterEach.always(async (t) => {
  await t.context.warden?.close();
  if (!fx) return;
  t.deepEqual(mountsUnder(fx.tmp).map((m) => m.mountPoint), [], 'nothing left mounted');
  t.deepEqual(ourLocks([sourceLockPath(fx.source), manageLockPath(fx.stateDir, 'fx')]), [], 'no lock of ours left');
  t.deepEqual(fileFds(), t.context.fds, 'no fd left open');
  t.deepEqual(processesUnder(fx.tmp), [], 'no process left in the chroot');
  t.deepEqual(stateEntries(fx.stateDir), [], 'no session left');
});

const open = async (t: { context: { warden?: Warden } }) => (t.context.warden = await openWarden({ config: cli.config, stateDir: fx.stateDir }));

rootSerial('begin, run with output collected, list, end', async (t) => {
  const warden = await open(t);
  const s = await warden.begin('fixture', { id: 'api-1' });
  t.is(s.id, 'api-1');
  t.is(s.chroot, 'fx');
  t.is(s.state, 'held');
  const r = await s.run(['/bin/sh', '-c', 'echo "out $WARDEN_SESSION_ID"; echo err >&2; exit 3'], { stdio: 'pipe' });
  t.deepEqual(r, { status: 3, stdout: 'out api-1\n', stderr: 'err\n' });
  t.deepEqual(await s.run(['/bin/sh', '-c', 'echo "$FOO"'], { stdio: 'pipe', env: { FOO: 'bar' } }), { status: 0, stdout: 'bar\n', stderr: '' });
  t.deepEqual(await s.run(['/bin/true'], { stdio: 'ignore' }), { status: 0 });
  const { chroots, sessions } = await warden.list();
  t.like(chroots[0], { name: 'fx', aliases: ['fixture'], directory: fx.source, unionType: 'overlay' });
  t.is(sessions.length, 1);
  t.like(sessions[0], { id: 'api-1', chroot: 'fx', status: 'active', phase: 'active', mounted: true });
  await s.end();
  t.is(s.state, 'ended');
  await t.throwsAsync(s.run(['/bin/true']), { message: /was ended/ });
  t.deepEqual((await warden.list()).sessions, []);
});

rootSerial('automatic run: status passed through, death by signal N is 128+N, the session is ended', async (t) => {
  const warden = await open(t);
  t.deepEqual(await warden.run('fx', ['/bin/sh', '-c', 'echo hi; exit 7'], { stdio: 'pipe' }), { status: 7, stdout: 'hi\n', stderr: '' });
  t.deepEqual(await warden.run('fx', ['/bin/sh', '-c', 'kill -TERM $$'], { stdio: 'ignore' }), { status: 128 + 15 });
  t.deepEqual(stateEntries(fx.stateDir), []);
  const e = await t.throwsAsync(warden.run('nope', ['/bin/true']), { instanceOf: NoSuchChrootError });
  t.is(e?.exitCode, 4);
});

rootSerial('automatic run whose command leaves a process behind: SessionLeftError, session left for end', async (t) => {
  const warden = await open(t);
  const e = await t.throwsAsync(warden.run('fx', ['/bin/sh', '-c', 'sleep 30 </dev/null >/dev/null 2>&1 & exit 0'], { id: 'left-1', stdio: 'ignore' }), {
    instanceOf: SessionBusyError,
    message: /session left-1: its command exited with 0, but processes it left still use the session/,
  });
  t.is(e?.name, 'SessionLeftError');
  t.is(e?.exitCode, 0, 'the command status, as `warden run -c` exits');
  // OFD locks: the background process holds the session (active); POSIX
  // locks are not inherited: it only uses its files (stale, intact).
  t.deepEqual((await warden.list()).sessions.map((s) => [s.id, s.status, s.mounted]), [['left-1', posixMode ? 'stale' : 'active', true]]);
  // Clean up: the process we left, then the session.
  for (const pid of processesUnder(fx.tmp)) process.kill(pid, 'SIGKILL');
  await until(() => processesUnder(fx.tmp).length === 0, 'the sleep gone');
  t.like((await warden.recover({ id: 'left-1', end: true }))[0], { outcome: 'ended' });
});

rootSerial('end(id) ends a session begun elsewhere and let go of, and one this handle holds; an unknown id is SessionNotFoundError', async (t) => {
  const warden = await open(t);
  const other = await openWarden({ config: cli.config, stateDir: fx.stateDir });
  (await other.begin('fx', { id: 'elsewhere' })).release();
  await other.close();
  t.true(stateEntries(fx.stateDir).includes('elsewhere'));
  await warden.end('elsewhere');
  t.false(stateEntries(fx.stateDir).includes('elsewhere'));
  const s = await warden.begin('fx', { id: 'mine' });
  await warden.end('mine');
  t.is(s.state, 'ended', 'the handle knows it was ended');
  const e = await t.throwsAsync(warden.end('no-such'), { instanceOf: SessionNotFoundError });
  t.is(e?.exitCode, 4);
});

ofdSerial('onWait: a begin waiting for the manage lock says which lock and who holds it', async (t) => {
  const warden = await open(t);
  // Held here as a source entry holds it (OFD locks conflict within one process too).
  const manage = await takeManageLock(fx.stateDir, 'fx');
  const waits: LockWait[] = [];
  const begun = warden.begin('fx', { id: 'waiter', onWait: (w) => waits.push(w) });
  await until(() => waits.length > 0, 'a wait report');
  t.is(waits[0]!.lock, 'manage');
  t.is(waits[0]!.path, manageLockPath(fx.stateDir, 'fx'));
  t.true(waits[0]!.holders.some((h) => h.pid === process.pid && h.kind === 'exclusive'), JSON.stringify(waits[0]));
  manage.close();
  const s = await begun;
  await s.end();
});

rootSerial('enterSource runs in the source, output collected', async (t) => {
  const warden = await open(t);
  const r = await warden.enterSource('fx', ['/bin/sh', '-c', 'echo "in $WARDEN_CHROOT"; exit 2'], { stdio: 'pipe', directory: '/' });
  t.deepEqual(r, { status: 2, stdout: 'in fx\n', stderr: '', recovered: [] });
});

rootSerial('watch: begun and ended events, ready and close', async (t) => {
  const warden = await open(t);
  const events: SessionEvent[] = [];
  const waiters = new Map<string, () => void>();
  const next = (name: string) => new Promise<void>((r) => waiters.set(name, r));
  const w = warden.watch((e) => {
    events.push(e);
    waiters.get(e.event)?.();
  });
  await w.ready;
  // A watch compares what it sees with what it saw: each change is awaited
  // before the next (a session begun and ended unseen is no event).
  const begun = next('begun');
  const s = await warden.begin('fx', { id: 'watched' });
  await begun;
  const ended = next('ended');
  await s.end();
  await ended;
  t.deepEqual(events.map((e) => [e.event, e.id, e.chroot]), [['begun', 'watched', 'fx'], ['ended', 'watched', 'fx']]);
  await w.close();
  t.is(w.close(), w.close(), 'close is idempotent: the same promise');
});

ofdSerial('abort of a begin waiting on a held manage lock leaves nothing; an aborted signal rejects at once', async (t) => {
  const warden = await open(t);
  const already = AbortSignal.abort(new Error('before'));
  await t.throwsAsync(warden.begin('fx', { signal: already }), { message: 'before' });
  const manage = await takeManageLock(fx.stateDir, 'fx');
  try {
    const ac = new AbortController();
    const begin = warden.begin('fx', { id: 'aborted', signal: ac.signal });
    await untilBlocked([manageLockPath(fx.stateDir, 'fx')], 1);
    ac.abort(new Error('changed my mind'));
    const e = await t.throwsAsync(begin, { instanceOf: LockAbortedError });
    t.is(e?.exitCode, 130);
    t.is((e?.cause as Error).message, 'changed my mind');
  } finally {
    manage.close();
  }
  t.deepEqual(stateEntries(fx.stateDir), []);
});

/** A directory where `import 'warden'` resolves to this checkout (node_modules/warden -> the repository), as for a user. */
function userDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-user-'));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(REPO, join(dir, 'node_modules', 'warden'));
  writeFileSync(join(dir, 'package.json'), '{"type":"module"}\n');
  return dir;
}

// README.md, "Use from Node": this script is its example.
const README_EXAMPLE = `
import { openWarden } from 'warden';

const warden = await openWarden();            // the CLI's config and state dir
const s = await warden.begin('fx');           // a session, held by this process
const { status, stdout } = await s.run(['/bin/sh', '-c', 'echo hello from $WARDEN_SESSION_ID'], { stdio: 'pipe' });
await s.end();
const auto = await warden.run('fx', ['/bin/sh', '-c', 'exit 3']);   // begin, run, end
const kept = await warden.begin('fx', { id: 'kept' });
await warden.close();                         // kept is released (stale), the process exits
console.log(JSON.stringify({ status, stdout: stdout.startsWith('hello from fx-'), auto: auto.status, kept: kept.state }));
`;

rootSerial('the README example: close() releases held sessions (stale, recoverable) and the process exits on its own', async (t) => {
  // A separate process, importing 'warden' as a user does: it must exit without process.exit once close() resolves.
  const dir = userDir();
  try {
    const child = spawn(process.execPath, ['--input-type=module', '-e', README_EXAMPLE], {
      cwd: dir,
      env: { ...process.env, WARDEN_CONFIG: cli.config, WARDEN_STATE_DIR: fx.stateDir },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b));
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.once('exit', (c, s) => r([c, s])));
    clearTimeout(timer);
    t.deepEqual([code, signal], [0, null], 'exited on its own');
    t.deepEqual(JSON.parse(out), { status: 0, stdout: true, auto: 3, kept: 'released' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const warden = await open(t);
  t.like((await warden.list()).sessions[0], { id: 'kept', status: 'stale', mounted: true });
  t.like((await warden.recover({ id: 'kept', end: true }))[0], { id: 'kept', outcome: 'ended' });
  const p = warden.close();
  t.is(warden.close(), p, 'close() is idempotent: the same promise');
  await p;
  await t.throwsAsync(warden.list(), { name: 'WardenClosedError' });
});

rootSerial("stdio 'inherit' from a terminal to a command run as another user is refused (it would get the caller's terminal); 'pipe' works", async (t) => {
  const dir = userDir();
  const term = new TestTerminal();
  try {
    const script = `
import { openWarden } from 'warden';
const warden = await openWarden();
const out = {};
try { await warden.run('fx', ['/bin/true'], { user: 'nobody' }); out.inherit = 'ran'; } catch (e) { out.inherit = e.name + ': ' + e.message; }
out.pipe = (await warden.run('fx', ['/bin/sh', '-c', 'id -u'], { user: 'nobody', stdio: 'pipe' })).stdout;
await warden.close();
console.log(JSON.stringify(out));
`;
    const child = term.start([process.execPath, '--input-type=module', '-e', script], {
      cwd: dir,
      env: { ...process.env, WARDEN_CONFIG: cli.config, WARDEN_STATE_DIR: fx.stateDir },
    });
    t.is(await child.status, 0, term.screen);
    const got = JSON.parse(/\{.*\}/.exec(term.screen)![0]) as { inherit: string; pipe: string };
    t.regex(got.inherit, /^RunError: stdio 'inherit' would give this process's terminal to a command run as "nobody"/);
    t.is(got.pipe, '65534\n');
  } finally {
    await term.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the package resolves as `warden` through its exports, with nothing but the API', (t) => {
  const dir = userDir();
  try {
    const r = spawnSync(
      process.execPath,
      ['--input-type=module', '-e', `import('warden').then((m) => console.log(JSON.stringify({ open: typeof m.openWarden, code: new m.NoSuchChrootError('x', []).exitCode, keys: Object.keys(m) })))`],
      { cwd: dir, encoding: 'utf8' },
    );
    t.is(r.status, 0, r.stderr);
    const got = JSON.parse(r.stdout) as { open: string; code: number; keys: string[] };
    t.is(got.open, 'function');
    t.is(got.code, 4);
    t.false(got.keys.includes('loadContext') || got.keys.includes('beginSession'), 'no internals exported');
    const deep = spawnSync(process.execPath, ['--input-type=module', '-e', `import('warden/dist/src/sessions/index.js')`], { cwd: dir, encoding: 'utf8' });
    t.regex(deep.stderr, /ERR_PACKAGE_PATH_NOT_EXPORTED/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
