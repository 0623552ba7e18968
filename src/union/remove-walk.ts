// The walk of removeTree (remove.ts; that file's header says why): relative
// to directory fds, never by a path below the top, stopping at any mount.
import { basename, dirname, join, resolve } from 'node:path';
import { realpathSync } from 'node:fs';
import { UnionError, showPath } from './errors.js';
import { mountsUnder } from '../sys/index.js';
import {
  AT_REMOVEDIR,
  DIRENT_NAME,
  DIRENT_RECLEN,
  DIRENT_TYPE,
  DT_DIR,
  DT_UNKNOWN,
  EISDIR,
  ELOOP,
  ENOENT,
  ENOTDIR,
  ENOTEMPTY,
  OPEN_DIR,
  OPEN_PARENT,
  describeErrno,
  sysClose,
  sysFdStat,
  sysGetdents,
  sysOpenAt,
  sysRewindDir,
  sysStatAt,
  sysUnlinkAt,
  type DirStat,
} from '../sys/index.js';

/** Bytes a directory entry takes at least, on the filesystems sessions live on. */
const DIRENT_BYTES = 16;
const AT_FDCWD = -100;

/** The open top of a tree: the walk starts at `fd` and ends with unlinkat(parentFd, name, AT_REMOVEDIR). */
export interface Top {
  parentFd: number;
  /** The top itself, opened O_NOFOLLOW|O_DIRECTORY from parentFd; -1 when it is not a directory. */
  fd: number;
  /** Its name in the parent, NUL-terminated. */
  name: Buffer;
  /** Its path, for messages only. */
  path: Buffer;
  dev: number;
}

export function closeTop(top: Top): void {
  if (top.fd >= 0) sysClose(top.fd);
  sysClose(top.parentFd);
}

const nul = (name: string | Buffer) => Buffer.concat([Buffer.from(name), Buffer.of(0)]);

/**
 * The top of a tree to delete, opened and checked: not `/`, not a link,
 * nothing mounted at or under it. Its parent is resolved once (links in
 * the state dir's path are followed, as mountinfo spells it); the top is
 * opened from that fd without following a link. undefined when it does not
 * exist; a top that is a file or fifo is unlinked here (as before).
 */
export function openTop(dir: string, mountsChecked: boolean): Top | undefined {
  const path = resolveParent(dir);
  if (path === '/') throw new UnionError(dir, 'refusing to delete the root directory');
  const parentFd = sysOpenAt(AT_FDCWD, nul(dirname(path)), OPEN_PARENT);
  if (parentFd === -ENOENT) return undefined;
  if (parentFd < 0) throw new UnionError(path, `cannot delete: ${describeErrno(-parentFd)}`);
  const name = nul(basename(path));
  try {
    const fd = sysOpenAt(parentFd, name, OPEN_DIR);
    if (fd === -ENOENT) {
      sysClose(parentFd);
      return undefined;
    }
    // A session directory is never a link; one here means something is wrong.
    // (O_NOFOLLOW|O_DIRECTORY fails a link with ENOTDIR as often as with ELOOP.)
    const st = fd === -ENOTDIR || fd === -ELOOP ? sysStatAt(parentFd, basename(path)) : undefined;
    if (fd === -ELOOP || (typeof st === 'object' && st.symlink)) throw new UnionError(path, 'refusing to delete: it is a symbolic link, not a directory');
    if (fd === -ENOTDIR) {
      unlinkOrGone(parentFd, name, path);
      sysClose(parentFd);
      return undefined;
    }
    if (fd < 0) throw new UnionError(path, `cannot delete: ${describeErrno(-fd)}`);
    const top: Top = { parentFd, fd, name, path: Buffer.from(path), dev: 0 };
    try {
      const mounted = mountsChecked ? [] : mountsUnder(path);
      if (mounted.length > 0) {
        const where = mounted.map((m) => showPath(m.mountPoint));
        throw new UnionError(path, `refusing to delete: still mounted at ${where.slice(0, 3).join(', ')}${where.length > 3 ? ` and ${where.length - 3} more` : ''}`);
      }
      const st = stat(top.fd, path);
      if (st.mountRoot) throw new UnionError(path, `refusing to delete: still mounted at ${showPath(path)}`);
      top.dev = st.dev;
      return top;
    } catch (e) {
      sysClose(top.fd);
      throw e;
    }
  } catch (e) {
    sysClose(parentFd);
    throw e;
  }
}

function stat(fd: number, path: string): DirStat {
  const st = sysFdStat(fd);
  if (typeof st === 'number') throw new UnionError(path, `cannot delete: ${describeErrno(st)}`);
  return st;
}

