// One existing session, opened by id (exit 2 for a bad id, 4 when there is
// none) for `warden end`, and its ending, which loads the unmounting and
// the hooks: `end` imports it only when it ends the session itself (no
// supervisor runs).
export { openSession } from '../../sessions/open.js';
export type { Session } from '../../sessions/session.js';
