// Making a session's view of its source at layout.root.
//
// overlay and none call mount(2) directly through koffi rather than spawn
// util-linux mount(8). Measured on the development machine (kernel 6.18,
// ext4, 2 cores, Node 20; median of 50 overlay mount/unmount pairs, two
// runs): mount(2) 0.31 ms against 3.5-4.3 ms for `mount -t overlay`, and
// umount2(2) 0.63-0.67 ms against 4.3-5.0 ms for `umount`: 7-14x, nearly
// all of it the fork/exec and libmount's start-up. The syscall also gives an
// errno to build a precise message from, where mount(8) gives text to parse.
import { lstatSync, readdirSync, statSync } from 'node:fs';
import { isAbsolute } from 'node:path';
import { childProcess } from '../sys/index.js';
import type { UnionType } from '../config/index.js';
import { CopyInterruptedError, UnionError, bindFailure, overlayFailure, privateFailure, showPath, unmountFailure } from './errors.js';
import { isMountPoint } from '../sys/index.js';
import { MS_BIND, MS_PRIVATE, sysMount, sysUmount } from '../sys/index.js';

export interface UnionLayout {
  type: UnionType;
  /** The chroot's source directory (the overlay's lower layer). */
  source: string;
  /** Overlay upper layer: the session's writes. Unused by copy and none. */
  upper: string;
  /** Overlay work directory, on the same filesystem as upper. Unused by copy and none. */
  work: string;
  /** The session's view: the mount point (overlay, none) or the copy (copy). */
  root: string;
}

// overlayfs splits its options on ',' and lowerdir on ':', with '\' as the
// escape character. Refuse such paths rather than escape them (one escaping
// mistake mounts the wrong directory). A newline the kernel would take, but
// it would garble every one-line message and log naming the path.
const UNSAFE = /[,:\\\n]/;

// mount(2) copies at most one page of option data.
const MAX_OPTIONS = 4095;
/** cp's stderr kept for the message: its first line is what counts. */
const STDERR_KEPT = 64 * 1024;

/**
 * Makes the session's view at layout.root. The caller has created root (and
 * for overlay upper and work) as empty directories. For overlay and none
 * the new mount is private, so mounts that hooks make under root never
 * propagate to the source or elsewhere; copy makes no mount at all.
 * A copy runs `cp` beside the event loop, and `signal` stops it (SIGKILL):
 * the caller then deletes the half-made copy, as after a failed one.
 */
export async function mountUnion(layout: UnionLayout, o: { signal?: AbortSignal } = {}): Promise<void> {
  const { type, source, root } = layout;
  for (const p of type === 'overlay' ? [source, layout.upper, layout.work, root] : [source, root]) {
    if (!isAbsolute(p)) throw new UnionError(p, 'not an absolute path');
  }
  checkRoot(root, type);
  switch (type) {
    case 'overlay':
      return mountOverlay(layout);
    case 'none':
      return mountPrivate(root, () => sysMount(source, root, null, MS_BIND, null), bindFailure);
    case 'copy':
      return copySource(source, root, o.signal);
    default:
      throw new UnionError(root, `unknown union type ${JSON.stringify(type)}`);
  }
}

// The invariants a fresh view needs: a real directory (a symlink would
// move the mount elsewhere), not yet mounted (a second mount would stack),
// and for a copy empty (cp would merge).
function checkRoot(root: string, type: string): void {
  let st;
  try {
    st = lstatSync(root);
  } catch (e) {
    throw new UnionError(root, `mount point missing: ${(e as Error).message}`, e);
  }
  if (!st.isDirectory()) throw new UnionError(root, 'mount point is not a directory');
  if (isMountPoint(root)) throw new UnionError(root, 'already a mount point: the session is mounted already');
  if (type === 'copy' && readdirSync(root).length > 0) throw new UnionError(root, 'not empty: a copy needs an empty directory');
}

