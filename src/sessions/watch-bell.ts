// The watch's doorbell: `<state-dir>/.manage/changes/`, an empty directory
// in which begin and end each make and at once remove one marker named
// after the session, right after its dir appeared under its id (begin's
// publishing rename) or left it (end's rename to `.gone-*`).
//
// Why a doorbell, and not a watch on the state dir: chokidar lists a
// directory it watches again, lstat()ing every entry, on every event in it
// (chokidar 5.0.0, handler.js `_handleRead`; `ignored` is applied after the
// lstat, and its 1 s throttle ends with each listing). With 1,000 sessions
// that is 1,000 lstats per begin or end, five times what the begin or end
// itself costs (bench/watch.ts). No public option of chokidar avoids a
// listing per event; a directory that is empty between rings makes each
// listing cost one readdir. The marker's name tells the watch which session
// to look at; its existence means nothing, so a ring lost (an older warden,
// a dir made or removed by hand, a ring that failed) only delays the event
// until the watch's own listing of the state dir (watch.ts, LIST_MS).
//
// Under `.manage` (0700, warden's own), not beside the sessions: every
// reader of the state dir already skips it, and nobody but root can ring.
import { mkdirSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { MANAGE_DIR } from './lock-files.js';

/** The doorbell directory, relative to the state dir. */
export const BELL_DIR = join(MANAGE_DIR, 'changes');

/** Separates the session id from the ringer's pid and count in a marker's name (never in an id: ID_PATTERN). */
const SEP = '@';

let rung = 0;

/** The doorbell of `stateDir` (absolute). */
export function bellDirOf(stateDir: string): string {
  return join(stateDir, BELL_DIR);
}

/** Creates the doorbell (and `.manage`) if missing: 0700, as `.manage` is. */
export function ensureBellDir(stateDir: string): string {
  const dir = bellDirOf(stateDir);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  return dir;
}

/**
 * Tells watchers of `stateDir` that session `id` changed (its dir appeared
 * or went): mkdir and rmdir of `<id>@<pid>-<n>` in the doorbell, two
 * inotify events with the id in their name. A unique name per ring, so that
 * two rings for one id never fold into one (an EEXIST would ring nothing).
 * Best effort: a failure (EROFS, ENOSPC) never fails the begin or end that
 * rings, it only delays the event until the watch lists the state dir.
 */
export function ringBell(stateDir: string, id: string): void {
  const marker = join(bellDirOf(stateDir), `${id}${SEP}${process.pid}-${++rung}`);
  try {
    try {
      mkdirSync(marker, { mode: 0o700 });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      ensureBellDir(stateDir);
      mkdirSync(marker, { mode: 0o700 });
    }
    rmdirSync(marker);
  } catch {
    // Best effort (see above).
  }
}

/** The session id a marker name rings for; undefined for a name that is no marker. */
export function bellId(marker: string): string | undefined {
  const at = marker.lastIndexOf(SEP);
  return at > 0 ? marker.slice(0, at) : undefined;
}
