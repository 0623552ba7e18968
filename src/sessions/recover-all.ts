// recover --all: every stale session re-adopted (and let go) or ended,
// corrupt entries reported, the leftovers of dead processes swept.
import type { SharedChroot } from '../config/index.js';
import { strayHooks, type HookPhase, type StrayHook } from '../hooks/index.js';
import { SessionActiveError, SessionNotFoundError } from './errors.js';
import type { LockWaitOptions } from './locks.js';
import { takeManageLock } from './locks.js';
import { recoverSession } from './recover.js';
import type { Session } from './session.js';
import { sharedOf } from './shared.js';
import { ownOrphans, registrations, removeOwnOrphansLocked } from './source-farm.js';
import { ensureStateDir, listSessions } from './store.js';
import { removeUnpublished } from './sweep.js';

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
  /**
   * The configured shared chroots (config sharedChrootsOf): this host's
   * registrations there that no session dir here accounts for and nobody
   * holds are removed (an end that died between removing its dir and its
   * registration leaves one, and it blocks entries on every host).
   */
  sharedChroots?: readonly SharedChroot[];
}

export type RecoverReport =
  | { id: string; outcome: 'readopted'; remounted: boolean; phases: HookPhase[]; killedHooks: StrayHook[] }
  | { id: string; outcome: 'ended'; killedHooks: StrayHook[] }
  /** Left untouched: only a person can tell what a broken entry was. */
  | { id: string; outcome: 'corrupt'; reason: string }
  /** Held by someone by the time recover came to it. */
  | { id: string; outcome: 'active' }
  /** `chroot` set: the chroot's registrations could not be looked at (`id` is the chroot's name). */
  | { id: string; outcome: 'failed'; error: unknown; chroot?: string }
  /** A stale registration of this host in a shared chroot, with no session dir here: removed. `id` is `host@session`. */
  | { id: string; outcome: 'removed-registration'; chroot: string }
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
  // After the sessions: ending one removes its registration, and leaves no orphan.
  for (const chroot of o.sharedChroots ?? []) {
    if (o.signal?.aborted) break;
    try {
      out.push(...(await removeOrphanRegistrations(stateDir, chroot, o)));
    } catch (e) {
      out.push({ id: chroot.name, outcome: 'failed', error: e, chroot: chroot.name });
    }
  }
  if (!o.signal?.aborted && o.sweep !== false) out.push(...(await removeUnpublished(stateDir)));
  return out;
}

/**
 * This host's orphaned registrations of one shared chroot, removed under
 * its manage lock (as a source entry removes them), which is taken only
 * when a probe found some: recover --all does not queue behind an entry
 * for nothing.
 */
async function removeOrphanRegistrations(stateDir: string, chroot: SharedChroot, o: RecoverAllOptions): Promise<RecoverReport[]> {
  const def = chroot.resolve();
  const shared = sharedOf(def);
  if (!shared || ownOrphans(shared, stateDir, registrations(shared)).length === 0) return [];
  const manage = await takeManageLock(stateDir, def.name, { ...o, source: def.directory, shared, what: 'recover' });
  try {
    const removed = await removeOwnOrphansLocked(shared, stateDir);
    return removed.map((e) => ({ id: `${e.host}@${e.session}`, outcome: 'removed-registration' as const, chroot: def.name }));
  } finally {
    manage.close();
  }
}
