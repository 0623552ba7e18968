// The libc calls Node does not offer: renameat2(RENAME_NOREPLACE), which
// publishes a fully built session directory under its id atomically and
// only if the id is free, and the FS_IOC_{GET,SET}FLAGS ioctls, which mark
// the state dir as the top of directory hierarchies (chattr +T).
import { closeSync, constants as fsc, openSync } from 'node:fs';
import { koffi, libc as glibc } from '../sys/index.js';

const AT_FDCWD = -100;
const RENAME_NOREPLACE = 1;
const EEXIST = 17;

type Renameat2 = (olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number) => number;
let renameat2: Renameat2 | undefined;

export class RenameError extends Error {
  readonly errno: number;
  constructor(message: string, errno: number) {
    super(message);
    this.errno = errno;
  }
  get exists(): boolean {
    return this.errno === EEXIST;
  }
}

/** rename(2) that fails with EEXIST instead of replacing `to` (an empty directory would otherwise be replaced). */
export function renameNoReplace(from: string, to: string): void {
  renameat2 ??= glibc().func('int renameat2(int, const char *, int, const char *, unsigned int)') as unknown as Renameat2;
  if (renameat2!(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) === 0) return;
  const e = koffi().errno();
  throw new RenameError(`rename ${from} -> ${to}: errno ${e}`, e);
}

// _IOR('f', 1, long) and _IOW('f', 2, long) in the generic ioctl encoding
// (x86_64, aarch64, riscv64); the kernel reads and writes an int.
const FS_IOC_GETFLAGS = 0x80086601;
const FS_IOC_SETFLAGS = 0x40086602;
const FS_TOPDIR_FL = 0x00020000;

type Ioctl = (fd: number, request: number, arg: Int32Array) => number;
let ioctl: Ioctl | undefined;

/**
 * Sets FS_TOPDIR_FL (chattr +T) on directory `dir` if its filesystem has
 * it; returns whether the flag is set afterwards. A hint only, so every
 * failure (tmpfs, btrfs, xfs, not the owner) is an answer, never an error.
 *
 * Why: ext4's Orlov allocator puts a subdirectory, and then every file in
 * it, in its parent's block group, and allocating an inode scans that
 * group past each inode freed in the last 1-6 minutes (recently_deleted(),
 * on filesystems without a journal). Sessions are many short-lived
 * directories in one parent, so creations slowed with churn: 50 begins in
 * one process took ~700 ms, 40% of it in that scan. With the parent marked
 * as a top directory each session dir starts in a little-used group:
 * ~300 ms.
 */
export function markTopDirectory(dir: string): boolean {
  if (process.arch !== 'x64' && process.arch !== 'arm64' && process.arch !== 'riscv64') return false;
  let fd: number;
  try {
    fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW);
  } catch {
    return false;
  }
  try {
    // fd, request, pointer: the same registers as the variadic ioctl on these ABIs.
    ioctl ??= glibc().func('int ioctl(int fd, unsigned long request, _Inout_ int32_t *arg)') as unknown as Ioctl;
    const flags = new Int32Array(1);
    if (ioctl(fd, FS_IOC_GETFLAGS, flags) !== 0) return false;
    if (flags[0]! & FS_TOPDIR_FL) return true;
    flags[0] = flags[0]! | FS_TOPDIR_FL;
    return ioctl(fd, FS_IOC_SETFLAGS, flags) === 0;
  } finally {
    closeSync(fd);
  }
}
