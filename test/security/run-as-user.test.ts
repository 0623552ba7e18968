// Issue 15, point 4: a command run as another user (run -u, source -u)
// gets no terminal and no environment of the caller's. Real warden, real
// throwaway users, a real pty playing root's terminal, and a small C probe
// (test/c/ttyprobe.c) copied into the chroot that reports what it sees.
// After each test: no fd or child of ours left, nothing mounted, no
// process in a session, no user left (makeUser removes it).
import anyTest, { type TestFn } from 'ava';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { USER_PATH } from '../../src/sessions/environment.js';
import { assertNothingLeftUnder, destroyFixture, makeFixture, REPO, type Fixture } from '../helpers/chroots.js';
import { WARDEN, writeConfig, type CliEnv } from '../helpers/cli.js';
import { allFds, childrenOf } from '../helpers/leaks.js';
import { TestTerminal } from '../helpers/terminal.js';
import { makeUser } from '../helpers/users.js';

const test = anyTest as TestFn<{ fds: string[]; children: number[] }>;
const isRoot = process.getuid!() === 0;
// chroot and switching users need root; the reason shows in the skipped tests' titles.
const asRoot = isRoot ? test.serial : test.serial.skip;
const NEEDS_ROOT = isRoot ? '' : ' (skipped: chroot and switching users need root)';

const PROBE = '/usr/bin/ttyprobe';
let fx: Fixture;
let cli: CliEnv;

/** test/c/ttyprobe.c, compiled once (atomically: ava runs test files in parallel). */
function probeBinary(): string {
  const source = join(REPO, 'test', 'c', 'ttyprobe.c');
  const binary = join(REPO, 'test', '.build', 'ttyprobe');
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return binary;
  mkdirSync(dirname(binary), { recursive: true });
  const tmp = `${binary}.${process.pid}`;
  execFileSync('cc', ['-O2', '-Wall', '-o', tmp, source], { stdio: 'inherit' });
  renameSync(tmp, binary);
  return binary;
}

test.before(async () => {
  if (!isRoot) return;
  fx = await makeFixture('warden-runas-');
  copyFileSync(probeBinary(), join(fx.source, PROBE));
  cli = writeConfig(fx.tmp, `[warden]\nhooks-dir=${fx.noHooks}\n\n[fx]\ntype=directory\ndirectory=${fx.source}\nunion-type=overlay\n`);
});
test.after.always(() => {
  if (fx) destroyFixture(fx.tmp);
});
test.beforeEach((t) => {
  t.context.fds = allFds();
  t.context.children = childrenOf();
});
test.afterEach.always((t) => {
  if (!fx) return;
  t.deepEqual(allFds().filter((f) => !t.context.fds.includes(f)), [], 'no fd of any kind left open');
  t.deepEqual(childrenOf(), t.context.children, 'no child left');
  assertNothingLeftUnder(t, fx.tmp, cli.stateDir);
});

/** warden's environment in these tests: ours with a secret and a preload added. */
const callerEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  WARDEN_CONFIG: cli.config,
  WARDEN_STATE_DIR: cli.stateDir,
  WARDEN_DEBUG: '',
  TERM: 'vt100',
  WARDEN_TEST_SECRET: 'hunter2',
  // The host's libc preloaded: harmless to warden, and a variable schroot's filter drops.
  LD_PRELOAD: 'libc.so.6',
});

