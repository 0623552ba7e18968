// Build farms (a chroot with shared-dir=): the registrations of every
// host's sessions, as `list --sessions` shows them, and `forget-host`.
import type { Context } from '../../config/index.js';
import { sharedChrootsOf } from '../../config/index.js';
import { registrations, sharedOf } from '../../sessions/farm.js';

export { forgetHost } from '../../sessions/forget-host.js';
export { describeRegistration } from '../../sessions/registration-file.js';

/** A session a shared chroot's registrations name that is not a session dir of this host. */
export interface RemoteSession {
  id: string;
  host: string;
  /** A registration of this host with no session dir here (a leftover of a crash). */
  own: boolean;
  status: 'active' | 'stale';
  chroot: string;
  pids: number[];
  began: string | undefined;
  /** The registration file. */
  path: string;
}

/**
 * The sessions the shared chroots' registrations name that are not this
 * host's session dirs (`local`): other hosts' sessions, and this host's
 * leftovers; of the chroots named in `chroots` only, when given. A shared
 * dir that cannot be read (its mount down) goes to `unreadable` and the
 * others are still listed.
 */
export function remoteSessions(ctx: Context, local: ReadonlySet<string>, unreadable: (chroot: string, e: Error) => void, chroots?: readonly string[]): RemoteSession[] {
  const out: RemoteSession[] = [];
  for (const c of sharedChrootsOf(ctx).filter((c) => chroots === undefined || chroots.includes(c.name))) {
    try {
      const s = sharedOf(c.resolve());
      if (!s) continue;
      for (const r of registrations(s)) {
        const own = r.host === s.host;
        if (own && local.has(r.session)) continue;
        out.push({ id: r.session, host: r.host, own, status: r.status, chroot: r.record?.chroot ?? c.name, pids: r.record?.pids ?? [], began: r.record?.began, path: r.path });
      }
    } catch (e) {
      unreadable(c.name, e as Error);
    }
  }
  return out;
}
