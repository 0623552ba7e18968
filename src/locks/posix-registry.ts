// Process-associated (POSIX) locks have three traps that OFD locks do not
// (fcntl(2), "Record locking"):
//  1. A process never conflicts with itself: two handles of ours on one file
//     would both "win", and the second request silently converts the first.
//  2. Closing ANY fd of the file drops ALL of the process's locks on it.
//  3. Locks are not inherited across fork: a child holds nothing.
// This registry handles 1 and 2 inside the process: it arbitrates between
// our own handles as the kernel would between processes, unlocks only the
// bytes no other handle of ours still holds, and keeps fds open ("parked")
// until no handle of ours holds anything on the file. Trap 3 is a property
// of the mode and is documented: in POSIX mode the process that took a lock
// must stay alive for as long as the lock should be held.
import { closeSync } from 'node:fs';
import type { LockKind, LockRange } from './errors.js';
import { rangesOverlap } from './inspect.js';

interface Claim {
  kind: LockKind;
  range: LockRange;
}

class FileRecord {
  /** Locks held by our handles. */
  readonly held = new Map<object, Claim>();
  /** Requests of our handles now blocked in the kernel: they count as held for arbitration. */
  readonly pending = new Map<object, Claim>();
  /** fds whose close was deferred because other handles still hold locks. */
  readonly parked: number[] = [];
  /** Open handles on this file. */
  handles = 0;
  /** Called whenever a claim goes away, so local waiters can retry. */
  readonly waiters = new Set<() => void>();
}

const files = new Map<string, FileRecord>();

function record(key: string): FileRecord {
  let r = files.get(key);
  if (!r) files.set(key, (r = new FileRecord()));
  return r;
}

export function registerHandle(key: string): void {
  record(key).handles++;
}

/** True when another of our handles holds or waits for a conflicting lock. */
export function conflictsLocally(key: string, self: object, kind: LockKind, range: LockRange): boolean {
  const r = files.get(key);
  if (!r) return false;
  for (const claims of [r.held, r.pending]) {
    for (const [owner, c] of claims) {
      if (owner === self) continue;
      if ((kind === 'exclusive' || c.kind === 'exclusive') && rangesOverlap(c.range, range)) return true;
    }
  }
  return false;
}

/** A lock held (not merely waited for) by another of our handles that conflicts with `kind` on `range`. */
export function localConflict(key: string, self: object, kind: LockKind, range: LockRange): Claim | undefined {
  const r = files.get(key);
  if (!r) return undefined;
  for (const [owner, c] of r.held) {
    if (owner !== self && (kind === 'exclusive' || c.kind === 'exclusive') && rangesOverlap(c.range, range)) return c;
  }
  return undefined;
}

export function notePending(key: string, self: object, claim: Claim | undefined): void {
  const r = record(key);
  if (claim) r.pending.set(self, claim);
  else if (r.pending.delete(self)) wake(r);
}

export function noteHeld(key: string, self: object, claim: Claim | undefined): void {
  const r = record(key);
  if (claim) r.held.set(self, claim);
  else if (r.held.delete(self)) wake(r);
  if (r.held.size === 0 && r.pending.size === 0) closeParked(r);
}

// Deferred to a microtask: the releasing code finishes its own bookkeeping
// before a woken waiter looks at the file again.
function wake(r: FileRecord): void {
  if (r.waiters.size === 0) return;
  const list = [...r.waiters];
  queueMicrotask(() => {
    for (const w of list) w();
  });
}

/** Registers a callback for "some claim on this file went away". Returns the unsubscriber. */
export function onLocalRelease(key: string, cb: () => void): () => void {
  const r = record(key);
  r.waiters.add(cb);
  return () => r.waiters.delete(cb);
}

/**
 * The parts of `range` that no other handle of ours holds: only those may be
 * unlocked in the kernel when `self` releases.
 * Preconditions: `self` holds `range` and arbitration kept claims compatible.
 */
export function bytesToUnlock(key: string, self: object, range: LockRange): LockRange[] {
  const r = files.get(key);
  const end = (x: LockRange) => (x.len === 0 ? Infinity : x.start + x.len);
  const others = r ? [...r.held].filter(([o, c]) => o !== self && rangesOverlap(c.range, range)).map(([, c]) => c.range) : [];
  others.sort((a, b) => a.start - b.start);
  const out: LockRange[] = [];
  let pos = range.start;
  const stop = end(range);
  for (const o of others) {
    if (o.start > pos) out.push(piece(pos, Math.min(o.start, stop)));
    pos = Math.max(pos, end(o));
    if (pos >= stop) break;
  }
  if (pos < stop) out.push(piece(pos, stop));
  return out;
}

function piece(start: number, end: number): LockRange {
  return { start, len: end === Infinity ? 0 : end - start };
}

/**
 * Closes `fd` now if that cannot drop another handle's lock, else parks it
 * until the file has no claims left.
 */
export function closeHandle(key: string, fd: number): void {
  const r = record(key);
  r.handles--;
  if (r.held.size > 0 || r.pending.size > 0) r.parked.push(fd);
  else closeSync(fd);
  if (r.handles === 0 && r.held.size === 0 && r.pending.size === 0) {
    closeParked(r);
    files.delete(key);
  }
}

function closeParked(r: FileRecord): void {
  for (const fd of r.parked.splice(0)) closeSync(fd);
}
