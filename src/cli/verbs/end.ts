// warden end -s ID: unmount a session and delete it. When a supervisor runs
// for the state dir, it does the ending: it may hold the session, and a
// local end would count it among the holders (and --force would kill it).
import { openSession } from '../../sessions/open.js';
import type { Parsed } from '../args.js';
import { loadContext } from '../context.js';
import { EXIT, UsageError } from '../errors.js';
import { waitReporter } from '../wait-line.js';

export default async function end(p: Parsed): Promise<number> {
  const o = p.options;
  if (!o.session) throw new UsageError('which session? (-s ID)', 'end');
  if (o.wait && o.force) throw new UsageError('--wait and --force exclude each other', 'end');
  const ctx = loadContext({ config: o.config as string, stateDir: o['state-dir'] as string });
  // Checks the id (exit 2) and that the session exists (exit 4) before anything else.
  const session = openSession(ctx.stateDir, o.session as string);
  const abort = new AbortController();
  const onSignal = () => abort.abort(new Error('interrupted'));
  process.on('SIGINT', onSignal);
  const waits = waitReporter();
  const opts = {
    wait: o.wait === true,
    force: o.force === true,
    timeout: o.timeout === undefined ? undefined : (o.timeout as number) * 1000,
  };
  try {
    const { connectSupervisor } = await import('../../supervisor/client.js');
    const client = await connectSupervisor(session.stateDir, { blocking: true });
    if (client) {
      try {
        await client.request(
          { op: 'end', id: session.id, ...(opts.wait ? { wait: true } : {}), ...(opts.force ? { force: true } : {}), ...(o.timeout === undefined ? {} : { timeout: o.timeout as number }) },
          { onWait: waits.onWait, signal: abort.signal },
        );
      } finally {
        client.close();
      }
    } else {
      // The ending code (hooks, unmounting) is loaded only to end here.
      const { endSession } = await import('../../sessions/end.js');
      await endSession(session, { ...opts, signal: abort.signal, onWait: waits.onWait });
    }
  } finally {
    waits.done();
    process.off('SIGINT', onSignal);
  }
  return EXIT.ok;
}
