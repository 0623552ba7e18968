// Who may act on a session once it is begun: root, and the uid recorded as
// its owner in state.json. Read from the file, not from the supervisor's
// memory, so it holds across supervisor restarts; a state.json written
// before owners were recorded belongs to root.
import type { Credentials } from '../config/index.js';
import type { SessionState } from '../sessions/index.js';
import { SessionAccessError } from './errors.js';

/**
 * Throws SessionAccessError (exit 8) unless `who` may `action` the session
 * whose state is `state`: root always may, anyone else only as its owner.
 * `run in` is for `run -s` through the supervisor.
 */
export function assertSessionOwner(state: SessionState, who: Pick<Credentials, 'uid'>, action: 'end' | 'run in' | 'recover'): void {
  if (who.uid === 0) return;
  if (state.owner?.uid === who.uid) return;
  throw new SessionAccessError(state.id, who.uid, state.owner?.uid, action);
}
