// Who holds a session's liveness byte, asked without taking it: the
// holders an end names or kills, and the kind of lock held (watch).
import { join } from 'node:path';
import { lockHolders, type FileLock, type LockHolder, type LockKind } from '../locks/index.js';
import { LIVENESS, openLiveness, SESSION_LOCK_FILE } from './lock-files.js';

/** Holders of the liveness byte of `sessionDir`, other than the handle `except` of this process. */
export function livenessHolders(sessionDir: string, except?: FileLock): LockHolder[] {
  return lockHolders(join(sessionDir, SESSION_LOCK_FILE), LIVENESS).filter((h) => !h.waiting && !(except && h.pid === process.pid && h.fd === except.fd));
}

/** The kind of lock a holder has on the liveness byte (F_GETLK: never takes it), undefined when none. */
export function livenessHolderKind(sessionDir: string): LockKind | undefined {
  const lock = openLiveness(sessionDir, { readOnly: true });
  try {
    return lock.conflict('exclusive')?.kind;
  } finally {
    lock.close();
  }
}
