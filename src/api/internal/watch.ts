// `warden watch`: the state dir's session events (chokidar), loaded only by that verb.
export { watchSessions } from '../../sessions/watch.js';
