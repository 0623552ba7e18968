// recover --all: every stale session re-adopted (and let go) or ended,
// corrupt entries reported, the leftovers of dead processes swept.
import { strayHooks, type HookPhase, type StrayHook } from '../hooks/index.js';
import { SessionActiveError, SessionNotFoundError } from './errors.js';
import type { LockWaitOptions } from './locks.js';
import { recoverSession } from './recover.js';
import type { Session } from './session.js';
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
