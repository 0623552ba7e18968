// warden source: exclusive source entry. Waits (manage lock, then the
// source lock, showing which sessions still hold it), then runs the command
// chrooted in the source directory with stdio and the exit status passed
// through, as `run` does. The command inherits both locks (OFD mode), so a
// killed warden does not open the source to sessions while it still runs.
import { enterSource, type SourceEntry } from '../../api/internal/protocols.js';
import { fromChildProcess } from '../../api/internal/system.js';
import { str, type Parsed } from '../args.js';
import { authorizeCaller, viaSupervisor } from '../authorize.js';
import { runCommand, terminalForCommand } from '../command.js';
import { chrootOf, loadContext } from '../../api/internal/config.js';
import { UsageError } from '../errors.js';
import { withLockWait } from '../lock-wait.js';

export default async function source(p: Parsed): Promise<number> {
  const o = p.options;
  if (!o.chroot) throw new UsageError('-c CHROOT is required', 'source');
  if (p.command.length === 0) throw new UsageError('no command given (warden source -c CHROOT -- CMD...)', 'source');
  const ctx = loadContext({ config: str(o.config), stateDir: str(o['state-dir']) });
  const def = chrootOf(ctx, String(o.chroot));
  const cmd = { command: p.command, user: str(o.user), directory: str(o.directory), preserveEnvironment: o['preserve-environment'] === true };
  await viaSupervisor(p, ctx.stateDir, () => authorizeCaller(() => def, 'source', { user: cmd.user, recoverStale: o['recover-stale'] === true }));
  // Opened before the wait: the command is started (held at a gate) while warden waits.
  const pty = terminalForCommand();
  let entry: SourceEntry;
  try {
    // The command is started while we wait and let go once the source is ours.
    entry = await withLockWait(o, (w) =>
      enterSource({
        stateDir: ctx.stateDir,
        chroot: def,
        recoverStale: o['recover-stale'] === true,
        signal: w.signal,
        timeout: w.timeoutMs,
        wait: w.wait,
        onWait: w.onWait,
        command: { ...cmd, terminal: pty?.slave },
      }),
    );
  } catch (e) {
    pty?.close();
    throw e;
  }
  for (const id of entry.recovered) process.stderr.write(`warden: ended stale session ${id} before entering the source\n`);
  // The command holds both locks through its own copies (OFD mode): ours
  // would only make `warden locks` show this process as well. A shared
  // chroot's stay until it exits (CommandLocks.shared says why).
  if (entry.inherited && !entry.shared) entry.close();
  const child = entry.child!;
  try {
    return await runCommand(() => fromChildProcess(child), entry, pty ?? null);
  } finally {
    // A shared chroot's entry lets its locks go a moment after the command (SourceEntry.close).
    entry.close();
    await entry.released;
  }
}
