// The CLI's context is the library's (src/config/context.ts): one lookup of
// the configuration, state dir and hooks for both.
export { chrootOf, DEFAULT_HOOK_TIMEOUT_S, hooksDirOf, hookTimeoutMsOf, loadContext, PACKAGE_HOOKS, sharedChrootsOf, SYSTEM_STATE_DIR, type Context } from '../config/index.js';