/** Session id, tty and uid of a running process, as ps(1) reads them. */
function proc(pid: number): { session: number; ttyNr: number; uid: number; fds: string[] } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const uid = Number(/^Uid:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]);
  const fds = readdirSync(`/proc/${pid}/fd`).map((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`);
    } catch {
      return '?';
    }
  });
  return { session: Number(fields[3]), ttyNr: Number(fields[4]), uid, fds };
}

/** `env` output as a map. */
const parseEnv = (text: string) => Object.fromEntries(text.trim().split('\n').map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));

function wardenSync(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [WARDEN, ...args], { env: callerEnv(), encoding: 'utf8', input: '', timeout: 60_000, cwd: fx.tmp });
  if (r.error) throw r.error;
  return r;
}

const verbs: [string, (user: string) => string[]][] = [
  ['run -c', (user) => ['run', '-c', 'fx', '-u', user, '--']],
  ['source -c', (user) => ['source', '-c', 'fx', '-u', user, '--']],
];

for (const [verb, prefix] of verbs) {
  asRoot(`${verb} -u: the command has a session and a pty of its own, so its TIOCSTI cannot reach root's terminal${NEEDS_ROOT}`, async (t) => {
    const user = makeUser(t);
    const term = new TestTerminal();
    t.teardown(() => term.close());
    const modes = term.modes();
    const w = term.start([process.execPath, WARDEN, ...prefix(user.name), PROBE, 'sti'], { env: callerEnv(), cwd: fx.tmp });
    const [, pid, rdev] = await term.until(/pid=(\d+) rdev=(\d+)\r?\nready/);
    const seen = proc(Number(pid));
    t.is(seen.uid, user.uid, 'runs as the user');
    t.not(seen.session, w.pid, "not in warden's session");
    t.is(seen.session, Number(pid), 'leads a session of its own');
    t.is(seen.ttyNr, Number(rdev), 'its controlling terminal is its stdin');
    t.not(Number(rdev), term.rdev, "which is not root's terminal");
    t.false(seen.fds.includes(term.path), "no fd of it names root's terminal");
    term.type('go\r');
    await term.until(/read=injected/);
    t.regex(term.screen, /sti=0\r?\n/, 'TIOCSTI works, on its own pty');
    t.is(await w.status, 0);
    t.is(term.pendingInput(), 0, "nothing was pushed into root's terminal");
    t.is(term.modes(), modes, "root's terminal is restored");
  });
}

asRoot(`control: the probe's TIOCSTI does reach a terminal that is its controlling terminal (what warden used to hand it)${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  const term = new TestTerminal();
  t.teardown(() => term.close());
  const probe = join(fx.source, PROBE);
  const c = term.start(['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', probe, 'sti', 'noread']);
  await term.until(/ready/);
  term.type('go\r');
  await term.until(/sti=0/);
  t.is(await c.status, 0);
  t.is(term.pendingInput(), 'injected\n'.length, 'the injected line waits in the terminal for the next reader');
});

asRoot(`Ctrl-C on root's terminal reaches the command through its pty (exit 130), and the status passes through${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  const term = new TestTerminal();
  t.teardown(() => term.close());
  const modes = term.modes();
  const a = term.start([process.execPath, WARDEN, 'run', '-c', 'fx', '-u', user.name, '--', PROBE, 'wait'], { env: callerEnv(), cwd: fx.tmp });
  await term.until(/ready/);
  term.type('\x03');
  t.is(await a.status, 130);
  t.is(term.modes(), modes, "root's terminal is restored");
  term.screen = '';
  const b = term.start([process.execPath, WARDEN, 'run', '-c', 'fx', '-u', user.name, '--', PROBE, 'wait'], { env: callerEnv(), cwd: fx.tmp });
  await term.until(/ready/);
  term.type('hello\r');
  t.is(await b.status, 3);
  t.regex(term.screen, /read=hello/);
  t.is(term.modes(), modes);
});

