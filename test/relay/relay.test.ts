// The relay (dist/bin/warden, from src/relay/warden.c) against this test
// playing the supervisor with the real wire code (src/supervisor/relay-wire.ts, relay-socket.ts, relay-request.ts):
// a node:net server that pauses each connection so that the request, fds
// and all, is read with recvmsg; frames go back through node:net as the
// supervisor will send them. The reader is also fed hand-made requests over
// a socketpair. After each test no fd of any kind is left open and no child
// is alive.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, chownSync, fstatSync, mkdtempSync, readFileSync, readlinkSync, readSync, realpathSync, rmSync, statSync, writeSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { koffi, libc } from '../../src/sys/koffi.js';
import { Pty } from '../../src/sys/pty.js';
import { POLLIN, pollOne } from '../../src/sys/poll.js';
import {
  exitFrame,
  fallbackFrame,
  MAX_RELAY_PAYLOAD,
  outputFrame,
  RelayFrameParser,
  RelayProtocolError,
  RelaySocketError,
  type RelayRequest,
} from '../../src/supervisor/relay-wire.js';
import { RelayRequestReader } from '../../src/supervisor/relay-request.js';
import { peekKind, sendTerminalFrame } from '../../src/supervisor/relay-socket.js';
import { REPO } from '../helpers/chroots.js';
import { allFds, childrenOf } from '../helpers/leaks.js';
import { TestTerminal } from '../helpers/terminal.js';

const RELAY = join(REPO, 'dist', 'bin', 'warden');
const test = anyTest as TestFn<{ fds: string[]; children: number[]; dir: string }>;

test.before(async () => {
  // libuv opens its SIGCHLD plumbing on the first spawn, node:net and tty
  // their own on first use: open all before any snapshot.
  const child = spawn('true', { stdio: 'pipe' });
  await new Promise((resolve) => child.once('close', resolve));
  const s = createServer().listen(0);
  await new Promise((resolve) => s.close(resolve));
  await new TestTerminal().close();
});
test.beforeEach((t) => {
  t.context.dir = realpathSync(mkdtempSync(join(tmpdir(), 'warden-relay-')));
  t.context.fds = allFds();
  t.context.children = childrenOf();
});
test.afterEach.always((t) => {
  t.deepEqual(
    allFds().filter((f) => !t.context.fds.includes(f)),
    [],
    'no fd of any kind left open',
  );
  t.deepEqual(childrenOf(), t.context.children, 'no child left');
  rmSync(t.context.dir, { recursive: true, force: true });
});

// ---- a fake supervisor -------------------------------------------------

/** Listens on DIR/supervisor.sock; accept() resolves with each connection, paused (libuv does not read it). */
class FakeSupervisor {
  readonly #server: Server;
  readonly #queue: Socket[] = [];
  readonly #waiting: ((s: Socket) => void)[] = [];
  readonly #sockets = new Set<Socket>();

