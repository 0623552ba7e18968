// mount(2), umount2(2) and the fd-relative calls of the deleting walk
// (openat, getdents64, unlinkat, statx on an fd) through koffi, the only
// place the union layer talks to libc. Each call returns 0 or the errno
// (or, for calls that return a count or an fd, that number or -errno), so
// callers build their messages (errors.ts) from numbers rather than from
// parsed text.
import { koffi, libc as glibc } from './koffi.js';
import { platform } from 'node:process';

// <sys/mount.h>; identical on every Linux architecture.
export const MS_RDONLY = 1;
export const MS_NOSUID = 2;
export const MS_NODEV = 4;
export const MS_NOEXEC = 8;
export const MS_REMOUNT = 32;
export const MS_NOSYMFOLLOW = 256;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 1 << 18;

export const EPERM = 1;
export const ENOENT = 2;
export const EACCES = 13;
export const EBUSY = 16;
export const ENODEV = 19;
export const ENOTDIR = 20;
export const EINVAL = 22;
export const EROFS = 30;
export const EISDIR = 21;
export const ENOTEMPTY = 39;
export const ELOOP = 40;

const NAMES: Record<number, string> = {
  [EPERM]: 'EPERM',
  [ENOENT]: 'ENOENT',
  [EACCES]: 'EACCES',
  [EBUSY]: 'EBUSY',
  [ENODEV]: 'ENODEV',
  [ENOTDIR]: 'ENOTDIR',
  [EINVAL]: 'EINVAL',
  [EROFS]: 'EROFS',
  [EISDIR]: 'EISDIR',
  [ENOTEMPTY]: 'ENOTEMPTY',
  [ELOOP]: 'ELOOP',
  28: 'ENOSPC',
  36: 'ENAMETOOLONG',
  95: 'EOPNOTSUPP',
};

interface Libc {
  mount: (source: string | null, target: string, fstype: string | null, flags: number, data: string | null) => number;
  umount2: ((target: string, flags: number) => number) & {
    /** The same call on a thread of koffi's pool; `r` is its return value (errno stays on that thread). */
    async: (target: string, flags: number, done: (err: unknown, r: number) => void) => void;
  };
  strerror: (errnum: number) => string;
  statx: (dirfd: number, path: string, flags: number, mask: number, buf: Buffer) => number;
  // Names are NUL-terminated Buffers (file names are bytes, not UTF-8), passed as pointers.
  openat: (dirfd: number, name: Uint8Array, flags: number) => number;
  unlinkat: (dirfd: number, name: Uint8Array, flags: number) => number;
  getdents64: (fd: number, buf: Buffer, count: number) => number;
  lseek: (fd: number, offset: number, whence: number) => number;
  close: (fd: number) => number;
}

let libc: Libc | undefined;

function native(): Libc {
  if (libc) return libc;
  if (platform !== 'linux') throw new Error(`mount(2) is Linux-only; this is ${platform}`);
  const lib = glibc();
  libc = {
    mount: lib.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)') as Libc['mount'],
    umount2: lib.func('int umount2(const char *target, int flags)') as Libc['umount2'],
    strerror: lib.func('const char *strerror(int errnum)') as Libc['strerror'],
    statx: lib.func('int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf)') as Libc['statx'],
    // openat is variadic (mode); without O_CREAT or O_TMPFILE glibc never reads the mode.
    openat: lib.func('int openat(int dirfd, const void *name, int flags)') as Libc['openat'],
    unlinkat: lib.func('int unlinkat(int dirfd, const void *name, int flags)') as Libc['unlinkat'],
    getdents64: lib.func('int64_t getdents64(int fd, void *buf, size_t count)') as Libc['getdents64'],
    lseek: lib.func('int64_t lseek(int fd, int64_t offset, int whence)') as Libc['lseek'],
    close: lib.func('int close(int fd)') as Libc['close'],
  };
  return libc;
}

const AT_FDCWD = -100;
const AT_SYMLINK_NOFOLLOW = 0x100;
const STATX_ATTR_MOUNT_ROOT = 0x2000n;
/** sizeof(struct statx); stx_attributes at 8, stx_attributes_mask at 56. */
const STATX_SIZE = 256;

/**
 * Whether `path` (its last component not followed) is the root of a
 * mount, from statx(2)'s STATX_ATTR_MOUNT_ROOT (Linux 5.8): a bind of the
 * same filesystem counts, as in mountinfo. Undefined where the kernel does
 * not say, or statx fails: the caller asks mountinfo instead. One syscall,
 * where a read of mountinfo walks every mount of the namespace (30% of 50
 * begins at once was two such reads).
 */
export function statxMountRoot(path: string): boolean | undefined {
  if (platform !== 'linux') return undefined;
  const buf = Buffer.alloc(STATX_SIZE);
  if (native().statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, 0, buf) !== 0) return undefined;
  if ((buf.readBigUInt64LE(56) & STATX_ATTR_MOUNT_ROOT) === 0n) return undefined;
  return (buf.readBigUInt64LE(8) & STATX_ATTR_MOUNT_ROOT) !== 0n;
}

// <fcntl.h>: O_DIRECTORY and O_NOFOLLOW differ between architectures.
const ARM = process.arch === 'arm64' || process.arch === 'arm';
const O_DIRECTORY = ARM ? 0o40000 : 0o200000;
const O_NOFOLLOW = ARM ? 0o100000 : 0o400000;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
/**
 * How the deleting walk opens a directory: read-only, never through a
 * symbolic link as the last component (ELOOP), and only a directory
 * (ENOTDIR, checked before anything is opened: a fifo or a device is never
 * opened, so O_NONBLOCK is only a second guard).
 */
