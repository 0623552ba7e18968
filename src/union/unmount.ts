// Taking a session's view away: every mount at or under its root.
import { UnionError, UnmountBusyError, unmountFailure } from './errors.js';
import { mountHolders } from './holders.js';
import { canonicalPath, mountsUnder, readMountInfo } from '../sys/index.js';
import { EBUSY, EINVAL, ENOENT, sysUmount, sysUmountOffThread } from '../sys/index.js';

export interface UnmountOptions {
  /**
   * Read mountinfo once more after a round that unmounted everything it
   * found, to confirm nothing is left (default). `false` is for a caller
   * that reads it right after anyway (end: discardSessionDir refuses to
   * delete while anything is mounted under the session dir), and saves
   * one walk of every mount of the namespace.
   */
  confirm?: boolean;
}

export interface SettleOptions extends UnmountOptions {
  /**
   * Make each umount2 on another thread (sysUmountOffThread), so a
   * server's event loop goes on while the kernel frees a big session's
   * cached dentries.
   */
  offThread?: boolean;
}

/**
 * Unmounts every mount at or under `root` in mountsUnder's order (deepest
 * first, never before a mount that hides it). Stops at the first failure:
 * EBUSY throws UnmountBusyError naming the processes that use the mount,
 * anything else UnionError. What is still mounted then stays mounted,
 * intact, for a later attempt; nothing is ever detached lazily.
 *
 * mountinfo is read once per round, not once per unmount (each read costs
 * the kernel a walk of every mount of the namespace): an unmount that
 * propagates to others shows up as a later target already gone, and mounts
 * that propagate in meanwhile are found by the next round, which also
 * confirms that nothing is left.
 */
export function unmountAll(root: string, o: UnmountOptions = {}): void {
  const steps = unmountSteps(root, o);
  for (let next = steps.next(); !next.done; ) next = steps.next(sysUmount(next.value));
}

/** unmountAll with each umount2 made off the event loop (sysUmountOffThread). */
async function unmountAllOffThread(root: string, o: UnmountOptions): Promise<void> {
  const steps = unmountSteps(root, o);
  for (let next = steps.next(); !next.done; ) next = steps.next(await sysUmountOffThread(next.value));
}

/**
 * unmountAll's rounds, without the calls: yields each mount point to
 * unmount and is given back umount2's result (0 or the errno), so the sync
 * and the off-thread versions share every decision.
 */
function* unmountSteps(root: string, { confirm = true }: UnmountOptions): Generator<string, void, number> {
  const base = canonicalPath(root);
  if (base === '/') throw new UnionError(base, 'refusing to unmount everything: a session root is never /');
  // Each round removes at least one mount; only mounts propagated in from
  // elsewhere could keep the loop going, and not forever.
  for (let round = 0; round < 10_000; round++) {
    const batch = mountsUnder(base);
    if (batch.length === 0) return;
    let clean = true;
    for (const next of batch) {
      const e = yield next.mountPoint;
      if (e === 0) continue;
      if (e === EBUSY) throw new UnmountBusyError(next.mountPoint, mountHolders(next.mountPoint));
      // Unmounted by someone else (or by propagation) since we read mountinfo: the goal is met.
      clean = false;
      if ((e === EINVAL || e === ENOENT) && !readMountInfo().some((m) => m.id === next.id)) continue;
      throw new UnionError(next.mountPoint, unmountFailure(e));
    }
    if (clean && !confirm) return;
  }
  throw new UnionError(base, 'cannot unmount: mounts keep appearing under it');
}

/** Pauses before each retry of unmountSettled (ms): ~300 ms in all. */
const SETTLE_MS = [10, 20, 40, 80, 160];

/**
 * unmountAll, tried again after a pause while EBUSY names no process of
 * this namespace. A mount is busy for as long as anyone is walking a path
 * through it or reading a link that points into it (a stat by a watcher of
 * the state dir, a /proc scan by `warden info` or by mountHolders itself):
 * such a hold lasts one syscall, and failing the end for it would leave a
 * session to end again by hand. A process that really uses the mount is
 * named at once, without retries. The pauses are timers, not sleeps: the
 * event loop of a supervisor ending sessions goes on.
 */
export async function unmountSettled(root: string, o: SettleOptions = {}): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      if (o.offThread) {
        await unmountAllOffThread(root, o);
      } else {
        unmountAll(root, o);
      }
      return;
    } catch (e) {
      if (!(e instanceof UnmountBusyError) || e.holders.length > 0 || attempt >= SETTLE_MS.length) throw e;
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS[attempt]));
    }
  }
}
