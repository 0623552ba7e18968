// The sweep of recover --all (and of a supervisor once it serves): the
// hidden leftovers of dead processes (see discard.ts).
import { lstatSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FileLock } from '../locks/index.js';
import { crashPoint } from '../sys/index.js';
import { removeTree, removeTreeOffThread, UnionError } from '../union/index.js';
import { BUILD_PREFIX, GONE_PREFIX, UNPUBLISHED_PREFIX } from './discard.js';
import { errnoCode, tryLivenessAbandoned } from './locks.js';
import type { RecoverReport } from './recover-all.js';

/** A build dir younger than this is left alone even when unlocked: its begin may be between creating it and locking it. */
const BUILD_GRACE_MS = 60_000;

/**
 * Removes the hidden leftovers of dead processes (see discard.ts): build
 * dirs of begins (`.init-*`, `.new-*`) and session dirs that an end took
 * out of the namespace and was deleting (`.gone-*`). Their owner holds the
 * liveness byte of the lock file inside while alive, so a dir whose lock we
 * get exclusively is abandoned; we keep that lock while deleting. The lock
 * file is never created here: a `.new-*` dir always has one (its begin
 * renames it to that name only once locked), a `.gone-*` dir loses it to
 * the deletion (deleting alongside a live end is harmless), and an
 * `.init-*` dir is left alone while young, locked or not. Nothing in these
 * dirs is mounted, nor is it a session anyone can reach by its id.
 * `offThread`: big dirs are deleted in a worker (removeTreeOffThread), for a
 * server; `signal` stops the sweep between dirs.
 */
export async function removeUnpublished(stateDir: string, o: { offThread?: boolean; signal?: AbortSignal } = {}): Promise<RecoverReport[]> {
  const out: RecoverReport[] = [];
  let names: string[];
  try {
    names = readdirSync(stateDir).filter((n) => [BUILD_PREFIX, UNPUBLISHED_PREFIX, GONE_PREFIX].some((p) => n.startsWith(p)));
  } catch {
    return out;
  }
  for (const name of names.sort()) {
    // Stops between dirs (a supervisor that stops); the rest waits for the next sweep.
    if (o.signal?.aborted) break;
    const dir = join(stateDir, name);
    let lock: FileLock | undefined;
    try {
      const st = lstatSync(dir);
      if (!st.isDirectory()) throw new UnionError(dir, 'is not a directory: not a session being built or deleted, left alone');
      const abandoned = tryLivenessAbandoned(dir);
      if (!abandoned) continue; // its owner is alive
      lock = abandoned.lock;
      // Even with its lock free: its begin may have made the file and not yet locked it.
      if (name.startsWith(BUILD_PREFIX) && Date.now() - st.mtimeMs < BUILD_GRACE_MS) continue;
      if (o.offThread) {
        await removeTreeOffThread(dir);
      } else {
        removeTree(dir);
      }
      crashPoint('recover:unpublished-removed');
      out.push({ id: name, outcome: name.startsWith(GONE_PREFIX) ? 'removed-ended' : 'removed-unpublished' });
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') continue; // published or removed meanwhile
      out.push({ id: name, outcome: 'failed', error: e });
    } finally {
      lock?.close();
    }
  }
  return out;
}
