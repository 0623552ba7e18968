// begin (DESIGN.md, "Locks"): manage EX -> source SH -> claim the id ->
// liveness SH -> (a shared chroot: register the session, held SH) ->
// release manage -> pre-mount hooks -> mount -> post-mount hooks -> active.
// Any failure rolls back every step that was done; the registration goes
// last, once nothing of the session is left on this host.
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { ChrootDef } from '../config/index.js';
import type { FileLock } from '../locks/index.js';
import { mountUnion } from '../union/index.js';
import { RollbackError, SessionExistsError } from './errors.js';
import { newId, validateId } from './ids.js';
import { createLiveness, registerSessionLocked, takeLivenessShared, takeManageLock, takeSourceShared, withMetadataLock, type LockWaitOptions } from './locks.js';
import type { RegistrationHandle } from './registry.js';
import { renameNoReplace } from './native.js';
import { BUILD_PREFIX, UNPUBLISHED_PREFIX, discardSessionDir } from './discard.js';
import { ringBegun } from './watch-bell.js';
import { sessionProfile } from './profile.js';
import { setSessionLocks, setSessionState, makeSessionDirs, MODES, Session } from './session.js';
import { SESSION_LAYOUT, STATE_VERSION, syncDir, writeStateLocked, type SessionOwner, type SessionShared, type SessionState } from './state.js';
import { ensureStateDir, markStateDir } from './store.js';
import { Undo } from './undo.js';
import { mountViewLocked } from './view.js';
import { crashPoint } from '../sys/index.js';
import { sharedOf } from './shared.js';

export interface BeginOptions extends LockWaitOptions {
  stateDir: string;
  chroot: ChrootDef;
  /** Default: `<chroot>-<uuid>`. */
  id?: string;
  hooksDir: string;
  hookTimeoutMs: number;
  /** Who the session belongs to (recorded in state.json); default: this process's real uid and gid. */
  owner?: SessionOwner;
}

/** Begins a session and returns it held by this process. */
export async function beginSession(o: BeginOptions): Promise<Session> {
  // The id is checked before any file is touched.
  const id = o.id === undefined ? newId(o.chroot.name) : validateId(o.id);
  const stateDir = ensureStateDir(o.stateDir);
  markStateDir(stateDir);
  const undo = new Undo();
  try {
    const shared = sharedOf(o.chroot);
    const manage = await takeManageLock(stateDir, o.chroot.name, { ...o, source: o.chroot.directory, shared, what: 'begin', session: id });
    undo.push('release manage lock', () => manage.close());
    crashPoint('begin:manage');
    const source = await takeSourceShared(o.chroot.directory, o);
    undo.push('release source lock', () => source.close());
    crashPoint('begin:source');
    const { dir, liveness, state } = await claimIdLocked(stateDir, id, o, shared, undo);
    // Under the manage lock, so that an entry on any host that takes it
    // next sees this session (registered, and holding the source).
    let registration: RegistrationHandle | undefined;
    if (shared) {
      const handle = await registerSessionLocked(shared, { session: id, chroot: o.chroot.name, pids: [process.pid] });
      registration = handle;
      // Runs after the session dir is gone (pushed before its removal): no
      // host may go on while this host still has the overlay mounted.
      undo.push('unregister', async () => {
        if (await handle.toExclusive()) handle.remove();
        else handle.close();
      });
      crashPoint('begin:registered');
    }
    // New begins and source entries may go on: this session is visible and
    // holds the source, so an entry now waits for it.
    manage.close();
    crashPoint('begin:manage-released');
    const session = new Session(stateDir, dir, state, { liveness, source });
    undo.push('release session locks', () => session.release());
    // Removed while its locks are still held: nobody sees it stale meanwhile.
    undo.push('remove session dir', () => discardSessionDir(stateDir, id));
    await setUpLocked(session, o, undo);
    // The session holds its registration from now on (released with it).
    setSessionLocks(session, { ...session.locks, registration });
    undo.commit();
    return session;
  } catch (e) {
    const errors = await undo.run();
    if (errors.length > 0) throw new RollbackError(id, e, errors);
    throw e;
  }
}