asRoot(`stdin a terminal, stdout a file: the file gets the output as written (no CRLF), the terminal the rest${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  const term = new TestTerminal();
  t.teardown(() => term.close());
  const path = join(fx.tmp, 'out.txt');
  const fd = openSync(path, 'w');
  t.teardown(() => rmSync(path, { force: true }));
  let w;
  try {
    w = term.start([process.execPath, WARDEN, 'run', '-c', 'fx', '-u', user.name, '--', '/bin/sh', '-c', 'echo one; echo two; echo to-stderr >&2'], { env: callerEnv(), cwd: fx.tmp, stdout: fd });
  } finally {
    closeSync(fd);
  }
  t.is(await w.status, 0);
  t.is(readFileSync(path, 'utf8'), 'one\ntwo\n');
  await term.until(/to-stderr\r\n/);
});

asRoot(`the window size is the caller's at start and follows it (SIGWINCH)${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  const term = new TestTerminal({ rows: 33, cols: 97 });
  t.teardown(() => term.close());
  const w = term.start([process.execPath, WARDEN, 'run', '-c', 'fx', '-u', user.name, '--', PROBE, 'size'], { env: callerEnv(), cwd: fx.tmp });
  await term.until(/size=33 97\r?\nready/);
  term.resize(40, 120);
  await term.until(/size=40 120/);
  t.is(await w.status, 0);
});

asRoot(`stdin not a terminal: stdio passes through, the command still leads a session of its own, without a controlling terminal${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  const w = spawn(process.execPath, [WARDEN, 'run', '-c', 'fx', '-u', user.name, '--', PROBE, 'wait'], { env: callerEnv(), cwd: fx.tmp, stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  const ready = new Promise<number>((resolve) =>
    w.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      const m = /pid=(\d+)\nready/.exec(out);
      if (m) resolve(Number(m[1]));
    }),
  );
  const status = new Promise<number | null>((resolve) => w.once('close', (code) => resolve(code)));
  const seen = proc(await ready);
  t.not(seen.session, proc(w.pid!).session, "not in warden's session");
  t.is(seen.ttyNr, 0, 'no controlling terminal');
  w.stdin!.end('piped\n');
  t.is(await status, 3);
  t.regex(out, /read=piped\n/);
});

for (const [verb, prefix] of verbs) {
  asRoot(`${verb} -u: a minimal environment (the user's HOME, USER, LOGNAME, SHELL, PATH; TERM); nothing else of warden's${NEEDS_ROOT}`, (t) => {
    const user = makeUser(t);
    const r = wardenSync([...prefix(user.name), 'env']);
    t.is(r.status, 0, r.stderr);
    const env = parseEnv(r.stdout);
    t.like(env, { HOME: '/nonexistent', USER: user.name, LOGNAME: user.name, SHELL: '/bin/sh', PATH: USER_PATH, TERM: 'vt100', WARDEN_CHROOT: 'fx' });
    t.false('WARDEN_TEST_SECRET' in env, 'the secret stays with warden');
    t.false('LD_PRELOAD' in env);
    const allowed = new Set(['HOME', 'USER', 'LOGNAME', 'SHELL', 'PATH', 'TERM', 'PWD', 'WARDEN_CHROOT', 'WARDEN_SESSION_ID', 'WARDEN_LOCK_FDS']);
    t.deepEqual(Object.keys(env).filter((k) => !allowed.has(k)), []);
  });

  asRoot(`${verb} -u -p: the caller's environment minus schroot's filter, with the user's HOME, USER, LOGNAME${NEEDS_ROOT}`, (t) => {
    const user = makeUser(t);
    const r = wardenSync([...prefix(user.name).slice(0, -1), '-p', '--', 'env']);
    t.is(r.status, 0, r.stderr);
    const env = parseEnv(r.stdout);
    t.like(env, { WARDEN_TEST_SECRET: 'hunter2', HOME: '/nonexistent', USER: user.name, LOGNAME: user.name, TERM: 'vt100', PATH: process.env.PATH });
    t.false('LD_PRELOAD' in env, 'LD_PRELOAD is filtered out');
  });
}

asRoot(`without -u the command runs as root with root's minimal environment${NEEDS_ROOT}`, (t) => {
  const r = wardenSync(['run', '-c', 'fx', '--', 'env']);
  t.is(r.status, 0, r.stderr);
  const env = parseEnv(r.stdout);
  t.like(env, { USER: 'root', LOGNAME: 'root', PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' });
  t.false('WARDEN_TEST_SECRET' in env);
});
