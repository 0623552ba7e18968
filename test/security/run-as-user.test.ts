// Issue 15, point 4: a command run as another user (run -u, source -u)
// gets no terminal and no environment of the caller's. Real warden, real
// throwaway users, a real pty playing root's terminal, and a small C probe
// (test/c/ttyprobe.c) copied into the chroot that reports what it sees.
// After each test: no fd or child of ours left, nothing mounted, no
// process in a session, no user left (makeUser removes it).
import anyTest, { type TestFn } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, copyFileSync, existsSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { USER_PATH } from '../../src/sessions/environment.js';
import { assertNothingLeftUnder, destroyFixture, makeFixture, type Fixture } from '../helpers/chroots.js';
import { WARDEN, writeConfig, type CliEnv } from '../helpers/cli.js';
import { allFds, childrenOf } from '../helpers/leaks.js';
import { TestTerminal } from '../helpers/terminal.js';
import { compiled } from '../helpers/cc.js';
import { makeUser } from '../helpers/users.js';

const test = anyTest as TestFn<{ fds: string[]; children: number[] }>;
const isRoot = process.getuid!() === 0;
// chroot and switching users need root; the reason shows in the skipped tests' titles.
const asRoot = isRoot ? test.serial : test.serial.skip;
const NEEDS_ROOT = isRoot ? '' : ' (skipped: chroot and switching users need root)';

const PROBE = '/usr/bin/ttyprobe';
let fx: Fixture;
let cli: CliEnv;

const probeBinary = (): string => compiled('ttyprobe');

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

