// warden locks [--json]: every warden lock on this host and who holds it.
import { lockCensus, type LockRow } from '../../api/internal/census.js';
import { str, type Parsed } from '../args.js';
import { loadContext } from '../../api/internal/config.js';
import { EXIT } from '../errors.js';
import { json, table } from '../output.js';

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
  if (o.json) {
    process.stdout.write(json(rows));
  } else if (rows.length === 0) {
    process.stdout.write('no warden locks are held\n');
  } else {
    process.stdout.write(table(['LOCK', 'NAME', 'KIND', 'PID', 'COMMAND', 'TYPE', 'PATH'], holderRows(rows)));
  }
  return EXIT.ok;
}
