// warden end -s ID: unmount a session and delete it.
import { endSession, openSession } from '../../sessions/index.js';
import type { Parsed } from '../args.js';
import { loadContext } from '../context.js';
import { EXIT, UsageError } from '../errors.js';
import { waitReporter } from '../wait-line.js';

export default async function end(p: Parsed): Promise<number> {
  const o = p.options;
  if (!o.session) throw new UsageError('which session? (-s ID)', 'end');
  if (o.wait && o.force) throw new UsageError('--wait and --force exclude each other', 'end');
  const ctx = loadContext({ config: o.config as string, stateDir: o['state-dir'] as string });
  const session = openSession(ctx.stateDir, o.session as string);
  const abort = new AbortController();
  const onSignal = () => abort.abort(new Error('interrupted'));
  process.on('SIGINT', onSignal);
  const waits = waitReporter();
  try {
    await endSession(session, {
      wait: o.wait === true,
      force: o.force === true,
      timeout: o.timeout === undefined ? undefined : (o.timeout as number) * 1000,
      signal: abort.signal,
      onWait: waits.onWait,
    });
  } finally {
    waits.done();
    process.off('SIGINT', onSignal);
  }
  return EXIT.ok;
}
