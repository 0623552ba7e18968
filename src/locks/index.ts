// The lock layer's public surface: fcntl record locks, their holders, and
// the worker pool that blocking waits run in.
import { FileLock, type OpenOptions, type WaitOptions } from './lock.js';
import { LockFileError, type LockKind } from './errors.js';

export { FileLock, WHOLE_FILE, type OpenOptions, type WaitOptions } from './lock.js';
export {
  LockAbortedError,
  LockBusyError,
  LockError,
  LockFileError,
  LockStateError,
  LockTimeoutError,
  LockUnsupportedError,
  describeHolders,
  describeRange,
  type LockHolder,
  type LockKind,
  type LockRange,
} from './errors.js';
export { fileKey, fileKeyOfPath, holdersByKey, lockHolders, readProcLocks, rangesOverlap, type LockEntry } from './inspect.js';
export { requestedMode, type LockMode } from './mode.js';
export { describeFilesystem, lockLocality, type LockLocality, type LockScope } from './locality.js';
export { shutdownWaitPool, waitPool } from './pool.js';

const MAX_REPLACED_RETRIES = 16;

/**
 * Opens `path`, takes `kind`, and makes sure the path still names the locked
 * file afterwards; if something deleted or replaced it meanwhile, drops the
 * stale handle and starts again on the new file (DESIGN.md, "Rules").
 */
export async function lockPath(path: string, kind: LockKind, opts: OpenOptions & WaitOptions = {}): Promise<FileLock> {
  for (let attempt = 0; ; attempt++) {
    const lock = FileLock.open(path, opts);
    try {
      await lock.acquire(kind, opts);
      if (lock.namesSameFile()) return lock;
    } catch (e) {
      lock.close();
      throw e;
    }
    lock.close();
    if (attempt >= MAX_REPLACED_RETRIES) {
      throw new LockFileError(`lock file ${path} keeps being replaced while we lock it`, { path });
    }
  }
}
