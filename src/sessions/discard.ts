// The hidden entries of a state dir that are not sessions: build dirs of
// begins, and session dirs on their way out. Both exist so that no kill can
// leave half a session under a session's id, and both are swept by
// `recover --all` (removeUnpublished in sweep.ts) when their owner is dead.
import { join } from 'node:path';
import { mountsUnder, removeTree, removeTreeOffThread, UnionError } from '../union/index.js';
import { crashPoint } from '../sys/index.js';
import { renameNoReplace } from './native.js';
import { syncDir } from './state.js';
import { ringEnded } from './watch-bell.js';

/**
 * A begin creates its build dir under this prefix, creates and locks the
 * lock file in it, and only then renames it to UNPUBLISHED_PREFIX: a dir
 * named `.new-*` always has a lock file that its begin holds while alive.
 */
export const BUILD_PREFIX = '.init-';
/** A build dir whose liveness byte its begin holds; published as `<id>` when complete. */
export const UNPUBLISHED_PREFIX = '.new-';
/** A session dir taken out of the sessions' namespace by end, being deleted. */
export const GONE_PREFIX = '.gone-';

let discarded = 0;

/**
 * Deletes a session's directory in two steps: an atomic rename to
 * `.gone-<id>.<pid>-<n>` (the id is free from then on), then the deletion.
 * A kill during the deletion, which takes as long as the session wrote,
 * leaves a `.gone-*` dir that recover --all deletes, never a dir under the
 * id without its lock file or state.json (which would list as corrupt and
 * could not be ended). Refuses, leaving the dir in place, while anything
 * is mounted under it. A missing dir is not an error.
 * Preconditions: liveness EX held (or the dir never published).
 */
export function discardSessionDir(stateDir: string, id: string): void {
  const gone = retireSessionDir(stateDir, id);
  if (gone) removeTree(gone, { mountsChecked: true });
}

/** discardSessionDir with the deletion off the event loop when it is big (removeTreeOffThread): for servers. */
export async function discardSessionDirOffThread(stateDir: string, id: string): Promise<void> {
  const gone = retireSessionDir(stateDir, id);
  if (gone) await removeTreeOffThread(gone, { mountsChecked: true });
}

/** The first step: the checked, durable rename to `.gone-*`; its path, or undefined when there was no dir. */
function retireSessionDir(stateDir: string, id: string): string | undefined {
  const dir = join(stateDir, id);
  const mounted = mountsUnder(dir);
  if (mounted.length > 0) throw new UnionError(dir, `refusing to delete: still mounted at ${mounted[0]!.mountPoint}`);
  const gone = join(stateDir, `${GONE_PREFIX}${id}.${process.pid}-${++discarded}`);
  try {
    renameNoReplace(dir, gone);
  } catch (e) {
    if ((e as { errno?: number }).errno === 2) return undefined; // ENOENT: removed already
    throw e;
  }
  // Durable before the deletion starts: a power cut then leaves the session
  // whole under its id, or out of it as .gone-* for recover to delete; the
  // deletion itself never needs to be.
  syncDir(stateDir);
  crashPoint('discard:renamed');
  // The id is gone: watchers report it now, not after the deletion (watch-bell.ts).
  ringEnded(stateDir, id);
  return gone;
}