/**
 * Builds the session directory under a hidden name (lock file with the
 * liveness byte held, state.json "setting-up") and publishes it as
 * `<state-dir>/<id>` with renameat2(RENAME_NOREPLACE): the id is claimed
 * atomically, an existing session is never touched, and a directory named
 * after a session id always has its lock file and state.json.
 * Preconditions: manage lock of the chroot and source SH held.
 */
async function claimIdLocked(
  stateDir: string,
  id: string,
  o: BeginOptions,
  shared: SessionShared | undefined,
  undo: Undo,
): Promise<{ dir: string; liveness: FileLock; state: SessionState }> {
  // Built as .init-*, renamed to .new-* once its lock is held: recover
  // --all deletes a .new-* dir whose lock it gets, and must never get the
  // lock of a begin that has not taken it yet (see discard.ts).
  const build = mkdtempSync(join(stateDir, `${BUILD_PREFIX}${id}.`));
  let tmp = build;
  undo.push('remove unpublished session dir', () => rmSync(tmp, { recursive: true, force: true }));
  chmodSync(build, MODES.sessionDir);
  const early = createLiveness(build);
  undo.push('release liveness lock', () => early.close());
  const unpublished = join(stateDir, UNPUBLISHED_PREFIX + build.slice(join(stateDir, BUILD_PREFIX).length));
  renameNoReplace(build, unpublished);
  tmp = unpublished;
  crashPoint('begin:unpublished');
  const now = new Date().toISOString();
  const state: SessionState = {
    version: STATE_VERSION,
    id,
    chroot: o.chroot.name,
    source: o.chroot.directory,
    unionType: o.chroot.unionType,
    status: 'setting-up',
    hooksDir: o.hooksDir,
    hookTimeoutMs: o.hookTimeoutMs,
    createdAt: now,
    updatedAt: now,
    beganBy: process.pid,
    layout: SESSION_LAYOUT,
    owner: o.owner ?? { uid: process.getuid!(), gid: process.getgid!() },
  };
  const profile = sessionProfile(o.chroot);
  if (profile !== undefined) state.profile = profile;
  if (shared) state.shared = shared;
  await withMetadataLock(tmp, () => writeStateLocked(tmp, state));
  const dir = join(stateDir, id);
  try {
    renameNoReplace(tmp, dir);
    crashPoint('begin:published');
  } catch (e) {
    throw (e as { exists?: boolean }).exists ? new SessionExistsError(id) : e;
  }
  // Watchers look at the new session now (the doorbell, watch-bell.ts).
  ringBegun(stateDir, id, o.chroot.name);
  // Re-take the liveness byte through the published path so holders() and
  // the inode check name the real file; the lock is never dropped between.
  let liveness: FileLock | undefined;
  try {
    syncDir(stateDir);
    liveness = takeLivenessShared(dir);
    if (!liveness) throw new Error(`liveness lock of ${dir} was taken exclusively during begin`);
  } catch (e) {
    liveness?.close();
    discardSessionDir(stateDir, id);
    throw e;
  }
  early.close();
  crashPoint('begin:liveness');
  return { dir, liveness, state };
}

/**
 * The session's dirs, then its view (view.ts: hooks and mount, each
 * registering its undo), then state active.
 * Preconditions: the session's liveness SH and source SH are held.
 */
async function setUpLocked(session: Session, o: BeginOptions, undo: Undo): Promise<void> {
  const { state, paths } = session;
  makeSessionDirs(paths, state.unionType, state.layout);
  crashPoint('begin:dirs');
  const mount = () => mountUnion({ type: state.unionType, source: state.source, upper: paths.upper, work: paths.work, root: paths.root }, { signal: o.signal });
  await mountViewLocked(session, { recover: false, signal: o.signal, protocol: 'begin', mount }, undo);
  const active: SessionState = { ...state, status: 'active', updatedAt: new Date().toISOString() };
  await withMetadataLock(paths.dir, () => writeStateLocked(paths.dir, active));
  setSessionState(session, active);
  crashPoint('begin:active');
}
