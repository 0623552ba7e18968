// warden list [--sessions] [--json]
import { str, type Parsed } from '../args.js';
import { loadContext, sharedChrootsOf, type Context } from '../context.js';
import { EXIT } from '../errors.js';
import { age, json, table } from '../output.js';

export default async function list(p: Parsed): Promise<number> {
  const o = p.options;
  const ctx = loadContext({ config: str(o.config), stateDir: str(o['state-dir']) });
  for (const w of ctx.config.warnings) process.stderr.write(`warden: warning: ${w.message}\n`);
  if (o.sessions) {
    // Only this branch needs the session store (and the lock layer under it).
    const { listSessions } = await import('../../sessions/store.js');
    const { canonicalPath, readMountInfo } = await import('../../sys/index.js');
    const entries = listSessions(ctx.stateDir);
    // One mountinfo read for all: whether each view is in place (run -s
    // works on a stale session only while it is; else it needs recover).
    const mounts = new Set(readMountInfo().map((m) => m.mountPoint));
    const base = canonicalPath(ctx.stateDir);
    const mounted = (e: (typeof entries)[number]) =>
      !e.state || e.state.unionType === 'copy' ? undefined : mounts.has(`${base}/${e.id}/root`);
    const remote = await registeredElsewhere(ctx, new Set(entries.map((e) => e.id)));
    if (o.json) {
      process.stdout.write(
        json([
          ...entries.map((e) => ({
            id: e.id,
            status: e.status,
            reason: e.reason,
            chroot: e.state?.chroot,
            phase: e.state?.status,
            mounted: mounted(e) ?? null,
            unionType: e.state?.unionType,
            createdAt: e.state?.createdAt,
            dir: e.dir,
          })),
          ...remote.map((r) => ({ id: r.id, host: r.host, status: r.status, chroot: r.chroot, pids: r.pids, createdAt: r.began, registration: r.path })),
        ]),
      );
    } else {
      const note = (e: (typeof entries)[number]) => {
        if (e.reason) return e.reason;
        const notes = e.state?.status === 'active' ? [] : [e.state?.status ?? ''];
        if (e.status === 'stale') {
          // Stale but consistent (run -s works) needs no hint; the rest needs recover.
          const m = mounted(e);
          if (m !== undefined) notes.push(m ? 'mounted' : 'not mounted');
          if (e.state?.status !== 'active' || m === false) notes.push(`warden recover -s ${e.id}`);
        }
        return notes.join('; ');
      };
      const rows = entries.map((e) => [e.id, e.status, e.state?.chroot ?? '-', age(e.state?.createdAt), note(e)]);
      for (const r of remote) {
        const where = r.own ? 'this host, no session dir here: warden recover --all' : `on ${r.host}${r.pids.length ? `, pids ${r.pids.join(' ')}` : ''}`;
        rows.push([`${r.host}@${r.id}`, r.status, r.chroot, age(r.began), r.status === 'stale' && !r.own ? `${where}; on ${r.host}: warden recover --all --end` : where]);
      }
      process.stdout.write(table(['SESSION', 'STATUS', 'CHROOT', 'AGE', 'NOTE'], rows));
    }
    return EXIT.ok;
  }
  const chroots = [...ctx.config.chroots.values()];
  if (o.json) {
    process.stdout.write(
      json({
        chroots: chroots.map((c) => ({ name: c.name, aliases: c.aliases, directory: c.directory, unionType: c.unionType, description: c.description ?? null })),
        unsupported: ctx.config.unsupported,
      }),
    );
  } else {
    const rows = chroots.map((c) => [c.name + (c.aliases.length ? ` (${c.aliases.join(', ')})` : ''), c.unionType, c.directory, c.description ?? '']);
    for (const u of ctx.config.unsupported) rows.push([u.name, '-', '-', `not supported: ${u.reason}`]);
    process.stdout.write(table(['CHROOT', 'UNION', 'DIRECTORY', 'DESCRIPTION'], rows));
  }
  return EXIT.ok;
}

interface Registered {
  id: string;
  host: string;
  /** A registration of this host with no session dir here (a leftover of a crash). */
  own: boolean;
  status: 'active' | 'stale';
  chroot: string;
  pids: number[];
  began: string | undefined;
  path: string;
}

/**
 * The sessions the shared chroots' registrations name that are not this
 * host's session dirs: other hosts' sessions, and this host's leftovers.
 * A shared dir that cannot be read (its mount down) is a warning, not a
 * failure of the listing.
 */
async function registeredElsewhere(ctx: Context, local: ReadonlySet<string>): Promise<Registered[]> {
  const shared = sharedChrootsOf(ctx);
  if (shared.length === 0) return [];
  const { registrations, sharedOf } = await import('../../sessions/farm.js');
  const out: Registered[] = [];
  for (const c of shared) {
    try {
      const s = sharedOf(c.resolve());
      if (!s) continue;
      for (const r of registrations(s)) {
        const own = r.host === s.host;
        if (own && local.has(r.session)) continue;
        out.push({ id: r.session, host: r.host, own, status: r.status, chroot: r.record?.chroot ?? c.name, pids: r.record?.pids ?? [], began: r.record?.began, path: r.path });
      }
    } catch (e) {
      process.stderr.write(`warden: warning: cannot read the registrations of chroot ${c.name}: ${(e as Error).message}\n`);
    }
  }
  return out;
}