function mountOverlay({ source, upper, work, root }: UnionLayout): void {
  for (const p of [source, upper, work]) {
    if (UNSAFE.test(p)) throw new UnionError(p, "path contains ',', ':', '\\' or a newline, which overlay mount options cannot carry");
  }
  // The kernel's EINVAL for this is the most common and least clear failure.
  const dev = (p: string) => {
    try {
      return statSync(p).dev;
    } catch {
      return undefined;
    }
  };
  if (dev(upper) !== undefined && dev(work) !== undefined && dev(upper) !== dev(work)) {
    throw new UnionError(work, `work directory is on another filesystem than the upper directory ${showPath(upper)}; overlay needs both on one`);
  }
  const options = `lowerdir=${source},upperdir=${upper},workdir=${work}`;
  if (options.length > MAX_OPTIONS) throw new UnionError(root, `overlay options longer than ${MAX_OPTIONS} bytes; use shorter paths`);
  mountPrivate(root, () => sysMount('overlay', root, 'overlay', 0, options), overlayFailure);
}

// A new mount under a shared parent is itself shared (mount_namespaces(7)),
// and a bind of a shared mount joins its peer group: a hook's mount under
// root would then appear in the peers, in the none case inside the source
// itself. MS_PRIVATE cuts the new mount out of every peer group.
function mountPrivate(root: string, make: () => number, failure: (errnum: number) => string): void {
  const e = make();
  if (e !== 0) throw new UnionError(root, failure(e));
  const p = sysMount(null, root, null, MS_PRIVATE, null);
  if (p === 0) return;
  const u = sysUmount(root);
  throw new UnionError(root, u === 0 ? `${privateFailure(p)}; unmounted again` : `${privateFailure(p)}; and undoing the mount failed: ${unmountFailure(u)}`);
}

/**
 * A full, writable copy of the source. GNU cp -a keeps owners, modes,
 * timestamps, hard links, symlinks, special files and (where it can) ACLs
 * and xattrs; --reflink=auto shares data blocks copy-on-write where the
 * filesystem can (btrfs, xfs) and copies them elsewhere. --one-file-system
 * leaves out what is mounted inside the source (e.g. /proc while someone is
 * in it), as overlay and the non-recursive bind of none do. A half-made copy
 * stays: the caller deletes the session directory (removeTree).
 *
 * cp runs as a child the event loop waits for, not with spawnSync: copying
 * a real distribution chroot takes seconds, which a supervisor would
 * otherwise spend serving no one, and which nothing could cancel.
 */
async function copySource(source: string, root: string, signal: AbortSignal | undefined): Promise<void> {
  if (signal?.aborted) throw new CopyInterruptedError(root, `copy of ${showPath(source)} interrupted before it started`);
  const cp = childProcess().spawn('cp', ['-a', '--one-file-system', '--reflink=auto', '--', `${source}/.`, `${root}/`], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, LC_ALL: 'C' },
  });
  // The first line is what a message shows; the rest is dropped unread.
  let stderr = '';
  cp.stderr!.setEncoding('utf8').on('data', (d: string) => {
    if (stderr.length < STDERR_KEPT) stderr += d;
  });
  const stop = () => cp.kill('SIGKILL');
  signal?.addEventListener('abort', stop, { once: true });
  const end = await new Promise<{ status: number | null; sig: NodeJS.Signals | null; error?: Error }>((resolve) => {
    cp.once('error', (error) => resolve({ status: null, sig: null, error }));
    cp.once('close', (status, sig) => resolve({ status, sig }));
  });
  signal?.removeEventListener('abort', stop);
  // A Ctrl-C in a terminal reaches cp too (the whole foreground group gets
  // it), maybe before warden's own handler has aborted the signal.
  if (signal?.aborted || end.sig === 'SIGINT') throw new CopyInterruptedError(root, `copy of ${showPath(source)} interrupted: cp stopped`);
  const first = stderr.split('\n').find((l) => l.trim() !== '');
  if (end.error && !first) throw new UnionError(root, `copy of ${showPath(source)} failed: cannot run cp: ${end.error.message}`, end.error);
  if (end.status !== 0 || end.error) {
    const how = first ?? (end.sig ? `cp killed by ${end.sig}` : `cp exited with status ${end.status}`);
    throw new UnionError(root, `copy of ${showPath(source)} failed: ${how}`);
  }
}
