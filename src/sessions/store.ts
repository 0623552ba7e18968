// The state dir: one directory per session, found by id, listed without
// ever letting one bad entry spoil the rest (schroot 1.6 fails every
// command when a single session file is malformed).
import { chmodSync, lstatSync, mkdirSync, readdirSync, type BigIntStats, type Dirent, type Stats } from 'node:fs';
import { untrusted } from '../sys/index.js';
import { join, resolve } from 'node:path';
import { fileKey, lockHolders, rangesOverlap, readProcLocks, type LockHolder } from '../locks/index.js';
import { SessionCorruptError, SessionNotFoundError, StateDirAccessError, StateDirError, StateDirUntrustedError } from './errors.js';
import { ID_PATTERN, isReservedName, validateId } from './ids.js';
import { livenessHeld } from './locks.js';
import { LIVENESS, MANAGE_DIR, SESSION_LOCK_FILE } from './lock-files.js';
import { markTopDirectory } from './native.js';
import { readState, type SessionState } from './state.js';

/** Whether a state-dir entry name is meant to be a session: dot entries (`.gitignore` too) and the supervisor's files are warden's own. */
export function isSessionName(name: string): boolean {
  return !name.startsWith('.') && !isReservedName(name);
}

/** State dirs this process has already marked (or tried to) as a top directory. */
const marked = new Set<string>();

/**
 * Marks state dir `dir` (absolute) as the top of directory hierarchies,
 * once per process, where the filesystem has that hint (`markTopDirectory`):
 * session dirs are then spread over the filesystem's block groups instead
 * of crowding their parent's. Called by begin, the one creator of session
 * dirs, so that clients and readers never load koffi for it.
 */
export function markStateDir(dir: string): void {
  if (marked.has(dir)) return;
  marked.add(dir);
  markTopDirectory(dir);
}

/**
 * The state dir's mode: traversable, not listable (DESIGN.md, "Files"), so
 * nobody else learns the session ids, and a session's `root` and the
 * supervisor's socket can still be reached by name.
 */
const STATE_DIR_MODE = 0o711;

/**
 * Creates the state dir if needed (0711) and refuses one that is a symlink,
 * not a directory, or not root's alone (StateDirUntrustedError: another
 * user could plant sessions there). One of ours that others may list or
 * read (0755, as older versions made it) is narrowed to 0711, its `.manage`
 * to 0700. Returns it absolute.
 */
export function ensureStateDir(stateDir: string): string {
  const dir = resolve(stateDir);
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new StateDirError(dir, (e as Error).message, e);
    try {
      mkdirSync(dir, { recursive: true, mode: STATE_DIR_MODE });
    } catch (e2) {
      throw new StateDirError(dir, `cannot create it: ${(e2 as Error).message}`, e2);
    }
    st = lstatSync(dir);
  }
  if (st.isSymbolicLink()) throw new StateDirError(dir, 'is a symbolic link (refused; point --state-dir at the real directory)');
  if (!st.isDirectory()) throw new StateDirError(dir, 'is not a directory');
  const reason = untrusted(st, 'it is');
  if (reason !== undefined) throw new StateDirUntrustedError(dir, reason);
  if (st.mode & 0o066 && st.uid === process.geteuid?.()) narrow(dir, st);
  return dir;
}

// Read and write bits for group and others go; search bits stay. A failure
// (a read-only filesystem) leaves the dir as it was: it was usable so.
function narrow(dir: string, st: Stats): void {
  try {
    chmodSync(dir, st.mode & 0o7711);
    const manage = join(dir, MANAGE_DIR);
    if (lstatSync(manage).isDirectory()) chmodSync(manage, 0o700);
  } catch {
    // ENOENT (.manage not made yet), EROFS
  }
}

/**
 * The directory of session `id`, checked: the id is valid, the entry exists
 * and is a real directory (a symlink planted in its place is refused, not
 * followed), and it has a regular lock file.
 */
export function sessionDirOf(stateDir: string, id: string): string {
  validateId(id);
  const dir = join(stateDir, id);
  let st: Stats;
  try {
    st = lstatSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') throw new SessionNotFoundError(id, stateDir);
    throw new SessionCorruptError(id, (e as Error).message, e);
  }
  const bad = checkEntry(dir, st).problem;
  if (bad) throw new SessionCorruptError(id, bad);
  return dir;
}

/** Why a state-dir entry cannot be a session (undefined when its shape is right), and the /proc/locks key of its lock file. */
function checkEntry(dir: string, st: Pick<Stats, 'isDirectory' | 'isSymbolicLink'>): { problem?: string; lockKey?: string } {
  if (st.isSymbolicLink()) return { problem: 'session directory is a symbolic link (refused)' };
  if (!st.isDirectory()) return { problem: 'not a directory' };
  let lock: BigIntStats;
  try {
    lock = lstatSync(join(dir, SESSION_LOCK_FILE), { bigint: true });
  } catch {
    return { problem: 'lock file is missing' };
  }
  if (lock.isSymbolicLink()) return { problem: 'lock file is a symbolic link (refused)' };
  if (!lock.isFile()) return { problem: 'lock file is not a regular file' };
  return { lockKey: fileKey(lock) };
}

