// The configuration layer's public surface: find and load warden.conf (or a
// schroot.conf) with its chroot.d/, validated, with file:line on every complaint;
// and who may use each chroot.
export { loadConfig, type LoadOptions } from './load.js';
export { locateConfig, SYSTEM_CONFIG, type ConfigLocation, type LocateOptions } from './locate.js';
export { ConfigError, NoSuchChrootError, PermissionDeniedError, type ConfigWarning } from './errors.js';
export { accessToRun, accessToSource, authorize, findAccount, groupId, groupsOfAccount, isCaller, type Account, type Access, type AccountFiles, type Credentials } from './access.js';
export type { ChrootDef, Config, ProfileFiles, SharedDir, UnionType, UnsupportedChroot } from './types.js';
export { checkSharedStorage, hostOf } from './shared.js';
export { hostProblem } from './names.js';
export type { SupervisorLimitSettings } from './globals.js';
export { chrootOf, DEFAULT_HOOK_TIMEOUT_S, hooksDirOf, hookTimeoutMsOf, loadContext, PACKAGE_HOOKS, sharedChrootsOf, SYSTEM_STATE_DIR, type Context, type SharedChroot } from './context.js';
