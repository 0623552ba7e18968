// The sessions a shared chroot's registrations name (build farms) that the
// local session store does not show: other hosts' sessions, and this
// host's leftovers (read by api/internal/farm.ts). One way to print them,
// for every listing: list --sessions, info CHROOT, locks.
import type { RemoteSession } from '../api/internal/farm.js';
import { sharedChrootsOf, type Context } from '../api/internal/config.js';
import { age } from './output.js';

export type Registered = RemoteSession;

/**
 * The registrations of the shared chroots (all, or those named in
 * `chroots`) that are not this host's session dirs (the ids `local()`
 * gives, asked only when there is a shared chroot): each probed once,
 * without blocking. A shared dir that cannot be read (its mount down) is a
 * warning, not a failure of the listing.
 */
export async function registeredElsewhere(ctx: Context, local: () => Iterable<string>, chroots?: readonly string[]): Promise<Registered[]> {
  if (!sharedChrootsOf(ctx).some((c) => chroots === undefined || chroots.includes(c.name))) return [];
  // Only a shared chroot needs the registry (and the lock layer under it).
  const { remoteSessions } = await import('../api/internal/farm.js');
  return remoteSessions(ctx, new Set(local()), (chroot, e) => process.stderr.write(`warden: warning: cannot read the registrations of chroot ${chroot}: ${e.message}\n`), chroots);
}

/** `host@id`: how every message and listing names a registered session. */
export function registeredName(r: Registered): string {
  return `${r.host}@${r.id}`;
}

/** Where it runs, and for a stale one what to run on which host. */
export function registeredNote(r: Registered): string {
  if (r.own) return 'this host, no session dir here: warden recover --all';
  const where = `on ${r.host}${r.pids.length ? `, pids ${r.pids.join(' ')}` : ''}`;
  return r.status === 'stale' ? `${where}; on ${r.host}: warden recover --all --end` : where;
}

/** The columns of registeredRow(), where a table of registrations stands alone (info, locks). */
export const REGISTERED_HEADER = ['REGISTRATION', 'STATUS', 'CHROOT', 'AGE', 'NOTE'];

/** A row of list --sessions' table (SESSION, STATUS, CHROOT, AGE, NOTE). */
export function registeredRow(r: Registered): string[] {
  return [registeredName(r), r.status, r.chroot, age(r.began), registeredNote(r)];
}

/** A JSON entry beside the local sessions: `host` tells it from them. */
export function registeredJson(r: Registered): { id: string; host: string; status: string; chroot: string; pids: number[]; createdAt: string | undefined; registration: string } {
  return { id: r.id, host: r.host, status: r.status, chroot: r.chroot, pids: r.pids, createdAt: r.began, registration: r.path };
}
