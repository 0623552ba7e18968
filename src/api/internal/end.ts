// Ending a session in this process (`warden end` when no supervisor runs):
// the unmounting and the hooks. Loaded only then.
export { endSession } from '../../sessions/end.js';
