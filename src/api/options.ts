// The options and results of the public facade (warden.ts), as callers
// pass and get them.
import type { CommandResult, StdioMode } from './command.js';
import type { RunOptions } from './session.js';

export interface OpenOptions {
  /** The configuration file (as `--config`); default: $WARDEN_CONFIG, then the system one. */
  config?: string;
  /** The state dir (as `--state-dir`); default: $WARDEN_STATE_DIR, `[warden] state-dir=`, `<top>/sessions`, /var/lib/warden/sessions. */
  stateDir?: string;
}

/** What a call is waiting for, as the CLI's wait lines say it (`onWait`). */
export interface LockWait {
  /** The lock of DESIGN.md's lock table: manage, source (`.ref`) or a session's liveness byte. */
  lock: 'manage' | 'source' | 'liveness';
  /** The lock file. */
  path: string;
  /** Who holds it now, as far as this host can see (pid -1: unknown, e.g. on another host). */
  holders: { pid: number; kind: 'shared' | 'exclusive'; command?: string }[];
  /** For a source entry: the sessions behind the holders (on another host: `host@id`). */
  sessions?: { id: string; host?: string; pids: number[] }[];
}

/** Every wait: cancelled by `signal`, given up after `timeout` ms, or (wait: false) not waited at all. */
export interface WaitOptions {
  signal?: AbortSignal;
  /** ms. */
  timeout?: number;
  /** false: fail at once (LockBusyError) instead of waiting for a lock. */
  wait?: boolean;
  /** Called when a lock wait begins, and again when what it waits for changes. */
  onWait?: (wait: LockWait) => void;
}


export interface BeginOptions extends WaitOptions {
  /** Default: `<chroot>-<uuid>`. */
  id?: string;
}

export interface AutoRunOptions extends RunOptions {
  id?: string;
  /** ms, for the begin's lock waits. */
  timeout?: number;
  wait?: boolean;
  onWait?: (wait: LockWait) => void;
}

export interface SourceOptions extends WaitOptions {
  /** End the chroot's stale sessions (deleting what was written in them) instead of failing with StaleSessionsError. */
  recoverStale?: boolean;
  user?: string;
  directory?: string;
  env?: NodeJS.ProcessEnv;
  stdio?: StdioMode;
}

export interface SourceResult extends CommandResult {
  /** Stale sessions ended before entering (recoverStale). */
  recovered: readonly string[];
}

export interface RecoverOptions extends WaitOptions {
  /** One stale session; or `all`. */
  id?: string;
  all?: boolean;
  /** End the sessions instead of re-adopting them (re-adopted ones are left stale but consistent: mounted, runnable). */
  end?: boolean;
}

export interface WatchOptions {
  /** Errors of the watcher; the watch goes on. Default: ignored. */
  onError?: (error: Error) => void;
}

export interface Watch {
  /** Resolves once changes are being watched. */
  readonly ready: Promise<void>;
  /** Stops watching; idempotent (the same promise). */
  close(): Promise<void>;
}
