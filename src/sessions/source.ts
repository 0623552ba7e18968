// source entry (DESIGN.md, "Locks"): manage EX (wait; sessions that begin
// from now on queue behind it) -> stale sessions of the chroot block the
// entry, or are ended first -> source EX (wait for the sessions still
// holding it) -> the command runs chrooted in the source and inherits both
// locks -> release when it exits.
//
// A shared chroot (build farms): the manage lock is in shared-dir=, so it
// queues begins of every host; the stale sessions of every host block the
// entry (their registrations are stale); the sessions that still hold the
// source are named from their registrations; and the entry goes on only
// once no registration is left at all.
//
// The manage lock is what gives a pending entry writer preference: begin
// takes manage before it takes the source SH, so once the entry holds
// manage no new holder of the source can appear and the entry waits only
// for the sessions that already exist.
import type { ChrootDef } from '../config/index.js';
import { LockBusyError, LockTimeoutError, type FileLock } from '../locks/index.js';
import { crashPoint } from '../sys/index.js';
import { endSession } from './end.js';
import { SessionBusyError, SessionNotFoundError, SourceBusyError, StaleSessionsError } from './errors.js';
import { waitLivenessFree, takeManageLock, takeSourceExclusiveLocked, type LockWaitOptions } from './locks.js';
import type { ManageLock } from './manage-lock.js';
import { sharedOf } from './shared.js';
import { registrations, isOwnOrphan, staleRegistrationsLocked, waitRegistrationFreeLocked } from './source-farm.js';
import type { SessionShared } from './state.js';
import { openSession } from './open.js';
import type { Command } from '../sys/index.js';
import { spawnChrooted, spawnGated, type ChrootTarget, type CommandOptions, type GatedChild } from './run.js';
import { SourceEntry } from './source-entry.js';
import { ensureStateDir, type SessionEntry } from './store.js';
import { Undo } from './undo.js';
import { sessionsOf, sourceHolders, sourceWaitReport } from './source-holders.js';

export { sourceHolders } from './source-holders.js';

export interface SourceOptions extends LockWaitOptions {
  stateDir: string;
  chroot: ChrootDef;
  /**
   * End the chroot's stale sessions instead of refusing the entry (their
   * upper layers are deleted with them; `warden recover` keeps them).
   */
  recoverStale?: boolean;
  /** How often a source wait re-reports the sessions still holding it (default 1000 ms). */
  refreshMs?: number;
  /**
   * The command to run in the source. Started ahead, held back at a gate
   * while the entry waits, and let go once the source is entered: the
   * entry's `child`. Without it, start one later with spawnInSource.
   */
  command?: CommandOptions;
}

/**
 * Enters the source of `o.chroot` exclusively. With `o.command` the command
 * runs when this resolves (entry.child); otherwise the caller starts it with
 * spawnInSource. Either way the caller closes the entry.
 */
export async function enterSource(o: SourceOptions): Promise<SourceEntry> {
  const stateDir = ensureStateDir(o.stateDir);
  // One budget for every wait of the entry: --timeout S means S in total.
  const deadline = o.timeout === undefined ? undefined : Date.now() + o.timeout;
  const left = () => (deadline === undefined ? undefined : Math.max(0, deadline - Date.now()));
  const undo = new Undo();
  try {
    const manage = await takeManageLock(stateDir, o.chroot.name, { ...o, timeout: left(), source: o.chroot.directory, shared: sharedOf(o.chroot), what: 'source entry' });
    undo.push('release manage lock', () => manage.close());
    crashPoint('source:manage');
    const recovered: string[] = [];
    const { ref, gated } = await takeSourceLocked(stateDir, manage, o, left, recovered);
    undo.push('release source lock', () => ref.close());
    if (gated) {
      // Before the locks close: the command shares them until it is gone.
      undo.push('cancel the command', () => gated.cancel());
      gated.open();
      crashPoint('source:started');
    }
    undo.commit();
    return new SourceEntry(o.chroot, manage, ref, recovered, gated?.child);
  } catch (e) {
    // Lock handles and a gated command whose cancel waits for it to exit:
    // nothing here throws.
    await undo.run();
    throw e;
  }
}

/** Spawns the entry's command chrooted in the source, with the entry's lock fds as fds 3 (manage) and 4 (source). */
export function spawnInSource(entry: SourceEntry, o: CommandOptions): Command {
  const child = spawnChrooted(sourceTarget(entry.chroot, entry.source), entry.fds, o);
  crashPoint('source:spawned');
  return child;
}

function sourceTarget(chroot: string, source: string): ChrootTarget {
  return { root: source, what: `the source of chroot ${chroot}`, env: { WARDEN_CHROOT: chroot, WARDEN_SESSION_ID: undefined } };
}

/**
 * Source EX with no session of the source left at all. Sessions that went
 * stale while we waited (their holder died: the source lock is free, the
 * overlay may still be mounted) are caught by the check after the lock;
 * sessions held by someone without the source lock (an `end` or `recover`
 * from another process, a `run -s` between its two locks) are waited for
 * with the source lock released, so that a recover waiting for source SH
 * can finish rather than deadlock with us. A command (o.command) is started
 * behind its gate as soon as the source lock file is opened, and cancelled
 * in every round that does not end in the entry.
 * Preconditions: the chroot's manage lock is held through `manage`.
 */
