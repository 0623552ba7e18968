// Whether fcntl locks on files in a directory reach other hosts, or stay in
// this kernel (build farms, DESIGN.md).
//
// A FUSE filesystem decides for itself: one that implements locks (the
// glusterfs client) gets every F_SETLK/F_OFD_SETLK as a request and answers
// for the whole cluster, and the kernel keeps no record of the lock. One
// that does not (bindfs without --enable-lock-forwarding, most others)
// makes the kernel lock locally instead, silently (fs/fuse/file.c,
// fuse_file_lock(): `if (fc->no_lock) posix_lock_file(...)`): every host
// would get the "exclusive" lock at once. The only trace of the difference
// is the kernel's own record: after a lock on such a file, the fd's
// /proc/self/fdinfo shows a "lock:" line exactly when the kernel keeps it.
//
// Kernel clients of network filesystems record their (cluster-wide) locks
// locally as well, so the probe cannot judge them; they are judged by type.
// Everything else is a filesystem this kernel alone serves.
import { closeSync, constants as fsc, openSync, readFileSync, realpathSync, statfsSync, statSync, unlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { LockError } from './errors.js';
import { FileLock } from './lock.js';

/**
 * - `local-fs`: this kernel serves the filesystem and keeps its locks; they
 *   hold for every process of this host (and are not shared: nothing else
 *   reaches those files).
 * - `cluster`: the filesystem's own lock service answers (a FUSE filesystem
 *   that implements locks, as the glusterfs client does; or a kernel client
 *   of NFS, CephFS, GFS2, OCFS2).
 * - `fuse-local`: a FUSE filesystem that does not implement locks: the
 *   kernel keeps them for this host only, while other hosts see the same
 *   files. Unsafe for anything shared.
 */
export type LockScope = 'local-fs' | 'cluster' | 'fuse-local';

export interface LockLocality {
  scope: LockScope;
  /** The filesystem type as /proc/self/mountinfo names it ("fuse.glusterfs", "fuse", "ext4"). */
  fsType: string;
  /** Its source ("localhost:/vol", "/srv/src"), for messages. */
  source: string;
  /** Where it is mounted. */
  mountPoint: string;
  /** How the scope was found: a lock on a probe file, or the filesystem's type alone. */
  how: 'probe' | 'fs-type';
}

// statfs(2) f_type values (linux/magic.h).
const FUSE_SUPER_MAGIC = 0x65735546; // fuse and fuseblk alike
const CLUSTER_MAGIC = new Map<number, string>([
  [0x6969, 'nfs'],
  [0x00c36400, 'ceph'],
  [0x01161970, 'gfs2'],
  [0x7461636f, 'ocfs2'],
]);

/**
 * Where fcntl locks on files in `dir` live. For a FUSE filesystem this
 * creates, locks and removes one probe file in `dir` (so `dir` must be
 * writable); for any other it only reads statfs(2) and mountinfo.
 * Throws LockError when the probe cannot be made.
 */
export function lockLocality(dir: string): LockLocality {
  const type = Number(statfsSync(dir).type);
  const mount = mountOf(dir);
  if (type === FUSE_SUPER_MAGIC) return { ...mount, scope: probeKeptLocally(dir) ? 'fuse-local' : 'cluster', how: 'probe' };
  return { ...mount, scope: CLUSTER_MAGIC.has(type) ? 'cluster' : 'local-fs', how: 'fs-type' };
}

/** Takes an exclusive lock on a new file in `dir` and asks the kernel whether it recorded it. */
function probeKeptLocally(dir: string): boolean {
  const probe = join(dir, `.warden-lock-probe.${process.pid}.${randomBytes(6).toString('hex')}`);
  let fd: number;
  try {
    // O_EXCL: a name nobody else uses; FileLock then opens the file we made.
    fd = openSync(probe, fsc.O_RDWR | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  } catch (e) {
    throw new LockError(`cannot create a probe file in ${dir} to test where its locks live: ${(e as Error).message}`, { path: probe, cause: e });
  }
  closeSync(fd);
  try {
    const lock = FileLock.open(probe, { create: false, fileMode: 0o600 });
    try {
      if (!lock.tryAcquire('exclusive')) throw new LockError(`probe file ${probe} is locked by someone else`, { path: probe });
      return /^lock:/m.test(readFileSync(`/proc/self/fdinfo/${lock.fd}`, 'latin1'));
    } finally {
      lock.close();
    }
  } finally {
    unlinkSync(probe);
  }
}

/** The mount `dir` is on: the deepest mount point above it with the same device. */
function mountOf(dir: string): Omit<LockLocality, 'scope' | 'how'> {
  const real = realpathSync.native(dir);
  const dev = statSync(real, { bigint: true }).dev;
  // mountinfo's MAJOR:MINOR uses the same (new) encoding as st_dev.
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  const id = `${major}:${minor}`;
  let best: Omit<LockLocality, 'scope' | 'how'> | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f[2] !== id) continue;
    const mountPoint = unescape(f[4]!);
    const under = mountPoint === '/' || real === mountPoint || real.startsWith(`${mountPoint}/`);
    if (under && (best === undefined || mountPoint.length > best.mountPoint.length)) {
      best = { fsType: unescape(f[sep + 1]!), source: unescape(f[sep + 2]!), mountPoint };
    }
  }
  return best ?? { fsType: 'unknown', source: 'unknown', mountPoint: real };
}

const unescape = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

/** "fuse.glusterfs localhost:/vol at /mnt/farm", for messages. */
export function describeFilesystem(l: Pick<LockLocality, 'fsType' | 'source' | 'mountPoint'>): string {
  return `${l.fsType} ${l.source} at ${l.mountPoint}`;
}