/**
 * Files with a granted lock on the liveness byte, from one read of
 * /proc/locks. A session whose lock file is among them is active for sure;
 * the others still get the stale probe (F_GETLK), which also sees holders
 * that /proc/locks hides (POSIX locks of processes in other pid
 * namespaces). Listing 10,000 sessions, half of them held, probes 5,000.
 *
 * Only worth it for many sessions: the first read of /proc/locks in a while
 * costs 5-20 ms on these machines (the kernel takes its file-lock rwsem for
 * writing, which waits for an RCU grace period), while an F_GETLK probe
 * costs microseconds.
 */
const PROC_LOCKS_FROM = 200;

function livenessLockedFiles(): Set<string> {
  try {
    return new Set(
      readProcLocks()
        .filter((e) => !e.waiting && rangesOverlap(e.range, LIVENESS))
        .map((e) => e.key),
    );
  } catch {
    return new Set(); // no /proc: every session gets the probe
  }
}

export type EntryStatus = 'active' | 'stale' | 'corrupt';

export interface SessionEntry {
  /** The entry's name (a session id unless status is corrupt). */
  id: string;
  dir: string;
  /** From the liveness lock: active when anything holds it, stale when nothing does. */
  status: EntryStatus;
  /** Why the entry is corrupt. */
  reason?: string;
  state?: SessionState;
  /** Holders of the liveness byte (only with `holders: true`). */
  holders?: LockHolder[];
}

export interface ListOptions {
  /** Also find the pids behind each liveness lock (a /proc scan: slower). */
  holders?: boolean;
}

/** Every session in the state dir; a missing state dir has none. Sorted by id. */
export function listSessions(stateDir: string, opts: ListOptions = {}): SessionEntry[] {
  let dirents: Dirent[];
  try {
    dirents = readdirSync(stateDir, { withFileTypes: true });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    if ((e as NodeJS.ErrnoException).code === 'EACCES') throw new StateDirAccessError(stateDir);
    throw new StateDirError(stateDir, (e as Error).message, e);
  }
  const out: SessionEntry[] = [];
  const locked = dirents.length > PROC_LOCKS_FROM ? livenessLockedFiles() : undefined;
  for (const d of dirents.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const name = d.name;
    // Dot entries are warden's own (.manage, sessions being built); the rest
    // must be sessions, so a stray file is reported rather than hidden.
    if (!isSessionName(name)) continue;
    // readdir's d_type spares an lstat per entry; a filesystem that does not
    // fill it in gets the lstat.
    const known = d.isDirectory() || d.isSymbolicLink() || d.isFile() ? d : undefined;
    out.push(inspectEntry(stateDir, name, opts, locked, known));
  }
  return out;
}

/** inspectEntry's options beyond listSessions'. */
export interface InspectOptions extends ListOptions {
  /**
   * Whether the liveness lock is probed (default true). false: an entry
   * whose shape is right is reported `active`, for a caller that probes
   * liveness on its own schedule (the watch: watch-table.ts).
   */
  liveness?: boolean;
}

/** One entry of the state dir, never throwing: problems become `corrupt` with the reason. */
export function inspectEntry(
  stateDir: string,
  name: string,
  opts: InspectOptions = {},
  locked?: ReadonlySet<string>,
  type?: Pick<Stats, 'isDirectory' | 'isSymbolicLink'>,
): SessionEntry {
  const dir = join(stateDir, name);
  const corrupt = (reason: string): SessionEntry => ({ id: name, dir, status: 'corrupt', reason });
  if (!ID_PATTERN.test(name)) return corrupt('name is not a valid session id');
  let st: Pick<Stats, 'isDirectory' | 'isSymbolicLink'>;
  try {
    st = type ?? lstatSync(dir);
  } catch (e) {
    return corrupt((e as Error).message);
  }
  const { problem, lockKey } = checkEntry(dir, st);
  if (problem) return corrupt(problem);
  let held: boolean;
  try {
    held = opts.liveness === false || (lockKey !== undefined && locked?.has(lockKey) === true) || livenessHeld(dir);
  } catch (e) {
    return corrupt(`lock file: ${(e as Error).message}`);
  }
  const holders = opts.holders ? lockHolders(join(dir, SESSION_LOCK_FILE), LIVENESS).filter((h) => !h.waiting) : undefined;
  let state: SessionState;
  try {
    state = readState(dir);
  } catch (e) {
    return { ...corrupt((e as Error).message), holders };
  }
  if (state.id !== name) return { ...corrupt(`state.json names session ${JSON.stringify(state.id)}`), state, holders };
  return { id: name, dir, status: held ? 'active' : 'stale', state, holders };
}
