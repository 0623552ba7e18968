// Who keeps a mount busy (what `fuser -vm` finds): processes whose cwd,
// root, executable, open files or memory maps lie at or under the mount
// point. Read from /proc/<pid>/; processes that exit meanwhile are skipped.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { TreeInUseError, type MountHolder } from './errors.js';

// readlink(2) on /proc/<pid>/fd/N of an unlinked file appends " (deleted)".
const DELETED = / \(deleted\)$/;

// /proc/<pid>/maps: "start-end perms offset dev inode   pathname".
const MAP_LINE = /^\S+ \S+ \S+ \S+ \S+\s+(\/.*)$/;

export function mountHolders(mountPoint: string): MountHolder[] {
  const prefix = mountPoint === '/' ? '/' : `${mountPoint}/`;
  const inside = (p: string | undefined) => p !== undefined && (p === mountPoint || p.startsWith(prefix));
  const out: MountHolder[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^[0-9]+$/.test(n))) {
    const hows: string[] = [];
    for (const how of ['cwd', 'root', 'exe']) if (inside(link(`/proc/${pid}/${how}`))) hows.push(how);
    for (const fd of list(`/proc/${pid}/fd`)) if (inside(link(`/proc/${pid}/fd/${fd}`))) hows.push(`fd ${fd}`);
    if (read(`/proc/${pid}/maps`)?.split('\n').some((l) => inside(MAP_LINE.exec(l)?.[1]?.replace(DELETED, '')))) hows.push('map');
    if (hows.length === 0) continue;
    const comm = read(`/proc/${pid}/comm`)?.trim() ?? '';
    for (const how of hows) out.push({ pid: Number(pid), comm, how });
  }
  return out;
}

/**
 * Refuses (TreeInUseError) while any process uses `dir` as mountHolders
 * sees it: a copy session's root has no mount whose EBUSY would say so.
 * A snapshot, but a sound one under the session's exclusive liveness lock:
 * a new process gets in only through warden (which waits for that lock) or
 * from a process already inside, which this finds.
 */
export function refuseWhileInUse(dir: string): void {
  const holders = mountHolders(dir);
  if (holders.length > 0) throw new TreeInUseError(dir, holders);
}

// Each read may race with the process exiting (ENOENT, ESRCH) or be denied
// (another user's process without CAP_SYS_PTRACE): either way, not a holder
// we can name.
function link(path: string): string | undefined {
  try {
    return readlinkSync(path).replace(DELETED, '');
  } catch {
    return undefined;
  }
}

function list(path: string): string[] {
  try {
    return readdirSync(path);
  } catch {
    return [];
  }
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}
