// mount(2) and umount2(2) through koffi, the only place the union layer
// talks to libc. Each call returns 0 or the errno, so callers build their
// messages (errors.ts) from numbers rather than from parsed text.
import { koffi, libc as glibc } from '../locks/koffi.js';
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

const NAMES: Record<number, string> = {
  [EPERM]: 'EPERM',
  [ENOENT]: 'ENOENT',
  [EACCES]: 'EACCES',
  [EBUSY]: 'EBUSY',
  [ENODEV]: 'ENODEV',
  [ENOTDIR]: 'ENOTDIR',
  [EINVAL]: 'EINVAL',
  [EROFS]: 'EROFS',
  28: 'ENOSPC',
  36: 'ENAMETOOLONG',
  40: 'ELOOP',
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
