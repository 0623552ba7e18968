// What `list()` reports: the fields of `warden list --json` and
// `warden list --sessions --json`, as plain objects.
import type { ChrootDef, UnionType } from '../config/index.js';
import type { SessionEntry, SessionStatus, WaitInfo } from '../sessions/index.js';
import type { LockWait } from './options.js';
import { canonicalPath, readMountInfo } from '../sys/index.js';

export interface ChrootInfo {
  name: string;
  aliases: readonly string[];
  /** The source directory. */
  directory: string;
  unionType: UnionType;
  description: string | undefined;
}

export interface SessionInfo {
  id: string;
  /** active: held by some process; stale: by none (see recover); corrupt: not a session warden can read (see `reason`). */
  status: 'active' | 'stale' | 'corrupt';
  reason: string | undefined;
  chroot: string | undefined;
  /** What state.json records: setting-up, active, ending. */
  phase: SessionStatus | undefined;
  /** Whether its view is mounted (undefined for union-type=copy and corrupt entries). */
  mounted: boolean | undefined;
  unionType: UnionType | undefined;
  createdAt: string | undefined;
  dir: string;
}

export function describeChroot(c: ChrootDef): ChrootInfo {
  return { name: c.name, aliases: [...c.aliases], directory: c.directory, unionType: c.unionType, description: c.description };
}

/** `heldHere`: sessions this process holds (in POSIX lock mode its own lock never shows as a conflict to itself). */
export function describeSessions(entries: readonly SessionEntry[], stateDir: string, heldHere: (id: string) => boolean): SessionInfo[] {
  // One mountinfo read for all, as `warden list --sessions`.
  const mounts = new Set(readMountInfo().map((m) => m.mountPoint));
  const base = canonicalPath(stateDir);
  return entries.map((e) => ({
    id: e.id,
    status: e.status === 'stale' && heldHere(e.id) ? 'active' : e.status,
    reason: e.reason,
    chroot: e.state?.chroot,
    phase: e.state?.status,
    mounted: !e.state || e.state.unionType === 'copy' ? undefined : mounts.has(`${base}/${e.id}/root`),
    unionType: e.state?.unionType,
    createdAt: e.state?.createdAt,
    dir: e.dir,
  }));
}

/** The internal wait reports as the API's LockWait (undefined when the caller gave no onWait). */
export function lockWaitReporter(onWait: ((wait: LockWait) => void) | undefined): ((info: WaitInfo) => void) | undefined {
  if (!onWait) return undefined;
  return (i) => {
    const wait: LockWait = {
      lock: i.lock,
      path: i.path,
      holders: i.holders.filter((h) => !h.waiting).map((h) => (h.comm === undefined ? { pid: h.pid, kind: h.kind } : { pid: h.pid, kind: h.kind, command: h.comm })),
    };
    if (i.sessions) wait.sessions = i.sessions.map((s) => (s.host === undefined ? { id: s.id, pids: [...s.pids] } : { id: s.id, host: s.host, pids: [...s.pids] }));
    onWait(wait);
  };
}
