// A terminal for tests to play the caller's: a real pty whose slave a
// process gets as stdin, stdout, stderr and controlling terminal (through
// util-linux setsid --ctty), and whose master the test types into and
// reads the screen from.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, statSync, writeSync } from 'node:fs';
import { ReadStream } from 'node:tty';
import { libc } from '../../src/sys/koffi.js';
import { Pty } from '../../src/sys/pty.js';

const FIONREAD = 0x541b;
const TIOCSWINSZ = 0x5414;
let ioctlInt: ((fd: number, request: number, arg: Int32Array) => number) | undefined;
let ioctlBuf: ((fd: number, request: number, arg: Buffer) => number) | undefined;

export class TestTerminal {
  readonly path: string;
  /** What the terminal has shown so far. */
  screen = '';
  #slave: number;
  #masterFd: number;
  #master: ReadStream;
  #closed = false;

  constructor({ rows = 24, cols = 80 } = {}) {
    const pty = Pty.open();
    this.path = pty.slave.path;
    this.#slave = pty.slave.fd;
    this.#masterFd = pty.takeMaster();
    this.#master = new ReadStream(this.#masterFd);
    this.#master.setEncoding('utf8').on('data', (d: string) => (this.screen += d));
    // EIO once nothing holds the slave; we hold it until close().
    this.#master.on('error', () => {});
    this.resize(rows, cols);
  }

  /** The slave's device number (what /proc/PID/stat calls tty_nr). */
  get rdev(): number {
    return statSync(this.path).rdev;
  }

  /**
   * Starts `argv` with this terminal as its controlling terminal, in a
   * session of its own, and as its stdin, stdout and stderr unless `opts`
   * gives another (an fd, or a pipe), as a shell's `CMD < file 2>&1 | ...`
   * does. setsid --ctty takes the terminal from fd 0, so another stdin is
   * moved to fd 0 by sh after that.
   */
  start(
    argv: string[],
    opts: { env?: NodeJS.ProcessEnv; cwd?: string; stdin?: number; stdout?: number | 'pipe'; stderr?: number | 'pipe' } = {},
  ): ChildProcess & { status: Promise<number> } {
    const fd = this.#slave;
    const stdio: (number | 'pipe')[] = [fd, opts.stdout ?? fd, opts.stderr ?? fd];
    const args = ['--ctty', ...argv];
    if (opts.stdin !== undefined) {
      stdio.push(opts.stdin);
      args.splice(1, 0, '/bin/sh', '-c', 'exec 0<&3 3<&-; exec "$@"', 'sh');
    }
    const child = spawn('setsid', args, { stdio, env: opts.env, cwd: opts.cwd });
    const status = new Promise<number>((resolve) => child.once('exit', (code, sig) => resolve(code ?? 128 + (sig === 'SIGKILL' ? 9 : 15))));
    return Object.assign(child, { status });
  }

  /** Types `text`. */
  type(text: string): void {
    writeSync(this.#masterFd, text);
  }

  /** Resolves once the screen shows `re` (so far, or from now on). */
  until(re: RegExp): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = this.screen.match(re);
        if (!m) return;
        this.#master.off('data', check);
        this.#master.off('close', gone);
        resolve(m);
      };
      const gone = () => reject(new Error(`terminal closed before showing ${re}: ${JSON.stringify(this.screen)}`));
      this.#master.on('data', check);
      this.#master.once('close', gone);
      check();
    });
  }

  /**
   * Sets the window size as a terminal emulator does, in one TIOCSWINSZ
   * (its foreground process group gets one SIGWINCH; `stty rows R cols C`
   * would make two, with a half-changed size between them).
   */
  resize(rows: number, cols: number): void {
    ioctlBuf ??= libc().func('int ioctl(int fd, unsigned long request, void *arg)') as unknown as typeof ioctlBuf;
    const ws = Buffer.alloc(8); // struct winsize { unsigned short ws_row, ws_col, ws_xpixel, ws_ypixel; }
    ws.writeUInt16LE(rows, 0);
    ws.writeUInt16LE(cols, 2);
    if (ioctlBuf!(this.#masterFd, TIOCSWINSZ, ws) !== 0) throw new Error('TIOCSWINSZ failed');
  }

  /** The terminal's modes, as `stty -g` prints them. */
  modes(): string {
    return spawnSync('stty', ['-F', this.path, '-g'], { encoding: 'utf8' }).stdout.trim();
  }

  /** Bytes waiting in the terminal's input queue: typed, or pushed with TIOCSTI, and not read by anyone. */
  pendingInput(): number {
    ioctlInt ??= libc().func('int ioctl(int fd, unsigned long request, _Inout_ int32_t *arg)') as unknown as typeof ioctlInt;
    const n = new Int32Array(1);
    if (ioctlInt!(this.#slave, FIONREAD, n) !== 0) throw new Error('FIONREAD failed');
    return n[0]!;
  }

  close(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#closed = true;
    closeSync(this.#slave);
    return new Promise((resolve) => {
      this.#master.once('close', () => resolve());
      this.#master.destroy();
    });
  }
}
