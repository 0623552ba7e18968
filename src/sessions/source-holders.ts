// Who holds a chroot's source (`.ref`) and for which sessions: what a
// source entry reports while it waits, and refuses with.
import { join, resolve } from 'node:path';
import type { ChrootDef } from '../config/index.js';
import { fileKeyOfPath, holdersByKey, rangesOverlap, type LockHolder } from '../locks/index.js';
import type { SessionHolder } from './errors.js';
import type { WaitInfo } from './locks.js';
import { LIVENESS, SESSION_LOCK_FILE, sourceLockPath } from './lock-files.js';
import { listSessions, type SessionEntry } from './store.js';
import { sharedOf } from './shared.js';
import { remoteHolders } from './source-farm.js';

/** Sessions (active or stale) whose view is over this chroot's source directory. */
export function sessionsOf(stateDir: string, chroot: ChrootDef): SessionEntry[] {
  const source = resolve(chroot.directory);
  return listSessions(stateDir).filter((e) => e.status !== 'corrupt' && e.state !== undefined && resolve(e.state.source) === source);
}

/**
 * Who holds `<source>/.ref` now, and which sessions those holders are: a
 * pid that holds both the source lock and a session's liveness byte holds
 * the source for that session. One /proc scan for all the files.
 */
export function sourceHolders(stateDir: string, chroot: ChrootDef): { holders: LockHolder[]; sessions: SessionHolder[] } {
  let refKey: string;
  const remote = remoteHolders(sharedOf(chroot));
  try {
    refKey = fileKeyOfPath(sourceLockPath(chroot.directory));
  } catch {
    return { holders: [], sessions: remote }; // no .ref yet: nobody holds it
  }
  const lockKeys: [SessionEntry, string][] = [];
  for (const e of sessionsOf(stateDir, chroot)) {
    try {
      lockKeys.push([e, fileKeyOfPath(join(e.dir, SESSION_LOCK_FILE))]);
    } catch {
      // ended meanwhile
    }
  }
  const byKey = holdersByKey(new Set([refKey, ...lockKeys.map(([, k]) => k)]));
  const holders = (byKey.get(refKey) ?? []).filter((h) => !h.waiting);
  const refPids = new Set(holders.map((h) => h.pid).filter((p) => p > 0));
  const sessions: SessionHolder[] = [];
  for (const [e, key] of lockKeys) {
    const live = (byKey.get(key) ?? []).filter((h) => !h.waiting && rangesOverlap(h.range, LIVENESS) && refPids.has(h.pid));
    const pids = [...new Set(live.map((h) => h.pid))].sort((a, b) => a - b);
    if (pids.length > 0) sessions.push({ id: e.id, pids, createdAt: e.state!.createdAt });
  }
  return { holders, sessions: [...sessions, ...remote] };
}

/**
 * onWait for the source wait: reports the sessions behind the holders at
 * once, then again every `refreshMs` whenever the set changed (sessions
 * ending), until stop().
 */
export function sourceWaitReport(stateDir: string, chroot: ChrootDef, onWait: (info: WaitInfo) => void, refreshMs: number) {
  let timer: NodeJS.Timeout | undefined;
  let last = '';
  const emit = (path: string) => {
    let found: ReturnType<typeof sourceHolders>;
    try {
      found = sourceHolders(stateDir, chroot);
    } catch {
      return; // a report must never break the wait
    }
    // Nobody left: the grant is on its way, nothing worth saying.
    if (found.holders.length === 0 && found.sessions.length === 0) return;
    const key = JSON.stringify([found.sessions.map((s) => [s.id, s.pids]), found.holders.map((h) => [h.pid, h.kind])]);
    if (key === last) return;
    last = key;
    try {
      onWait({ lock: 'source', path, holders: found.holders, sessions: found.sessions });
    } catch {
      // as above
    }
  };
  return {
    onWait(info: WaitInfo) {
      emit(info.path);
      if (timer) return;
      timer = setInterval(() => emit(info.path), refreshMs);
      timer.unref();
    },
    stop() {
      if (timer) clearInterval(timer);
      timer = undefined;
    },
  };
}
