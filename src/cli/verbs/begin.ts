// warden begin -c CHROOT [--id ID]: a persistent session, begun and held by
// the supervisor of the state dir (started in the background when none
// runs). Prints the id; `--json` prints the id, chroot and mount point.
import { str, type Parsed } from '../args.js';
import { chrootOf, loadContext } from '../../api/internal/config.js';
import { EXIT, UsageError } from '../errors.js';
import { json, printLine } from '../output.js';
import { withLockWait } from '../lock-wait.js';
import { supervisorArgv } from './supervise.js';

export default async function begin(p: Parsed): Promise<number> {
  const o = p.options;
  if (!o.chroot) throw new UsageError('which chroot? (-c CHROOT)', 'begin');
  const ctx = loadContext({ config: str(o.config), stateDir: str(o['state-dir']) });
  // Refused here already (exit 4, 3), without starting a supervisor for nothing.
  const def = chrootOf(ctx, String(o.chroot));
  const id = str(o.id);
  if (id !== undefined) {
    const { validateId } = await import('../../api/internal/state-dir.js');
    validateId(id);
  }
  const { ensureStateDir } = await import('../../api/internal/state-dir.js');
  const stateDir = ensureStateDir(ctx.stateDir);
  const { connectSupervisor, ensureSupervisor } = await import('../../supervisor/client.js');
  // Only root starts a supervisor: one started by a user could not mount, and would hold the socket.
  const client =
    process.getuid?.() === 0
      ? await ensureSupervisor(stateDir, { argv: supervisorArgv(ctx, stateDir) }, { blocking: true })
      : await connectSupervisor(stateDir, { blocking: true });
  if (!client) {
    const { SupervisorUnavailableError } = await import('../../supervisor/errors.js');
    throw new SupervisorUnavailableError(`no supervisor runs for ${stateDir}, and only root may start one: start it with \`systemctl start warden.socket\`, or as root \`warden supervise\``);
  }
  try {
    // Ctrl-C disconnects: the supervisor cancels the begin and rolls it back.
    const r = await withLockWait(o, (w) =>
      client.request(
        {
          op: 'begin',
          chroot: def.name,
          ...(id === undefined ? {} : { id }),
          ...(w.timeoutS === undefined ? {} : { timeout: w.timeoutS }),
          ...(w.wait === false ? { wait: false } : {}),
        },
        { onWait: w.onWait, signal: w.signal },
      ),
    );
    printLine(o.json ? json(r) : `${r.id as string}\n`);
    return EXIT.ok;
  } finally {
    client.close();
  }
}
