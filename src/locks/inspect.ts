// Who holds or waits for a lock on a file, from the kernel's own tables.
//
// /proc/locks lists every record lock with its file as MAJOR:MINOR:INODE, but
// shows pid -1 for OFD locks (they belong to an open file description, not a
// process). The owning processes are found through /proc/<pid>/fdinfo/<fd>,
// whose "lock:" lines list the locks held through that very fd.
//
// Inspection never opens the inspected file: in POSIX mode closing any fd of
// a file drops all of this process's locks on it (fcntl(2), "the locks are
// released when ... any file descriptor referring to that file is closed").
import { readFileSync, readdirSync, statSync } from 'node:fs';
import type { LockHolder, LockKind, LockRange } from './errors.js';

export interface LockEntry {
  family: LockHolder['family'];
  kind: LockKind;
  pid: number;
  /** MAJOR:MINOR:INODE exactly as /proc/locks prints it. */
  key: string;
  range: LockRange;
  waiting: boolean;
}

/** The /proc/locks key of a file, from stat(2) with bigint dev/ino. */
export function fileKey(st: { dev: bigint; ino: bigint }): string {
  // Linux's huge dev_t encoding (new_encode_dev), as stat(2) reports it.
  const major = ((st.dev >> 8n) & 0xfffn) | ((st.dev >> 32n) & ~0xfffn);
  const minor = (st.dev & 0xffn) | ((st.dev >> 12n) & ~0xffn);
  return `${hex2(major)}:${hex2(minor)}:${st.ino}`;
}

function hex2(n: bigint): string {
  return n.toString(16).padStart(2, '0');
}

export function fileKeyOfPath(path: string): string {
  return fileKey(statSync(path, { bigint: true }));
}

/** Parses /proc/locks text; lines of other kinds (leases, delegations) are skipped. */
function parseProcLocks(text: string): LockEntry[] {
  const out: LockEntry[] = [];
  for (const line of text.split('\n')) {
    const entry = parseLockLine(line);
    if (entry) out.push(entry);
  }
  return out;
}

// "1: POSIX  ADVISORY  WRITE 2133 fe:00:2146433 5 EOF"
// "1: -> OFDLCK ADVISORY  READ -1 fe:00:2146433 0 0"   (a blocked request)
export function parseLockLine(line: string): LockEntry | undefined {
  const f = line.trim().split(/\s+/);
  if (f.length < 2) return undefined;
  let i = 1;
  const waiting = f[i] === '->';
  if (waiting) i++;
  if (f.length < i + 7) return undefined;
  const fam = f[i];
  const family = fam === 'OFDLCK' ? 'OFD' : fam === 'POSIX' ? 'POSIX' : fam === 'FLOCK' ? 'FLOCK' : undefined;
  const mode = f[i + 2];
  if (!family || (mode !== 'READ' && mode !== 'WRITE')) return undefined;
  const start = Number(f[i + 5]);
  const endText = f[i + 6];
  const len = endText === 'EOF' ? 0 : Number(endText) - start + 1;
  return {
    family,
    kind: mode === 'READ' ? 'shared' : 'exclusive',
    pid: Number(f[i + 3]),
    key: f[i + 4],
    range: { start, len },
    waiting,
  };
}

export function readProcLocks(): LockEntry[] {
  return parseProcLocks(readFileSync('/proc/locks', 'utf8'));
}

export function rangesOverlap(a: LockRange, b: LockRange): boolean {
  const aEnd = a.len === 0 ? Infinity : a.start + a.len;
  const bEnd = b.len === 0 ? Infinity : b.start + b.len;
  return a.start < bEnd && b.start < aEnd;
}

interface FdLock {
  pid: number;
  fd: number;
  entry: LockEntry;
}

/**
 * Finds the processes and fds behind OFD locks on the given files by reading
 * every /proc/<pid>/fdinfo/<fd>. A process may vanish mid-scan; that is fine.
 */
export function ofdOwners(keys: ReadonlySet<string>): FdLock[] {
  const found: FdLock[] = [];
  if (keys.size === 0) return found;
  const inodes = new Set([...keys].map((k) => k.slice(k.lastIndexOf(':') + 1)));
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => d.charCodeAt(0) >= 48 && d.charCodeAt(0) <= 57);
  } catch {
    return found;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fdinfo`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      let text: string;
      try {
        text = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'latin1');
      } catch {
        continue;
      }
      const lockAt = text.indexOf('lock:');
      if (lockAt < 0) continue;
      const ino = /^ino:\s*(\d+)$/m.exec(text)?.[1];
      if (ino !== undefined && !inodes.has(ino)) continue;
      for (const line of text.slice(lockAt).split('\n')) {
        if (!line.startsWith('lock:')) continue;
        const entry = parseLockLine(line.slice(5));
        if (entry && entry.family === 'OFD' && keys.has(entry.key)) found.push({ pid: Number(pid), fd: Number(fd), entry });
      }
    }
  }
  return found;
}

function comm(pid: number): string | undefined {
  if (pid <= 0) return undefined;
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/**
 * Every lock and pending request on the files named by `keys` (optionally
 * only those overlapping `range`), with pids resolved for OFD locks.
 */
export function holdersByKey(keys: ReadonlySet<string>, range?: LockRange): Map<string, LockHolder[]> {
  const result = new Map<string, LockHolder[]>();
  for (const k of keys) result.set(k, []);
  const entries = readProcLocks().filter((e) => keys.has(e.key) && (!range || rangesOverlap(e.range, range)));
  const ofdKeys = new Set(entries.filter((e) => e.family === 'OFD' && !e.waiting).map((e) => e.key));
  const owners = ofdOwners(ofdKeys);
  const add = (key: string, holder: LockHolder) => {
    const c = comm(holder.pid);
    if (c !== undefined) holder.comm = c;
    result.get(key)!.push(holder);
  };
  // An OFD lock belongs to an open file description that any number of
  // processes may share (inherited fds): report every process holding it,
  // since each one keeps it alive. fdinfo cannot tell two OFDs with the same
  // type and range apart, so those are grouped; owners we could not read
  // show as pid -1.
  const groups = new Map<string, LockEntry[]>();
  for (const e of entries) {
    if (e.family !== 'OFD' || e.waiting) {
      add(e.key, { pid: e.pid, kind: e.kind, family: e.family, range: e.range, waiting: e.waiting });
      continue;
    }
    const g = `${e.key} ${e.kind} ${e.range.start} ${e.range.len}`;
    groups.set(g, [...(groups.get(g) ?? []), e]);
  }
  for (const [g, list] of groups) {
    const e = list[0];
    const mine = owners.filter((o) => `${o.entry.key} ${o.entry.kind} ${o.entry.range.start} ${o.entry.range.len}` === g);
    for (const o of mine) add(e.key, { pid: o.pid, fd: o.fd, kind: e.kind, family: 'OFD', range: e.range, waiting: false });
    for (let i = mine.length; i < list.length; i++) add(e.key, { pid: -1, kind: e.kind, family: 'OFD', range: e.range, waiting: false });
  }
  return result;
}

/** Holders of locks on one file (by path; the file is stat'ed, never opened). */
export function lockHolders(path: string, range?: LockRange): LockHolder[] {
  let key: string;
  try {
    key = fileKeyOfPath(path);
  } catch {
    return [];
  }
  return holdersByKey(new Set([key]), range).get(key) ?? [];
}
