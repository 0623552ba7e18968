// warden locks [--json]: every warden lock on this host and who holds it.
import { lockCensus, type LockRow } from '../../api/internal/census.js';
import { listSessions } from '../../api/internal/state-dir.js';
import { str, type Parsed } from '../args.js';
import { loadContext } from '../../api/internal/config.js';
import { EXIT } from '../errors.js';
import { json, table } from '../output.js';
import { REGISTERED_HEADER, registeredElsewhere, registeredRow } from '../registered.js';

/** The columns of holderRows(). */
export const HOLDER_HEADER = ['LOCK', 'NAME', 'KIND', 'PID', 'COMMAND', 'TYPE', 'PATH'];

export function holderRows(rows: LockRow[]): string[][] {
  const out: string[][] = [];
  for (const r of rows) {
    for (const h of r.holders) {
      out.push([
        r.lock,
        r.name,
        h.waiting ? `waits ${h.kind}` : h.kind,
        h.pid > 0 ? String(h.pid) : '?',
        h.comm ?? '',
        h.family,
        r.path,
      ]);
    }
  }
  return out;
}

export default async function locks(p: Parsed): Promise<number> {
  const o = p.options;
  const ctx = loadContext({ config: str(o.config), stateDir: str(o['state-dir']) });
  const rows = lockCensus({ stateDir: ctx.stateDir, chroots: [...ctx.config.chroots.values()] });
  // Shared chroots' registrations of other hosts: their holders are not in this host's /proc/locks.
  // This host's sessions are listed only when there is a shared chroot.
  const remote = await registeredElsewhere(ctx, () => listSessions(ctx.stateDir).map((s) => s.id));
  if (o.json) {
    const registrations = remote.map((r) => ({ lock: 'registration', name: r.id, host: r.host, status: r.status, chroot: r.chroot, pids: r.pids, createdAt: r.began, path: r.path, holders: [] }));
    process.stdout.write(json([...rows, ...registrations]));
  } else if (rows.length + remote.length === 0) {
    process.stdout.write('no warden locks are held\n');
  } else {
    const local = rows.length ? table(HOLDER_HEADER, holderRows(rows)) : '';
    process.stdout.write([local, remote.length ? table(REGISTERED_HEADER, remote.map(registeredRow)) : ''].filter(Boolean).join('\n'));
  }
  return EXIT.ok;
}
