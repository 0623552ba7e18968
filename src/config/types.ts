// The shapes the rest of warden reads. Everything here is already validated:
// paths are absolute, lists are split and trimmed, numbers are numbers.
import type { ConfigWarning } from './errors.js';
import type { SupervisorLimitSettings } from './globals.js';

/** How a session is laid over the source: overlayfs, a full copy, or the source itself. */
export type UnionType = 'overlay' | 'copy' | 'none';

export interface ChrootDef {
  name: string;
  /** Where the `[name]` header is, for messages that point back at the definition. */
  file: string;
  line: number;
  /** The only type warden runs; schroot's `plain` is read as `directory`. */
  type: 'directory';
  /** Absolute path of the source tree. */
  directory: string;
  description: string | undefined;
  aliases: string[];
  unionType: UnionType;
  users: string[];
  groups: string[];
  rootUsers: string[];
  rootGroups: string[];
  sourceUsers: string[];
  sourceGroups: string[];
  /** Who may run commands as root, or as any other user, in the source (schroot's source-root-users=, source-root-groups=). */
  sourceRootUsers: string[];
  sourceRootGroups: string[];
  /** This chroot's own `hook-timeout=`, in seconds; when undefined, Config.hookTimeout applies. */
  hookTimeout: number | undefined;
  /** This chroot's own hooks directory (absolute); when undefined, Config.hooksDir applies. */
  hooks: string | undefined;
  /** schroot's profile= (undefined: none set; warden then applies no profile, see ProfileFiles). */
  profile: string | undefined;
  /** The profile's declarative files (profile= and setup.fstab=, setup.copyfiles=, setup.nssdatabases=), or undefined for none. */
  profileFiles: ProfileFiles | undefined;
  /**
   * `shared-dir=` (build farms): the directory on the shared filesystem,
   * beside the source, that holds this chroot's manage lock and every
   * host's session registrations. Undefined for a chroot of this host alone.
   */
  sharedDir?: SharedDir | undefined;
}

/** A chroot's `shared-dir=`: absolute and normalised, with its line for messages. */
export interface SharedDir {
  path: string;
  line: number;
  /** This host's name (hostOf()), filled in by chrootOf once the storage passed checkSharedStorage. */
  host?: string | undefined;
}

/**
 * A schroot profile's files, absolute: `<dir>/PROFILE/fstab` and so on, where
 * `<dir>` is the main configuration file's directory (/etc/schroot for
 * schroot.conf, as schroot's SYSCONF_DIR). A setup.*= key names its file
 * relative to `<dir>`, as schroot's common-config does (even a value with a
 * leading '/'). Applied in post-mount, before the hooks directory's hooks.
 */
export interface ProfileFiles {
  fstab: string | undefined;
  copyfiles: string | undefined;
  nssdatabases: string | undefined;
}

/** A chroot of a type warden does not run (lvm-snapshot, file, ...): listed, never loaded. */
export interface UnsupportedChroot {
  name: string;
  file: string;
  /** The line of its `type=`. */
  line: number;
  reason: string;
}

export interface Config {
  /** The main file that was read; undefined when no default file exists. */
  file: string | undefined;
  /** `[warden] state-dir=`; the CLI weighs it against --state-dir and WARDEN_STATE_DIR. */
  stateDir: string | undefined;
  /** `[warden] hooks-dir=`. */
  hooksDir: string | undefined;
  /** `[warden] hook-timeout=`, in seconds: the default for chroots that set none. */
  hookTimeout: number | undefined;
  /** `[warden] socket-group=`: members may connect to the supervisor's socket (mode 0660); unset, only root (0600). */
  socketGroup: string | undefined;
  /** `[warden] host=` as written: this host's name in shared registrations; hostOf() gives the default (the host name). */
  host: string | undefined;
  /** `[warden] max-connections-per-user=`, `max-connections=`, `idle-timeout=`, `max-reply-buffer=`, `max-queued-requests=`. */
  supervisorLimits: SupervisorLimitSettings;
  /** By name, in the order they were defined (main file, then chroot.d/ in lexical order). */
  chroots: ReadonlyMap<string, ChrootDef>;
  unsupported: UnsupportedChroot[];
  warnings: ConfigWarning[];
  /** A chroot by its name or one of its aliases. */
  lookup(nameOrAlias: string): ChrootDef | undefined;
}
