// Public types of the hooks layer (DESIGN.md, "Hooks").

export type HookPhase = 'pre-mount' | 'post-mount' | 'pre-unmount' | 'post-unmount';

/** Phases run while a session starts (lexical order) and while it stops (reverse order). */
export const START_PHASES: readonly HookPhase[] = Object.freeze(['pre-mount', 'post-mount'] as const);
export const STOP_PHASES: readonly HookPhase[] = Object.freeze(['pre-unmount', 'post-unmount'] as const);

/**
 * How a hook is run: `exec`, an executable spawned in its own process
 * group; `fstab` and `copyfiles`, a file of mounts or of host files to copy
 * that warden applies itself, in-process (post-mount only; hooks/README.md);
 * `nssdatabases`, a schroot profile's list of host databases that warden
 * writes into the session from getent(1)'s output (profiles only).
 */
export type HookKind = 'exec' | 'fstab' | 'copyfiles' | 'nssdatabases';

/** One hook of a phase, as listHooks finds it. */
export interface HookEntry {
  /** The file name in `<phase>.d`, e.g. `10-mounts.fstab`. */
  name: string;
  /** Absolute path (possibly a symlink, checked). */
  path: string;
  kind: HookKind;
}

export interface HookVars {
  chrootName: string;
  /** The source directory. */
  chrootDirectory: string;
  /** The session's mount point. */
  chrootPath: string;
  sessionId: string;
  unionType: 'overlay' | 'copy' | 'none';
  /** The session dir holding upper/ and work/. */
  overlayDirectory: string;
  stateDir: string;
  recover: boolean;
}

/**
 * A chroot's schroot profile (profile=, setup.fstab=, setup.copyfiles=,
 * setup.nssdatabases=): absolute paths of its files, any of them absent.
 * Applied at the start of post-mount, in schroot's setup.d order (10mount,
 * 20copyfiles, 20nssdatabases), before the hooks dir's hooks.
 */
export interface ProfileSetup {
  fstab?: string | undefined;
  copyfiles?: string | undefined;
  nssdatabases?: string | undefined;
}

export interface RunHooksOptions {
  /** Holds pre-mount.d/, post-mount.d/, ...; a missing dir means no hooks. */
  hooksDir: string;
  phase: HookPhase;
  vars: HookVars;
  /** `<session>/hooks.log`, appended to (never through a symlink). */
  logPath: string;
  /** Per hook, > 0; Infinity for none. */
  timeoutMs: number;
  /** SIGTERM -> SIGKILL delay; default 2000. */
  killGraceMs?: number;
  /** Post-mount only: the chroot's profile, applied first (see ProfileSetup); ignored in other phases. */
  profile?: ProfileSetup | undefined;
  /**
   * False: the hooks dir's declarative hooks (NAME.fstab, NAME.copyfiles)
   * are skipped, its executables still run. A profile chroot without a
   * hooks= of its own: its profile replaces warden's default mounts and
   * copies. Default true.
   */
  declarative?: boolean | undefined;
  /** Stop phases: run every hook even after a failure, then throw the first (the rest in `.others`). */
  keepGoing?: boolean;
  /** Abort = like a timeout, but the error says "interrupted"; no further hook runs. */
  signal?: AbortSignal;
}

export interface HookRun {
  /** `<phase>.d/<name>`, or a profile file's path */
  hook: string;
  ms: number;
}