  private constructor(server: Server) {
    this.#server = server;
    server.on('connection', (s) => {
      this.connections++;
      this.#sockets.add(s);
      s.on('close', () => this.#sockets.delete(s));
      s.on('error', () => {});
      const w = this.#waiting.shift();
      if (w) w(s);
      else this.#queue.push(s);
    });
  }

  static async start(dir: string): Promise<FakeSupervisor> {
    const server = createServer({ pauseOnConnect: true });
    await new Promise<void>((resolve) => server.listen(join(dir, 'supervisor.sock'), resolve));
    return new FakeSupervisor(server);
  }

  /** Connections accepted so far. */
  connections = 0;

  accept(): Promise<Socket> {
    const s = this.#queue.shift();
    return s ? Promise.resolve(s) : new Promise((resolve) => this.#waiting.push(resolve));
  }

  async close(): Promise<void> {
    for (const s of this.#sockets) s.destroy();
    await new Promise((resolve) => this.#server.close(resolve));
  }
}

function fdOf(s: Socket): number {
  return (s as unknown as { _handle: { fd: number } })._handle.fd;
}

/** The relay's request, read as the supervisor will: recvmsg whenever poll says the socket is readable. */
async function readRequest(s: Socket): Promise<RelayRequest> {
  const fd = fdOf(s);
  const reader = new RelayRequestReader(fd);
  try {
    for (;;) {
      const r = reader.read();
      if (r !== 'more') return r;
      pollOne(fd, POLLIN, 50);
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    reader.close();
  }
}

function closeAll(fds: readonly number[]): void {
  for (const fd of fds) closeSync(fd);
}

/** The signals the relay forwards on `s`, from now on (resumes the socket). */
function signals(s: Socket): { next(): Promise<number> } {
  const parser = new RelayFrameParser();
  const got: number[] = [];
  const waiting: ((n: number) => void)[] = [];
  s.on('data', (b: Buffer) => {
    for (const f of parser.push(b)) {
      const w = waiting.shift();
      if (w) w(f.signo);
      else got.push(f.signo);
    }
  });
  s.resume();
  return { next: () => (got.length ? Promise.resolve(got.shift()!) : new Promise((resolve) => waiting.push(resolve))) };
}

interface Result {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The relay as a child with `env` only (and PATH), its output collected. */
function relay(dir: string, args: string[], env: Record<string, string> = {}, stdio: ('pipe' | 'ignore')[] = ['pipe', 'pipe', 'pipe']): ChildProcess & { result: Promise<Result> } {
  const child = spawn(RELAY, args, { cwd: dir, env: { PATH: process.env.PATH!, WARDEN_STATE_DIR: dir, ...env }, stdio });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const result = new Promise<Result>((resolve) => child.once('close', (status, signal) => resolve({ status, signal, stdout, stderr })));
  return Object.assign(child, { result });
}

/** Runs `body` with a fake supervisor in `dir`, closed afterwards whatever happens. */
async function withFake(dir: string, body: (sup: FakeSupervisor, dir: string) => Promise<void>): Promise<void> {
  const sup = await FakeSupervisor.start(dir);
  try {
    await body(sup, dir);
  } finally {
    await sup.close();
  }
}

/** The relay running `args` against `sup`, and its connection once its request has been read (its fds closed). */
async function relayed(sup: FakeSupervisor, dir: string, args: string[]): Promise<{ child: ReturnType<typeof relay>; s: Socket }> {
  const child = relay(dir, args);
  const s = await sup.accept();
  closeAll((await readRequest(s)).fds);
  return { child, s };
}


/** Resolves once /proc says process `pid` is (or is no longer) stopped; the kernel's state is the event. */
async function untilStopped(pid: number, stopped: boolean): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if ((stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'T') === stopped) return;
    if (Date.now() > deadline) throw new Error(`pid ${pid} not ${stopped ? 'stopped' : 'running'} after 10 s`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

// ---- the relay and the supervisor --------------------------------------

test.serial('argv, cwd and environment arrive; the fds are the relay\'s stdio; o and e frames and the exit status pass', async (t) => {
  const { dir } = t.context;
  const sup = await FakeSupervisor.start(dir);
  try {
    const child = relay(dir, ['run', '-s', 'x', '--', 'sh', '-c', 'echo "$1"', 'sh', 'ü ✓'], { FOO: 'bar baz', EMPTY: '' });
    const s = await sup.accept();
    const req = await readRequest(s);
    try {
      t.deepEqual(req.args, ['run', '-s', 'x', '--', 'sh', '-c', 'echo "$1"', 'sh', 'ü ✓']);
      t.is(req.cwd, dir);
      t.deepEqual([...req.env].sort(), ['EMPTY=', 'FOO=bar baz', `PATH=${process.env.PATH}`, `WARDEN_STATE_DIR=${dir}`]);
      for (const n of [0, 1, 2]) {
        const ours = fstatSync(req.fds[n]!);
        const theirs = statSync(`/proc/${child.pid}/fd/${n}`);
        t.deepEqual([ours.dev, ours.ino], [theirs.dev, theirs.ino], `fd ${n} is the relay's`);
      }
      writeSync(req.fds[1], 'straight to fd 1\n');
    } finally {
      closeAll(req.fds);
    }
    s.write(outputFrame(1, 'from an o frame\n'));
    s.write(outputFrame(2, Buffer.from('from an e frame\n')));
    s.write(outputFrame(1, ''));
    s.write(exitFrame(3));
    t.deepEqual(await child.result, { status: 3, signal: null, stdout: 'straight to fd 1\nfrom an o frame\n', stderr: 'from an e frame\n' });
  } finally {
    await sup.close();
  }
});

const exitStatus = test.macro({
  async exec(t: ExecutionContext<{ dir: string }>, status: number) {
    const { dir } = t.context;
    const sup = await FakeSupervisor.start(dir);
    try {
      const child = relay(dir, ['end', '-s', 'x']);
      const s = await sup.accept();
      closeAll((await readRequest(s)).fds);
      // A big frame in pieces, then the status in the same write as its tail.
      const big = Buffer.alloc(300_000, 'x');
      const f = outputFrame(1, big);
      s.write(f.subarray(0, 3));
      s.write(Buffer.concat([f.subarray(3), exitFrame(status)]));
      const r = await child.result;
      t.is(r.status, status);
      t.is(r.stdout.length, big.length);
    } finally {
      await sup.close();
    }
  },
  title: (_, status: number) => `exit status ${status} passes through`,
});
for (const status of [0, 3, 130, 255]) test.serial(exitStatus, status);

test.serial('SIGINT, SIGTERM, SIGHUP and SIGQUIT are forwarded as S frames and do not kill the relay', async (t) => {
  await withFake(t.context.dir, async (sup, dir) => {
    const { child, s } = await relayed(sup, dir, ['run', '-c', 'x', '--', 'true']);
    const got = signals(s);
    // The relay blocks these before it sends its request: it has them in hand now.
    for (const [name, signo] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1], ['SIGQUIT', 3]] as const) {
      child.kill(name);
      t.is(await got.next(), signo, name);
    }
    s.write(exitFrame(0));
    t.like(await child.result, { status: 0, signal: null, stderr: '' });
  });
});

test.serial('SIGTSTP is forwarded and stops the relay; SIGCONT continues it and is forwarded', async (t) => {
  await withFake(t.context.dir, async (sup, dir) => {
    const { child, s } = await relayed(sup, dir, ['run', '-c', 'x', '--', 'true']);
    const got = signals(s);
    child.kill('SIGTSTP');
    t.is(await got.next(), 20);
    await untilStopped(child.pid!, true);
    child.kill('SIGCONT');
    t.is(await got.next(), 18);
    await untilStopped(child.pid!, false);
    s.write(exitFrame(0));
    t.like(await child.result, { status: 0, signal: null });
  });
});

test.serial('the supervisor closing the connection without an X frame: exit 125 and one line', async (t) => {
  await withFake(t.context.dir, async (sup, dir) => {
    const { child, s } = await relayed(sup, dir, ['run', '-c', 'x', '--', 'true']);
    s.end(outputFrame(1, 'partial'));
    t.deepEqual(await child.result, { status: 125, signal: null, stdout: 'partial', stderr: 'warden: the supervisor went away before the command finished\n' });
  });
});

const malformedReply = test.macro({
  async exec(t: ExecutionContext<{ dir: string }>, reply: Buffer) {
    const { dir } = t.context;
    const sup = await FakeSupervisor.start(dir);
    try {
      const child = relay(dir, ['run', '-c', 'x', '--', 'true']);
      const s = await sup.accept();
      closeAll((await readRequest(s)).fds);
      s.write(reply);
      t.like(await child.result, { status: 125, signal: null, stderr: 'warden: malformed reply from the supervisor\n' });
    } finally {
      await sup.close();
    }
  },
  title: (what = '') => `a malformed reply (${what}): exit 125 and one line`,
});
test.serial('unknown type', malformedReply, Buffer.from('Z\0\0\0\0'));
test.serial('X with 2 bytes', malformedReply, Buffer.from('X\x02\0\0\0\0\0'));
test.serial('exit status 256', malformedReply, Buffer.from('X\x04\0\0\0\0\x01\0\0'));
test.serial('F after another frame', malformedReply, Buffer.concat([outputFrame(1, ''), fallbackFrame()]));
test.serial('T without an fd', malformedReply, Buffer.from('T\x03\0\0\0\0\x01\0'));

test.serial('an F frame: the relay becomes the Node CLI with the same argv', async (t) => {
  await withFake(t.context.dir, async (sup, dir) => {
    const { child, s } = await relayed(sup, dir, ['end']);
    s.write(fallbackFrame());
    // Node's argument check, which the relay does not have.
    t.like(await child.result, { status: 2, stdout: '', stderr: "warden: end: which session? (-s ID, or --all)\nTry 'warden end --help'.\n" });
    t.is(sup.connections, 1, 'the Node CLI did not connect');
  });
});

const fallsBack = test.macro({
  async exec(t: ExecutionContext<{ dir: string }>, args: string[], env: Record<string, string>, expected: Partial<Result>) {
    const { dir } = t.context;
    const sup = await FakeSupervisor.start(dir);
    try {
      sup.accept().then((s) => t.fail(`connected: ${s.remoteAddress}`), () => {});
      t.like(await relay(dir, args.map((a) => a.replace('DIR', dir)), env).result, expected);
      t.is(sup.connections, 0);
    } finally {
      await sup.close();
    }
  },
  title: (what = '') => `without connecting, the Node CLI: ${what}`,
});
test.serial('--version', fallsBack, ['--version'], {}, { status: 0, stdout: 'warden 0.1.0\n' });
test.serial('a verb the relay does not serve (list --help)', fallsBack, ['list', '--help'], {}, { status: 0 });
test.serial('--help after a verb', fallsBack, ['run', '-s', 'x', '--help'], {}, { status: 0 });
test.serial('--state-dir after the verb', fallsBack, ['end', '--state-dir', 'DIR'], {}, { status: 2 });
test.serial('--config', fallsBack, ['end', '--config=/nonexistent'], {}, { status: 2 });
test.serial('WARDEN_NO_SUPERVISOR', fallsBack, ['end'], { WARDEN_NO_SUPERVISOR: '1' }, { status: 2, stderr: "warden: end: which session? (-s ID, or --all)\nTry 'warden end --help'.\n" });
test.serial('WARDEN_CONFIG', fallsBack, ['end'], { WARDEN_CONFIG: '/nonexistent' }, { status: 2 });

test.serial('no socket (ENOENT): the Node CLI; with WARDEN_RELAY_NO_FALLBACK=1 a message and 125 or 1', async (t) => {
  const { dir } = t.context;
  t.like(await relay(dir, ['end']).result, { status: 2, stderr: "warden: end: which session? (-s ID, or --all)\nTry 'warden end --help'.\n" });
  const message = `warden: no supervisor runs for ${dir} (${dir}/supervisor.sock: No such file or directory); start it with \`systemctl start warden.socket\`, or as root \`warden supervise\`\n`;
  t.deepEqual(await relay(dir, ['end'], { WARDEN_RELAY_NO_FALLBACK: '1' }).result, { status: 1, signal: null, stdout: '', stderr: message });
  t.deepEqual(await relay(dir, ['run', '-c', 'x'], { WARDEN_RELAY_NO_FALLBACK: '1' }).result, { status: 125, signal: null, stdout: '', stderr: message });
  // --state-dir names the socket, ahead of the environment (as in the Node CLI).
  const other = join(dir, 'other');
  t.like(await relay(dir, ['--state-dir', other, 'source', '-c', 'x'], { WARDEN_RELAY_NO_FALLBACK: '1' }).result, {
    status: 125,
    stderr: `warden: no supervisor runs for ${other} (${other}/supervisor.sock: No such file or directory); start it with \`systemctl start warden.socket\`, or as root \`warden supervise\`\n`,
  });
});

test.serial('an argument list and environment over 1 MiB: refused before connecting, exit 125', async (t) => {
  const { dir } = t.context;
  const sup = await FakeSupervisor.start(dir);
  try {
    // execve takes at most 128 KiB per string: several of them.
    const env = Object.fromEntries(Array.from({ length: 9 }, (_, i) => [`BIG${i}`, 'x'.repeat(120_000)]));
    const r = await relay(dir, ['run', '-c', 'x'], env).result;
    t.is(r.status, 125);
    t.regex(r.stderr, /^warden: argument list and environment too long \(\d+ bytes, at most 1048576\)\n$/);
    t.is(sup.connections, 0);
  } finally {
    await sup.close();
  }
});

test.serial('a closed stdin is /dev/null by the time it is sent', async (t) => {
  const { dir } = t.context;
  const sup = await FakeSupervisor.start(dir);
  try {
    const child = spawn('sh', ['-c', 'exec "$0" "$@" <&-', RELAY, 'end', '-s', 'x'], { cwd: dir, env: { PATH: process.env.PATH!, WARDEN_STATE_DIR: dir }, stdio: 'ignore' });
    const done = new Promise((resolve) => child.once('close', resolve));
    const s = await sup.accept();
    const req = await readRequest(s);
    t.is(readlinkSync(`/proc/self/fd/${req.fds[0]}`), '/dev/null');
    closeAll(req.fds);
    s.write(exitFrame(0));
    t.is(await done, 0);
  } finally {
    await sup.close();
  }
});

test.serial('installed set-user-ID: refuses to run', async (t) => {
  const { dir } = t.context;
  if (process.getuid!() !== 0) return t.pass('needs root to make a set-user-ID copy');
  const copy = join(dir, 'warden');
  copyFileSync(RELAY, copy);
  chmodSync(dir, 0o755);
  chownSync(copy, 65534, 65534);
  chmodSync(copy, 0o4755);
  const r = spawnSync(copy, ['end', '-s', 'x'], { env: { WARDEN_STATE_DIR: dir }, encoding: 'utf8' });
  t.is(r.status, 125);
  t.regex(r.stderr, /^warden: refusing to run set-user-ID/);
});

// ---- a terminal --------------------------------------------------------

const TIOCGWINSZ = 0x5413;
function windowSize(fd: number): [number, number] {
  const ioctl = libc().func('int ioctl(int fd, unsigned long request, void *arg)') as (fd: number, req: number, arg: Buffer) => number;
  const ws = Buffer.alloc(8);
  if (ioctl(fd, TIOCGWINSZ, ws) !== 0) throw new Error('TIOCGWINSZ failed');
  return [ws.readUInt16LE(0), ws.readUInt16LE(2)];
}

test.serial('a T frame: typed bytes reach the pty, its output reaches the terminal, the size follows, the mode comes back', async (t) => {
  const { dir } = t.context;
  const sup = await FakeSupervisor.start(dir);
  const term = new TestTerminal({ rows: 24, cols: 80 });
  const before = term.modes();
  const pty = Pty.open();
  try {
    const child = term.start([RELAY, 'run', '-c', 'x', '--', 'cat'], { env: { PATH: process.env.PATH!, WARDEN_STATE_DIR: dir }, cwd: dir });
    const s = await sup.accept();
    closeAll((await readRequest(s)).fds);
    const master = pty.takeMaster();
    try {
      sendTerminalFrame(fdOf(s), master, { input: 0, output: 1, size: 0 });
    } finally {
      closeSync(master); // the relay has its own now
    }
    // Output the relay copies comes only after it took the T frame: then stdin is raw too.
    writeSync(pty.slave.fd, 'ready\n');
    await term.until(/ready/);
    t.not(term.modes(), before, 'raw meanwhile');
    t.deepEqual(windowSize(pty.slave.fd), [24, 80], 'the size copied at once');
    term.type('typed\n');
    await term.until(/typed/); // the pty's echo
    const buf = Buffer.alloc(64);
    t.is(buf.toString('utf8', 0, readSync(pty.slave.fd, buf)), 'typed\n');
    term.resize(40, 120);
    const deadline = Date.now() + 10_000;
    while (windowSize(pty.slave.fd)[0] !== 40 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 2));
    t.deepEqual(windowSize(pty.slave.fd), [40, 120], 'the size follows SIGWINCH');
    writeSync(pty.slave.fd, 'last words\n');
    pty.closeSlave();
    s.write(exitFrame(7));
    t.is(await child.status, 7);
    await term.until(/last words/);
    t.is(term.modes(), before, 'the mode restored');
  } finally {
    pty.close();
    await term.close();
    await sup.close();
  }
});

test.serial('a T frame without input: fd 0 is left alone, the output goes to the fd named', async (t) => {
  const { dir } = t.context;
  const sup = await FakeSupervisor.start(dir);
  const term = new TestTerminal();
  const before = term.modes();
  const pty = Pty.open();
  try {
    const child = term.start([RELAY, 'run', '-c', 'x', '--', 'cat'], { env: { PATH: process.env.PATH!, WARDEN_STATE_DIR: dir }, cwd: dir, stderr: 'pipe' });
    let stderr = '';
    const seen = new Promise<void>((resolve) =>
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        stderr += d;
        if (stderr.includes('to stderr')) resolve();
      }),
    );
    const s = await sup.accept();
    closeAll((await readRequest(s)).fds);
    const master = pty.takeMaster();
    try {
      sendTerminalFrame(fdOf(s), master, { input: null, output: 2, size: 1 });
    } finally {
      closeSync(master);
    }
    writeSync(pty.slave.fd, 'to stderr\n');
    await seen;
    t.is(term.modes(), before, 'fd 0 not made raw');
    t.deepEqual(windowSize(pty.slave.fd), [24, 80], 'the size of fd 1');
    pty.closeSlave();
    s.write(exitFrame(0));
    t.is(await child.status, 0);
    t.is(stderr, 'to stderr\r\n');
    t.notRegex(term.screen, /to stderr/);
  } finally {
    pty.close();
    await term.close();
    await sup.close();
  }
});

// ---- the reader, fed by hand --------------------------------------------

interface Native {
  socketpair: (domain: number, type: number, protocol: number, sv: Int32Array) => number;
  sendmsg: (fd: number, msg: Buffer, flags: number) => number;
}
let native: Native | undefined;
function calls(): Native {
  return (native ??= {
    socketpair: libc().func('int socketpair(int domain, int type, int protocol, _Out_ int32_t *sv)') as Native['socketpair'],
    sendmsg: libc().func('long sendmsg(int fd, const void *msg, int flags)') as Native['sendmsg'],
  });
}

/** A connected unix stream pair, close-on-exec. */
function socketpair(): [number, number] {
  const sv = new Int32Array(2);
  if (calls().socketpair(1, 1 | 0o2000000, 0, sv) !== 0) throw new Error(`socketpair: errno ${koffi().errno()}`);
  return [sv[0]!, sv[1]!];
}

/** One sendmsg of `data` with `fds` attached (SCM_RIGHTS), as a relay sends. */
function send(fd: number, data: Buffer, fds: number[] = []): void {
  const k = koffi();
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(k.address(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  const control = Buffer.alloc(16 + Math.ceil((fds.length * 4) / 8) * 8);
  control.writeBigUInt64LE(BigInt(16 + fds.length * 4), 0);
  control.writeInt32LE(1, 8);
  control.writeInt32LE(1, 12);
  fds.forEach((f, i) => control.writeInt32LE(f, 16 + i * 4));
  const msg = Buffer.alloc(56);
  msg.writeBigUInt64LE(k.address(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  if (fds.length) {
    msg.writeBigUInt64LE(k.address(control), 32);
    msg.writeBigUInt64LE(BigInt(control.length), 40);
  }
  const n = calls().sendmsg(fd, msg, 0x4000);
  if (n !== data.length) throw new Error(`sendmsg sent ${n} of ${data.length}: errno ${k.errno()}`);
}

/** A request's bytes; `o` changes header fields or the payload to make a malformed one. */
function request(o: { magic?: string; version?: number; length?: number; argc?: number; envc?: number; payload?: Buffer } = {}): Buffer {
  const payload = o.payload ?? Buffer.from('/tmp\0run\0-c\0x\0A=1\0');
  const h = Buffer.alloc(20);
  h.write(o.magic ?? 'WRLY', 0, 'latin1');
  h.writeUInt32LE(o.version ?? 1, 4);
  h.writeUInt32LE(o.length ?? payload.length, 8);
  h.writeUInt32LE(o.argc ?? 3, 12);
  h.writeUInt32LE(o.envc ?? 1, 16);
  return Buffer.concat([h, payload]);
}

test.serial('the reader: a request in pieces, fds with the first; nothing read past it; its fds handed out', (t) => {
  const [a, b] = socketpair();
  const reader = new RelayRequestReader(b);
  try {
    t.is(reader.read(), 'more', 'nothing there yet (EAGAIN)');
    const bytes = Buffer.concat([request(), Buffer.from('S\x04\0\0\0\x02\0\0\0')]);
    send(a, bytes.subarray(0, 7), [0, 1, 2]);
    t.is(reader.read(), 'more');
    send(a, bytes.subarray(7, 25));
    t.is(reader.read(), 'more');
    send(a, bytes.subarray(25));
    const req = reader.read() as RelayRequest;
    t.like(req, { cwd: '/tmp', args: ['run', '-c', 'x'], env: ['A=1'] });
    for (const n of [0, 1, 2]) t.is(fstatSync(req.fds[n]!).ino, fstatSync(n).ino);
    closeAll(req.fds);
    reader.close(); // closes nothing: the fds were handed out
    t.throws(() => reader.read(), { message: /after the request was read/ });
    // The S frame is left on the socket for node:net.
    const rest = Buffer.alloc(32);
    t.deepEqual(rest.subarray(0, readSync(b, rest)), Buffer.from('S\x04\0\0\0\x02\0\0\0'));
  } finally {
    closeAll([a, b]);
  }
});

const refused = test.macro({
  exec(t: ExecutionContext, bytes: Buffer, fds: number[], message: RegExp, end = false) {
    const [a, b] = socketpair();
    const reader = new RelayRequestReader(b);
    try {
      send(a, bytes, fds);
      if (end) closeSync(a);
      // Everything was sent (and the end, when `end`): one read() must decide.
      const e = t.throws(() => {
        const r = reader.read();
        if (r !== 'more') closeAll(r.fds);
        throw new Error(`read() gave ${r === 'more' ? "'more'" : 'a request'}`);
      });
      t.true(e instanceof RelayProtocolError, String(e));
      t.regex(e!.message, message);
      reader.close();
    } finally {
      closeSync(b);
      if (!end) closeSync(a);
    }
  },
  title: (what = '') => `the reader refuses ${what}, closing the fds that came`,
});
test.serial('a bad magic', refused, request({ magic: 'XRLY' }), [0, 1, 2], /not a relay request: it starts with "XRLY"/);
test.serial('a JSON line', refused, Buffer.from('{"op":"list","args":[1,2,3,4,5,6,7]}\n'), [], /not a relay request/);
test.serial('another version', refused, request({ version: 2 }), [0, 1, 2], /version 2 is not supported/);
test.serial('a length over 1 MiB', refused, request({ length: MAX_RELAY_PAYLOAD + 1 }), [0, 1, 2], /of 1048577 bytes refused: at most 1048576/);
test.serial('argc 0', refused, request({ argc: 0, envc: 4 }), [0, 1, 2], /argc 0/);
test.serial('counts the length cannot hold', refused, request({ argc: 100 }), [0, 1, 2], /cannot hold/);
test.serial('fewer strings than announced', refused, request({ envc: 0, payload: Buffer.from('/\0run\0x\0') }), [0, 1, 2], /holds 3 NUL-terminated strings, not the 4/);
test.serial('more strings than announced', refused, request({ envc: 1, payload: Buffer.from('/\0run\0-c\0x\0A=1\0B=2\0') }), [0, 1, 2], /holds 6 .* not the 5/);
test.serial('an unterminated tail', refused, request({ envc: 0, payload: Buffer.from('/\0run\0-c\0x\0A=1') }), [0, 1, 2], /unterminated tail/);
test.serial('an argument that is not UTF-8', refused, request({ payload: Buffer.from('/tmp\0run\0-c\0\xff\0A=1\0', 'latin1') }), [0, 1, 2], /argument 3 is not valid UTF-8/);
test.serial('no fds', refused, request(), [], /sent 0 file descriptors; a request carries 3/);
test.serial('2 fds', refused, request(), [0, 1], /sent 2 file descriptors/);
test.serial('4 fds', refused, request(), [0, 1, 2, 2], /sent 4 file descriptors/);
test.serial('more fds than its control buffer holds (MSG_CTRUNC)', refused, request(), Array(12).fill(1), /control data truncated/);
test.serial('EOF inside the header', refused, request().subarray(0, 9), [0, 1, 2], /closed the connection after 9 of at least 20 bytes/, true);
test.serial('EOF inside the payload', refused, request().subarray(0, 30), [0, 1, 2], /after 30 of 38 bytes/, true);
test.serial('EOF before anything', refused, Buffer.alloc(0), [], /after 0 of at least 20/, true);

test.serial('peekKind: W is a relay, { and other bytes are JSON (answered with a JSON error), nothing yet, closed; a peek installs no fds', (t) => {
  const [a, b] = socketpair();
  try {
    t.is(peekKind(b), 'empty');
    const fds = allFds();
    send(a, request(), [0, 1, 2]);
    t.is(peekKind(b), 'relay');
    t.is(peekKind(b), 'relay', 'peeking takes nothing');
    t.deepEqual(allFds(), fds, 'no fd installed by the peek');
    const r = new RelayRequestReader(b).read() as RelayRequest;
    closeAll(r.fds);
    send(a, Buffer.from('{"op":"list"}\n'));
    t.is(peekKind(b), 'json');
    readSync(b, Buffer.alloc(64));
    send(a, Buffer.from('x'));
    t.is(peekKind(b), 'json');
    readSync(b, Buffer.alloc(1));
    closeSync(a);
    t.is(peekKind(b), 'closed');
  } finally {
    closeSync(b);
    try {
      closeSync(a);
    } catch {
      // closed above
    }
  }
});

test.serial('sendTerminalFrame on a full socket: EAGAIN, nothing sent', (t) => {
  const [a, b] = socketpair();
  try {
    const chunk = Buffer.alloc(65536);
    // Fill a's send buffer (b reads nothing) through non-blocking sends.
    const sendNb = libc().func('long send(int fd, const void *buf, size_t len, int flags)') as (fd: number, b: Buffer, n: number, f: number) => number;
    while (sendNb(a, chunk, chunk.length, 0x40 | 0x4000) > 0);
    const e = t.throws(() => sendTerminalFrame(a, 0, { input: null, output: 2, size: 1 }), { instanceOf: RelaySocketError });
    t.is((e as RelaySocketError).code, 'EAGAIN');
    t.throws(() => sendTerminalFrame(a, 0, { input: 1 as 0, output: 2, size: 1 }), { instanceOf: RangeError });
  } finally {
    closeAll([a, b]);
  }
});

test.serial('the frame parser: S frames in pieces; unknown types, wrong lengths, bad signals, a cut-off end refused', (t) => {
  const p = new RelayFrameParser();
  const two = Buffer.from('S\x04\0\0\0\x02\0\0\0S\x04\0\0\0\x14\0\0\0');
  t.deepEqual(p.push(two.subarray(0, 3)), []);
  t.deepEqual(p.push(two.subarray(3, 12)), [{ type: 'signal', signo: 2 }]);
  t.deepEqual(p.push(two.subarray(12)), [{ type: 'signal', signo: 20 }]);
  p.end();
  const refuse = (bytes: string, message: RegExp, end = false) => {
    const q = new RelayFrameParser();
    t.throws(
      () => {
        q.push(Buffer.from(bytes, 'latin1'));
        if (end) q.end();
      },
      { instanceOf: RelayProtocolError, message },
    );
    t.throws(() => q.push(Buffer.alloc(0)), { instanceOf: RelayProtocolError }, 'stays failed');
  };
  refuse('o\x01\0\0\0x', /unknown relay frame type "o"/);
  refuse('S\x00\x00\x10\x00', /signal frame of 1048576 bytes/);
  refuse('S\x04\0\0\0\0\0\0\0', /signal number 0/);
  refuse('S\x04\0\0\0\x02\0', /ended inside a frame \(7 bytes/, true);
});

test.serial('frame encoders: o, e, X, F as the relay reads them; an exit status outside 0-255 refused', (t) => {
  t.deepEqual(outputFrame(1, 'hi'), Buffer.from('o\x02\0\0\0hi'));
  t.deepEqual(outputFrame(2, Buffer.from([0])), Buffer.from('e\x01\0\0\0\0'));
  t.deepEqual(exitFrame(255), Buffer.from('X\x04\0\0\0\xff\0\0\0', 'latin1'));
  t.deepEqual(fallbackFrame(), Buffer.from('F\0\0\0\0'));
  for (const bad of [-1, 256, 1.5, NaN]) t.throws(() => exitFrame(bad), { instanceOf: RangeError });
});
