// The supervisor's side of recover: at start every stale session is
// re-adopted and held; while it runs, sessions seen going stale are
// re-adopted one at a time; once serving, the leftovers of dead processes
// are swept off the event loop.
import { recoverAll, recoverSession, removeUnpublished, SessionActiveError, SessionNotFoundError, type SessionEvent } from '../sessions/index.js';
import type { SupervisorState } from './state.js';

/**
 * At start: every stale session re-adopted and held (recover --all's
 * rules and its single scan for stray hooks), corrupt entries reported,
 * dead begins' build dirs removed.
 */
export async function adoptAll(s: SupervisorState): Promise<void> {
  const reports = await recoverAll({
    stateDir: s.stateDir,
    signal: s.stop.signal,
    sweep: false,
    sharedChroots: s.o.sharedChroots?.(),
    keep: (session) => {
      if (s.stopping) return false;
      s.held.set(session.id, session);
      return true;
    },
  });
  for (const r of reports) {
    if (r.outcome === 'readopted') s.log(readopted(r.id, r.remounted, r.killedHooks.length));
    else if (r.outcome === 'ended') s.log(endedStale(r.id));
    else if (r.outcome === 'corrupt') s.log(`corrupt entry ${r.id} left alone: ${r.reason}`);
    else if (r.outcome === 'removed-registration') s.log(`removed registration ${r.id} of [${r.chroot}] (an end that died before removing it)`);
    else if (r.outcome === 'failed' && r.chroot !== undefined) s.log(`could not look at the registrations of [${r.chroot}]: ${(r.error as Error).message}`);
    else if (r.outcome === 'failed') s.log(`could not re-adopt stale session ${r.id}: ${(r.error as Error).message}`);
  }
}

/**
 * Once serving: the build dirs of dead begins and the `.gone-*` dirs of
 * ends cut short, deleted off the event loop. Clients need not wait for
 * them: nobody can reach these dirs by a session id.
 */
export async function sweep(s: SupervisorState): Promise<void> {
  let reports;
  try {
    reports = await removeUnpublished(s.stateDir, { offThread: true, signal: s.stop.signal });
  } catch (e) {
    s.log(`could not sweep the leftovers of dead processes: ${(e as Error).message}`);
    return;
  }
  for (const r of reports) {
    if (r.outcome === 'removed-unpublished') s.log(`removed ${r.id} (a begin that died before publishing it)`);
    else if (r.outcome === 'removed-ended') s.log(`removed ${r.id} (an ended session whose deletion was cut short)`);
    else if (r.outcome === 'failed') s.log(`could not remove ${r.id}: ${(r.error as Error).message}`);
  }
}

/** The state-dir watch's events while serving: stale sessions re-adopted, one at a time. */
export class Adopter {
  readonly #s: SupervisorState;
  /** Adoptions of sessions seen going stale, one at a time. */
  #adopting: Promise<void> = Promise.resolve();

  constructor(s: SupervisorState) {
    this.#s = s;
  }

  /** Settles once the adoptions queued so far are done. */
  get settled(): Promise<void> {
    return this.#adopting;
  }

  onEvent(e: SessionEvent): void {
    const s = this.#s;
    s.o.traceWatch?.(`watch: ${e.event} ${e.id} ${process.hrtime.bigint()}`);
    if (s.stopping) return;
    if (e.event === 'stale') {
      s.log(`session ${e.id} went stale; re-adopting it`);
      this.#adopting = this.#adopting.then(() => this.#adopt(e.id));
    } else if (e.event === 'ended' && s.held.has(e.id) && !s.busy.has(e.id)) {
      // Its directory was removed behind our back (by hand): nothing is left to hold.
      s.held.get(e.id)!.release();
      s.held.delete(e.id);
      s.log(`session ${e.id} was removed from the state dir by someone else; let go of it`);
    } else if (e.event === 'corrupt') {
      s.log(`corrupt entry ${e.id}: ${e.reason ?? 'corrupt'}`);
    }
  }

  /** Re-adopts the stale session `id` (recover's rules) and holds it; logs what happened. */
  async #adopt(id: string): Promise<void> {
    const s = this.#s;
    if (s.held.has(id) || s.busy.has(id)) return;
    s.busy.add(id);
    try {
      const r = await recoverSession({ stateDir: s.stateDir, id, signal: s.stop.signal });
      if (r.action === 'readopted') {
        if (s.stopping && !s.o.endSessionsOnExit) {
          r.session.release();
          return;
        }
        s.held.set(id, r.session);
        s.log(readopted(id, r.remounted, r.killedHooks.length));
      } else {
        s.log(endedStale(id));
      }
    } catch (e) {
      // Held again by someone (a run -s, a recover) or gone meanwhile: nothing to do.
      if (e instanceof SessionActiveError || e instanceof SessionNotFoundError) return;
      s.log(`could not re-adopt stale session ${id}: ${(e as Error).message}`);
    } finally {
      s.busy.delete(id);
    }
  }
}

export function readopted(id: string, remounted: boolean, killedHooks: number): string {
  const how = remounted ? 'mounted again' : 'its mount was still in place';
  const killed = killedHooks > 0 ? `; killed ${killedHooks} hook(s) a dead warden left running` : '';
  return `re-adopted stale session ${id} (${how}${killed})`;
}

export const endedStale = (id: string) => `ended stale session ${id} (it was being ended when its holder died)`;
