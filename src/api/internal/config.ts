// The CLI's configuration: the same lookup of the configuration, state dir
// and hooks as openWarden's (src/config/context.ts), and the checks of a
// caller against a chroot's users=, groups=, ... rules.
//
// src/api/internal/ is the library's side of the CLI, not exported from the
// package: what `warden` needs that the public API (src/index.ts) does not
// offer. Each module here is one lazily loaded concern. The CLI is bundled
// into one file in which importing a layer's index evaluates every module
// of that layer, so these modules, alone among the layers' clients, may
// import the one module of a layer they need (test/structure.test.ts).
export {
  accessToRun,
  accessToSource,
  authorize,
  chrootOf,
  ConfigError,
  findAccount,
  groupId,
  hooksDirOf,
  hookTimeoutMsOf,
  loadContext,
  NoSuchChrootError,
  sharedChrootsOf,
  type ChrootDef,
  type Context,
} from '../../config/index.js';
