// The in-process wait queue of FileLock (lock.ts): waiters for the same
// (file, range) queue here behind a single kernel wait in a worker thread
// (pool.ts), so threads grow with distinct contended locks, not with
// waiters. When the pool is full the head waiter polls instead.
import type { LockError, LockKind, LockRange } from './errors.js';
import { waitPool, type KernelWait } from './pool.js';
import * as posix from './posix-registry.js';

export type TryResult = 'ok' | 'busy' | 'busy-local';

/** What the queue needs of a lock handle (FileLock gives it its private calls through this). */
export interface Waitable {
  /** The handle itself: the POSIX registry's identity for it. */
  readonly owner: object;
  /** /proc/locks key of the file (the POSIX registry's key). */
  readonly fileKey: string;
  readonly range: LockRange;
  readonly posixMode: boolean;
  /** F_SETLK on the calling thread. */
  try(kind: LockKind): TryResult;
  /** The blocking F_SETLKW a worker makes for `kind`. */
  kernelRequest(kind: LockKind): { fd: number; cmd: number; type: number; start: number; len: number };
  /** Records a lock the kernel granted to a worker's wait. */
  setHeld(kind: LockKind): void;
  syscallError(what: string, errno: number): LockError;
}

export interface Waiter {
  lock: Waitable;
  kind: LockKind;
  /** Both also end the handle's wait in flight. */
  resolve: () => void;
  reject: (e: unknown) => void;
  /** Set when the waiter gave up; the error it will be rejected with. */
  failure?: LockError;
  /** Poll rounds so far (only when the wait pool is full). */
  polls: number;
  cleanup: () => void;
}

/** In-process queue of waiters for one (file, range): at most one of them waits in the kernel. */
class WaitQueue {
  readonly waiters: Waiter[] = [];
  /** The head's kernel wait, poll timer or local-release subscription. */
  active: { waiter: Waiter; kernel?: KernelWait; stop: () => void } | undefined;
}

const queues = new Map<string, WaitQueue>();

/** Queues `w` behind the waiters for the same (file, range) `key`. */
export function enqueue(key: string, w: Waiter): void {
  let q = queues.get(key);
  if (!q) queues.set(key, (q = new WaitQueue()));
  q.waiters.push(w);
  pump(key);
}

/**
 * Gives up `w` (its `failure` set by the caller). A waiter in a kernel
 * wait is rejected only once the worker is out of the kernel, so that a
 * rejected wait is guaranteed to hold nothing (see the pump's settling).
 */
export function abandon(key: string, w: Waiter): void {
  const q = queues.get(key);
  if (!q) return;
  if (q.active?.waiter === w) {
    if (q.active.kernel) q.active.kernel.cancel();
    else {
      q.active.stop();
      q.active = undefined;
      settleFailed(q, w);
      pump(key);
    }
    return;
  }
  const i = q.waiters.indexOf(w);
  if (i >= 0) q.waiters.splice(i, 1);
  w.reject(w.failure);
  if (q.waiters.length === 0 && !q.active) queues.delete(key);
}

function settleFailed(q: WaitQueue, w: Waiter): void {
  const i = q.waiters.indexOf(w);
  if (i >= 0) q.waiters.splice(i, 1);
  w.reject(w.failure);
}

function grant(q: WaitQueue, w: Waiter): void {
  q.waiters.shift();
  w.resolve();
}

function fail(q: WaitQueue, w: Waiter, err: unknown): void {
  q.waiters.shift();
  w.reject(err);
}

/** Grants what can be granted at the head of the queue, then parks the next waiter in a wait. */
function pump(key: string): void {
  const q = queues.get(key);
  if (!q || q.active) return;
  while (q.waiters.length > 0) {
    const w = q.waiters[0];
    const lock = w.lock;
    let r: TryResult;
    try {
      r = lock.try(w.kind);
    } catch (e) {
      fail(q, w, e);
      continue;
    }
    if (r === 'ok') {
      grant(q, w);
      continue;
    }
    if (r === 'busy-local') {
      // Another handle of this process is in the way (POSIX mode): the
      // kernel would not make us wait for ourselves, so wait for our own
      // handle to let go.
      const unsubscribe = posix.onLocalRelease(lock.fileKey, () => {
        unsubscribe();
        q.active = undefined;
        if (w.failure) settleFailed(q, w);
        pump(key);
      });
      q.active = { waiter: w, stop: unsubscribe };
      return;
    }
    const pool = waitPool();
    if (!pool.hasCapacity()) {
      // Every wait thread is taken: poll with backoff rather than queue this
      // wait behind blocked ones.
      const delay = Math.min(50, 2 ** Math.min(6, ++w.polls));
      const t = setTimeout(() => {
        q.active = undefined;
        pump(key);
      }, delay);
      q.active = { waiter: w, stop: () => clearTimeout(t) };
      return;
    }
    const posixMode = lock.posixMode;
    if (posixMode) posix.notePending(lock.fileKey, lock.owner, { kind: w.kind, range: lock.range });
    const kernel = pool.start(lock.kernelRequest(w.kind));
    q.active = { waiter: w, kernel, stop: () => kernel.cancel() };
    kernel.result.then(
      (res) => {
        // Record the grant before dropping the pending claim: a local
        // waiter woken by the latter must already see the lock as held.
        if (res.granted) lock.setHeld(w.kind);
        if (posixMode) posix.notePending(lock.fileKey, lock.owner, undefined);
        q.active = undefined;
        if (w.failure) {
          // Cancelled: reject() puts back what the handle held before,
          // releasing a lock the kernel granted after the caller gave up.
          settleFailed(q, w);
        } else if (res.granted) {
          grant(q, w);
        } else if (!res.cancelled) {
          fail(q, w, lock.syscallError('F_SETLKW', res.errno));
        }
        pump(key);
      },
      (err) => {
        if (posixMode) posix.notePending(lock.fileKey, lock.owner, undefined);
        q.active = undefined;
        fail(q, w, err);
        pump(key);
      },
    );
    return;
  }
  queues.delete(key);
}
