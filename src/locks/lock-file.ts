// Opening and closing a lock file for FileLock (lock.ts), the filesystem
// it is on, and the options of its handles and waits.
import { closeSync, constants as fsc, fchmodSync, fstatSync, lstatSync, openSync, statfsSync } from 'node:fs';
import { LockFileError, type LockHolder, type LockRange } from './errors.js';
import { fileKey } from './inspect.js';

export const WHOLE_FILE: LockRange = Object.freeze({ start: 0, len: 0 });

export interface OpenOptions {
  /** Byte range this lock covers (default: the whole file). */
  range?: LockRange;
  /** Create the file if missing (default true); `'new'`: create it, failing with EEXIST if it exists (O_EXCL). */
  create?: boolean | 'new';
  /**
   * The file's mode (default 0o644) when created here, and at most: an
   * existing file of ours that allows more is narrowed to it (lock files
   * made by older versions were 0644; a user who can open one for reading
   * can hold a read lock on it).
   */
  fileMode?: number;
  /** Open read-only: shared locks only (fcntl needs write access for F_WRLCK). */
  readOnly?: boolean;
}

export interface WaitOptions {
  /** Give up after this many milliseconds (default: wait forever). */
  timeout?: number;
  /** Cancels the wait; an already-aborted signal rejects at once. */
  signal?: AbortSignal;
  /** false: do not wait, throw LockBusyError at once. Default true. */
  wait?: boolean;
  /** Called once when the request has to wait, with who holds the lock. */
  onWait?: (holders: LockHolder[]) => void;
}

/**
 * Opens `path` (never following a symlink) for locking: the fd and the
 * file's /proc/locks key. A file that is not regular is refused; one of
 * ours whose mode allows more than `fileMode` is narrowed to it.
 */
export function openLockFile(path: string, opts: OpenOptions): { fd: number; key: string } {
  // libuv adds O_CLOEXEC to every open: a lock fd reaches a child only when
  // it is handed over explicitly (spawn stdio), never by accident.
  const flags =
    (opts.readOnly ? fsc.O_RDONLY : fsc.O_RDWR) | fsc.O_NOFOLLOW | fsc.O_NOCTTY | (opts.create === false ? 0 : opts.create === 'new' ? fsc.O_CREAT | fsc.O_EXCL : fsc.O_CREAT);
  let fd: number;
  try {
    fd = openSync(path, flags, opts.fileMode ?? 0o644);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ELOOP' ? 'is a symbolic link (refused)' : code === 'ENOENT' ? 'does not exist' : code === 'EEXIST' ? 'exists already' : (e as Error).message;
    throw new LockFileError(`cannot open lock file ${path}: ${why}`, { path, cause: e });
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile()) throw new LockFileError(`lock file ${path} is not a regular file`, { path });
    const mode = Number(st.mode & 0o777n);
    if (opts.fileMode !== undefined && (mode & ~opts.fileMode) !== 0 && Number(st.uid) === process.geteuid?.()) {
      fchmodSync(fd, mode & opts.fileMode);
    }
    return { fd, key: fileKey(st) };
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/**
 * close(2) that never throws: Linux frees the fd even when close fails (a
 * FUSE mount whose client died gives ENOTCONN), and retrying could close
 * an fd another thread has opened meanwhile.
 */
export function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // see above
  }
}

const FUSE_SUPER_MAGIC = 0x65735546; // linux/magic.h

/** statfs(2) of `path` says FUSE; asked only when a POSIX conflict is found (rare: probes and refusals). */
export function isOnFuse(path: string): boolean {
  try {
    return Number(statfsSync(path).type) === FUSE_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/**
 * `path` names the open file whose /proc/locks key openLockFile read
 * (`key`): an fd never changes its inode, and a path that names it is a
 * link to it, so no fstat (on a cluster filesystem, once the cached
 * attributes have expired, an fstat is a round trip).
 */
export function pathNamesKey(path: string, key: string): boolean {
  try {
    return fileKey(lstatSync(path, { bigint: true })) === key;
  } catch {
    return false;
  }
}
