// Typed outcomes of session operations. Every message is built here and
// names the session (or entry) and the reason; callers read the fields.
import { EXIT } from '../exit-codes.js';
import type { LockHolder } from '../locks/index.js';
import { describeHolders } from '../locks/index.js';
import { SessionError } from '../sys/index.js';

/** The base of this layer's errors (defined in sys/errors.ts, where RunError is). */
export { SessionError };

/** A session id that DESIGN.md's pattern refuses; nothing was touched. */
export class SessionIdError extends SessionError {
  static readonly exit: number | undefined = EXIT.usage;
  override name = 'SessionIdError';
  readonly id: string;
  constructor(id: string, why = 'ids are 1-64 characters of [A-Za-z0-9._-], starting with a letter or digit') {
    const shown = JSON.stringify(String(id).length > 80 ? `${String(id).slice(0, 80)}...` : String(id));
    super(`invalid session id ${shown}: ${why}`);
    this.id = id;
  }
}

export class SessionExistsError extends SessionError {
  override name = 'SessionExistsError';
  readonly id: string;
  constructor(id: string) {
    super(`session ${id}: session already exists`);
    this.id = id;
  }
}

export class SessionNotFoundError extends SessionError {
  static readonly exit: number | undefined = EXIT.notFound;
  override name = 'SessionNotFoundError';
  readonly id: string;
  constructor(id: string, stateDir: string) {
    super(`session ${id}: no such session in ${stateDir}`);
    this.id = id;
  }
}

/** A session entry that cannot be used: broken state.json, missing or symlinked lock file... */
export class SessionCorruptError extends SessionError {
  override name = 'SessionCorruptError';
  readonly id: string;
  readonly reason: string;
  constructor(id: string, reason: string, cause?: unknown) {
    super(`session ${id} is corrupt: ${reason}`, cause === undefined ? undefined : { cause });
    this.id = id;
    this.reason = reason;
  }
}

/** Other processes still hold the session (end without --wait/--force, or run while it is being ended). */
export class SessionBusyError extends SessionError {
  static readonly exit: number | undefined = EXIT.busy;
  override name = 'SessionBusyError';
  readonly id: string;
  readonly holders: readonly LockHolder[];
  constructor(id: string, what: string, holders: readonly LockHolder[], cause?: unknown) {
    super(`session ${id}: ${what}: held ${describeHolders(holders)}`, cause === undefined ? undefined : { cause });
    this.id = id;
    this.holders = holders;
  }
}

/** Recover refused: something holds the session, so it is not stale (re-mounting would stack a second overlay on its upper and work dirs). */
export class SessionActiveError extends SessionBusyError {
  static override readonly exit: number | undefined = EXIT.busy;
  override name = 'SessionActiveError';
  constructor(id: string, holders: readonly LockHolder[]) {
    super(id, 'it is active, not stale (only stale sessions are recovered)', holders);
  }
}

/** A stale session whose view is not in place (not mounted, or its begin or end was interrupted): recover or end it first. */
export class SessionNeedsRecoveryError extends SessionError {
  static readonly exit: number | undefined = EXIT.stale;
  override name = 'SessionNeedsRecoveryError';
  readonly id: string;
  readonly reason: string;
  constructor(id: string, reason: string) {
    super(`session ${id} ${reason}: recover it first (warden recover -s ${id}) or end it (warden end -s ${id})`);
    this.id = id;
    this.reason = reason;
  }
}

/** The state dir itself is unusable (a symlink, not a directory, not writable). */
export class StateDirError extends SessionError {
  override name = 'StateDirError';
  readonly path: string;
  constructor(path: string, reason: string, cause?: unknown) {
    super(`state dir ${path}: ${reason}`, cause === undefined ? undefined : { cause });
    this.path = path;
  }
}

/** A state dir another user owns or may write to: refused, like an untrusted config file (exit 3). */
export class StateDirUntrustedError extends StateDirError {
  static readonly exit: number | undefined = EXIT.config;
  override name = 'StateDirUntrustedError';
  constructor(path: string, reason: string) {
    super(path, `refusing to use it: ${reason}`);
  }
}

/** A state dir this user may not list (it is root's, 0711): not permitted (exit 8). */
export class StateDirAccessError extends StateDirError {
  static readonly exit: number | undefined = EXIT.denied;
  override name = 'StateDirAccessError';
  constructor(path: string) {
    super(path, `uid ${process.getuid?.()} may not list it: the state dir is root's (mode 0711), and only root lists its sessions`);
  }
}

/** Something went wrong AND undoing it failed too: both are reported. */
export class RollbackError extends SessionError {
  /** Exits as its cause, the first failure, does. */
  static readonly exitFromCause = true;
  override name = 'RollbackError';
  readonly errors: readonly unknown[];
  constructor(id: string, primary: unknown, errors: readonly unknown[]) {
    const first = errors[0] instanceof Error ? errors[0].message : String(errors[0]);
    super(`${primary instanceof Error ? primary.message : String(primary)} (and rolling back session ${id} failed: ${first})`, {
      cause: primary,
    });
    this.errors = errors;
  }
}

