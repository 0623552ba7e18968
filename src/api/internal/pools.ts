// The worker threads of lock waits and big deletions: stopped when the
// process is done with them (`warden supervise` on exit, the last
// openWarden handle on close), so that it exits on its own.
export { shutdownWaitPool } from '../../locks/index.js';
export { shutdownRemovalPool } from '../../union/index.js';