export const OPEN_DIR = O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
/** Opening the parent of a tree's top: its path is resolved (links followed) once, here. */
export const OPEN_PARENT = O_DIRECTORY | O_CLOEXEC;
export const AT_REMOVEDIR = 0x200;
const AT_EMPTY_PATH = 0x1000;
/** <dirent.h> d_type of a directory, and of a file system that does not say. */
export const DT_UNKNOWN = 0;
export const DT_DIR = 4;
/** struct linux_dirent64: d_ino 0, d_off 8, d_reclen 16 (u16), d_type 18, d_name 19 (NUL-terminated). */
export const DIRENT_RECLEN = 16;
export const DIRENT_TYPE = 18;
export const DIRENT_NAME = 19;

/** openat(2): the new fd, or -errno. `name` ends with a NUL byte. */
export function sysOpenAt(dirfd: number, name: Uint8Array, flags: number): number {
  const fd = native().openat(dirfd, name, flags);
  return fd >= 0 ? fd : -koffi().errno();
}

/** unlinkat(2) (`flags` 0 or AT_REMOVEDIR): 0, or the errno. `name` ends with a NUL byte. */
export function sysUnlinkAt(dirfd: number, name: Uint8Array, flags: number): number {
  return native().unlinkat(dirfd, name, flags) === 0 ? 0 : koffi().errno();
}

/** getdents64(2) into `buf`: the bytes filled (0 at the end of the directory), or -errno. */
export function sysGetdents(fd: number, buf: Buffer): number {
  const n = native().getdents64(fd, buf, buf.length);
  return n >= 0 ? n : -koffi().errno();
}

/** Back to the first entry of a directory fd (lseek(2) to 0): the next getdents64 lists it again. */
export function sysRewindDir(fd: number): void {
  native().lseek(fd, 0, 0);
}

/** close(2); an fd of ours, so only EINTR/EIO could fail it, and either way it is closed. */
export function sysClose(fd: number): void {
  native().close(fd);
}

/** What the walk needs of a directory it has open. */
export interface DirStat {
  /** st_dev as major * 2^20 + minor: unique, and a safe integer. */
  dev: number;
  ino: bigint;
  size: number;
  symlink: boolean;
  /** STATX_ATTR_MOUNT_ROOT (Linux 5.8): a mount, a bind of the same filesystem too; undefined where the kernel does not say. */
  mountRoot: boolean | undefined;
}

const statBuf = Buffer.alloc(STATX_SIZE);
const STATX_BASIC = 0x7ff;

/** statx(2) of an open fd (AT_EMPTY_PATH): its DirStat, or the errno. */
export function sysFdStat(fd: number): DirStat | number {
  return sysStatAt(fd, '');
}

/** statx(2) of `name` in `dirfd`, a link not followed (`''`: dirfd itself): its DirStat, or the errno. */
export function sysStatAt(dirfd: number, name: string): DirStat | number {
  if (native().statx(dirfd, name, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW, STATX_BASIC, statBuf) !== 0) return koffi().errno();
  const known = (statBuf.readBigUInt64LE(56) & STATX_ATTR_MOUNT_ROOT) !== 0n;
  return {
    // stx_mode 28, stx_ino 32, stx_size 40, stx_dev_major 136, stx_dev_minor 140
    dev: statBuf.readUInt32LE(136) * 2 ** 20 + statBuf.readUInt32LE(140),
    ino: statBuf.readBigUInt64LE(32),
    size: Number(statBuf.readBigUInt64LE(40)),
    symlink: (statBuf.readUInt16LE(28) & 0o170000) === 0o120000,
    mountRoot: known ? (statBuf.readBigUInt64LE(8) & STATX_ATTR_MOUNT_ROOT) !== 0n : undefined,
  };
}

/** mount(2): 0, or the errno. */
export function sysMount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): number {
  return native().mount(source, target, fstype, flags, data) === 0 ? 0 : koffi().errno();
}

/**
 * umount2(2) with flags 0: 0, or the errno. Never MNT_DETACH: a lazy unmount
 * "succeeds" while processes still use the tree, which would let a session
 * be deleted under them.
 */
export function sysUmount(target: string): number {
  return native().umount2(target, 0) === 0 ? 0 : koffi().errno();
}

/**
 * sysUmount made on a thread of koffi's pool, for a server's event loop:
 * the kernel frees a mount's cached dentries inside umount2, ~0.3 s for an
 * overlay whose session wrote 100,000 files. errno is not carried back from
 * that thread, so a failed call is repeated here: nothing was unmounted,
 * so it fails again at once with the errno (or, if what made it fail has
 * gone meanwhile, succeeds, which is the goal).
 */
export function sysUmountOffThread(target: string): Promise<number> {
  return new Promise((resolve) => {
    try {
      native().umount2.async(target, 0, (err, r) => resolve(err === null && r === 0 ? 0 : sysUmount(target)));
    } catch {
      // koffi's queue of async calls is full (max_async_calls, 256): this one is made in place.
      resolve(sysUmount(target));
    }
  });
}

/** "No such file or directory (ENOENT)". */
export function describeErrno(errnum: number): string {
  return `${native().strerror(errnum)} (${NAMES[errnum] ?? `errno ${errnum}`})`;
}
