// FileLock: one fcntl record lock on one byte range of one file, through its
// own open file description.
//
// Acquisition tries F_SETLK on the calling thread first (a couple of
// microseconds). Only a contended request waits (handle-wait.ts), and then
// in-process first, in wait-queue.ts: waiters for the same (file, range)
// queue behind a single kernel wait in a worker thread (pool.ts).
import { closeSync } from 'node:fs';
import { LockAbortedError, LockBusyError, LockError, LockStateError, type LockHolder, type LockKind, type LockRange } from './errors.js';
import { HandleWait, type WaitingLock } from './handle-wait.js';
import { lockHolders } from './inspect.js';
import { closeQuietly, isOnFuse, openLockFile, pathNamesKey, WHOLE_FILE, type OpenOptions, type WaitOptions } from './lock-file.js';
import { lockCommands, type ModeCommands } from './mode.js';
import { EACCES, EAGAIN, EDEADLK, FLOCK_SIZE, F_RDLCK, F_UNLCK, F_WRLCK, decodeFlock, encodeFlock, errno, flockFor, native, strerror } from './native.js';
import * as posix from './posix-registry.js';
import type { TryResult } from './wait-queue.js';

export { WHOLE_FILE, type OpenOptions, type WaitOptions } from './lock-file.js';

// Scratch struct flock for the rare calls on other ranges (POSIX-mode partial unlocks).
const flock = Buffer.alloc(FLOCK_SIZE);
const kindType = (k: LockKind) => (k === 'shared' ? F_RDLCK : F_WRLCK);

export class FileLock {
  readonly path: string;
  readonly range: LockRange;
  #fd: number;
  #key: string; // /proc/locks key of the file
  #queueKey: string;
  #cmds: ModeCommands;
  #held: LockKind | undefined;
  // The three requests this handle ever makes on its range, encoded once.
  #req: Record<LockKind | 'unlock', Buffer>;
  #busy = false; // an acquire is in flight on this handle
  #closed = false;
  // The fd was read through `fd` (to hand to a child, or to write through):
  // close() must then leave an OFD lock to whoever else shares the OFD.
  #handedOut = false;

