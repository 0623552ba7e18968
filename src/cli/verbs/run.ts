// warden run: -c begins an automatic session, runs the command in it and
// ends it; -s runs in an existing session. stdio and the exit status pass
// through (128+N for signal N).
import {
  assertRunnable,
  beginSession,
  endSession,
  openSession,
  SessionBusyError,
  spawnInSession,
  type Session,
} from '../../sessions/index.js';
import { describeHolders } from '../../locks/index.js';
import type { Parsed } from '../args.js';
import { authorizeCaller, viaSupervisor } from '../authorize.js';
import { chrootOf, hookTimeoutMsOf, hooksDirOf, loadContext } from '../context.js';
import { UsageError, exitCodeOf, formatError } from '../errors.js';
import { runCommand } from '../command.js';
import { waitReporter } from '../wait-line.js';

export default async function run(p: Parsed): Promise<number> {
  const o = p.options;
  if (Boolean(o.chroot) === Boolean(o.session)) throw new UsageError('give exactly one of -c CHROOT or -s ID', 'run');
  if (p.command.length === 0) throw new UsageError('no command given (warden run -c CHROOT -- CMD...)', 'run');
  if (o.id !== undefined && !o.chroot) throw new UsageError('--id names a new automatic session: use it with -c', 'run');
  const ctx = loadContext({ config: o.config as string, stateDir: o['state-dir'] as string });

  const cmd = { command: p.command, user: o.user as string | undefined, directory: o.directory as string | undefined, preserveEnvironment: o['preserve-environment'] === true };

  if (o.session) {
    // Which chroot the session is of comes from its state.json, read before any lock is taken.
    const state = () => openSession(ctx.stateDir, o.session as string).state;
    await viaSupervisor(p, ctx.stateDir, () => authorizeCaller(() => chrootOf(ctx, state().chroot), 'run', { user: cmd.user, session: state }));
    const locks = await openSession(ctx.stateDir, o.session as string).commandLocks();
    let session: Session;
    try {
      // Read again under our lock: an end or recover may have changed it
      // (a stale session is runnable only while its view is in place).
      session = openSession(ctx.stateDir, o.session as string);
      assertRunnable(session);
    } catch (e) {
      locks.close();
      throw e;
    }
    return runCommand((terminal) => spawnInSession(session, locks, { ...cmd, terminal }), locks);
  }

  const def = chrootOf(ctx, o.chroot as string);
  await viaSupervisor(p, ctx.stateDir, () => authorizeCaller(() => def, 'run', { user: cmd.user }));
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => abort.abort(new Error(`interrupted by ${sig}`));
  const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const s of signals) process.on(s, onSignal);
  const waits = waitReporter();
  let session: Session;
  try {
    session = await beginSession({
      stateDir: ctx.stateDir,
      chroot: def,
      id: o.id as string | undefined,
      hooksDir: hooksDirOf(ctx, def),
      hookTimeoutMs: hookTimeoutMsOf(ctx, def),
      signal: abort.signal,
      timeout: o.timeout === undefined ? undefined : (o.timeout as number) * 1000,
      wait: o['no-wait'] ? false : undefined,
      onWait: waits.onWait,
    });
  } finally {
    waits.done();
    for (const s of signals) process.off(s, onSignal);
  }
  let status: number;
  try {
    const locks = await session.commandLocks();
    status = await runCommand((terminal) => spawnInSession(session, locks, { ...cmd, terminal }), locks);
  } catch (e) {
    // The command never ran: report that, then still end the session.
    process.stderr.write(formatError(`run -c ${def.name}`, e));
    status = 125;
  }
  return finish(session, status);
}

/** Ends the automatic session once its command is done; holders left behind keep it alive. */
async function finish(session: Session, status: number): Promise<number> {
  // Ending must not be cut short by a second Ctrl-C: the mounts would stay.
  const ignore = () => {};
  process.on('SIGINT', ignore);
  process.on('SIGTERM', ignore);
  try {
    await endSession(session);
    return status;
  } catch (e) {
    if (e instanceof SessionBusyError) {
      process.stderr.write(
        `warden: session ${session.id} is still held (${describeHolders(e.holders)}); it was left for \`warden end -s ${session.id}\`\n`,
      );
      session.release();
      return status;
    }
    session.release();
    process.stderr.write(formatError(`end of session ${session.id}`, e));
    return status !== 0 ? status : exitCodeOf(e, 125);
  } finally {
    process.off('SIGINT', ignore);
    process.off('SIGTERM', ignore);
  }
}
