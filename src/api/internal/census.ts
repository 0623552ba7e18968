// Every warden lock on this host and who holds or waits for it: `warden
// locks`, and the locks `warden info` shows for a chroot or a session.
export { lockCensus, type LockRow } from '../../sessions/census.js';
