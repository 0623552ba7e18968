// Re-adopting a stale session (recover.ts): source SH, the view back in
// place (mounted again, or only its post-mount hooks run again), state
// active, liveness down to SH.
import { mkdirSync, readdirSync } from 'node:fs';
import type { HookPhase } from '../hooks/index.js';
import type { FileLock } from '../locks/index.js';
import { canonicalPath, crashPoint, readMountInfo } from '../sys/index.js';
import { isMountPoint, mountUnion, removeTree, unmountSettled, UnionError } from '../union/index.js';
import { RollbackError } from './errors.js';
import { downgradeLiveness, takeSourceShared, withMetadataLock, type LockWaitOptions } from './locks.js';
import type { ManageLock } from './manage-lock.js';
import type { RegistrationHandle } from './registry.js';
import { setSessionLocks, setSessionState, makeSessionDirs, MODES, type Session } from './session.js';
import { writeStateLocked, type SessionState } from './state.js';
import { Undo } from './undo.js';
import { mountViewLocked, sessionHook } from './view.js';

/**
 * Source SH, the view back in place, state active, liveness down to SH
 * (and a shared session's registration down to SH, naming this process).
 * On failure what this did is undone (a mount it made is taken down
 * again), the state is left as it was, and every lock is released: the
 * session is stale and recoverable, as before.
 * Preconditions: manage EX of the session's chroot, liveness EX and (a
 * shared session) registration EX held by this process; all are handed
 * over (released on failure).
 */
export async function readoptLocked(
  session: Session,
  held: { manage: ManageLock; liveness: FileLock; registration: RegistrationHandle | undefined },
  o: LockWaitOptions,
): Promise<{ remounted: boolean; phases: HookPhase[] }> {
  const { manage, liveness, registration } = held;
  const undo = new Undo();
  undo.push('release manage lock', () => manage.close());
  undo.push('release liveness lock', () => liveness.close());
  if (registration) undo.push('release registration', () => registration.close());
  try {
    const source = await takeSourceShared(session.state.source, o);
    undo.push('release source lock', () => source.close());
    crashPoint('recover:source');
    // Holding the source now: a source entry from here on waits for us.
    manage.close();
    crashPoint('recover:manage-released');
    setSessionLocks(session, { liveness, source, registration });
    const view = await restoreViewLocked(session, o, undo);
    const active: SessionState = { ...session.state, status: 'active', updatedAt: new Date().toISOString() };
    await withMetadataLock(session.paths.dir, () => writeStateLocked(session.paths.dir, active));
    setSessionState(session, active);
    crashPoint('recover:active');
    // fcntl(2): converting an exclusive lock to shared never blocks.
    if (!downgradeLiveness(liveness)) throw new Error(`session ${session.id}: could not downgrade its liveness lock to shared`);
    crashPoint('recover:shared');
    if (registration) {
      registration.downgrade();
      registration.update([process.pid]);
      crashPoint('recover:reregistered');
    }
    undo.commit();
    return view;
  } catch (e) {
    setSessionLocks(session, {});
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
  const type = state.unionType;
  const mounted = type !== 'copy' && isMountPoint(paths.root);
  const keptCopy = type === 'copy' && state.status === 'active';
  if (mounted || keptCopy) {
    if (mounted) checkMountedView(session);
    await sessionHook(session, 'post-mount', { recover: true, signal: o.signal });
    crashPoint('recover:post-mount');
    return { remounted: false, phases: ['post-mount'] };
  }
  // Mounts left below an unmounted root would be hidden by the new mount.
  await unmountSettled(paths.root);
  makeSessionDirs(paths, type, session.state.layout);
  if (type === 'copy') {
    removeTree(paths.root);
    mkdirSync(paths.root, { mode: MODES.root });
  }
  crashPoint('recover:dirs');
  const phases = await mountViewLocked(session, { recover: true, signal: o.signal, protocol: 'recover', mount: () => mountView(session, o.signal) }, undo);
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
