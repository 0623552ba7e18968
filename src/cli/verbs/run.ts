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
} from '../../api/internal/protocols.js';
import { describeHolders } from '../../api/internal/holders.js';
import { str, type Parsed } from '../args.js';
import { authorizeCaller, viaSupervisor } from '../authorize.js';
import { chrootOf, hookTimeoutMsOf, hooksDirOf, loadContext } from '../../api/internal/config.js';
import { UsageError, exitCodeOf, formatError } from '../errors.js';
import { runCommand } from '../command.js';
import { withLockWait } from '../lock-wait.js';

export default async function run(p: Parsed): Promise<number> {
  const o = p.options;
  if (Boolean(o.chroot) === Boolean(o.session)) throw new UsageError('give exactly one of -c CHROOT or -s ID', 'run');
  if (p.command.length === 0) throw new UsageError('no command given (warden run -c CHROOT -- CMD...)', 'run');
  if (o.id !== undefined && !o.chroot) throw new UsageError('--id names a new automatic session: use it with -c', 'run');
  const ctx = loadContext({ config: str(o.config), stateDir: str(o['state-dir']) });

  const cmd = { command: p.command, user: str(o.user), directory: str(o.directory), preserveEnvironment: o['preserve-environment'] === true };

  if (o.session) {
    // Which chroot the session is of comes from its state.json, read before any lock is taken.
    const state = () => openSession(ctx.stateDir, String(o.session)).state;
    await viaSupervisor(p, ctx.stateDir, () => authorizeCaller(() => chrootOf(ctx, state().chroot), 'run', { user: cmd.user, session: state }));
    const locks = await openSession(ctx.stateDir, String(o.session)).commandLocks();
    let session: Session;
    try {
      // Read again under our lock: an end or recover may have changed it
      // (a stale session is runnable only while its view is in place).
      session = openSession(ctx.stateDir, String(o.session));
      assertRunnable(session);
    } catch (e) {
      locks.close();
      throw e;
    }
    return runCommand((terminal) => spawnInSession(session, locks, { ...cmd, terminal }), locks);
  }

  const def = chrootOf(ctx, String(o.chroot));
  await viaSupervisor(p, ctx.stateDir, () => authorizeCaller(() => def, 'run', { user: cmd.user }));
  const session = await withLockWait(o, (w) =>
    beginSession({
      stateDir: ctx.stateDir,
      chroot: def,
      id: str(o.id),
      hooksDir: hooksDirOf(ctx, def),
      hookTimeoutMs: hookTimeoutMsOf(ctx, def),
      signal: w.signal,
      timeout: w.timeoutMs,
      wait: w.wait,
      onWait: w.onWait,
    }),
  );
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
