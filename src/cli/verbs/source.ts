// warden source: exclusive source entry. Waits (manage lock, then the
// source lock, showing which sessions still hold it), then runs the command
// chrooted in the source directory with stdio and the exit status passed
// through, as `run` does. The command inherits both locks (OFD mode), so a
// killed warden does not open the source to sessions while it still runs.
import { enterSource, fromChildProcess, type SourceEntry } from '../../sessions/index.js';
import type { Parsed } from '../args.js';
import { authorizeCaller, viaSupervisor } from '../authorize.js';
import { runCommand, terminalForCommand } from '../command.js';
import { chrootOf, loadContext } from '../context.js';
import { UsageError } from '../errors.js';
import { waitReporter } from '../wait-line.js';

export default async function source(p: Parsed): Promise<number> {
  const o = p.options;
  if (!o.chroot) throw new UsageError('-c CHROOT is required', 'source');
  if (p.command.length === 0) throw new UsageError('no command given (warden source -c CHROOT -- CMD...)', 'source');
  const ctx = loadContext({ config: o.config as string, stateDir: o['state-dir'] as string });
  const def = chrootOf(ctx, o.chroot as string);
  const cmd = { command: p.command, user: o.user as string | undefined, directory: o.directory as string | undefined, preserveEnvironment: o['preserve-environment'] === true };
  await viaSupervisor(p, ctx.stateDir, () => authorizeCaller(() => def, 'source', { user: cmd.user, recoverStale: o['recover-stale'] === true }));
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => abort.abort(new Error(`interrupted by ${sig}`));
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  const waits = waitReporter();
  // Opened before the wait: the command is started (held at a gate) while warden waits.
  const pty = terminalForCommand();
  let entry: SourceEntry;
  try {
    // The command is started while we wait and let go once the source is ours.
    entry = await enterSource({
      stateDir: ctx.stateDir,
      chroot: def,
      recoverStale: o['recover-stale'] === true,
      signal: abort.signal,
      timeout: o.timeout === undefined ? undefined : (o.timeout as number) * 1000,
      wait: o['no-wait'] ? false : undefined,
      onWait: waits.onWait,
      command: { ...cmd, terminal: pty?.slave },
    });
  } catch (e) {
    pty?.close();
    throw e;
  } finally {
    waits.done();
    for (const s of signals) process.off(s, onSignal);
  }
  for (const id of entry.recovered) process.stderr.write(`warden: ended stale session ${id} before entering the source\n`);
  // The command holds both locks through its own copies (OFD mode): ours
  // would only make `warden locks` show this process as well.
  if (entry.inherited) entry.close();
  const child = entry.child!;
  return runCommand(() => fromChildProcess(child), entry, pty ?? null);
}
