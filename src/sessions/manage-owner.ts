// `<shared-dir>/manage.owner` (build farms): who holds a shared chroot's
// manage lock, for the wait lines of other hosts, which cannot see a
// remote holder (/proc/locks is this host's; F_OFD_GETLK gives no pid
// through glusterfs). Written right after the lock is taken, removed just
// before it is released. It only describes: the lock is the truth, and a
// holder that dies leaves a file that names it until the next holder
// rewrites it (a reader shows it only while the lock is held).
import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

export const MANAGE_OWNER_FILE = 'manage.owner';

export interface ManageOwner {
  host: string;
  pid: number;
  /** 'begin', 'source entry', 'recover', 'forget-host'. */
  what: string;
  session?: string;
  /** ISO 8601. */
  since: string;
}

/** Writes the owner record (tmp + rename: a reader sees a whole one or none). Best effort: it only describes. */
export function writeManageOwner(sharedDir: string, owner: Omit<ManageOwner, 'since' | 'pid'>): void {
  const path = join(sharedDir, MANAGE_OWNER_FILE);
  const tmp = `${path}.${randomBytes(6).toString('hex')}`;
  try {
    writeFileSync(tmp, `${JSON.stringify({ ...owner, pid: process.pid, since: new Date().toISOString() })}\n`, { mode: 0o644, flag: 'wx' });
    renameSync(tmp, path);
  } catch {
    try {
      unlinkSync(tmp);
    } catch {
      // never made
    }
  }
}

/** Removes the owner record, if it is still ours (a later holder may have rewritten it). */
export function removeManageOwner(sharedDir: string, host: string): void {
  const path = join(sharedDir, MANAGE_OWNER_FILE);
  const o = readManageOwner(sharedDir);
  if (o && (o.pid !== process.pid || o.host !== host)) return;
  try {
    unlinkSync(path);
  } catch {
    // gone already
  }
}

export function readManageOwner(sharedDir: string): ManageOwner | undefined {
  try {
    const o = JSON.parse(readFileSync(join(sharedDir, MANAGE_OWNER_FILE), 'utf8')) as ManageOwner;
    return typeof o.host === 'string' && typeof o.what === 'string' && typeof o.pid === 'number' ? o : undefined;
  } catch {
    return undefined;
  }
}

/** "a source entry on host-a (pid 12, since 09:00:01)". */
export function describeManageOwner(o: ManageOwner): string {
  return `${o.what === 'source entry' ? 'a source entry' : o.what}${o.session ? ` of session ${o.session}` : ''} on ${o.host} (pid ${o.pid}, since ${o.since})`;
}
