// Who holds warden's locks: every lock of this host and its holders
// (`warden locks`, `info`), and the words for the holders a wait names
// (the CLI's wait lines).
export { lockCensus, type LockRow } from '../../sessions/census.js';
export { describeSessionHolders } from '../../sessions/errors.js';
export { describeManageOwner } from '../../sessions/manage-owner.js';
export type { WaitInfo } from '../../sessions/locks.js';
export { describeHolders, lockHolders, type LockHolder } from '../../locks/index.js';
