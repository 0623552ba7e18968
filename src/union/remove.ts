// Deleting a session directory without reaching into anything mounted in it.
import { lstatSync, readdirSync, realpathSync, rmdirSync, unlinkSync, type Stats } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { UnionError, showPath } from './errors.js';
import { mountsUnder } from './mountinfo.js';

const SLASH = Buffer.from('/');
/** Bytes a directory entry takes at least, on the filesystems sessions live on. */
const DIRENT_BYTES = 16;

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
  const top = checkedTop(dir, mountsChecked);
  if (top) attempt(top.path, () => remove(top.path, top.dev, { left: Infinity }));
}

/**
 * Entries removeTreeOffThread deletes on the caller's thread before it
 * hands the rest to a worker. A session's own files are a few dozen, gone
 * in about a millisecond, while a cold worker adds ~80 ms (piscina and a
 * Node thread; the loop is free meanwhile, but the end waits). Deleting
 * costs ~20 us an entry (on this project's ext4 machines: 50 entries
 * 1.2 ms, 500 in 5 dirs 10-13 ms, 2,000 ~30 ms, 100,000 1.4 s), so this
 * holds a server's event loop ~10 ms at most.
 */
export const INLINE_ENTRIES = 500;

/**
 * removeTree for a server's event loop: the same checks, made here, then
 * the first INLINE_ENTRIES entries deleted here, and whatever is left (a
 * session that wrote a build tree: 100,000 files take 1.4 s) deleted by
 * a worker thread while the loop serves others. Resolves once all is gone.
 */
export async function removeTreeOffThread(dir: string, { mountsChecked = false } = {}): Promise<void> {
  const top = checkedTop(dir, mountsChecked);
  if (!top) return;
  if (attempt(top.path, () => remove(top.path, top.dev, { left: INLINE_ENTRIES }))) return;
  const failed = await removalPool().then((pool) => pool.run({ path: top.path, dev: top.dev } satisfies RemovalTask) as Promise<RemovalFailure | undefined>);
  if (failed) throw new UnionError(failed.path, failed.reason);
}

/** What the worker is given: the checked top of the tree and its device. */
export interface RemovalTask {
  path: Uint8Array;
  dev: number;
}
/** A removal that stopped, as the worker reports it (an Error loses its class crossing threads). */
export interface RemovalFailure {
  path: string;
  reason: string;
}

/** The worker's whole job (remove-worker.ts): the walk of removeTree, without a budget. */
export function removeInWorker(task: RemovalTask): RemovalFailure | undefined {
  const path = Buffer.from(task.path.buffer, task.path.byteOffset, task.path.byteLength);
  try {
    attempt(path, () => remove(path, task.dev, { left: Infinity }));
    return undefined;
  } catch (e) {
    const u = e as UnionError;
    return { path: u.path, reason: u.reason };
  }
}

/**
 * The deletions of a process share one thread: they are the kernel's work
 * on one filesystem, and a second thread would mostly wait on the same
 * directory locks. piscina is loaded with the first big deletion; the
 * thread exits after 30 s idle (an idle Node thread is ~8 MB), and nothing
 * of the pool keeps a process alive.
 */
let pool: Promise<import('piscina').Piscina> | undefined;
function removalPool(): Promise<import('piscina').Piscina> {
  pool ??= import('piscina').then(
    ({ Piscina }) =>
      new Piscina({
        filename: new URL('./remove-worker.js', import.meta.url).href,
        minThreads: 0,
        maxThreads: 1,
        idleTimeout: 30_000,
      }),
  );
  return pool;
}

/** Ends the removal thread (tests; a supervisor that stops): deletions under way finish first. */
export async function shutdownRemovalPool(): Promise<void> {
  const p = pool;
  pool = undefined;
  if (p) await (await p).destroy();
}

/**
 * The top of a tree to delete, checked: not `/`, not a link, nothing
 * mounted at or under it. undefined when it does not exist.
 */
function checkedTop(dir: string, mountsChecked: boolean): { path: Buffer; dev: number } | undefined {
  const path = resolveParent(dir);
  if (path === '/') throw new UnionError(dir, 'refusing to delete the root directory');
  let top: Stats;
  try {
    top = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new UnionError(path, `cannot delete: ${(e as Error).message}`, e);
  }
  // A session directory is never a link; one here means something is wrong.
  if (top.isSymbolicLink()) throw new UnionError(path, 'refusing to delete: it is a symbolic link, not a directory');
  const mounted = mountsChecked ? [] : mountsUnder(path);
  if (mounted.length > 0) {
    const where = mounted.map((m) => showPath(m.mountPoint));
    throw new UnionError(path, `refusing to delete: still mounted at ${where.slice(0, 3).join(', ')}${where.length > 3 ? ` and ${where.length - 3} more` : ''}`);
  }
  return { path: Buffer.from(path), dev: top.dev };
}

/** Runs a walk; any failure but a UnionError becomes one naming the path it failed at. */
function attempt<T>(path: Buffer, walk: () => T): T {
  try {
    return walk();
  } catch (e) {
    if (e instanceof UnionError) throw e;
    const at = (e as NodeJS.ErrnoException).path ?? path.toString();
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
// `budget.left` counts the entries still to be deleted here; the walk
// returns false, with the tree partly deleted, once it runs out.
function remove(path: Buffer, dev: number, budget: { left: number }): boolean {
  if (budget.left-- <= 0) return false;
  let st: Stats;
  try {
    st = lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw e;
  }
  if (!st.isDirectory()) {
    unlinkOrGone(path);
    return true;
  }
  if (st.dev !== dev) throw new UnionError(path.toString(), 'refusing to delete: another filesystem is mounted here');
  // A directory too big for what is left of the budget is not even listed
  // here: listing 100,000 names alone holds the loop for tens of ms. A
  // directory's size grows with its entries (ext4: ~20-30 bytes per short
  // name; tmpfs: 20 per entry), so this is a cheap, generous bound.
  if (st.size > budget.left * DIRENT_BYTES) return false;
  // Another process may be deleting the same tree (recover --all sweeping
  // what a live end is deleting): what it removed first is simply gone.
  let names: Buffer[];
  try {
    names = readdirSync(path, { encoding: 'buffer' });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw e;
  }
  for (const name of names) if (!remove(Buffer.concat([path, SLASH, name]), dev, budget)) return false;
  try {
    rmdirSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  return true;
}

function unlinkOrGone(path: Buffer): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
