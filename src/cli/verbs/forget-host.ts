// warden forget-host -c CHROOT HOST: forget the registrations of a host
// that is gone for good (build farms). Prints what it removed.
import type { Parsed } from '../args.js';
import { chrootOf, loadContext } from '../../api/internal/config.js';
import { EXIT, UsageError } from '../errors.js';
import { json } from '../output.js';

export default async function forgetHostVerb(p: Parsed): Promise<number> {
  const o = p.options;
  if (!o.chroot) throw new UsageError('which chroot? (-c CHROOT)', 'forget-host');
  const host = p.positional[0];
  if (!host) throw new UsageError('which host? (warden forget-host -c CHROOT HOST)', 'forget-host');
  const ctx = loadContext({ config: o.config as string, stateDir: o['state-dir'] as string });
  const def = chrootOf(ctx, o.chroot as string);
  if (!def.sharedDir) throw new UsageError(`chroot ${def.name} is not shared (no shared-dir=): there is no host to forget`, 'forget-host');
  if (host === def.sharedDir.host) throw new UsageError(`${host} is this host: end its sessions with \`warden recover --all --end\` instead`, 'forget-host');
  const { describeRegistration, forgetHost } = await import('../../api/internal/farm.js');
  const removed = await forgetHost({ stateDir: ctx.stateDir, chroot: def, host });
  if (o.json) process.stdout.write(json(removed.map((e) => ({ host: e.host, session: e.session, record: e.record }))));
  else if (removed.length === 0) process.stdout.write(`no registrations of ${host} in ${def.sharedDir.path}\n`);
  else for (const e of removed) process.stdout.write(`forgot ${describeRegistration(e)}\n`);
  return EXIT.ok;
}
