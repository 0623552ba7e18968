// Deleting a session directory without reaching into anything mounted in it.
import { lstatSync, readdirSync, realpathSync, rmdirSync, unlinkSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UnionError, showPath } from './errors.js';
import { mountsUnder } from './mountinfo.js';

const SLASH = Buffer.from('/');

/**
 * Deletes `dir` and everything in it. Refuses while anything is mounted at
 * or under it: deleting through a bind mount deletes the mounted data (with
 * union-type=none, the source itself). Symbolic links are removed, never
 * followed. A missing `dir` is not an error, so a retried removal succeeds.
 * `mountsChecked`: the caller has just read mountinfo for `dir` (or for the
 * name it had before a rename), as discardSessionDir does; reading it again
 * costs the kernel a walk of every mount, 5,000 on a host with 1,000 sessions.
 * The device check below still stops at any other filesystem.
 */
export function removeTree(dir: string, { mountsChecked = false } = {}): void {
  const path = resolveParent(dir);
  if (path === '/') throw new UnionError(dir, 'refusing to delete the root directory');
  let top: Stats;
  try {
    top = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new UnionError(path, `cannot delete: ${(e as Error).message}`, e);
  }
  // A session directory is never a link; one here means something is wrong.
  if (top.isSymbolicLink()) throw new UnionError(path, 'refusing to delete: it is a symbolic link, not a directory');
  const mounted = mountsChecked ? [] : mountsUnder(path);
  if (mounted.length > 0) {
    const where = mounted.map((m) => showPath(m.mountPoint));
    throw new UnionError(path, `refusing to delete: still mounted at ${where.slice(0, 3).join(', ')}${where.length > 3 ? ` and ${where.length - 3} more` : ''}`);
  }
  try {
    remove(Buffer.from(path), top.dev);
  } catch (e) {
    if (e instanceof UnionError) throw e;
    const at = (e as NodeJS.ErrnoException).path ?? path;
    throw new UnionError(String(at), `cannot delete: ${(e as Error).message}`, e);
  }
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

// Paths are Buffers: chroots hold file names that are not UTF-8, which a
// string round trip would mangle into names that do not exist. The device
// check catches a filesystem mounted after the mountinfo check (a bind of
// the same filesystem has the same device; the mountinfo check covers it).
function remove(path: Buffer, dev: number): void {
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  if (!st.isDirectory()) {
    unlinkOrGone(path);
    return;
  }
  if (st.dev !== dev) throw new UnionError(path.toString(), 'refusing to delete: another filesystem is mounted here');
  // Another process may be deleting the same tree (recover --all sweeping
  // what a live end is deleting): what it removed first is simply gone.
  let names: Buffer[];
  try {
    names = readdirSync(path, { encoding: 'buffer' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw e;
  }
  for (const name of names) remove(Buffer.concat([path, SLASH, name]), dev);
  try {
    rmdirSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

function unlinkOrGone(path: Buffer): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