/** A session holding a source, as a source entry reports it: which one, through which pids, since when. */
export interface SessionHolder {
  id: string;
  /** A shared chroot's session of another host (its registration names it); absent: this host's. */
  host?: string;
  /** Pids that hold both the session (liveness) and the source lock. */
  pids: number[];
  /** state.json's createdAt (ISO). */
  createdAt: string;
}

/** "fx-1 (pid 12, 3 s), fx-2 (pids 14 15, 2 min)"; outside holders of the lock after "other:". */
export function describeSessionHolders(sessions: readonly SessionHolder[], others: readonly LockHolder[] = [], now = Date.now()): string {
  const parts = sessions.map(
    (s) => `session ${s.host === undefined ? s.id : `${s.host}@${s.id}`} (${s.pids.length === 1 ? 'pid' : 'pids'} ${s.pids.join(' ')}${s.host === undefined ? '' : ` on ${s.host}`}, ${age(now - Date.parse(s.createdAt))})`,
  );
  if (others.some((h) => !h.waiting)) parts.push(`other: ${describeHolders(others)}`);
  return parts.length > 0 ? parts.join(', ') : 'holder unknown';
}

function age(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (!Number.isFinite(s)) return 'age unknown';
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

/**
 * Stale sessions of a chroot (nothing holds them, their overlay may still be
 * mounted over the source) block an operation on its source.
 */
/** A stale registration of a shared chroot (build farms): a session whose holders died, on any host. */
export interface StaleRegistration {
  host: string;
  id: string;
  /** Its holders' pids on `host`, as registered. */
  pids: number[];
  /** When it began (ISO), if its registration says. */
  since: string | undefined;
}

export class StaleSessionsError extends SessionError {
  static readonly exit: number | undefined = EXIT.stale;
  override name = 'StaleSessionsError';
  readonly chroot: string;
  /** Stale sessions of this host. */
  readonly ids: readonly string[];
  /** Stale sessions of other hosts (shared chroots), which only those hosts can recover. */
  readonly remote: readonly StaleRegistration[];
  constructor(chroot: string, ids: readonly string[], remote: readonly StaleRegistration[] = []) {
    const parts: string[] = [];
    if (ids.length > 0) {
      const one = ids.length === 1;
      const id = one ? ids[0] : 'ID';
      const shown = ids.length > 10 ? `${ids.slice(0, 10).join(', ')} and ${ids.length - 10} more` : ids.join(', ');
      parts.push(
        `stale session${one ? '' : 's'} of chroot ${chroot} block${one ? 's' : ''} the source entry: ${shown}; ` +
          `recover ${one ? 'it' : 'each'} with \`warden recover -s ${id}\`, end ${one ? 'it' : 'them'} with \`warden recover --end -s ${id}\`, or enter with --recover-stale`,
      );
    }
    if (remote.length > 0) {
      const hosts = [...new Set(remote.map((r) => r.host))];
      const shown = remote
        .slice(0, 10)
        .map((r) => `${r.host}@${r.id} (${r.pids.length === 1 ? 'pid' : 'pids'} ${r.pids.join(' ') || 'unknown'} on ${r.host}${r.since ? `, since ${r.since}` : ''})`)
        .join(', ');
      parts.push(
        `stale session${remote.length === 1 ? '' : 's'} of chroot ${chroot} on ${hosts.length === 1 ? 'another host' : 'other hosts'} block${remote.length === 1 ? 's' : ''} the source entry: ` +
          `${shown}${remote.length > 10 ? ` and ${remote.length - 10} more` : ''}; ` +
          hosts.map((h) => `on ${h} run \`warden recover --all --end\``).join(', ') +
          ' (or, for a host that is gone for good, `warden forget-host -c ' + chroot + ' HOST`)',
      );
    }
    super(parts.join('; '));
    this.chroot = chroot;
    this.ids = ids;
    this.remote = remote;
  }
}

export class SourceBusyError extends SessionError {
  static readonly exit: number | undefined = EXIT.busy;
  override name = 'SourceBusyError';
  readonly chroot: string;
  readonly sessions: readonly SessionHolder[];
  /** Every holder of `<source>/.ref`, sessions' pids included. */
  readonly holders: readonly LockHolder[];
  readonly timedOut: boolean;
  constructor(chroot: string, sessions: readonly SessionHolder[], holders: readonly LockHolder[], cause: unknown, timeoutMs?: number) {
    const pids = new Set(sessions.flatMap((s) => s.pids));
    const others = holders.filter((h) => !pids.has(h.pid));
    const what = timeoutMs === undefined ? 'is in use' : `stayed in use for ${timeoutMs} ms (timed out)`;
    super(`source of chroot ${chroot} ${what}: held by ${describeSessionHolders(sessions, others)}`, { cause });
    this.chroot = chroot;
    this.sessions = sessions;
    this.holders = holders;
    this.timedOut = timeoutMs !== undefined;
  }
}

/** A command could not be started in a session or source (sys/errors.ts: the spawn throws it). */
export { RunError } from '../sys/index.js';
