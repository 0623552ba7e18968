// One FileLock's wait in flight: the promise its acquire() returns, its
// timeout and AbortSignal, its wait report, and its place in the wait
// queue (wait-queue.ts), which schedules the kernel waits. Apart from
// FileLock (lock.ts), which owns the fd and the lock state and lends a
// wait only the calls it needs (a Waitable).
import { LockAbortedError, LockTimeoutError, type LockError, type LockHolder, type LockKind } from './errors.js';
import type { WaitOptions } from './lock-file.js';
import { abandon, enqueue, type Waitable, type Waiter } from './wait-queue.js';
import { setLongTimeout } from '../sys/index.js';

/** A lock handle as its wait sees it. */
export interface WaitingLock extends Waitable {
  readonly path: string;
  /** The wait queue's key: file and range. */
  readonly queueKey: string;
  /** Who holds or waits for the range now (/proc/locks and fdinfo). */
  holders(): LockHolder[];
}

/** How a wait hands its handle back. */
export interface WaitEnds {
  /** Called before the promise settles: the handle is idle again; after a failure it must hold what it held before. */
  settled(failed: boolean): void;
  /** Called once a failed wait's promise has rejected (a close() that came during the wait finishes then). */
  afterRejection(): void;
}

/** Wait reports' holders, per (file, range), for the current turn of the event loop (see holdersThisTurn). */
const turnHolders = new Map<string, LockHolder[]>();

/**
 * holders() for a wait report, shared by every wait that starts on the
 * same file and range in this turn of the event loop. Finding OFD owners
 * reads the fdinfo of every process (tens of ms with many fds open), and a
 * supervisor that gets a burst of begins runs all their first steps in one
 * poll phase: one scan per burst instead of one per waiter keeps the event
 * loop responsive. Only for reports; decisions call holders().
 */
function holdersThisTurn(lock: WaitingLock): LockHolder[] {
  const k = lock.queueKey;
  let cached = turnHolders.get(k);
  if (!cached) {
    if (turnHolders.size === 0) setImmediate(() => turnHolders.clear());
    turnHolders.set(k, (cached = lock.holders()));
  }
  return cached.map((h) => ({ ...h }));
}

export class HandleWait {
  readonly kind: LockKind;
  /** Settles when the lock is taken, or with the first failure (LockTimeoutError, LockAbortedError, ...). */
  readonly promise: Promise<void>;
  readonly #lock: WaitingLock;
  #waiter!: Waiter;

  /** A wait for `kind` on `lock` (whose try just failed); start() queues it. */
  constructor(lock: WaitingLock, kind: LockKind, opts: WaitOptions, ends: WaitEnds) {
    this.kind = kind;
    this.#lock = lock;
    this.promise = new Promise<void>((resolve, reject) => {
      let cancelTimer: (() => void) | undefined;
      const onAbort = () => this.abandon(new LockAbortedError(lock.path, lock.range, kind, opts.signal?.reason));
      const waiter: Waiter = {
        lock,
        kind,
        polls: 0,
        resolve: () => {
          waiter.cleanup();
          ends.settled(false);
          resolve();
        },
        reject: (e) => {
          waiter.cleanup();
          ends.settled(true);
          reject(e);
          ends.afterRejection();
        },
        cleanup: () => {
          cancelTimer?.();
          opts.signal?.removeEventListener('abort', onAbort);
        },
      };
      this.#waiter = waiter;
      if (opts.timeout !== undefined && Number.isFinite(opts.timeout)) {
        const ms = Math.max(0, opts.timeout);
        cancelTimer = setLongTimeout(() => this.abandon(new LockTimeoutError(lock.path, lock.range, kind, ms, lock.holders())), ms);
      }
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      if (opts.onWait) {
        try {
          opts.onWait(holdersThisTurn(lock));
        } catch {
          // a reporting callback must not break the wait
        }
      }
    });
  }

  /**
   * Puts the wait in the queue. Apart from the constructor: the queue may
   * grant it at once (the lock was let go since the handle's try), and the
   * handle must know its wait before it ends.
   */
  start(): void {
    enqueue(this.#lock.queueKey, this.#waiter);
  }

  /** Gives up the wait with `failure` (the first reason wins); the promise rejects with it once the queue lets go. */
  abandon(failure: LockError): void {
    const w = this.#waiter;
    if (w.failure) return;
    w.failure = failure;
    abandon(this.#lock.queueKey, w);
  }
}
