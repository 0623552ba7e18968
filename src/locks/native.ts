// The only place that talks to libc. Everything above works with plain
// numbers and the typed errors of errors.ts.
//
// koffi is used directly (no compiled addon of our own) so that `npm ci` works
// on machines where npm skips install scripts: koffi ships prebuilt binaries.
import { koffi, libc as glibc } from '../sys/index.js';
import { arch, platform } from 'node:process';
import { LockUnsupportedError } from './errors.js';

// struct flock on Linux x86_64 and aarch64 (glibc and musl agree):
//   short l_type @0; short l_whence @2; off_t l_start @8; off_t l_len @16;
//   pid_t l_pid @24; 4 bytes padding: 32 bytes.
// Other layouts exist (32-bit, mips with its own F_* numbers); refuse rather
// than guess, because a wrong layout locks the wrong bytes silently.
const KNOWN_ARCHES = new Set(['x64', 'arm64']);
export const FLOCK_SIZE = 32;

export const F_GETLK = 5;
export const F_SETLK = 6;
export const F_SETLKW = 7;
export const F_OFD_GETLK = 36;
export const F_OFD_SETLK = 37;
export const F_OFD_SETLKW = 38;

export const F_RDLCK = 0;
export const F_WRLCK = 1;
export const F_UNLCK = 2;

export const EINTR = 4;
export const EBADF = 9;
export const EAGAIN = 11;
export const EACCES = 13;
export const EINVAL = 22;
export const EDEADLK = 35;

interface Libc {
  fcntl: (fd: number, cmd: number, arg: Buffer) => number;
  gettid: () => number;
  tgkill: (tgid: number, tid: number, sig: number) => number;
  sigaction: (sig: number, act: Buffer | null, old: Buffer | null) => number;
  dlsym: (handle: null, name: string) => unknown;
  sigrtmin: () => number;
  strerror: (errnum: number) => string;
}

let libc: Libc | undefined;

let smallBuffers = false;

/**
 * Called by the lock-wait worker before its first native() call (instead
 * of importing node:worker_threads here, which every CLI call would pay).
 */
export function useSmallCallBuffers(): void {
  smallBuffers = true;
}

/** Loads libc bindings once per thread (koffi bindings are per-isolate). */
export function native(): Libc {
  if (libc) return libc;
  if (platform !== 'linux' || !KNOWN_ARCHES.has(arch)) {
    throw new LockUnsupportedError(
      `struct flock layout of ${platform}/${arch} is not known; supported: linux on ${[...KNOWN_ARCHES].join(', ')}`,
    );
  }
  if (smallBuffers) {
    // A lock-wait thread makes one fcntl call at a time: koffi's default
    // per-isolate buffers for synchronous calls (2 MiB stack + 1 MiB heap)
    // would be most of the thread's memory.
    koffi().config({ ...koffi().config(), sync_stack_size: 64 * 1024, sync_heap_size: 64 * 1024 });
  }
  const lib = glibc();
  // fcntl(2) is variadic in C. On x86_64 SysV and Linux aarch64 a pointer in
  // the variadic position travels in the same register as a fixed argument,
  // so a fixed three-argument prototype is both correct and koffi's fast path.
  const fcntl = lib.func('int fcntl(int fd, int cmd, void *arg)') as Libc['fcntl'];
  // Only fcntl is on every call's path; the rest (lock waits, messages)
  // are bound on first use: each koffi prototype costs ~0.3 ms to parse.
  let rest: Omit<Libc, 'fcntl'> | undefined;
  const more = () =>
    (rest ??= {
      gettid: lib.func('int gettid(void)') as Libc['gettid'],
      tgkill: lib.func('int tgkill(int tgid, int tid, int sig)') as Libc['tgkill'],
      sigaction: lib.func('int sigaction(int sig, void *act, void *old)') as Libc['sigaction'],
      dlsym: lib.func('void *dlsym(void *handle, const char *name)') as Libc['dlsym'],
      sigrtmin: lib.func('int __libc_current_sigrtmin(void)') as Libc['sigrtmin'],
      strerror: lib.func('const char *strerror(int errnum)') as Libc['strerror'],
    });
  libc = {
    fcntl,
    gettid: () => more().gettid(),
    tgkill: (tgid, tid, sig) => more().tgkill(tgid, tid, sig),
    sigaction: (sig, act, old) => more().sigaction(sig, act, old),
    dlsym: (handle, name) => more().dlsym(handle, name),
    sigrtmin: () => more().sigrtmin(),
    strerror: (errnum) => more().strerror(errnum),
  };
  return libc;
}

