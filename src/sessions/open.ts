// Finding an existing session by id, for run -s and end -s.
import { SessionCorruptError } from './errors.js';
import { Session } from './session.js';
import { readState } from './state.js';
import { ensureStateDir, sessionDirOf } from './store.js';

/** The session `id`, not held by this process yet. Throws SessionIdError, SessionNotFoundError or SessionCorruptError. */
export function openSession(stateDir: string, id: string): Session {
  const dir = sessionDirOf(ensureStateDir(stateDir), id);
  let state;
  try {
    state = readState(dir);
  } catch (e) {
    throw new SessionCorruptError(id, (e as Error).message, e);
  }
  if (state.id !== id) throw new SessionCorruptError(id, `state.json names session ${JSON.stringify(state.id)}`);
  return new Session(stateDir, dir, state);
}
