// Taking a session's view away: every mount at or under its root.
import { UnionError, UnmountBusyError, unmountFailure } from './errors.js';
import { mountHolders } from './holders.js';
import { canonicalPath, mountsUnder, readMountInfo } from './mountinfo.js';
import { EBUSY, EINVAL, ENOENT, sysUmount } from './native.js';

/**
 * Unmounts every mount at or under `root` in mountsUnder's order (deepest
 * first, never before a mount that hides it), re-reading mountinfo after
 * each one (an unmount can propagate to others). Stops at
 * the first failure: EBUSY throws UnmountBusyError naming the processes that
 * use the mount, anything else UnionError. What is still mounted then stays
 * mounted, intact, for a later attempt; nothing is ever detached lazily.
 */
export function unmountAll(root: string): void {
  const base = canonicalPath(root);
  if (base === '/') throw new UnionError(base, 'refusing to unmount everything: a session root is never /');
  // Each round removes a mount; only mounts propagated in from elsewhere
  // could keep the loop going, and not forever.
  for (let round = 0; round < 10_000; round++) {
    const next = mountsUnder(base)[0];
    if (!next) return;
    const e = sysUmount(next.mountPoint);
    if (e === 0) continue;
    if (e === EBUSY) throw new UnmountBusyError(next.mountPoint, mountHolders(next.mountPoint));
    // Unmounted by someone else since we read mountinfo: the goal is met.
    if ((e === EINVAL || e === ENOENT) && !readMountInfo().some((m) => m.id === next.id)) continue;
    throw new UnionError(next.mountPoint, unmountFailure(e));
  }
  throw new UnionError(base, 'cannot unmount: mounts keep appearing under it');
}