export function errno(): number {
  return koffi().errno();
}

export function strerror(e: number): string {
  return native().strerror(e);
}

/**
 * Fills a struct flock. l_pid must be 0 for OFD requests. Offsets are safe
 * integers (< 2^53), written as two 32-bit halves: BigInt conversion would
 * cost more than the fcntl call itself.
 */
export function encodeFlock(buf: Buffer, type: number, start: number, len: number): void {
  buf.fill(0);
  buf.writeInt16LE(type, 0); // l_whence = SEEK_SET (0)
  writeInt64(buf, 8, start);
  writeInt64(buf, 16, len);
}

function writeInt64(buf: Buffer, at: number, v: number): void {
  buf.writeUInt32LE(v % 0x1_0000_0000, at);
  buf.writeUInt32LE(Math.floor(v / 0x1_0000_0000), at + 4);
}

/** A struct flock encoded once, for a request that is made again and again. */
export function flockFor(type: number, start: number, len: number): Buffer {
  const buf = Buffer.alloc(FLOCK_SIZE);
  encodeFlock(buf, type, start, len);
  return buf;
}

export interface FlockView {
  type: number;
  start: number;
  len: number;
  pid: number;
}

export function decodeFlock(buf: Buffer): FlockView {
  return {
    type: buf.readInt16LE(0),
    start: buf.readUInt32LE(8) + buf.readInt32LE(12) * 0x1_0000_0000,
    len: buf.readUInt32LE(16) + buf.readInt32LE(20) * 0x1_0000_0000,
    pid: buf.readInt32LE(24),
  };
}

// --- the wake-up signal for cancelling a blocked F_SETLKW -------------------
//
// A thread blocked in F_OFD_SETLKW is not woken by closing the fd nor by
// terminating its worker; only a signal delivered to that very thread makes
// the syscall fail with EINTR, and only if the handler was installed without
// SA_RESTART (fcntl(2): "F_SETLKW ... If a signal is caught while waiting, then
// the call is interrupted"). Node's process.on() handlers use SA_RESTART, so we
// install our own with sigaction(2). The handler must be a C function that is
// async-signal-safe and has no effect: getpid(2) is exactly that, and its
// address comes from dlsym, so no JavaScript ever runs in signal context.
let wakeSignal: number | undefined;

const SIGACTION_SIZE = 152; // glibc/musl x86_64 and aarch64: handler, 128-byte mask, flags, restorer

/** Installs (once per process) the no-op handler and returns its signal number. */
export function installWakeSignal(): number {
  if (wakeSignal !== undefined) return wakeSignal;
  const c = native();
  const handler = c.dlsym(null, 'getpid');
  const addr = koffi().address(handler as never);
  const old = Buffer.alloc(SIGACTION_SIZE);
  const min = c.sigrtmin();
  // Pick the first real-time signal above SIGRTMIN+4 that nobody handles yet
  // (glibc keeps 32/33 below SIGRTMIN; other libraries take the low ones).
  for (let sig = min + 4; sig < min + 16; sig++) {
    if (c.sigaction(sig, null, old) !== 0) continue;
    const current = old.readBigUInt64LE(0);
    if (current !== 0n && current !== BigInt(addr)) continue; // someone else's
    const act = Buffer.alloc(SIGACTION_SIZE);
    act.writeBigUInt64LE(BigInt(addr), 0); // sa_handler; mask empty; sa_flags 0: no SA_RESTART
    if (c.sigaction(sig, act, null) !== 0) {
      throw new LockUnsupportedError(`sigaction(${sig}) failed: ${strerror(errno())}`);
    }
    wakeSignal = sig;
    return sig;
  }
  throw new LockUnsupportedError('no free real-time signal to interrupt lock waits');
}

/** Sends the wake signal to one thread of this process. */
export function wakeThread(tid: number, sig: number): boolean {
  return native().tgkill(process.pid, tid, sig) === 0;
}
