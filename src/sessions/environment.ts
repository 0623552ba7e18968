// The environment a command starts with, built the way schroot 1.6 builds
// it (sbuild::auth::get_minimal_environment and the chroot's
// environment-filter): the caller's environment is root's, and a command
// run as another user must not see it (secrets, LD_PRELOAD, a PATH with
// directories that user can write). By default it gets a minimal one:
// TERM kept, HOME, USER, LOGNAME and SHELL of the account it runs as, a
// standard PATH. `-p` keeps the caller's environment, minus the variables
// schroot's default filter names (those that change what a program loads
// or resolves).
import type { Account } from '../config/index.js';

/** schroot's default `environment-filter` (schroot.conf(5)). */
export const ENVIRONMENT_FILTER =
  /^(BASH_ENV|CDPATH|ENV|HOSTALIASES|IFS|KRB5_CONFIG|KRBCONFDIR|KRBTKFILE|KRB_CONF|LD_.*|LOCALDOMAIN|NLSPATH|PATH_LOCALE|RES_OPTIONS|TERMINFO|TERMINFO_DIRS|TERMPATH)$/;

/** schroot's PATH for root and for everyone else. */
const ROOT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
export const USER_PATH = '/usr/local/bin:/usr/bin:/bin:/usr/games';

export interface EnvironmentOptions {
  /** The caller's environment. */
  caller: NodeJS.ProcessEnv;
  /** The account the command runs as. */
  account: Account;
  /** Whether it runs as another user than the caller (`-u`). */
  switched: boolean;
  /** Keep the caller's environment (filtered) instead of the minimal one (`-p`). */
  preserve: boolean;
  /** warden's own variables; undefined removes one (a source entry has no WARDEN_SESSION_ID). */
  warden: Record<string, string | undefined>;
}

/**
 * The command's environment. Minimal: TERM from the caller, HOME, USER,
 * LOGNAME, SHELL from the account's passwd entry, PATH by uid. Preserved:
 * the caller's minus ENVIRONMENT_FILTER, with HOME, USER and LOGNAME of the
 * account when it is another user's (a root HOME is no place for its
 * files). warden's variables go on top of either.
 */
export function commandEnvironment(o: EnvironmentOptions): Record<string, string> {
  const env: Record<string, string> = {};
  const { account } = o;
  if (o.preserve) {
    for (const [k, v] of Object.entries(o.caller)) if (v !== undefined && !ENVIRONMENT_FILTER.test(k)) env[k] = v;
    if (o.switched) Object.assign(env, { HOME: account.home || '/', USER: account.name, LOGNAME: account.name });
  } else {
    if (o.caller.TERM !== undefined) env.TERM = o.caller.TERM;
    env.PATH = account.uid === 0 ? ROOT_PATH : USER_PATH;
    Object.assign(env, { HOME: account.home || '/', USER: account.name, LOGNAME: account.name, SHELL: account.shell || '/bin/sh' });
  }
  for (const [k, v] of Object.entries(o.warden)) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}