function unlinkOrGone(dirfd: number, name: Buffer, path: string): void {
  const r = sysUnlinkAt(dirfd, name, 0);
  if (r !== 0 && r !== ENOENT) throw new UnionError(path, `cannot delete: ${describeErrno(r)}`);
}

// The path as mountinfo spells it, without following its last component:
// a link in the state dir's path must not hide mounts from the check.
function resolveParent(dir: string): string {
  const abs = resolve(dir);
  if (abs === '/') return abs;
  try {
    return join(realpathSync.native(dirname(abs)), basename(abs));
  } catch {
    return abs;
  }
}

/**
 * Directory fds the walk keeps open at once, below its top. Deeper, it
 * closes the highest ones and, on the way back up, reopens each through
 * `..` of its child, checking that it is still the same directory (device
 * and inode), so any depth is deleted with at most this many fds (and one
 * 32 KiB listing buffer each).
 */
const MAX_OPEN_DIRS = 32;
/** Bytes of directory entries read per getdents64 call: ~1,000 short names. */
const LISTING_BYTES = 32 * 1024;
/** Listings of a directory again when its removal finds it not empty (something was created in it meanwhile). */
const RESCANS = 8;
const DOTDOT = nul('..');

/** A directory on the walk's stack. */
interface Frame {
  /** -1 while closed (deeper than MAX_OPEN_DIRS below it). */
  fd: number;
  /** Its name in the frame below, NUL-terminated. */
  name: Buffer;
  ino: bigint;
  listing: Buffer | undefined;
  pos: number;
  end: number;
  rescans: number;
}

/**
 * Deletes the contents of `top` and then `top`, depth first, relative to
 * directory fds: entries are listed from the fd (getdents64), files are
 * unlinkat(dirfd, name, 0), a directory is entered with
 * openat(dirfd, name, O_DIRECTORY|O_NOFOLLOW) and removed with
 * unlinkat(dirfd, name, AT_REMOVEDIR) once empty. d_type is only a hint:
 * the open is the authority (ELOOP or ENOTDIR: not a directory, unlinked;
 * EISDIR from an unlink: a directory now, opened). Whatever is renamed or
 * replaced meanwhile, each call names an entry of a directory this walk
 * holds open, which it entered from the top on one filesystem: a symbolic
 * link is never followed and nothing outside is reached. Every directory
 * entered is checked: same device as the top, not a mount root (statx;
 * catches a bind mount of the same filesystem too). A directory moved
 * elsewhere while the walk holds it open is still emptied (what is in it
 * came from the tree); an ancestor reopened through `..` (the fd window)
 * must be the very directory left, or the walk stops.
 * ENOENT anywhere is "already gone": another process may delete the same
 * tree (recover --all sweeping what a live end is deleting).
 * `budget.left` counts the entries still to be deleted here; the walk
 * returns false, with the tree partly deleted and top.fd still open, once
 * it runs out (it starts over from the top's first entry the next time).
 */
