// Every warden lock on this host, by name: the rows of DESIGN.md's lock
// table joined with /proc/locks. One /proc scan for all of them.
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileKeyOfPath, holdersByKey, rangesOverlap, type LockHolder } from '../locks/index.js';
import { LIVENESS, MANAGE_DIR, METADATA, SESSION_LOCK_FILE, SUPERVISOR_LOCK_FILE, manageLockPath, sourceLockPath } from './lock-files.js';
import { listSessions } from './store.js';

export interface LockRow {
  lock: 'source' | 'manage' | 'liveness' | 'metadata' | 'supervisor';
  /** The chroot (source, manage) or session id (liveness, metadata). */
  name: string;
  path: string;
  holders: LockHolder[];
}

export interface CensusOptions {
  stateDir: string;
  /** Chroots by name, with their source directories. */
  chroots: { name: string; directory: string }[];
  /** Only rows with a holder or waiter (default true). */
  heldOnly?: boolean;
}

export function lockCensus(o: CensusOptions): LockRow[] {
  const wanted: { row: Omit<LockRow, 'holders'>; range?: { start: number; len: number } }[] = [];
  for (const c of o.chroots) {
    wanted.push({ row: { lock: 'source', name: c.name, path: sourceLockPath(c.directory) } });
    wanted.push({ row: { lock: 'manage', name: c.name, path: manageLockPath(o.stateDir, c.name) } });
  }
  // Manage locks of chroots no longer configured still matter while held.
  let manage: string[] = [];
  try {
    manage = readdirSync(join(o.stateDir, MANAGE_DIR)).filter((n) => n.endsWith('.lock'));
  } catch {
    // no .manage yet
  }
  for (const n of manage) {
    const name = n.slice(0, -'.lock'.length);
    if (!o.chroots.some((c) => c.name === name)) wanted.push({ row: { lock: 'manage', name, path: manageLockPath(o.stateDir, name) } });
  }
  for (const s of listSessions(o.stateDir)) {
    if (s.status === 'corrupt' && s.reason?.includes('lock file')) continue;
    const path = join(s.dir, SESSION_LOCK_FILE);
    wanted.push({ row: { lock: 'liveness', name: s.id, path }, range: LIVENESS });
    wanted.push({ row: { lock: 'metadata', name: s.id, path }, range: METADATA });
  }
  wanted.push({ row: { lock: 'supervisor', name: '-', path: join(o.stateDir, SUPERVISOR_LOCK_FILE) } });
  const keyOf = new Map<string, string>();
  for (const w of wanted) {
    try {
      keyOf.set(w.row.path, fileKeyOfPath(w.row.path));
    } catch {
      // file absent: nobody can hold it
    }
  }
  const byKey = holdersByKey(new Set(keyOf.values()));
  const rows: LockRow[] = [];
  for (const w of wanted) {
    const key = keyOf.get(w.row.path);
    const all = key ? (byKey.get(key) ?? []) : [];
    const holders = w.range ? all.filter((h) => rangesOverlap(h.range, w.range!)) : all;
    if (holders.length > 0 || o.heldOnly === false) rows.push({ ...w.row, holders });
  }
  return rows;
}
