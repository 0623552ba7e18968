// What a test must leave as it found it: fds, kernel locks, children.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { readProcLocks, holdersByKey, fileKeyOfPath } from '../../src/locks/index.js';

/** Every fd of this process as `fd->target`, pipes and sockets included (by inode), sorted. */
export function allFds(): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      out.push(`${fd}->${readlinkSync(`/proc/self/fd/${fd}`)}`);
    } catch {
      // the fd readdir itself used
    }
  }
  return out.sort();
}

/** Our fds that name files (lock files are files; pipes and event fds of worker threads are not counted). */
export function fileFds(): string[] {
  return allFds().filter((e) => {
    const target = e.slice(e.indexOf('->') + 2);
    return target.startsWith('/') && !target.startsWith('/dev/') && !target.startsWith('/proc/');
  });
}

/** Locks of this process in /proc/locks: POSIX by pid, OFD by the fds that hold them. */
export function ourLocks(paths: readonly string[] = []): string[] {
  const pid = process.pid;
  const found = readProcLocks()
    .filter((e) => e.pid === pid)
    .map((e) => `${e.family} ${e.kind} ${e.key} ${e.range.start}+${e.range.len}`);
  const keys = new Set<string>();
  for (const p of paths) {
    try {
      keys.add(fileKeyOfPath(p));
    } catch {
      // deleted
    }
  }
  for (const [key, holders] of holdersByKey(keys)) {
    for (const h of holders) if (h.pid === pid && h.family === 'OFD') found.push(`OFD ${h.kind} ${key} ${h.range.start}+${h.range.len}`);
  }
  return found;
}

/**
 * Resolves once `count` requests are blocked in the kernel on these files
 * ("->" lines of /proc/locks): the event the tests synchronise on, instead
 * of sleeping.
 */
export async function untilBlocked(paths: readonly string[], count: number, timeoutMs = 20_000): Promise<void> {
  const keys = new Set(paths.map((p) => fileKeyOfPath(p)));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const n = readProcLocks().filter((e) => e.waiting && keys.has(e.key)).length;
    if (n >= count) return;
    if (Date.now() > deadline) throw new Error(`only ${n} of ${count} requests blocked after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Live children of `pid` (default: this process), from /proc/PID/stat's ppid field. */
export function childrenOf(pid = process.pid): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[1]) === pid) out.push(Number(name)); // zombies too: a child nobody reaped is left behind
  }
  return out;
}