async function takeSourceLocked(
  stateDir: string,
  manage: ManageLock,
  o: SourceOptions,
  left: () => number | undefined,
  recovered: string[],
): Promise<{ ref: FileLock; gated: GatedChild | undefined }> {
  const shared = sharedOf(o.chroot);
  let gated: GatedChild | undefined;
  const cancelling: Promise<void>[] = [];
  const cancel = async () => {
    if (gated) cancelling.push(gated.cancel());
    gated = undefined;
    await Promise.all(cancelling.splice(0));
  };
  const command = o.command;
  const opened = command
    ? (ref: FileLock) => {
        // A replaced .ref: its old handle was released before this one
        // opened, so its command can go without waiting for it here.
        if (gated) cancelling.push(gated.cancel());
        gated = spawnGated(sourceTarget(o.chroot.name, o.chroot.directory), [manage.fd, ref.fd], command);
        crashPoint('source:gated');
      }
    : undefined;
  try {
    for (;;) {
      await clearStaleLocked(stateDir, o, recovered);
      crashPoint('source:stale-checked');
      const ref = await waitForSourceLocked(stateDir, o, left(), opened);
      crashPoint('source:exclusive');
      const remaining = sessionsOf(stateDir, o.chroot);
      // Another host's session being ended or recovered holds its
      // registration, not the source; one whose holders died holds
      // nothing (the next round refuses it).
      const registered = remaining.length === 0 ? leftRegistrations(shared, stateDir) : [];
      if (remaining.length === 0 && registered.length === 0) {
        await Promise.all(cancelling.splice(0));
        return { ref, gated };
      }
      // The gated command shares ref's lock: it must be gone before ref closes.
      await cancel();
      ref.close();
      const held = remaining.find((e) => e.status === 'active');
      if (held) await waitUnheldLocked(held, o, left());
      const heldThere = registered.find((e) => e.status === 'active');
      if (!held && heldThere) await waitRegistrationFreeLocked(heldThere, { timeout: left(), signal: o.signal, wait: o.wait, onWait: o.onWait });
    }
  } catch (e) {
    await cancel();
    throw e;
  }
}

/**
 * Refuses the entry while stale sessions of the source exist, or ends them
 * (recoverStale). Nothing holds a stale session, so end's liveness EX is
 * free; one taken over since the scan is no longer stale and is left to
 * the source wait.
 * Preconditions: the chroot's manage lock is held (no session begins meanwhile).
 */
async function clearStaleLocked(stateDir: string, o: SourceOptions, recovered: string[]): Promise<void> {
  const stale = sessionsOf(stateDir, o.chroot)
    .filter((e) => e.status === 'stale')
    .map((e) => e.id);
  // Other hosts' stale sessions: only their host can end them (their
  // overlays are mounted there); --recover-stale ends this host's alone.
  const remote = await staleRegistrationsLocked(sharedOf(o.chroot), stateDir);
  crashPoint('source:remote-stale-checked');
  if (remote.length > 0) throw new StaleSessionsError(o.chroot.name, stale, remote);
  if (stale.length === 0) return;
  if (!o.recoverStale) throw new StaleSessionsError(o.chroot.name, stale);
  for (const id of stale) {
    try {
      await endSession(openSession(stateDir, id));
    } catch (e) {
      if (e instanceof SessionBusyError || e instanceof SessionNotFoundError) continue;
      throw e;
    }
    recovered.push(id);
    crashPoint('source:stale-ended');
  }
}

/**
 * source EX, reporting through onWait which sessions still hold it.
 * Preconditions: the chroot's manage lock is held.
 */
async function waitForSourceLocked(
  stateDir: string,
  o: SourceOptions,
  timeout: number | undefined,
  opened: ((lock: FileLock) => void) | undefined,
): Promise<FileLock> {
  const report = o.onWait ? sourceWaitReport(stateDir, o.chroot, o.onWait, o.refreshMs ?? 1000) : undefined;
  try {
    return await takeSourceExclusiveLocked(o.chroot.directory, { timeout, signal: o.signal, wait: o.wait, onWait: report?.onWait, opened });
  } catch (e) {
    if (e instanceof LockBusyError || e instanceof LockTimeoutError) {
      const { sessions, holders } = sourceHolders(stateDir, o.chroot);
      throw new SourceBusyError(o.chroot.name, sessions, holders, e, e instanceof LockTimeoutError ? (o.timeout ?? e.timeoutMs) : undefined);
    }
    throw e;
  } finally {
    report?.stop();
  }
}

/** Registrations still there once the source is ours, but for this host's stale orphans (removed at the next stale check). */
function leftRegistrations(shared: SessionShared | undefined, stateDir: string) {
  return shared ? registrations(shared).filter((e) => !(e.status === 'stale' && isOwnOrphan(shared, stateDir, e))) : [];
}

/**
 * Waits until nothing holds session `e` any more (its ender or recoverer is
 * done), then lets go at once; the caller looks at the sessions again.
 * Preconditions: the chroot's manage lock is held, the source lock is not.
 */
async function waitUnheldLocked(e: SessionEntry, o: SourceOptions, timeout: number | undefined): Promise<void> {
  await waitLivenessFree(e.dir, { timeout, signal: o.signal, wait: o.wait, onWait: o.onWait });
}
