// recover (DESIGN.md, "Locks"): a stale session, one that nothing holds, is
// either re-adopted or ended.
//
// re-adopt: manage EX (wait) -> liveness EX (non-blocking: a holder means
// the session is active, and it is refused) -> source SH -> release manage
// -> re-mount if the mount is gone -> hooks with WARDEN_RECOVER=1 -> state
// active -> downgrade liveness to SH. The caller then holds the session
// (to run a command in it) or lets it go, stale but consistent.
// end: liveness EX (non-blocking), then end's own teardown. A session that
// was being ended when its ender died is always ended: someone asked for it.
// A shared chroot's session: its registration EX right after the liveness
// lock; re-adopted, it is held SH again with this process's pid in it. A
// session whose registration is gone (a crash between the end's removal
// of the two, or a host forgotten meanwhile) is only ended: other hosts no
// longer wait for it, so it must not hold the source again.
//
// The upper layer is never touched: whatever a session wrote survives any
// number of crashes and recoveries.
//
// This file: recoverSession; readopt.ts the view put back; recover-all.ts
// recover --all; sweep.ts the leftovers of dead processes.
import { killStrayHooks, strayHooks, type HookPhase, type StrayHook } from '../hooks/index.js';
import { LockBusyError, type FileLock } from '../locks/index.js';
import { crashPoint } from '../sys/index.js';
import { endSession } from './end.js';
import { SessionActiveError, SessionNotFoundError } from './errors.js';
import { livenessHeld, takeLivenessExclusive, takeManageLock, takeRegistrationExclusive, type LockWaitOptions } from './locks.js';
import { openLiveness } from './lock-files.js';
import { livenessHolders } from './lock-holders.js';
import type { ManageLock } from './manage-lock.js';
import { RegistrationHeldError, type RegistrationHandle } from './registry.js';
import { openSession } from './open.js';
import { readoptLocked } from './readopt.js';
import { setSessionLocks, type Session } from './session.js';
import { ensureStateDir } from './store.js';

export interface RecoverOptions extends LockWaitOptions {
  stateDir: string;
  id: string;
  /** End the session instead of re-adopting it. */
  end?: boolean;
  /** Stray hooks found by the caller (recover --all scans /proc once for all sessions). */
  strays?: readonly StrayHook[];
}

export type Recovered =
  | {
      id: string;
      action: 'readopted';
      /** Held by this process (liveness SH, source SH); release() leaves it stale but consistent. */
      session: Session;
      /** The view was mounted (or, for a copy, made) again. */
      remounted: boolean;
      /** Hook phases run, with WARDEN_RECOVER=1. */
      phases: HookPhase[];
      /** Hooks of a dead warden that were still running, killed first. */
      killedHooks: StrayHook[];
    }
  | { id: string; action: 'ended'; killedHooks: StrayHook[] };

/** Recovers the stale session `o.id`. Throws SessionActiveError (a holder exists), SessionNotFoundError, SessionCorruptError... */
export async function recoverSession(o: RecoverOptions): Promise<Recovered> {
  const stateDir = ensureStateDir(o.stateDir);
  // Validates the id before any file is touched, and reads the chroot.
  const probe = openSession(stateDir, o.id);
  // A quick refusal that names the holders, before waiting for anything.
  // (A conflict nobody can be named for may be a fork's passing copy of our fds: see tryAcquireSettled.)
  const holders = livenessHeld(probe.paths.dir) ? livenessHolders(probe.paths.dir) : [];
  if (holders.length > 0) throw new SessionActiveError(probe.id, holders);
  let ending = o.end === true || probe.state.status === 'ending';
  // Re-adopting takes the manage lock first, as begin does: a pending source
  // entry holds it, and recovery queues behind it. While this waits the
  // session still looks stale, so the entry sees it (and refuses, or ends
  // it); holding liveness EX first would hide it while still mounted.
  // Ending needs no manage lock: unmounting never harms the source.
  let manage: ManageLock | undefined;
  let liveness: FileLock | undefined;
  let registration: RegistrationHandle | undefined;
  try {
    manage = ending ? undefined : await takeManageLock(stateDir, probe.state.chroot, { ...o, source: probe.state.source, shared: probe.state.shared, what: 'recover', session: probe.id });
    if (manage) crashPoint('recover:manage');
    liveness = await takeLivenessExclusiveNow(probe);
    crashPoint('recover:exclusive');
    // What the session is now, read under the lock.
    const session = openSession(stateDir, o.id);
    if (session.state.shared) {
      registration = await takeRegistrationNow(session);
      if (registration) crashPoint('recover:registration-exclusive');
      else ending = true;
    }
    setSessionLocks(session, { liveness, registration });
    const killedHooks = (o.strays ?? strayHooks(stateDir)).filter((h) => h.sessionId === session.id);
    await killStrayHooks(killedHooks);
    if (killedHooks.length > 0) crashPoint('recover:hooks-killed');
    if (ending || session.state.status === 'ending') {
      manage?.close();
      // endSession owns the locks from here and closes them, also on failure.
      liveness = registration = undefined;
      try {
        await endSession(session, { recover: true });
      } finally {
        session.release();
      }
      return { id: session.id, action: 'ended', killedHooks };
    }
    const held = { manage: manage!, liveness, registration };
    manage = liveness = registration = undefined;
    const { remounted, phases } = await readoptLocked(session, held, o);
    return { id: session.id, action: 'readopted', session, remounted, phases, killedHooks };
  } catch (e) {
    registration?.close();
    manage?.close();
    liveness?.close();
    throw e;
  }
}

/**
 * A shared session's registration EX, beside the liveness EX (no local
 * holder remains, so only a holder's closing fd can keep it, briefly).
 * undefined when it has none any more.
 */
async function takeRegistrationNow(session: Session): Promise<RegistrationHandle | undefined> {
  try {
    return await takeRegistrationExclusive(session.state.shared!, session.id);
  } catch (e) {
    if (e instanceof RegistrationHeldError) throw new SessionActiveError(session.id, []);
    throw e;
  }
}

/** liveness EX, non-blocking, on the file the session dir still names. */
async function takeLivenessExclusiveNow(session: Session): Promise<FileLock> {
  const lock = openLiveness(session.paths.dir);
  try {
    try {
      await takeLivenessExclusive(lock, { wait: false });
    } catch (e) {
      if (e instanceof LockBusyError) throw new SessionActiveError(session.id, e.holders);
      throw e;
    }
    // Ended and removed since the probe: we locked a deleted file.
    if (!lock.namesSameFile()) throw new SessionNotFoundError(session.id, session.stateDir);
    return lock;
  } catch (e) {
    lock.close();
    throw e;
  }
}
