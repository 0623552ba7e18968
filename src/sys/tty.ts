// Terminal calls through koffi for ptys (pty.ts) and the relay of their
// bytes (pty-relay.ts): openpt and friends, termios, window sizes.
import { libc } from './koffi.js';

// <fcntl.h>, <asm-generic/ioctls.h>: the same on x86_64, aarch64 and riscv64.
export const O_RDWR = 0o2;
export const O_NOCTTY = 0o400;
export const O_CLOEXEC = 0o2000000;
const TIOCGWINSZ = 0x5413;
const TIOCSWINSZ = 0x5414;
export const TCSANOW = 0;
const TCSADRAIN = 1;
// struct termios { tcflag_t c_iflag, c_oflag; ... }: tcflag_t is 32 bits.
export const C_OFLAG = 4;
export const OPOST = 0o1;
// struct termios is 60 bytes in glibc, struct winsize 8: room to spare.
export const TERMIOS_BYTES = 256;
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

export function calls(): Calls {
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
export function makeRaw(fd: number): (() => void) | null {
  const c = calls();
  const saved = Buffer.alloc(TERMIOS_BYTES);
  if (c.tcgetattr(fd, saved) !== 0) return null;
  const raw = Buffer.from(saved);
  c.cfmakeraw(raw);
  if (c.tcsetattr(fd, TCSANOW, raw) !== 0) return null;
  // Output already queued is written with the modes it was written under.
  return () => void c.tcsetattr(fd, TCSADRAIN, saved);
}
