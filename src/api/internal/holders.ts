// The words for who holds a lock: the holders a wait names (the CLI's
// wait lines), and those left holding a session `run -c` could not end.
export { describeSessionHolders } from '../../sessions/errors.js';
export { describeManageOwner } from '../../sessions/manage-owner.js';
export type { WaitInfo } from '../../sessions/locks.js';
export { describeHolders, lockHolders, type LockHolder } from '../../locks/index.js';
