// warden schroot ARGS... (what warden-schroot becomes when it cannot reach a
// supervisor, or is told not to): schroot's queries and help answered here
// from the configuration; session actions are the supervisor's, so root
// starts one (as `warden begin` does) and hands the call to it through the
// relay; anyone else is told that none runs.
import { existsSync } from 'node:fs';
import { loadContext } from '../../api/internal/config.js';
import { execRelay } from '../relay-exec.js';
import { schrootCall, schrootQuery } from '../schroot-calls.js';
import { version } from '../version.js';
import { supervisorArgv } from './supervise.js';

/** schroot's own configuration, where warden-schroot reads it by default (DESIGN.md). */
const SCHROOT_CONFIG = '/etc/schroot/schroot.conf';

export default async function schroot(argv: string[]): Promise<number> {
  const v = version();
  const call = schrootCall(argv, v);
  if (call.verb === 'text') {
    process.stdout.write(call.out);
    process.stderr.write(call.err);
    return call.code;
  }
  const config = process.env.WARDEN_CONFIG || (existsSync(SCHROOT_CONFIG) ? SCHROOT_CONFIG : undefined);
  const ctx = loadContext({ config });
  if (call.verb === 'schroot-query') {
    const r = schrootQuery(call.call as Parameters<typeof schrootQuery>[0], ctx, v, call.notices ?? '');
    process.stdout.write(r.out);
    process.stderr.write(r.err);
    return r.code;
  }
  const { ensureStateDir } = await import('../../api/internal/state-dir.js');
  const stateDir = ensureStateDir(ctx.stateDir);
  if (process.getuid?.() === 0) {
    const { ensureSupervisor } = await import('../../supervisor/client.js');
    const client = await ensureSupervisor(stateDir, { argv: supervisorArgv(ctx, stateDir) }, { blocking: true });
    client?.close();
  }
  throw execRelay(stateDir, ['schroot', ...argv]);
}