export function walk(top: Top, budget: { left: number }): boolean {
  if (top.fd < 0) return true;
  sysRewindDir(top.fd);
  const stack: Frame[] = [{ fd: top.fd, name: top.name, ino: 0n, listing: undefined, pos: 0, end: 0, rescans: 0 }];
  // Frames [lowestOpen, stack.length) are open; [1, lowestOpen) are closed.
  let lowestOpen = 1;
  const free: Buffer[] = [];
  const pathOf = (depth: number, name?: Buffer) => {
    const parts = [top.path];
    for (let i = 1; i <= depth; i++) parts.push(Buffer.from('/'), stack[i]!.name.subarray(0, -1));
    if (name) parts.push(Buffer.from('/'), name.subarray(0, name.indexOf(0)));
    return Buffer.concat(parts).toString();
  };
  const fail = (depth: number, name: Buffer | undefined, errno: number) => new UnionError(pathOf(depth, name), `cannot delete: ${describeErrno(errno)}`);
  const close = (f: Frame) => {
    sysClose(f.fd);
    f.fd = -1;
    if (f.listing) free.push(f.listing);
    f.listing = undefined;
    f.pos = f.end = 0;
  };
  // The fd of frame `i`, reopened through `..` of frame i+1 (open) if the
  // window closed it: refused unless it is the very directory left.
  const fdOf = (i: number): number => {
    const f = stack[i]!;
    if (f.fd >= 0) return f.fd;
    const fd = sysOpenAt(stack[i + 1]!.fd, DOTDOT, OPEN_DIR);
    if (fd < 0) throw fail(i, undefined, -fd);
    const st = sysFdStat(fd);
    if (typeof st === 'number' || st.dev !== top.dev || st.ino !== f.ino) {
      sysClose(fd);
      throw new UnionError(pathOf(i), 'refusing to delete: it was moved while it was being deleted');
    }
    f.fd = fd;
    lowestOpen = i;
    return fd;
  };
  try {
    while (stack.length > 0) {
      const depth = stack.length - 1;
      const f = stack[depth]!;
      if (f.pos >= f.end) {
        f.listing ??= free.pop() ?? Buffer.allocUnsafe(LISTING_BYTES);
        let n = sysGetdents(f.fd, f.listing);
        if (n === -ENOENT) n = 0; // removed meanwhile by another process: nothing more to list
        if (n < 0) throw fail(depth, undefined, -n);
        if (n > 0) {
          f.pos = 0;
          f.end = n;
          continue;
        }
        // Listed to its end, and all of it deleted: remove the directory itself.
        const r = sysUnlinkAt(depth === 0 ? top.parentFd : fdOf(depth - 1), f.name, AT_REMOVEDIR);
        if (r === ENOTEMPTY && f.rescans < RESCANS) {
          f.rescans++;
          sysRewindDir(f.fd);
          continue;
        }
        // ENOTDIR: its name now holds a link or a file, and the directory
        // itself was moved (within its parent: the parent's own removal
        // finds it, ENOTEMPTY, and lists it again). What holds the name goes.
        if (r === ENOTDIR && depth > 0) {
          const u = sysUnlinkAt(fdOf(depth - 1), f.name, 0);
          if (u !== 0 && u !== ENOENT && u !== EISDIR) throw fail(depth, undefined, u);
        } else if (r !== 0 && r !== ENOENT) throw fail(depth, undefined, r);
        if (depth > 0) close(f);
        stack.pop();
        if (lowestOpen > stack.length) lowestOpen = Math.max(1, stack.length);
        continue;
      }
      const listing = f.listing!;
      const at = f.pos;
      const reclen = listing.readUInt16LE(at + DIRENT_RECLEN);
      const type = listing[at + DIRENT_TYPE]!;
      f.pos += reclen;
      // d_name with its NUL and padding: what unlinkat and openat read stops at the NUL.
      const name = listing.subarray(at + DIRENT_NAME, at + reclen);
      if (name[0] === 0x2e && (name[1] === 0 || (name[1] === 0x2e && name[2] === 0))) continue; // . and ..
      if (budget.left-- <= 0) return false;
      if (type !== DT_DIR && type !== DT_UNKNOWN) {
        const r = sysUnlinkAt(f.fd, name, 0);
        if (r === 0 || r === ENOENT) continue;
        // EISDIR: a directory took the name since it was listed; entered below.
        if (r !== EISDIR) throw fail(depth, name, r);
      }
      const fd = sysOpenAt(f.fd, name, OPEN_DIR);
      if (fd < 0) {
        if (fd === -ENOENT) continue;
        if (fd !== -ELOOP && fd !== -ENOTDIR) throw fail(depth, name, -fd);
        // A link, a file, a fifo, a device: removed, never followed or opened.
        const r = sysUnlinkAt(f.fd, name, 0);
        // EISDIR: swapped back to a directory; the rescan before its parent's removal finds it.
        if (r !== 0 && r !== ENOENT && r !== EISDIR) throw fail(depth, name, r);
        continue;
      }
      let st: DirStat | number;
      try {
        st = sysFdStat(fd);
        if (typeof st === 'number') throw fail(depth, name, st);
        if (st.dev !== top.dev || st.mountRoot) throw new UnionError(pathOf(depth, name), 'refusing to delete: another filesystem is mounted here');
      } catch (e) {
        sysClose(fd);
        throw e;
      }
      // A directory too big for what is left of the budget is not even listed
      // here: listing 100,000 names alone holds the loop for tens of ms. A
      // directory's size grows with its entries (ext4: ~20-30 bytes per short
      // name; tmpfs: 20 per entry), so this is a cheap, generous bound.
      if (st.size > budget.left * DIRENT_BYTES) {
        sysClose(fd);
        return false;
      }
      stack.push({ fd, name: Buffer.from(name.subarray(0, name.indexOf(0) + 1)), ino: st.ino, listing: undefined, pos: 0, end: 0, rescans: 0 });
      if (stack.length - lowestOpen > MAX_OPEN_DIRS) close(stack[lowestOpen++]!);
    }
    return true;
  } finally {
    // Stopped early (budget, error): every fd of the walk closed; the top's stays the caller's.
    for (let i = 1; i < stack.length; i++) if (stack[i]!.fd >= 0) sysClose(stack[i]!.fd);
  }
}
