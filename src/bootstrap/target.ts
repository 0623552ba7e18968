// The directory a chroot is built in: which paths are refused, whether it
// holds a previous bootstrap, and emptying it without ever leaving it.
import { closeSync, constants, fstatSync, lstatSync, openSync, readFileSync, readdirSync, realpathSync, rmdirSync, unlinkSync } from 'node:fs';
import { homedir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { BootstrapError, ioError } from './errors.js';

/** Top-level marker of a bootstrap tree: a JSON stamp (see index.ts). */
export const MARKER = '.warden-bootstrap';
/** The source lock file (DESIGN.md, "Locks"): its name is sessions/locks.ts's. */
import { SOURCE_LOCK_FILE as SOURCE_LOCK } from '../sessions/index.js';

export { SOURCE_LOCK };

export type TargetState = 'missing' | 'empty' | 'ours' | 'foreign';

export interface Target {
  /** Absolute path with every existing component's symlinks resolved. */
  dir: string;
  state: TargetState;
}

// Emptying one of these, or building a chroot over it, would wreck the host.
const SYSTEM_DIRS = [
  '/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/libx32', '/media', '/mnt', '/opt',
  '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/var',
  '/usr/bin', '/usr/sbin', '/usr/lib', '/usr/lib32', '/usr/lib64', '/usr/libexec', '/usr/include', '/usr/share',
  '/usr/src', '/usr/local', '/usr/local/bin', '/usr/local/sbin', '/usr/local/lib', '/usr/local/share',
  '/var/lib', '/var/cache', '/var/log', '/var/tmp', '/var/spool', '/var/mail', '/var/backups', '/var/opt',
  '/var/local', '/var/run', '/var/lock',
];
// Kernel filesystems: nothing under them is a place for a chroot.
const VIRTUAL_ROOTS = ['/proc', '/sys', '/dev'];

/** Resolves DIR and classifies it; refuses system directories. Reads only. */
export function inspectTarget(dir: string): Target {
  const abs = resolve(dir);
  refuseSystemDir(abs); // as written first: resolving /proc/1/root would already reach elsewhere
  const real = realpathNearest(abs);
  refuseSystemDir(real);
  const st = lstatSync(real, { throwIfNoEntry: false });
  if (!st) return { dir: real, state: 'missing' };
  if (!st.isDirectory()) throw new BootstrapError('not-a-directory', real);
  return { dir: real, state: classify(real) };
}

function refuseSystemDir(real: string): void {
  for (const sys of SYSTEM_DIRS) {
    if (real === sys || real === realpathNearest(sys)) throw new BootstrapError('refused', real, 'it is a host system directory');
  }
  for (const v of VIRTUAL_ROOTS) {
    if (real.startsWith(`${v}/`)) throw new BootstrapError('refused', real, `it is inside ${v}`);
  }
  if (real === realpathNearest(homedir())) throw new BootstrapError('refused', real, 'it is the home directory of the current user');
}

/** realpath of the longest existing prefix, the rest appended as given. */
function realpathNearest(abs: string): string {
  const rest: string[] = [];
  for (let p = abs; ; p = dirname(p)) {
    try {
      return join(realpathSync(p), ...rest);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' || p === '/') throw ioError(p, e);
      rest.unshift(basename(p));
    }
  }
}

/** empty (a lone .ref file counts as empty), ours (a marker), or foreign. */
export function classify(dir: string): Exclude<TargetState, 'missing'> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw ioError(dir, e);
  }
  const others = names.filter((n) => !(n === SOURCE_LOCK && lstatSync(join(dir, n)).isFile()));
  if (others.length === 0) return 'empty';
  return readMarker(dir) ? 'ours' : 'foreign';
}

/** The parsed marker, if `dir` has a valid one (a regular file, never read through a symlink). */
function readMarker(dir: string): Record<string, unknown> | undefined {
  let fd: number;
  try {
    fd = openSync(join(dir, MARKER), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile() || st.size > 1 << 20) return undefined;
    const stamp: unknown = JSON.parse(readFileSync(fd, 'utf8'));
    return typeof stamp === 'object' && stamp !== null && (stamp as { format?: unknown }).format === 'warden-bootstrap'
      ? (stamp as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Throws 'mounted' naming the first mount point below `dir` (/proc/self/mountinfo, field 5). */
export function refuseMountsUnder(dir: string): void {
  const prefix = `${dir}/`;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const field = line.split(' ')[4];
    if (field === undefined) continue;
    // mountinfo escapes space, tab, newline and backslash as \ooo
    const mountPoint = field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
    if (mountPoint.startsWith(prefix)) throw new BootstrapError('mounted', mountPoint);
  }
}

/**
 * Deletes everything in `dir` except the names in `keep`. Symlinks are
 * unlinked, never followed (lstat, then unlink or descend): a chroot holds
 * absolute links such as /evil -> /etc that name host directories. A
 * directory on another device is a mount point: refused, not entered.
 *
 * Preconditions: nothing else writes in `dir` meanwhile (the caller holds
 * the source lock; only root can write there otherwise).
 */
export function removeContents(dir: string, keep: readonly string[]): void {
  const dev = lstatSync(dir).dev;
  for (const name of readdirSync(dir)) {
    if (!keep.includes(name)) removeEntry(join(dir, name), dev);
  }
}

/** Removes `path` and, if it is a real directory on device `dev`, everything in it. */
export function removeEntry(path: string, dev: number): void {
  try {
    const st = lstatSync(path);
    if (!st.isDirectory()) {
      unlinkSync(path);
      return;
    }
    if (st.dev !== dev) throw new BootstrapError('mounted', path);
    for (const name of readdirSync(path)) removeEntry(join(path, name), dev);
    rmdirSync(path);
  } catch (e) {
    throw ioError(path, e);
  }
}
