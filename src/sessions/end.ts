// end (DESIGN.md, "Locks"): liveness SH -> EX (other holders: report, wait
// for them, or kill them) -> pre-unmount hooks -> unmount everything under
// root, deepest first -> post-unmount hooks -> remove the dir -> release.
// A shared chroot's session also takes its registration EX right after the
// liveness lock, and removes it only once the dir is gone: until then every
// host still sees the session (and an entry anywhere waits for it).
// A failure before the unmount completes leaves the session intact, active
// and endable again.
import { HookFailedError, runHooks, type HookPhase } from '../hooks/index.js';
import { LockBusyError, type FileLock } from '../locks/index.js';
import { refuseWhileInUse, unmountSettled } from '../union/index.js';
import { discardSessionDir, discardSessionDirOffThread } from './discard.js';
import { SessionBusyError } from './errors.js';
import { downgradeLiveness, takeLivenessExclusive, takeRegistrationExclusive, withMetadataLock, type LivenessExclusiveOptions } from './locks.js';
import { openLiveness } from './lock-files.js';
import { livenessHolders } from './lock-holders.js';
import { RegistrationHeldError, type RegistrationHandle } from './registry.js';
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
  const { liveness, source, registration: ours } = session.locks;
  const lock = liveness ?? openLiveness(session.paths.dir);
  const before = lock.held;
  const status = session.state.status;
  let stale: boolean;
  let registration: RegistrationHandle | undefined;
  try {
    stale = (await takeExclusive(session, lock, o)) && before === undefined;
    crashPoint('end:exclusive');
    registration = await takeRegistration(session, ours);
    if (registration) crashPoint('end:registration-exclusive');
  } catch (e) {
    if (before === 'shared' && lock.held === 'exclusive') downgradeLiveness(lock);
    else if (!liveness) lock.close();
    throw e;
  }
  let late: unknown;
  try {
    late = await teardownLocked(session, o.recover ?? stale, o.offThread ?? false);
  } catch (e) {
    // Still mounted: give the session back as it was (a stale one keeps
    // its setting-up or ending for recover to finish).
    await setStatusLocked(session, status).catch(() => {});
    if (registration === ours && ours) ours.downgrade();
    else registration?.close();
    if (before === 'shared') {
      downgradeLiveness(lock);
    } else {
      lock.close();
    }
    throw e;
  }
  // The overlay is gone on this host: now, and only now, may other hosts
  // stop seeing the session.
  registration?.remove();
  crashPoint('end:unregistered');
  lock.close();
  source?.close();
  setSessionLocks(session, {});
  if (late !== undefined) throw late;
}

/**
 * A shared chroot's registration, EX: the session's own handle converted,
 * or a new one. Only the command fds of a holder that just exited can
 * still hold it (the liveness lock says no local holder remains), for the
 * moment a FUSE mount takes to release them: retried briefly. undefined
 * for a session of this host alone, or one whose registration is gone (a
 * crash after it was removed, or a forgotten host).
 * Preconditions: liveness EX held through this process.
 */
async function takeRegistration(session: Session, ours: RegistrationHandle | undefined): Promise<RegistrationHandle | undefined> {
  const shared = session.state.shared;
  if (!shared) return undefined;
  if (ours) {
    if (await ours.toExclusive()) return ours;
    throw new SessionBusyError(session.id, `its registration ${ours.path} is still held (by a holder on another host?)`, []);
  }
  try {
    return await takeRegistrationExclusive(shared, session.id);
  } catch (e) {
    if (e instanceof RegistrationHeldError) throw new SessionBusyError(session.id, `${e.message} (by a holder on another host?)`, [], e);
    throw e;
  }
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
