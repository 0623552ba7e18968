// Deleting a session directory without reaching into anything mounted in it,
// and without being redirected: the walk works relative to directory fds
// (openat/unlinkat, as systemd's rm_rf_children() and Rust's fix of
// remove_dir_all for CVE-2022-21658), never by a path below the top. A path
// re-resolves every component on every call, so a process that renames a
// directory the walk is inside and puts a symbolic link in its place would
// make root delete whatever the link points to.
//
// This file: the entry points and the removal thread; remove-walk.ts the walk.
import { UnionError } from './errors.js';
import { closeTop, openTop, walk } from './remove-walk.js';

/**
 * Deletes `dir` and everything in it. Refuses while anything is mounted at
 * or under it: deleting through a bind mount deletes the mounted data (with
 * union-type=none, the source itself). Symbolic links are removed, never
 * followed, and no rename made meanwhile redirects the walk (see walk()).
 * A missing `dir` is not an error, so a retried removal succeeds.
 * `mountsChecked`: the caller has just read mountinfo for `dir` (or for the
 * name it had before a rename), as discardSessionDir does; reading it again
 * costs the kernel a walk of every mount, 5,000 on a host with 1,000 sessions.
 * The device and mount-root checks of every directory still stop at any
 * other mount.
 */
export function removeTree(dir: string, { mountsChecked = false } = {}): void {
  const top = openTop(dir, mountsChecked);
  if (!top) return;
  try {
    walk(top, { left: Infinity });
  } finally {
    closeTop(top);
  }
}

/**
 * Entries removeTreeOffThread deletes on the caller's thread before it
 * hands the rest to a worker. A session's own files are a few dozen, gone
 * in about a millisecond, while a cold worker adds ~80 ms (piscina and a
 * Node thread; the loop is free meanwhile, but the end waits). Deleting
 * costs ~6-7 us an entry (on this project's ext4 machines, bench/remove.ts:
 * 100,000 files in 100 dirs 0.65 s; the path-based walk before took 1.1 s),
 * so this holds a server's event loop a few ms at most.
 */
export const INLINE_ENTRIES = 500;

/**
 * removeTree for a server's event loop: the same checks, made here, then
 * the first INLINE_ENTRIES entries deleted here, and whatever is left (a
 * session that wrote a build tree: 100,000 files take ~0.7 s) deleted by
 * a worker thread while the loop serves others. Resolves once all is gone.
 * The worker walks from the very fds opened here (a thread shares the
 * process's fd table): nothing is looked up by path again.
 */
export async function removeTreeOffThread(dir: string, { mountsChecked = false } = {}): Promise<void> {
  const top = openTop(dir, mountsChecked);
  if (!top) return;
  try {
    if (walk(top, { left: INLINE_ENTRIES })) return;
    const task: RemovalTask = { parentFd: top.parentFd, fd: top.fd, name: top.name, path: top.path, dev: top.dev };
    const failed = (await (await removalPool()).run(task)) as RemovalFailure | undefined;
    if (failed) throw new UnionError(failed.path, failed.reason);
  } finally {
    // After the worker is done with them (or never started): this thread owns both fds.
    closeTop(top);
  }
}

/**
 * What the worker is given: the open top of the tree and its parent (fds
 * it borrows, never closes), the top's name in the parent (NUL-terminated),
 * its path for messages, and its device.
 */
export interface RemovalTask {
  parentFd: number;
  fd: number;
  name: Uint8Array;
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
  const buf = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);
  try {
    walk({ parentFd: task.parentFd, fd: task.fd, name: buf(task.name), path: buf(task.path), dev: task.dev }, { left: Infinity });
    return undefined;
  } catch (e) {
    if (e instanceof UnionError) return { path: e.path, reason: e.reason };
    return { path: buf(task.path).toString(), reason: `cannot delete: ${(e as Error).message}` };
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
