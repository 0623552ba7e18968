// end (DESIGN.md, "Locks"): liveness SH -> EX (other holders: report, wait
// for them, or kill them) -> pre-unmount hooks -> unmount everything under
// root, deepest first -> post-unmount hooks -> remove the dir -> release.
// A failure before the unmount completes leaves the session intact, active
// and endable again.
import { HookFailedError, runHooks, type HookPhase } from '../hooks/index.js';
import { LockBusyError, type FileLock } from '../locks/index.js';
import { refuseWhileInUse, unmountSettled } from '../union/index.js';
import { discardSessionDir, discardSessionDirOffThread } from './discard.js';
import { SessionBusyError } from './errors.js';
import { downgradeLiveness, livenessHolders, openLiveness, takeLivenessExclusive, withMetadataLock, type LivenessExclusiveOptions } from './locks.js';
import { setSessionLocks, setSessionState, type Session } from './session.js';
import { writeStateLocked, type SessionStatus } from './state.js';
import { crashPoint } from '../sys/index.js';

export interface EndOptions extends LivenessExclusiveOptions {
  /** Wait for the other holders to let go. */
  wait?: boolean;
  /**
   * Hooks see WARDEN_RECOVER=1. Default: when the session was stale (no
   * holder at all when end came): its begin or end may have been cut short.
   */
  recover?: boolean;
  /**
   * Unmount on another thread (sysUmountOffThread) and delete a big session
   * dir in a worker (removeTreeOffThread), so the caller's event loop goes
   * on serving: for servers such as the supervisor. The kernel's part of
   * ending a session that wrote 100,000 files is ~0.3 s of umount2 and
   * ~0.7 s of deleting. A CLI has nothing else to serve and does both in place.
   */
  offThread?: boolean;
}

/** Ends `session` (held by this process or not). On success the session is gone and `session` holds nothing. */
export async function endSession(session: Session, o: EndOptions = {}): Promise<void> {
  const { liveness, source } = session.locks;
  const lock = liveness ?? openLiveness(session.paths.dir);
  const before = lock.held;
  const status = session.state.status;
  let stale: boolean;
  try {
    stale = (await takeExclusive(session, lock, o)) && before === undefined;
    crashPoint('end:exclusive');
  } catch (e) {
    if (!liveness) lock.close();
    throw e;
  }
  let late: unknown;
  try {
    late = await teardownLocked(session, o.recover ?? stale, o.offThread ?? false);
  } catch (e) {
    // Still mounted: give the session back as it was (a stale one keeps
    // its setting-up or ending for recover to finish).
    await setStatusLocked(session, status).catch(() => {});
    if (before === 'shared') {
      downgradeLiveness(lock);
    } else {
      lock.close();
    }
    throw e;
  }
  lock.close();
  source?.close();
  setSessionLocks(session, { liveness: undefined, source: undefined });
  if (late !== undefined) throw late;
}

/**
 * Converts `lock` to EX (locks.ts's takeLivenessExclusive); true when it was
 * granted at once (no other holder). Other holders left: SessionBusyError.
 */
async function takeExclusive(session: Session, lock: FileLock, o: EndOptions): Promise<boolean> {
  try {
    return await takeLivenessExclusive(lock, o);
  } catch (e) {
    if (!(e instanceof LockBusyError)) throw e;
    if (!o.wait && !o.force) throw new SessionBusyError(session.id, 'other processes still hold it (use --wait or --force)', e.holders);
    throw new SessionBusyError(session.id, 'other processes still hold it', livenessHolders(session.paths.dir, lock), e);
  }
}

/**
 * Everything after the exclusive liveness lock. Throws while the session is
 * still intact; returns (not throws) a post-unmount hook failure, which
 * happens once nothing is mounted and does not stop the end.
 * Preconditions: liveness EX held through this process.
 */
async function teardownLocked(session: Session, recover: boolean, offThread: boolean): Promise<unknown> {
  const { state, paths } = session;
  // Not synced: an 'ending' lost to a power cut leaves the session 'active'
  // and stale after the reboot, which recover handles as well.
  await setStatusLocked(session, 'ending', false);
  crashPoint('end:ending');
  const hooks = (phase: HookPhase) =>
    runHooks({ hooksDir: state.hooksDir, phase, vars: session.hookVars(recover), logPath: paths.hooksLog, timeoutMs: state.hookTimeoutMs, keepGoing: true });
  await hooks('pre-unmount');
  crashPoint('end:pre-unmount');
  // A copy has no mount to be busy: refuse, as a busy overlay's unmount
  // does, while a process still works in the tree (after the pre-unmount
  // hooks, which may stop them), rather than delete under it or kill it.
  if (state.unionType === 'copy') refuseWhileInUse(paths.root);
  // No second read of mountinfo to confirm: discardSessionDir reads it for
  // the whole session dir below and refuses while anything is mounted.
  await unmountSettled(paths.root, { confirm: false, offThread });
  crashPoint('end:unmounted');
  let late: unknown;
  try {
    await hooks('post-unmount');
  } catch (e) {
    // Nothing is mounted any more: the session still ends; the failure is reported after.
    late = e;
  }
  crashPoint('end:post-unmount');
  if (offThread) {
    await discardSessionDirOffThread(session.stateDir, session.id);
  } else {
    discardSessionDir(session.stateDir, session.id);
  }
  crashPoint('end:removed');
  if (late instanceof HookFailedError) (late as Error).message = `session ${session.id} ended, but ${(late as Error).message}`;
  return late;
}

/**
 * Rewrites state.json with a new status.
 * Preconditions: the caller holds the session (liveness) so the dir cannot vanish.
 */
async function setStatusLocked(session: Session, status: SessionStatus, syncRename = true): Promise<void> {
  const next = { ...session.state, status, updatedAt: new Date().toISOString() };
  await withMetadataLock(session.paths.dir, () => writeStateLocked(session.paths.dir, next, { syncRename }));
  setSessionState(session, next);
}
