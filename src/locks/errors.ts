// Typed outcomes of lock operations. Messages are built here, in one place;
// callers read the fields (holders, path, range) rather than parse text.
import { EXIT, exitCodeOf } from '../exit-codes.js';

export type LockKind = 'shared' | 'exclusive';

export interface LockRange {
  /** First byte. */
  start: number;
  /** Number of bytes; 0 means "to the end of the file, however far it grows". */
  len: number;
}

/** One lock (or pending request) on a file, as the kernel reports it. */
export interface LockHolder {
  /** Process id; for OFD locks found through /proc/<pid>/fdinfo. -1 when unknown. */
  pid: number;
  /** The fd in that process, when known (OFD locks). */
  fd?: number;
  kind: LockKind;
  /** OFD, POSIX or FLOCK, as /proc/locks names it. */
  family: 'OFD' | 'POSIX' | 'FLOCK';
  range: LockRange;
  /** True for a request still blocked in the kernel ("->" in /proc/locks). */
  waiting: boolean;
  /** Command name of the process, when readable. */
  comm?: string;
}

export function describeRange(r: LockRange): string {
  if (r.start === 0 && r.len === 0) return 'whole file';
  if (r.len === 1) return `byte ${r.start}`;
  return r.len === 0 ? `bytes ${r.start}-EOF` : `bytes ${r.start}-${r.start + r.len - 1}`;
}

export function describeHolders(holders: readonly LockHolder[]): string {
  const active = holders.filter((h) => !h.waiting);
  if (active.length === 0) return 'holder unknown';
  return active
    .map((h) => `${h.kind} by ${h.pid > 0 ? `pid ${h.pid}` : 'an unknown process'}${h.comm ? ` (${h.comm})` : ''}`)
    .join(', ');
}

export class LockError extends Error {
  override name = 'LockError';
  readonly path: string;
  readonly range: LockRange | undefined;
  readonly holders: readonly LockHolder[];

  /** The CLI's exit code for this outcome (src/exit-codes.ts); 1 for one it has no code for. */
  get exitCode(): number {
    return exitCodeOf(this);
  }

  constructor(message: string, opts: { path: string; range?: LockRange; holders?: readonly LockHolder[]; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.path = opts.path;
    this.range = opts.range;
    this.holders = opts.holders ?? [];
  }
}

/** A non-blocking attempt found the lock taken. */
export class LockBusyError extends LockError {
  static readonly exit: number | undefined = EXIT.busy;
  override name = 'LockBusyError';
  /** Who holds it as a record beside the lock names it (a shared chroot's manage.owner), when the lock alone cannot. */
  readonly heldBy: string | undefined;
  constructor(path: string, range: LockRange, kind: LockKind, holders: readonly LockHolder[], heldBy?: string) {
    super(`${kind} lock on ${path} (${describeRange(range)}) is busy: held ${heldBy ? `by ${heldBy}` : describeHolders(holders)}`, { path, range, holders });
    this.heldBy = heldBy;
  }
}

/** A blocking wait ran out of time. Nothing is held afterwards. */
export class LockTimeoutError extends LockError {
  static readonly exit: number | undefined = EXIT.busy;
  override name = 'LockTimeoutError';
  readonly timeoutMs: number;
  /** As LockBusyError's. */
  readonly heldBy: string | undefined;
  constructor(path: string, range: LockRange, kind: LockKind, timeoutMs: number, holders: readonly LockHolder[], heldBy?: string) {
    super(`timed out after ${timeoutMs} ms waiting for ${kind} lock on ${path} (${describeRange(range)}): held ${heldBy ? `by ${heldBy}` : describeHolders(holders)}`, {
      path,
      range,
      holders,
    });
    this.timeoutMs = timeoutMs;
    this.heldBy = heldBy;
  }
}

/** A blocking wait was cancelled through its AbortSignal. Nothing is held afterwards. */
export class LockAbortedError extends LockError {
  static readonly exit: number | undefined = EXIT.interrupted;
  override name = 'LockAbortedError';
  constructor(path: string, range: LockRange, kind: LockKind, reason: unknown) {
    super(`wait for ${kind} lock on ${path} (${describeRange(range)}) was cancelled`, { path, range, cause: reason });
  }
}

/** The platform or kernel cannot do what was asked (layout, lock mode, signal). */
export class LockUnsupportedError extends Error {
  override name = 'LockUnsupportedError';
}

/** A lock file that is not what it should be: a symlink, a directory, replaced under us. */
export class LockFileError extends LockError {
  override name = 'LockFileError';
}

/** Misuse of the API: unlocking what is not held, using a closed lock. A bug, never an outcome. */
export class LockStateError extends Error {
  override name = 'LockStateError';
}
