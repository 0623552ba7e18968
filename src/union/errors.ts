// Typed outcomes of the union layer. Every message is built here: one line,
// `<path>: <reason>`, so the CLI can print it after "warden: <what>: ".
import { EACCES, EBUSY, EINVAL, ENODEV, ENOENT, ENOTDIR, EPERM, EROFS, describeErrno, showPath } from '../sys/index.js';
import { EXIT, exitCodeOf } from '../exit-codes.js';

/** A process that keeps a mount busy, and how ('cwd', 'root', 'exe', 'fd N', 'map'). */
export interface MountHolder {
  pid: number;
  comm: string;
  how: string;
}

export { showPath };

export class UnionError extends Error {
  override name = 'UnionError';
  readonly path: string;
  readonly reason: string;
  /** The CLI's exit code for this outcome (src/exit-codes.ts); 1 for one it has no code for. */
  get exitCode(): number {
    return exitCodeOf(this);
  }
  constructor(path: string, reason: string, cause?: unknown) {
    super(`${showPath(path)}: ${reason}`, cause === undefined ? undefined : { cause });
    this.path = path;
    this.reason = reason;
  }
}

/**
 * The copy of a union-type=copy session was stopped by the caller's signal
 * (Ctrl-C, a supervisor's client gone). Not a failure of the copy: the CLI
 * exits 130 for it, as for an interrupted hook.
 */
export class CopyInterruptedError extends UnionError {
  static readonly exit: number | undefined = EXIT.interrupted;
  override name = 'CopyInterruptedError';
  readonly interrupted = true;
}

/**
 * umount2 failed with EBUSY. Nothing more was unmounted: the mounts still
 * there stay as they were, so the caller can end the session again later.
 */
export class UnmountBusyError extends UnionError {
  override name = 'UnmountBusyError';
  readonly holders: readonly MountHolder[];
  constructor(path: string, holders: readonly MountHolder[]) {
    super(path, `cannot unmount: target is busy: ${describeHolders(holders)}`);
    this.holders = holders;
  }
}

/**
 * A union-type=copy session's tree was not deleted: processes still have
 * their root, cwd, executable, an open file or a map in it. Such a process
 * could change the tree while root deletes it (the walk is not redirected
 * by that, but it would delete under a running program). Nothing was
 * unmounted or deleted: the session can be ended again once they exit.
 */
export class TreeInUseError extends UnionError {
  static readonly exit: number | undefined = EXIT.busy;
  override name = 'TreeInUseError';
  readonly holders: readonly MountHolder[];
  constructor(path: string, holders: readonly MountHolder[]) {
    super(path, `refusing to delete: ${describeHolders(holders)}`);
    this.holders = holders;
  }
}

const MAX_LISTED = 5;

/** "used by pid 12 (sleep, cwd); pid 40 (bash, cwd, fd 3)". */
function describeHolders(holders: readonly MountHolder[]): string {
  if (holders.length === 0) return 'no process of this mount namespace uses it (another namespace, or the kernel, holds it)';
  const byPid = new Map<number, MountHolder[]>();
  for (const h of holders) byPid.set(h.pid, [...(byPid.get(h.pid) ?? []), h]);
  const listed = [...byPid.values()].slice(0, MAX_LISTED).map((hs) => `pid ${hs[0]!.pid} (${[hs[0]!.comm || '?', ...hs.map((h) => h.how)].join(', ')})`);
  const more = byPid.size > MAX_LISTED ? ` and ${byPid.size - MAX_LISTED} more` : '';
  return `used by ${listed.join('; ')}${more}`;
}

/** Why mount(2) of an overlay failed, with what to do about it. */
export function overlayFailure(errnum: number): string {
  const why = describeErrno(errnum);
  switch (errnum) {
    case ENODEV:
      return 'overlay filesystem not available in this kernel (try union-type=copy)';
    case EINVAL:
      return `overlay mount refused: ${why}: upper and work must be on the same filesystem and mount, neither inside the other, and that filesystem must be able to hold an overlay upper layer (ext4, xfs, btrfs and tmpfs can; overlay, NFS and most FUSE cannot)`;
    case ENOENT:
      return `overlay mount failed: ${why}: the source, upper or work directory is missing`;
    case ENOTDIR:
      return `overlay mount failed: ${why}: the source, upper, work or root is not a directory`;
    case EPERM:
    case EACCES:
      return `overlay mount not permitted: ${why}: mounting needs root (CAP_SYS_ADMIN)`;
    case EBUSY:
      return `overlay mount refused: ${why}: upper or work is already in use by another overlay`;
    case EROFS:
      return `overlay mount failed: ${why}: the upper directory is on a read-only filesystem`;
    default:
      return `overlay mount failed: ${why}`;
  }
}

/** Why the bind mount of the source (union-type=none) failed. */
export function bindFailure(errnum: number): string {
  const why = describeErrno(errnum);
  if (errnum === EPERM || errnum === EACCES) return `bind mount of the source not permitted: ${why}: mounting needs root (CAP_SYS_ADMIN)`;
  if (errnum === ENOENT) return `bind mount of the source failed: ${why}: the source or the mount point is missing`;
  if (errnum === EINVAL) return `bind mount of the source refused: ${why}: the source is unbindable or in another mount namespace`;
  return `bind mount of the source failed: ${why}`;
}

export function privateFailure(errnum: number): string {
  return `cannot make the new mount private: ${describeErrno(errnum)}`;
}

export function unmountFailure(errnum: number): string {
  const why = describeErrno(errnum);
  if (errnum === EINVAL) return `cannot unmount: ${why}: not a mount point (any more)`;
  if (errnum === EPERM) return `cannot unmount: ${why}: unmounting needs root (CAP_SYS_ADMIN)`;
  return `cannot unmount: ${why}`;
}
