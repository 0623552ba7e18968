// Taking a session's view away: every mount at or under its root.
import { UnionError, UnmountBusyError, unmountFailure } from './errors.js';
import { mountHolders } from './holders.js';
import { canonicalPath, mountsUnder, readMountInfo } from './mountinfo.js';
import { EBUSY, EINVAL, ENOENT, sysUmount } from './native.js';

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
export function unmountAll(root: string): void {
  const base = canonicalPath(root);
  if (base === '/') throw new UnionError(base, 'refusing to unmount everything: a session root is never /');
  // Each round removes at least one mount; only mounts propagated in from
  // elsewhere could keep the loop going, and not forever.
  for (let round = 0; round < 10_000; round++) {
    const batch = mountsUnder(base);
    if (batch.length === 0) return;
    for (const next of batch) {
      const e = sysUmount(next.mountPoint);
      if (e === 0) continue;
      if (e === EBUSY) throw new UnmountBusyError(next.mountPoint, mountHolders(next.mountPoint));
      // Unmounted by someone else (or by propagation) since we read mountinfo: the goal is met.
      if ((e === EINVAL || e === ENOENT) && !readMountInfo().some((m) => m.id === next.id)) continue;
      throw new UnionError(next.mountPoint, unmountFailure(e));
    }
  }
  throw new UnionError(base, 'cannot unmount: mounts keep appearing under it');
}
