// A pseudo-terminal of the command's own, as `su --pty`, `runuser --pty`
// and `machinectl shell` give one. A command that had the caller's
// terminal as its controlling terminal could push keystrokes into the
// caller's shell with TIOCSTI (tty_ioctl(4)) or read what is typed there
// after warden exits; with a pty of its own, all it can reach is itself.
// As sudo's use_pty, there is one whenever any of stdin, stdout, stderr
// is a terminal: a command given only an fd of it (stdout, opened O_RDWR
// by the shell) could still read it, and keep reading from a background
// process after warden exits. When stdin is the terminal, warden puts it
// in raw mode and relays bytes both ways; the pty's line discipline then
// turns Ctrl-C into SIGINT for the command's foreground process group,
// not for warden's. Otherwise only the output is relayed.
import { closeSync, createWriteStream, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { koffi, libc } from './koffi.js';
import { RunError } from './errors.js';

// <fcntl.h>, <asm-generic/ioctls.h>: the same on x86_64, aarch64 and riscv64.
const O_RDWR = 0o2;
const O_NOCTTY = 0o400;
const O_CLOEXEC = 0o2000000;
const TIOCGWINSZ = 0x5413;
const TIOCSWINSZ = 0x5414;
const TCSANOW = 0;
const TCSADRAIN = 1;
// struct termios { tcflag_t c_iflag, c_oflag; ... }: tcflag_t is 32 bits.
const C_OFLAG = 4;
const OPOST = 0o1;
// struct termios is 60 bytes in glibc, struct winsize 8: room to spare.
const TERMIOS_BYTES = 256;
const WINSIZE_BYTES = 8;

interface Calls {
  posix_openpt: (flags: number) => number;
  grantpt: (fd: number) => number;
  unlockpt: (fd: number) => number;
  ptsname_r: (fd: number, buf: Buffer, len: number) => number;
  ioctl: (fd: number, request: number, arg: Buffer) => number;
  tcgetattr: (fd: number, termios: Buffer) => number;
  tcsetattr: (fd: number, action: number, termios: Buffer) => number;
  cfmakeraw: (termios: Buffer) => void;
  strerror: (errnum: number) => string;
}

let bound: Calls | undefined;

function calls(): Calls {
  if (bound) return bound;
  const lib = libc();
  bound = {
    posix_openpt: lib.func('int posix_openpt(int flags)'),
    grantpt: lib.func('int grantpt(int fd)'),
    unlockpt: lib.func('int unlockpt(int fd)'),
    ptsname_r: lib.func('int ptsname_r(int fd, void *buf, size_t len)'),
    // fd, request, pointer: the same registers as the variadic ioctl on these ABIs.
    ioctl: lib.func('int ioctl(int fd, unsigned long request, void *arg)'),
    tcgetattr: lib.func('int tcgetattr(int fd, void *termios)'),
    tcsetattr: lib.func('int tcsetattr(int fd, int action, const void *termios)'),
    cfmakeraw: lib.func('void cfmakeraw(void *termios)'),
    strerror: lib.func('const char *strerror(int errnum)'),
  } as unknown as Calls;
  return bound;
}

let isatty: ((fd: number) => number) | undefined;

/** Whether `fd` is a terminal (isatty(3)); false for pipes, files, /dev/null. Bound alone: every `run` asks. */
export function isTerminal(fd: number): boolean {
  isatty ??= libc().func('int isatty(int fd)') as unknown as (fd: number) => number;
  return isatty(fd) === 1;
}

/** Copies the window size of terminal `from` to `to` (a pty master: the size is its slave's). False when `from` has none. */
export function copyWindowSize(from: number, to: number): boolean {
  const c = calls();
  const ws = Buffer.alloc(WINSIZE_BYTES);
  return c.ioctl(from, TIOCGWINSZ, ws) === 0 && c.ioctl(to, TIOCSWINSZ, ws) === 0;
}

/**
 * Puts terminal `fd` in raw mode as cfmakeraw(3) defines it (no echo, no
 * signals, no output processing: the command's pty does all that, and
 * libuv's raw mode keeps ONLCR, which would double every CR) and returns
 * the function that restores it. Null when `fd` is not a terminal.
 */
function makeRaw(fd: number): (() => void) | null {
  const c = calls();
  const saved = Buffer.alloc(TERMIOS_BYTES);
  if (c.tcgetattr(fd, saved) !== 0) return null;
  const raw = Buffer.from(saved);
  c.cfmakeraw(raw);
  if (c.tcsetattr(fd, TCSANOW, raw) !== 0) return null;
  // Output already queued is written with the modes it was written under.
  return () => void c.tcsetattr(fd, TCSADRAIN, saved);
}

/** Which of the command's stdin, stdout and stderr are the slave (see PtySlave). */
export interface PtyStdio {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/**
 * The slave side, as a command gets it: by path (posix_spawn opens it) and
 * as an fd of ours (O_NOCTTY). It is always the command's controlling
 * terminal; each of its stdin, stdout and stderr is the slave where the
 * flag says so (warden's own is a terminal), else the caller's passed
 * through, as sudo's use_pty does: `warden run ... > file` must not get
 * the pty's CRLFs, and `... < input` reads the file.
 */
export interface PtySlave extends Readonly<PtyStdio> {
  readonly path: string;
  readonly fd: number;
}

export interface RelayOptions {
  /**
   * The caller's terminal, read in raw mode and relayed to the command.
   * Undefined when stdin is not a terminal: nothing is read then and no
   * mode changed (the command reads the caller's stdin itself).
   */
  input?: number | undefined;
  /** Where what the command writes to the pty goes (the caller's terminal, or a pipe or file). */
  output: number;
  /** The caller's terminal whose window size the pty follows (SIGWINCH). Default: `input`. */
  size?: number | undefined;
  /** Settles once the command has exited. */
  exited: Promise<unknown>;
  /**
   * How long the pty may stay silent after the command exited before the
   * relay ends without the master's EIO: a background process that keeps
   * the slave open then gets the hangup (SIGHUP), as when a terminal
   * window closes. Default 100 ms.
   */
  lingerMs?: number;
}

/**
 * A pty pair. The master is warden's; the slave goes to one command as
 * its controlling terminal and some of its stdio. close() is idempotent.
 */
export class Pty {
  readonly slave: PtySlave;
  #master: number;
  #masterOwned = true;
  #slaveOpen = true;
  #relaying: Promise<void> | undefined;

  private constructor(master: number, slave: PtySlave) {
    this.#master = master;
    this.slave = slave;
  }

  /**
   * Opens a pty (posix_openpt(3), grantpt, unlockpt, ptsname_r) whose
   * slave starts with the modes and window size of terminal `like` (when
   * given), as script(1) and su --pty set theirs up. `stdio`: which of
   * the command's stdin, stdout and stderr are to be the slave (see PtySlave).
   */
  static open(like?: number, stdio: PtyStdio = { stdin: true, stdout: true, stderr: true }): Pty {
    const c = calls();
    const fail = (what: string): never => {
      throw new RunError(`cannot open a pseudo-terminal: ${what}: ${c.strerror(koffi().errno())}`);
    };
    const master = c.posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) fail('posix_openpt');
    let slaveFd = -1;
    try {
      if (c.grantpt(master) !== 0) fail('grantpt');
      if (c.unlockpt(master) !== 0) fail('unlockpt');
      const name = Buffer.alloc(128);
      const err = c.ptsname_r(master, name, name.length);
      if (err !== 0) throw new RunError(`cannot open a pseudo-terminal: ptsname_r: ${c.strerror(err)}`);
      const path = name.toString('latin1', 0, name.indexOf(0));
      // termios and window size set through the master apply to the slave (tty_ioctl(4)).
      if (like !== undefined) {
        const termios = Buffer.alloc(TERMIOS_BYTES);
        if (c.tcgetattr(like, termios) === 0) {
          // Without stdin to relay, the caller's terminal stays as it is
          // (not raw), so its own output processing (ONLCR) applies to what
          // the relay writes: the pty's would double every CR.
          if (!stdio.stdin) termios.writeUInt32LE(termios.readUInt32LE(C_OFLAG) & ~OPOST, C_OFLAG);
          c.tcsetattr(master, TCSANOW, termios);
        }
        copyWindowSize(like, master);
      }
      slaveFd = openSync(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
      return new Pty(master, { path, fd: slaveFd, stdin: stdio.stdin, stdout: stdio.stdout, stderr: stdio.stderr });
    } catch (e) {
      if (slaveFd >= 0) closeSync(slaveFd);
      closeSync(master);
      throw e;
    }
  }

  /** Closes our fd of the slave (the master reads EIO only once every slave fd is closed). Idempotent. */
  closeSlave(): void {
    if (!this.#slaveOpen) return;
    this.#slaveOpen = false;
    closeSync(this.slave.fd);
  }

  /**
   * Relays between the caller's terminal and the command until the
   * command has exited and its output is flushed (the master reads EIO
   * once the last slave fd is closed and what was written before is read).
   * The caller's terminal (`input`, when given) is raw meanwhile and
   * restored on every way out.
   * Call once, after the command started; closes the slave once the
   * command has exited, and the master.
   */
  relay(o: RelayOptions): Promise<void> {
    if (this.#relaying) throw new RunError('the pty is relayed already');
    this.#relaying = this.#relay(o);
    return this.#relaying;
  }

  async #relay(o: RelayOptions): Promise<void> {
    // Our slave fd stays open while the command runs: the master then reads
    // neither EIO nor a hangup's EOF early, and once it is closed only the
    // command's background processes can keep the pty open.
    const exited = o.exited.then(
      () => this.closeSlave(),
      () => this.closeSlave(),
    );
    // node:tty loads net: paid only by commands that get a pty.
    const tty = createRequire(import.meta.url)('node:tty') as typeof import('node:tty');
    // The stream closes the master from now on.
    const masterFd = this.takeMaster();
    let master: import('node:tty').ReadStream;
    try {
      // Not destroyed at EOF (read 0): what follows may still be drained.
      master = new tty.ReadStream(masterFd, { allowHalfOpen: true });
    } catch (e) {
      closeSync(masterFd);
      throw e;
    }
    let outer: import('node:tty').ReadStream | undefined;
    let restore: (() => void) | null = null;
    const out = createWriteStream('', { fd: o.output, autoClose: false });
    const size = o.size ?? o.input;
    const winch = () => size !== undefined && copyWindowSize(size, masterFd);
    try {
      if (o.input !== undefined) {
        outer = new tty.ReadStream(o.input);
        restore = makeRaw(o.input);
      }
      process.on('SIGWINCH', winch);
      // The size may have changed since the pty was opened.
      winch();
      const end = await pump(master, outer, out, { ...o, exited });
      // read(2) on the master can return 0 instead of EIO as the last slave
      // fd closes (n_tty_read's hang-up checks), and on Linux 6.18 did so
      // before the last output was read (2 in 60 runs): read again now
      // (EAGAIN or EIO when there is nothing more).
      if (end === 'eof') drain(masterFd, out);
      // Whatever the command wrote reaches the output before we return.
      await new Promise<void>((resolve) => out.write('', () => resolve()));
    } finally {
      process.off('SIGWINCH', winch);
      // A terminal that hung up ignores this; nothing is left to restore then.
      restore?.();
      outer?.destroy();
      master.destroy();
      out.destroy();
    }
  }

  /** Hands the master's fd over: the caller closes it from now on (relay() takes it this way). */
  takeMaster(): number {
    if (!this.#masterOwned) throw new RunError('the pty master is closed or taken');
    this.#masterOwned = false;
    return this.#master;
  }

  /** Closes what relay() has not taken over. Idempotent. */
  close(): void {
    this.closeSlave();
    if (this.#masterOwned) {
      this.#masterOwned = false;
      closeSync(this.#master);
    }
  }
}

/** Reads what is left on the master (non-blocking: libuv made it so), up to 1 MiB. */
function drain(fd: number, out: NodeJS.WritableStream): void {
  const buf = Buffer.alloc(65536);
  for (let total = 0; total < 1 << 20; ) {
    let n: number;
    try {
      n = readSync(fd, buf);
    } catch {
      return; // EAGAIN: nothing more now; EIO: nothing more ever
    }
    if (n === 0) return;
    out.write(Buffer.from(buf.subarray(0, n)));
    total += n;
  }
}

/** Why the relay stopped: EIO, EOF, silence after the exit, the caller's terminal or the output gone. */
type End = 'eio' | 'eof' | 'linger' | 'hangup' | 'output';

/** Moves bytes both ways (only out without `outer`) until the pty is done (EIO, or silent for lingerMs after the exit) or the caller's terminal hangs up. */
function pump(
  master: import('node:tty').ReadStream,
  outer: import('node:tty').ReadStream | undefined,
  out: NodeJS.WritableStream,
  o: RelayOptions,
): Promise<End> {
  const lingerMs = o.lingerMs ?? 100;
  return new Promise<End>((resolve) => {
    let exited = false;
    let paused = false;
    let linger: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (why: End) => () => {
      if (done) return;
      done = true;
      clearTimeout(linger);
      master.off('data', fromCommand);
      outer?.off('data', toCommand);
      resolve(why);
    };
    // Counted from the last byte read, and only while reading (not while the output is full).
    const arm = () => {
      clearTimeout(linger);
      if (exited && !paused && !done) linger = setTimeout(finish('linger'), lingerMs);
    };
    const fromCommand = (d: Buffer) => {
      if (!out.write(d)) {
        paused = true;
        master.pause();
        out.once('drain', () => {
          paused = false;
          master.resume();
          arm();
        });
      }
      arm();
    };
    const toCommand = (d: Buffer) => master.write(d);
    master.on('data', fromCommand);
    // EIO: every slave fd is closed and all that was written has been read.
    master.on('error', finish('eio'));
    master.on('end', finish('eof'));
    // The caller's terminal hung up: closing the master hangs up the command's.
    outer?.on('data', toCommand);
    outer?.on('error', finish('hangup'));
    outer?.on('end', finish('hangup'));
    out.on('error', finish('output'));
    const onExit = () => {
      exited = true;
      arm();
    };
    o.exited.then(onExit, onExit);
  });
}