asRoot(`nothing a terminal: no pty, stdio passes through, the command still leads a session of its own, without a controlling terminal${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  const w = spawn(process.execPath, [WARDEN, 'run', '-c', 'fx', '-u', user.name, '--', PROBE, 'wait'], { env: callerEnv(), cwd: fx.tmp, stdio: ['pipe', 'pipe', 'pipe'] });
  w.stderr!.resume();
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
  t.deepEqual(seen.fds.slice(0, 3).filter((f) => !f.startsWith('socket:')), [], "warden's own stdio, no pty");
  w.stdin!.end('piped\n');
  t.is(await status, 3);
  t.regex(out, /read=piped\n/);
});

/** A file for the command's stdin, opened read-only as a shell's `< file` does; closed and removed when the test ends. */
function inputFile(t: { teardown(f: () => void): void }, text: string): { path: string; fd: number } {
  const path = join(fx.tmp, `input-${process.pid}-${Math.random().toString(36).slice(2)}.txt`);
  writeFileSync(path, text);
  const fd = openSync(path, 'r');
  t.teardown(() => {
    closeSync(fd);
    rmSync(path, { force: true });
  });
  return { path, fd };
}

/** Resolves once process `pid` has exited (it is not our child: it may stay a zombie). */
async function gone(pid: number): Promise<void> {
  const exited = () => {
    try {
      return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
    } catch {
      return true;
    }
  };
  while (!exited()) await new Promise((r) => setImmediate(r));
}

/** Everything a readable stream gives until its end. */
const readAll = (stream: NodeJS.ReadableStream) =>
  new Promise<string>((resolve) => {
    let text = '';
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (text += d));
    stream.once('end', () => resolve(text));
  });

// Which of warden's stdin, stdout, stderr are root's terminal; the others are a file (stdin) or pipes.
const combinations: [boolean, boolean, boolean][] = [
  [true, false, false],
  [false, true, false],
  [false, false, true],
  [true, true, false],
  [true, false, true],
  [false, true, true],
  [true, true, true],
];

for (const [verb, prefix] of verbs) {
  asRoot(`${verb} -u: whichever of stdin, stdout, stderr is root's terminal, the command gets a pty as its controlling terminal and for exactly those, and no fd of root's terminal${NEEDS_ROOT}`, async (t) => {
    const user = makeUser(t);
    for (const tty of combinations) {
      const what = tty.map((x, i) => `${['stdin', 'stdout', 'stderr'][i]}=${x ? 'terminal' : 'other'}`).join(' ');
      const term = new TestTerminal();
      t.teardown(() => term.close());
      const modes = term.modes();
      const input = inputFile(t, 'from-file\n');
      const w = term.start([process.execPath, WARDEN, ...prefix(user.name), PROBE, 'fds'], {
        env: callerEnv(),
        cwd: fx.tmp,
        stdin: tty[0] ? undefined : input.fd,
        stdout: tty[1] ? undefined : 'pipe',
        stderr: tty[2] ? undefined : 'pipe',
      });
      const out = w.stdout ? readAll(w.stdout) : Promise.resolve('');
      const err = w.stderr ? readAll(w.stderr) : Promise.resolve('');
      t.is(await w.status, 0, `${what}: ${await err}`);
      // The probe's report is on its stdout: the pipe, or root's terminal through the pty.
      const text = tty[1] ? (await term.until(/fd0=[^]*?end\r?\n/))[0] : await out;
      const m = /fd0=(\S+) fd1=(\S+) fd2=(\S+) leader=(\d)/.exec(text);
      if (!m) return t.fail(`${what}: no report in ${JSON.stringify(text)}`);
      const fds = m.slice(1, 4);
      t.is(m[4], '1', `${what}: leads a session`);
      fds.forEach((f, i) => {
        if (tty[i]) t.regex(f, /^ctty:\d+$/, `${what}: fd ${i} is the controlling terminal`);
        else t.is(f, '-', `${what}: fd ${i} is not a terminal`);
      });
      const rdevs = new Set(fds.filter((f) => f !== '-').map((f) => Number(f.slice(5))));
      t.is(rdevs.size, 1, `${what}: one pty`);
      t.false(rdevs.has(term.rdev), `${what}: which is not root's terminal`);
      if (!tty[0]) t.regex(text, /read=from-file\r?\n/, `${what}: stdin is the file`);
      t.is(term.modes(), modes, `${what}: root's terminal is as it was`);
      await term.close();
    }
  });

  asRoot(`${verb} -u < file, stdout root's terminal: the command reads the file and has no fd of the terminal, and what it leaves behind cannot read what root types after warden exits${NEEDS_ROOT}`, async (t) => {
    const user = makeUser(t);
    const term = new TestTerminal();
    t.teardown(() => term.close());
    const modes = term.modes();
    const input = inputFile(t, 'from-file\n');
    const w = term.start([process.execPath, WARDEN, ...prefix(user.name), PROBE, 'leave'], { env: callerEnv(), cwd: fx.tmp, stdin: input.fd, stderr: 'pipe' });
    const report = readAll(w.stderr!);
    const [, pid, bg] = (await term.until(/pid=(\d+) bg=(\d+)\r?\nready/)).map(Number);
    // `run` leaves its session to the process left behind (`warden end` it once that is gone); `source` has none.
    const session = /(?:^|\0)WARDEN_SESSION_ID=([^\0]+)/.exec(readFileSync(`/proc/${bg}/environ`, 'utf8'))?.[1];
    t.teardown(async () => {
      try {
        process.kill(bg!, 'SIGKILL');
      } catch {
        // reported and gone
      }
      await gone(bg!);
      const end = session ? wardenSync(['end', '-s', session]) : undefined;
      if (end && end.status !== 0) throw new Error(`warden end -s ${session}: ${end.stderr}`);
    });
    t.regex(term.screen, /read=from-file\r\n/, "it read the file, and its output reached root's terminal");
    const pty = statSync(`/proc/${pid}/fd/1`).rdev;
    t.not(pty, term.rdev);
    for (const p of [pid!, bg!]) {
      const seen = proc(p);
      t.is(seen.uid, user.uid, 'runs as the user');
      t.is(seen.session, pid, 'in the session the command leads');
      t.is(seen.ttyNr, pty, 'its controlling terminal is its own pty');
      t.false(seen.fds.includes(term.path), "no fd of root's terminal");
      t.is(seen.fds[0], input.path, 'stdin is the file');
    }
    t.is(term.modes(), modes, "root's terminal is not made raw: nothing reads it");
    process.kill(pid!, 'SIGUSR1');
    t.is(await w.status, 0, 'warden exits with the command, though its background process keeps the pty');
    t.true(existsSync(`/proc/${bg}`), 'the background process survived the hangup');
    // Root types at the shell now: a password, say.
    term.type('secret\r');
    await term.until(/secret\r\n/);
    t.is(term.pendingInput(), 'secret\n'.length);
    process.kill(bg!, 'SIGUSR1');
    const got = await report;
    t.regex(got, /done\n/, got);
    t.notRegex(got, /secret/, 'it read nothing of what root typed');
    t.regex(got, /fd0=eof\n/);
    t.regex(got, /devtty=errno:\d+\n/, 'it has no controlling terminal left to open');
    t.is(term.pendingInput(), 'secret\n'.length, "what root typed still waits for root's shell");
    t.is(term.modes(), modes);
  });

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
