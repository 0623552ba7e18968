// The watch's doorbell: `<state-dir>/.manage/changes/`, a directory that
// chokidar polls (watch.ts), and in it `rings`, a log to which begin appends
// `+ ID CHROOT` when the session's dir appeared under its id (its publishing
// rename) and end `- ID` when it left it (its rename to `.gone-*`).
// The watch looks at the session itself; the line's kind and chroot only
// tell it about a session that came and went between two of its looks,
// which it could not see otherwise.
//
// A ring is two steps: the line appended to the log, then a chmod of the
// doorbell to the mode it has (0700), which changes nothing but the
// directory's ctime. chokidar, polling the directory (fs.watchFile), sees a
// changed stat and emits `raw`; the watch then reads the log from where it
// left off and looks at those sessions only. Why these steps:
//  - chokidar 5.0.0 lists a directory it watches again, lstat()ing every
//    entry, on every inotify event in it (handler.js `_handleRead`; `ignored`
//    filters after the lstat, and its 1 s throttle ends with each listing):
//    ~0.5 ms of CPU per event even for an empty directory (readdirp's
//    streams), more than the watch's whole share of a begin and end
//    (bench/watch.ts). Polling, it lists only when the directory's mtime
//    or size grew; a ring changes its ctime alone, so no listing runs, and
//    however many rings come within one interval cost one look.
//  - The id comes from the log, not from listing the state dir (0.7 ms with
//    1,000 sessions).
//  - A log, not the marker files an inotify doorbell can use: a poll sees
//    only what is there when it looks, and a marker made and removed
//    between two polls would say nothing.
//  - The log is appended before the chmod: a poll that sees the chmod
//    finds the id already there.
//
// A ring is best effort: one lost (an older warden, a dir made or removed by
// hand, a ring that failed, a rotation raced, below) only delays the event
// until the watch's own listing of the state dir (watch.ts, LIST_MS).
//
// Under `.manage` (0700, warden's own), not beside the sessions: every
// reader of the state dir already skips it, and nobody but root can ring.
import { chmodSync, closeSync, constants, fstatSync, lstatSync, mkdirSync, openSync, readSync, renameSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { MANAGE_DIR } from './lock-files.js';

/** The doorbell directory, relative to the state dir. */
export const BELL_DIR = join(MANAGE_DIR, 'changes');
/** The log of rings in the doorbell. */
const LOG = 'rings';
/** What a log grown past LOG_MAX is renamed to by the ring that grew it (the previous one replaced). */
const LOG_OLD = 'rings.old';
/** ~1,500 rings: a reader a whole log behind finds it renamed, and lists names instead. */
const LOG_MAX = 64 * 1024;
const BELL_MODE = 0o700;

/** The doorbell of `stateDir` (absolute). */
function bellDirOf(stateDir: string): string {
  return join(stateDir, BELL_DIR);
}

/** Creates the doorbell (and `.manage`) if missing: 0700, as `.manage` is. */
export function ensureBellDir(stateDir: string): string {
  const dir = bellDirOf(stateDir);
  mkdirSync(dir, { recursive: true, mode: BELL_MODE });
  return dir;
}

// libuv opens every fd O_CLOEXEC.
const APPEND = constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW;

/** A ring read from the log: session `id` appeared (as a session of chroot `begun`) or went. */
export interface Ring {
  id: string;
  /** The chroot of a session that appeared; undefined: it went. */
  begun?: string;
}

/** Tells watchers of `stateDir` that session `id` of `chroot` appeared under its id. */
export function ringBegun(stateDir: string, id: string, chroot: string): void {
  ring(stateDir, `+ ${id} ${chroot}\n`);
}

/** Tells watchers of `stateDir` that session `id` left its id (ended). */
export function ringEnded(stateDir: string, id: string): void {
  ring(stateDir, `- ${id}\n`);
}

/**
 * One line in the log, then the doorbell's ctime. Best effort: a failure
 * (EROFS, ENOSPC) never fails the begin or end that rings, it only delays
 * the event until the watch lists the state dir.
 */
function ring(stateDir: string, line: string): void {
  const bell = bellDirOf(stateDir);
  try {
    let fd: number;
    try {
      fd = openSync(join(bell, LOG), APPEND, 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      ensureBellDir(stateDir);
      fd = openSync(join(bell, LOG), APPEND, 0o600);
    }
    try {
      // One write(2) with O_APPEND: lines of concurrent ringers never interleave.
      writeSync(fd, line);
      // Grown past its bound: renamed aside, the next ring starts a new one.
      // Two ringers may both rename (the second moves a fresh log aside):
      // readers then miss its few lines until they list names.
      if (fstatSync(fd).size > LOG_MAX) renameSync(join(bell, LOG), join(bell, LOG_OLD));
    } finally {
      closeSync(fd);
    }
    chmodSync(bell, BELL_MODE);
  } catch {
    // Best effort (see above).
  }
}

/** A log line as a Ring; undefined for a line that is none (the log is root's, but read defensively). */
function parseRing(line: string): Ring | undefined {
  const [kind, id, chroot, extra] = line.split(' ');
  if (!id || extra !== undefined) return undefined;
  if (kind === '+' && chroot) return { id, begun: chroot };
  if (kind === '-' && chroot === undefined) return { id };
  return undefined;
}

/**
 * A watcher's read position in the doorbell's log. Starts at its end (rings
 * before the watch are the starting point, not events); `read()` returns the
 * ids rung since, or undefined when some may have been lost (a whole log was
 * renamed aside unread): the caller then lists the state dir's names. One
 * owner; `close()` is idempotent.
 */
export class BellReader {
  readonly #path: string;
  readonly #oldPath: string;
  #fd: number | undefined;
  #ino: number | undefined;
  /** While this reader has no log: the one that was aside when it lost its own (or started; identityAt). */
  #oldBase: string | undefined;
  #offset = 0;
  /** The start of a line whose newline has not been read yet. */
  #partial = '';
  readonly #buf = Buffer.allocUnsafe(16 * 1024);

  constructor(stateDir: string) {
    this.#path = join(bellDirOf(stateDir), LOG);
    this.#oldPath = join(bellDirOf(stateDir), LOG_OLD);
    this.#oldBase = identityAt(this.#oldPath);
    this.#open(true);
  }

  /** Opens the log now at the path (if any): from its end when `atEnd`, else from its start. */
  #open(atEnd: boolean): void {
    this.#fd = undefined;
    this.#ino = undefined;
    this.#partial = '';
    let fd: number;
    try {
      fd = openSync(this.#path, constants.O_RDONLY | constants.O_NOFOLLOW);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      return;
    }
    const st = fstatSync(fd);
    this.#fd = fd;
    this.#ino = st.ino;
    this.#offset = atEnd ? st.size : 0;
  }

  /** Rings since the last read, in order; undefined: some may be lost. */
  read(): Ring[] | undefined {
    const rings: Ring[] = [];
    if (this.#fd !== undefined) this.#drain(rings);
    const now = inoAt(this.#path);
    let lost = false;
    if (this.#fd !== undefined) {
      if (now === this.#ino) return rings;
      // Ours was renamed aside. Lines of ringers that opened it before the
      // rename are read (one that writes after this drain is missed: a
      // window of microseconds), then it is let go.
      this.#drain(rings);
      closeSync(this.#fd);
      this.#fd = undefined;
      // Ours must be the log renamed aside last: else another went by unread
      // (its inode is ours as long as the fd was open: no reuse).
      lost = inoAt(this.#oldPath) !== this.#ino;
      this.#oldBase = identityAt(this.#oldPath);
    } else {
      // Without a log: none may have been renamed aside since ours went (or this reader started).
      const old = identityAt(this.#oldPath);
      lost = old !== this.#oldBase;
      this.#oldBase = old;
    }
    if (now !== undefined) {
      this.#open(false);
      if (this.#fd !== undefined) this.#drain(rings);
    }
    return lost ? undefined : rings;
  }

  /**
   * Reads from the offset to the end of the open log; complete lines go to
   * `rings`. A short read is the end (a regular file's): no second pread to
   * be told so, once per event. What a ringer appends after it, its chmod
   * brings to the next poll.
   */
  #drain(rings: Ring[]): void {
    for (;;) {
      const n = readSync(this.#fd!, this.#buf, 0, this.#buf.length, this.#offset);
      this.#offset += n;
      const lines = (this.#partial + this.#buf.toString('latin1', 0, n)).split('\n');
      this.#partial = lines.pop()!;
      for (const l of lines) {
        const r = parseRing(l);
        if (r) rings.push(r);
      }
      if (n < this.#buf.length) return;
    }
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

/**
 * Inode and ctime of the file at `path`: the inode of a log this reader let
 * go may be reused by a later one, with a later ctime (a rename sets it).
 */
function identityAt(path: string): string | undefined {
  const st = lstatSync(path, { bigint: true, throwIfNoEntry: false });
  return st && `${st.ino}:${st.ctimeNs}`;
}

/** The inode at `path` (lstat), undefined when nothing is there. */
function inoAt(path: string): number | undefined {
  return lstatSync(path, { throwIfNoEntry: false })?.ino;
}