  /** Opens `path` (never following a symlink) and returns an unlocked handle. */
  static open(path: string, opts: OpenOptions = {}): FileLock {
    const { fd, key } = openLockFile(path, opts);
    try {
      return new FileLock(path, fd, key, opts.range ?? WHOLE_FILE);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  private constructor(path: string, fd: number, key: string, range: LockRange) {
    if (!Number.isSafeInteger(range.start) || !Number.isSafeInteger(range.len) || range.start < 0 || range.len < 0) {
      throw new RangeError(`bad lock range ${JSON.stringify(range)}`);
    }
    this.path = path;
    this.range = Object.freeze({ ...range });
    this.#fd = fd;
    this.#key = key;
    this.#queueKey = `${key}:${range.start}:${range.len}`;
    this.#cmds = lockCommands(fd);
    this.#req = {
      shared: flockFor(F_RDLCK, range.start, range.len),
      exclusive: flockFor(F_WRLCK, range.start, range.len),
      unlock: flockFor(F_UNLCK, range.start, range.len),
    };
    if (this.#cmds.mode === 'posix') posix.registerHandle(key);
  }

  /** The fd (for handing to a child process; in OFD mode the child then shares this lock). */
  get fd(): number {
    this.#assertOpen();
    this.#handedOut = true;
    return this.#fd;
  }

  /** The lock held through this handle, if any. */
  get held(): LockKind | undefined {
    return this.#held;
  }

  get mode(): ModeCommands['mode'] {
    return this.#cmds.mode;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Takes (or converts to) `kind` if it is free now. Never waits, never inspects. */
  tryAcquire(kind: LockKind): boolean {
    this.#assertOpen();
    this.#assertIdle();
    return this.#try(kind) === 'ok';
  }

  /**
   * Takes `kind`, converting atomically if another kind is held (fcntl
   * replaces the held lock in place; on failure the old lock stays).
   * Waits (unless `wait: false`) without blocking the event loop.
   * Rejects with LockBusyError, LockTimeoutError or LockAbortedError; after a
   * rejection this handle holds exactly what it held before.
   */
  acquire(kind: LockKind, opts: WaitOptions = {}): Promise<void> {
    try {
      return this.#acquire(kind, opts);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  #acquire(kind: LockKind, opts: WaitOptions): Promise<void> {
    this.#assertOpen();
    this.#assertIdle();
    if (opts.signal?.aborted) return Promise.reject(new LockAbortedError(this.path, this.range, kind, opts.signal.reason));
    const first = this.#try(kind);
    if (first === 'ok') return Promise.resolve();
    if (opts.wait === false) return Promise.reject(new LockBusyError(this.path, this.range, kind, this.holders()));
    return this.#enqueue(kind, opts);
  }

  /** Releases the lock. Throws LockStateError if nothing is held (a bug in the caller). */
  release(): void {
    this.#assertOpen();
    this.#assertIdle();
    if (this.#held === undefined) throw new LockStateError(`release of ${this.path} (${this.range.start}+${this.range.len}) which is not locked`);
    this.#unlockKernel();
  }

  /** Releases and closes. Idempotent. Cancels a wait in flight (its promise rejects). */
  close(): void {
    if (this.#closed) return;
    if (this.#busy && this.#wait) {
      // Cancel our queued or in-kernel wait first: its fd must not be closed
      // (and reused) while a worker thread still waits on the number.
      this.#closeWhenIdle = true;
      this.#wait.abandon(new LockAbortedError(this.path, this.range, this.#wait.kind, new Error('lock closed while waiting')));
      return;
    }
    this.#finishClose();
  }

  #closeWhenIdle = false;

  #finishClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#cmds.mode === 'posix') {
      try {
        if (this.#held !== undefined) this.#unlockKernel();
      } catch {
        // a dead FUSE client (ENOTCONN): its locks went with it
      }
      posix.closeHandle(this.#key, this.#fd);
    } else {
      // Closing the last fd of an OFD releases its locks; if a child
      // inherited the fd, the lock rightly stays with the child. Through
      // FUSE that release is asynchronous (the kernel sends FUSE_RELEASE
      // and does not wait for it: another host may still see the lock for
      // a moment), so a lock no child shares is unlocked explicitly first.
      // One whose fd was handed out is left alone: unlocking would take it
      // from the child that shares the open file description.
      if (this.#held !== undefined && !this.#handedOut) {
        try {
          this.#unlockKernel();
        } catch {
          // as above: the lock is gone with the client
        }
      }
      this.#held = undefined;
      closeQuietly(this.#fd);
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /**
   * The first lock that would block `kind` on this range, from F_(OFD_)GETLK:
   * one syscall, no /proc scan. pid is -1 for an OFD lock (use holders()).
   */
  conflict(kind: LockKind): { kind: LockKind; range: LockRange; pid: number } | undefined {
    this.#assertOpen();
    // POSIX mode: F_GETLK never reports the asking process's own locks, so
    // another handle of ours that holds the range is found in the registry.
    if (this.#cmds.mode === 'posix') {
      const local = posix.localConflict(this.#key, this, kind, this.range);
      if (local) return { ...local, pid: process.pid };
    }
    encodeFlock(flock, kindType(kind), this.range.start, this.range.len);
    if (native().fcntl(this.#fd, this.#cmds.getlk, flock) !== 0) throw this.#syscallError('F_GETLK', errno());
    const f = decodeFlock(flock);
    if (f.type === F_UNLCK) return undefined;
    // Through a FUSE filesystem that serves locks for a cluster (glusterfs)
    // a POSIX lock's l_pid is the holder's pid on its own host, which may
    // be another: unknown (-1) here, as an OFD lock's always is.
    const pid = this.#cmds.mode === 'posix' && f.pid > 0 && isOnFuse(this.path) ? -1 : f.pid;
    return { kind: f.type === F_RDLCK ? 'shared' : 'exclusive', range: { start: f.start, len: f.len }, pid };
  }

  /** Who holds or waits for a lock overlapping this range (ours included). */
  holders(): LockHolder[] {
    return lockHolders(this.path, this.range);
  }

  /**
   * True while `path` still names the file we locked. A command that deletes
   * or replaces the lock file would otherwise leave two holders locking two
   * different inodes, both believing they won.
   */
  namesSameFile(): boolean {
    this.#assertOpen();
    return pathNamesKey(this.path, this.#key);
  }

  // --- kernel calls on the calling thread ----------------------------------

  #try(kind: LockKind): TryResult {
    if (this.#held === kind) return 'ok';
    const posixMode = this.#cmds.mode === 'posix';
    if (posixMode && posix.conflictsLocally(this.#key, this, kind, this.range)) return 'busy-local';
    if (native().fcntl(this.#fd, this.#cmds.setlk, this.#req[kind]) === 0) {
      this.#setHeld(kind);
      return 'ok';
    }
    const e = errno();
    if (e === EAGAIN || e === EACCES) return 'busy';
    throw this.#syscallError('F_SETLK', e);
  }

  #setHeld(kind: LockKind | undefined): void {
    this.#held = kind;
    if (this.#cmds.mode === 'posix') posix.noteHeld(this.#key, this, kind ? { kind, range: this.range } : undefined);
  }

  #unlockKernel(): void {
    const c = native();
    if (this.#cmds.mode === 'ofd') {
      if (c.fcntl(this.#fd, this.#cmds.setlk, this.#req.unlock) !== 0) throw this.#syscallError('F_UNLCK', errno());
    } else {
      for (const r of posix.bytesToUnlock(this.#key, this, this.range)) {
        encodeFlock(flock, F_UNLCK, r.start, r.len);
        if (c.fcntl(this.#fd, this.#cmds.setlk, flock) !== 0) throw this.#syscallError('F_UNLCK', errno());
      }
    }
    this.#setHeld(undefined);
  }

  /** Puts the handle back to `kind` after a cancelled wait that the kernel granted anyway. */
  #restore(kind: LockKind | undefined): void {
    if (kind === undefined) {
      this.#unlockKernel();
      return;
    }
    // Downgrading exclusive -> shared never blocks (fcntl(2)).
    if (native().fcntl(this.#fd, this.#cmds.setlk, this.#req[kind]) !== 0) throw this.#syscallError('restore', errno());
    this.#setHeld(kind);
  }

  #syscallError(what: string, e: number): LockError {
    const hint = e === EDEADLK ? ' (deadlock: this process waits for a lock held by a process that waits for us)' : '';
    return new LockError(`fcntl ${what} on ${this.path} failed: ${strerror(e)}${hint}`, { path: this.path, range: this.range });
  }

  #assertOpen(): void {
    if (this.#closed) throw new LockStateError(`lock ${this.path} is closed`);
  }

  #assertIdle(): void {
    if (this.#busy) throw new LockStateError(`lock ${this.path} already has an acquire in flight`);
  }

  // --- waiting ----------------------------------------------------------------

  #enqueue(kind: LockKind, opts: WaitOptions): Promise<void> {
    this.#busy = true;
    const before = this.#held;
    const wait = new HandleWait(this.#waitable(), kind, opts, {
      settled: (failed) => {
        this.#wait = undefined;
        this.#busy = false;
        if (failed && this.#held !== before) this.#restore(before);
      },
      afterRejection: () => {
        if (this.#closeWhenIdle) this.#finishClose();
      },
    });
    this.#wait = wait;
    wait.start();
    return wait.promise;
  }

  #wait: HandleWait | undefined;
  #waitableView: WaitingLock | undefined;

  /** This handle as its wait and the wait queue see it: its private calls, nothing else. */
  #waitable(): WaitingLock {
    return (this.#waitableView ??= {
      owner: this,
      path: this.path,
      queueKey: this.#queueKey,
      fileKey: this.#key,
      range: this.range,
      posixMode: this.#cmds.mode === 'posix',
      holders: () => this.holders(),
      try: (kind) => this.#try(kind),
      kernelRequest: (kind) => ({ fd: this.#fd, cmd: this.#cmds.setlkw, type: kindType(kind), start: this.range.start, len: this.range.len }),
      setHeld: (kind) => this.#setHeld(kind),
      syscallError: (what, e) => this.#syscallError(what, e),
    });
  }
}
