// Reading the state dir without taking a lock: its sessions as they are
// now (`list --sessions`, `info`, `end --all`, schroot's queries), a
// session id checked before a path is built from it, the state dir made.
// No mounting, no hooks: these verbs load only the session store.
export { ensureStateDir, inspectEntry, listSessions, type SessionEntry } from '../../sessions/store.js';
export { validateId } from '../../sessions/ids.js';
export { SessionNotFoundError } from '../../sessions/errors.js';
export type { SessionState } from '../../sessions/state.js';
export { describeSessions } from '../describe.js';
