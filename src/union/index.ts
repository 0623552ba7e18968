// The union layer: how a session's view of its source is made and taken
// away. overlay (kernel overlayfs over the source), copy (a private copy of
// the source), none (the source itself, bind-mounted). Teardown unmounts
// everything under the session root, deepest first, and never detaches
// lazily: a busy mount is reported with the processes that use it, and the
// session stays intact, to be ended again.
export type { UnionType } from '../config/index.js';
export { mountUnion, type UnionLayout } from './mount.js';
export { unmountAll, unmountSettled } from './unmount.js';
export { removeTree, removeTreeOffThread, shutdownRemovalPool } from './remove.js';
export { isMountPoint, mountsUnder, readMountInfo, type MountEntry } from '../sys/index.js';
export { mountHolders, refuseWhileInUse } from './holders.js';
export { CopyInterruptedError, TreeInUseError, UnionError, UnmountBusyError, type MountHolder } from './errors.js';
