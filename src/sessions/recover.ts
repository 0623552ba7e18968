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
//
// The upper layer is never touched: whatever a session wrote survives any
// number of crashes and recoveries.
import { lstatSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { killStrayHooks, runHooks, strayHooks, type HookPhase, type StrayHook } from '../hooks/index.js';
import { LockBusyError, type FileLock } from '../locks/index.js';
import { isMountPoint, mountUnion, readMountInfo, removeTree, removeTreeOffThread, unmountSettled, UnionError } from '../union/index.js';
import { canonicalPath } from '../sys/index.js';
import { endSession } from './end.js';
import { RollbackError, SessionActiveError, SessionNotFoundError } from './errors.js';
import {
  downgradeLiveness,
  errnoCode,
  livenessHeld,
  livenessHolders,
  openLiveness,
  takeLivenessExclusive,
  takeManageLock,
  takeSourceShared,
  tryLivenessAbandoned,
  withMetadataLock,
  type LockWaitOptions,
} from './locks.js';
import { openSession } from './open.js';
import { profileHookOptions } from './profile.js';
import { makeSessionDirs, MODES, type Session } from './session.js';
import { writeStateLocked, type SessionState } from './state.js';
import { ensureStateDir, listSessions } from './store.js';
import { Undo } from './undo.js';
import { crashPoint } from '../sys/index.js';
import { BUILD_PREFIX, GONE_PREFIX, UNPUBLISHED_PREFIX } from './discard.js';

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
  const ending = o.end === true || probe.state.status === 'ending';
  // Re-adopting takes the manage lock first, as begin does: a pending source
  // entry holds it, and recovery queues behind it. While this waits the
  // session still looks stale, so the entry sees it (and refuses, or ends
  // it); holding liveness EX first would hide it while still mounted.
  // Ending needs no manage lock: unmounting never harms the source.
  let manage: FileLock | undefined;
  let liveness: FileLock | undefined;
  try {
    manage = ending ? undefined : await takeManageLock(stateDir, probe.state.chroot, { ...o, source: probe.state.source });
    if (manage) crashPoint('recover:manage');
    liveness = await takeLivenessExclusiveNow(probe);
    crashPoint('recover:exclusive');
    // What the session is now, read under the lock.
    const session = openSession(stateDir, o.id);
    session.setLocks({ liveness, source: undefined });
    const killedHooks = (o.strays ?? strayHooks(stateDir)).filter((h) => h.sessionId === session.id);
    await killStrayHooks(killedHooks);
    if (killedHooks.length > 0) crashPoint('recover:hooks-killed');
    if (ending || session.state.status === 'ending') {
      manage?.close();
      // endSession owns the lock from here and closes it, also on failure.
      await endSession(session, { recover: true });
      return { id: session.id, action: 'ended', killedHooks };
    }
    const { remounted, phases } = await readoptLocked(session, manage!, liveness, o);
    return { id: session.id, action: 'readopted', session, remounted, phases, killedHooks };
  } catch (e) {
    manage?.close();
    liveness?.close();
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

/**
 * Source SH, the view back in place, state active, liveness down to SH. On
 * failure what this did is undone (a mount it made is taken down again),
 * the state is left as it was, and every lock is released: the session is
 * stale and recoverable, as before.
 * Preconditions: manage EX of the session's chroot and liveness EX held by
 * this process; both are handed over (released on failure).
 */
async function readoptLocked(session: Session, manage: FileLock, liveness: FileLock, o: LockWaitOptions): Promise<{ remounted: boolean; phases: HookPhase[] }> {
  const undo = new Undo();
  undo.push('release manage lock', () => manage.close());
  undo.push('release liveness lock', () => liveness.close());
  try {
    const source = await takeSourceShared(session.state.source, o);
    undo.push('release source lock', () => source.close());
    crashPoint('recover:source');
    // Holding the source now: a source entry from here on waits for us.
    manage.close();
    crashPoint('recover:manage-released');
    session.setLocks({ liveness, source });
    const view = await restoreViewLocked(session, o, undo);
    const active: SessionState = { ...session.state, status: 'active', updatedAt: new Date().toISOString() };
    await withMetadataLock(session.paths.dir, () => writeStateLocked(session.paths.dir, active));
    session.setState(active);
    crashPoint('recover:active');
    // fcntl(2): converting an exclusive lock to shared never blocks.
    if (!downgradeLiveness(liveness)) throw new Error(`session ${session.id}: could not downgrade its liveness lock to shared`);
    crashPoint('recover:shared');
    undo.commit();
    return view;
  } catch (e) {
    session.setLocks({ liveness: undefined, source: undefined });
    const errors = await undo.run();
    if (errors.length > 0) throw new RollbackError(session.id, e, errors);
    throw e;
  }
}

/**
 * Puts the session's view back. Mounted (the mount survived warden): only
 * the post-mount hooks run again, to restore what they bind (they must
 * tolerate what is still there, as a declarative .fstab hook does: it
 * skips mount points that are mounted already). Not
 * mounted (a reboot, or a begin killed before its mount): pre-mount hooks,
 * mount over the kept upper dir, post-mount hooks. A copy has no mount: a
 * finished one is kept; one whose begin died may be partial and is made again.
 * Preconditions: liveness EX and source SH held by this process.
 */
async function restoreViewLocked(session: Session, o: LockWaitOptions, undo: Undo): Promise<{ remounted: boolean; phases: HookPhase[] }> {
  const { state, paths } = session;
  const phases: HookPhase[] = [];
  const hook = async (phase: HookPhase) => {
    await runHooks({ hooksDir: state.hooksDir, phase, vars: session.hookVars(true), logPath: paths.hooksLog, timeoutMs: state.hookTimeoutMs, signal: o.signal, ...profileHookOptions(state) });
    phases.push(phase);
  };
  // Undo hooks run without the caller's signal: a Ctrl-C that stopped the
  // recovery must not also stop its clean-up.
  const stopHook = (phase: 'pre-unmount' | 'post-unmount') => async () => {
    await runHooks({ hooksDir: state.hooksDir, phase, vars: session.hookVars(true), logPath: paths.hooksLog, timeoutMs: state.hookTimeoutMs, keepGoing: true });
  };
  const type = state.unionType;
  const mounted = type !== 'copy' && isMountPoint(paths.root);
  const keptCopy = type === 'copy' && state.status === 'active';
  if (mounted || keptCopy) {
    if (mounted) checkMountedView(session);
    await hook('post-mount');
    crashPoint('recover:post-mount');
    return { remounted: false, phases };
  }
  // Mounts left below an unmounted root would be hidden by the new mount.
  await unmountSettled(paths.root);
  makeSessionDirs(paths, type, session.state.layout);
  if (type === 'copy') {
    removeTree(paths.root);
    mkdirSync(paths.root, { mode: MODES.root });
  }
  crashPoint('recover:dirs');
  undo.push('post-unmount hooks', stopHook('post-unmount'));
  await hook('pre-mount');
  crashPoint('recover:pre-mount');
  await mountView(session, o.signal);
  crashPoint('recover:mounted');
  undo.push('unmount', () => unmountSettled(paths.root));
  undo.push('pre-unmount hooks', stopHook('pre-unmount'));
  await hook('post-mount');
  crashPoint('recover:post-mount');
  return { remounted: true, phases };
}

/** A mount at root that is not the session's kind (someone else's) is not adopted. */
function checkMountedView(session: Session): void {
  if (session.state.unionType !== 'overlay') return;
  const root = canonicalPath(session.paths.root);
  const top = readMountInfo(root)
    .filter((m) => m.mountPoint === root)
    .at(-1);
  if (top && top.fsType !== 'overlay') {
    throw new UnionError(root, `mounted, but as ${top.fsType}, not the session's overlay: refusing to adopt it (unmount it, then recover)`);
  }
}

/**
 * mountUnion, once more with an emptied work dir if the first attempt fails
 * with one that is not empty. overlayfs wants an empty work dir (kernel
 * Documentation/filesystems/overlayfs.rst) and clears what it left there
 * itself at mount; anything else in it after an unclean stop is transient
 * copy-up data, never the session's files (those are in upper).
 */
async function mountView(session: Session, signal: AbortSignal | undefined): Promise<void> {
  const { state, paths } = session;
  const layout = { type: state.unionType, source: state.source, upper: paths.upper, work: paths.work, root: paths.root };
  try {
    await mountUnion(layout, { signal });
  } catch (e) {
    if (state.unionType !== 'overlay' || readdirSync(paths.work).length === 0 || isMountPoint(paths.root)) throw e;
    removeTree(paths.work);
    mkdirSync(paths.work, { mode: MODES.work });
    await mountUnion(layout, { signal });
  }
}

// --- recover --all -------------------------------------------------------------

export interface RecoverAllOptions extends LockWaitOptions {
  stateDir: string;
  end?: boolean;
  /** Offered each re-adopted session: true keeps it held by the caller (a supervisor); otherwise it is let go. */
  keep?: (session: Session) => boolean;
  /**
   * Remove the leftovers of dead processes at the end (removeUnpublished;
   * default true). A supervisor passes false and sweeps once it serves,
   * off its event loop: a `.gone-*` dir can hold 100,000 files.
   */
  sweep?: boolean;
}

export type RecoverReport =
  | { id: string; outcome: 'readopted'; remounted: boolean; phases: HookPhase[]; killedHooks: StrayHook[] }
  | { id: string; outcome: 'ended'; killedHooks: StrayHook[] }
  /** Left untouched: only a person can tell what a broken entry was. */
  | { id: string; outcome: 'corrupt'; reason: string }
  /** Held by someone by the time recover came to it. */
  | { id: string; outcome: 'active' }
  | { id: string; outcome: 'failed'; error: unknown }
  /** A build dir (`.init-*`, `.new-*`) of a begin that died before publishing its session. */
  | { id: string; outcome: 'removed-unpublished' }
  /** A `.gone-*` dir: an ended session that its end was deleting when it died. */
  | { id: string; outcome: 'removed-ended' };

/**
 * Every stale session re-adopted (and let go: stale but consistent) or,
 * with `end`, ended; corrupt entries reported and left alone; build dirs of
 * dead begins removed. Carries on past each failure and reports it; stops
 * early only when `signal` aborts.
 */
export async function recoverAll(o: RecoverAllOptions): Promise<RecoverReport[]> {
  const stateDir = ensureStateDir(o.stateDir);
  const out: RecoverReport[] = [];
  const strays = strayHooks(stateDir);
  for (const entry of listSessions(stateDir)) {
    if (o.signal?.aborted) break;
    if (entry.status === 'corrupt') {
      out.push({ id: entry.id, outcome: 'corrupt', reason: entry.reason ?? 'corrupt' });
      continue;
    }
    if (entry.status !== 'stale') continue;
    try {
      const r = await recoverSession({ ...o, stateDir, id: entry.id, strays });
      if (r.action === 'readopted') {
        if (!o.keep?.(r.session)) r.session.release();
        out.push({ id: r.id, outcome: 'readopted', remounted: r.remounted, phases: r.phases, killedHooks: r.killedHooks });
      } else {
        out.push({ id: r.id, outcome: 'ended', killedHooks: r.killedHooks });
      }
    } catch (e) {
      if (e instanceof SessionActiveError) out.push({ id: entry.id, outcome: 'active' });
      else if (e instanceof SessionNotFoundError) continue; // ended by someone else meanwhile
      else out.push({ id: entry.id, outcome: 'failed', error: e });
    }
  }
  if (!o.signal?.aborted && o.sweep !== false) out.push(...(await removeUnpublished(stateDir)));
  return out;
}

/** A build dir younger than this is left alone even when unlocked: its begin may be between creating it and locking it. */
const BUILD_GRACE_MS = 60_000;

/**
 * Removes the hidden leftovers of dead processes (see discard.ts): build
 * dirs of begins (`.init-*`, `.new-*`) and session dirs that an end took
 * out of the namespace and was deleting (`.gone-*`). Their owner holds the
 * liveness byte of the lock file inside while alive, so a dir whose lock we
 * get exclusively is abandoned; we keep that lock while deleting. The lock
 * file is never created here: a `.new-*` dir always has one (its begin
 * renames it to that name only once locked), a `.gone-*` dir loses it to
 * the deletion (deleting alongside a live end is harmless), and an
 * `.init-*` dir is left alone while young, locked or not. Nothing in these
 * dirs is mounted, nor is it a session anyone can reach by its id.
 * `offThread`: big dirs are deleted in a worker (removeTreeOffThread), for a
 * server; `signal` stops the sweep between dirs.
 */
export async function removeUnpublished(stateDir: string, o: { offThread?: boolean; signal?: AbortSignal } = {}): Promise<RecoverReport[]> {
  const out: RecoverReport[] = [];
  let names: string[];
  try {
    names = readdirSync(stateDir).filter((n) => [BUILD_PREFIX, UNPUBLISHED_PREFIX, GONE_PREFIX].some((p) => n.startsWith(p)));
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    // Stops between dirs (a supervisor that stops); the rest waits for the next sweep.
    if (o.signal?.aborted) break;
    const dir = join(stateDir, name);
    let lock: FileLock | undefined;
    try {
      const st = lstatSync(dir);
      if (!st.isDirectory()) throw new UnionError(dir, 'is not a directory: not a session being built or deleted, left alone');
      const abandoned = tryLivenessAbandoned(dir);
      if (!abandoned) continue; // its owner is alive
      lock = abandoned.lock;
      // Even with its lock free: its begin may have made the file and not yet locked it.
      if (name.startsWith(BUILD_PREFIX) && Date.now() - st.mtimeMs < BUILD_GRACE_MS) continue;
      if (o.offThread) {
        await removeTreeOffThread(dir);
      } else {
        removeTree(dir);
      }
      crashPoint('recover:unpublished-removed');
      out.push({ id: name, outcome: name.startsWith(GONE_PREFIX) ? 'removed-ended' : 'removed-unpublished' });
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') continue; // published or removed meanwhile
      out.push({ id: name, outcome: 'failed', error: e });
    } finally {
      lock?.close();
    }
  }
  return out;
}
