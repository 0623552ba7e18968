// warden end -s ID: unmount a session and delete it. When a supervisor runs
// for the state dir, it does the ending: it may hold the session, and a
// local end would count it among the holders (and --force would kill it).
//
// warden end --all [-c CHROOT]: the same for every session there is (of one
// chroot), as schroot's `--end-session --all-sessions` does for a build
// host's cleanup. It goes on past a session that cannot be ended and exits
// with the first failure's status; corrupt entries are reported and left.
import { SessionNotFoundError } from '../../api/internal/state-dir.js';
import { openSession, type Session } from '../../api/internal/session.js';
import type { SupervisorClient } from '../../supervisor/index.js';
import { str, type Parsed } from '../args.js';
import { chrootOf, loadContext } from '../../api/internal/config.js';
import { EXIT, RootRequiredError, UsageError, exitCodeOf, formatError } from '../errors.js';
import type { LockWait } from '../lock-wait.js';
import { withLockWait } from '../lock-wait.js';

interface EndFlags {
  wait: boolean;
  force: boolean;
  /** Seconds, as given. */
  timeout: number | undefined;
}

export default async function end(p: Parsed): Promise<number> {
  const o = p.options;
  if (Boolean(o.session) === Boolean(o.all)) throw new UsageError(o.all ? 'give -s ID or --all, not both' : 'which session? (-s ID, or --all)', 'end');
  if (o.chroot !== undefined && !o.all) throw new UsageError('-c picks the sessions of --all; -s names one already', 'end');
  if (o.wait && o.force) throw new UsageError('--wait and --force exclude each other', 'end');
  const ctx = loadContext({ config: str(o.config), stateDir: str(o['state-dir']) });
  // Ctrl-C only: end has no --no-wait, and its --timeout goes on in seconds.
  return withLockWait(
    o,
    async (w) => {
      const flags: EndFlags = { wait: o.wait === true, force: o.force === true, timeout: w.timeoutS };
      if (o.all) {
        // Exit 4 for an unknown chroot, before anything is ended.
        const chroot = o.chroot === undefined ? undefined : chrootOf(ctx, String(o.chroot)).name;
        return endAll(ctx.stateDir, chroot, flags, w.signal, w.onWait);
      }
      // Checks the id (exit 2) and that the session exists (exit 4) before anything else.
      const session = openSession(ctx.stateDir, String(o.session));
      await withEnder(ctx.stateDir, (endOne) => endOne(session, flags, w.signal, w.onWait));
      return EXIT.ok;
    },
    { signals: ['SIGINT'], reason: () => new Error('interrupted') },
  );
}

type OnWait = LockWait['onWait'];
type EndOne = (session: Session, flags: EndFlags, signal: AbortSignal, onWait: OnWait) => Promise<void>;

/**
 * Runs `fn` with a way to end sessions: through the supervisor when one
 * runs for the state dir (one connection for all), else here.
 */
async function withEnder<T>(stateDir: string, fn: (endOne: EndOne) => Promise<T>): Promise<T> {
  const { connectSupervisor } = await import('../../supervisor/client.js');
  const client = await connectSupervisor(stateDir, { blocking: true });
  if (client) {
    try {
      return await fn((session, f, signal, onWait) => viaSupervisor(client, session, f, signal, onWait));
    } finally {
      client.close();
    }
  }
  // The ending code (hooks, unmounting) is loaded only to end here.
  const { endSession } = await import('../../api/internal/end.js');
  return fn(async (session, f, signal, onWait) => {
    // Without a supervisor the ending is this process's: root's work. Anyone
    // else learns whether the session is theirs, then why it cannot be done.
    if (process.getuid!() !== 0) {
      const { assertSessionOwner } = await import('../../supervisor/owner.js');
      assertSessionOwner(session.state, { uid: process.getuid!() }, 'end');
      throw new RootRequiredError('ending a session when no supervisor runs');
    }
    await endSession(session, { wait: f.wait, force: f.force, timeout: f.timeout === undefined ? undefined : f.timeout * 1000, signal, onWait });
  });
}

async function viaSupervisor(client: SupervisorClient, session: Session, f: EndFlags, signal: AbortSignal, onWait: OnWait): Promise<void> {
  await client.request(
    { op: 'end', id: session.id, ...(f.wait ? { wait: true } : {}), ...(f.force ? { force: true } : {}), ...(f.timeout === undefined ? {} : { timeout: f.timeout }) },
    { onWait, signal },
  );
}

/**
 * Ends the sessions listed now (those begun meanwhile are not), one at a
 * time, printing `ended ID` for each. A session ended by someone else
 * meanwhile is no failure. Ctrl-C stops before the next one (exit 130).
 */
async function endAll(stateDir: string, chroot: string | undefined, flags: EndFlags, signal: AbortSignal, onWait: OnWait): Promise<number> {
  const { listSessions } = await import('../../api/internal/state-dir.js');
  const entries = listSessions(stateDir);
  let code: number = EXIT.ok;
  const fail = (what: string, e: unknown) => {
    process.stderr.write(formatError(what, e));
    if (code === EXIT.ok) code = exitCodeOf(e);
  };
  for (const e of entries) {
    if (e.status === 'corrupt') process.stderr.write(`warden: ${e.id} is corrupt, left untouched: ${e.reason}\n`);
  }
  const targets = entries.filter((e) => e.status !== 'corrupt' && (chroot === undefined || e.state?.chroot === chroot));
  if (targets.length === 0) return code;
  return withEnder(stateDir, async (endOne) => {
    for (const t of targets) {
      if (signal.aborted) return EXIT.interrupted;
      let session: Session;
      try {
        session = openSession(stateDir, t.id);
      } catch (err) {
        if (!(err instanceof SessionNotFoundError)) fail(`end -s ${t.id}`, err);
        continue;
      }
      try {
        await endOne(session, flags, signal, onWait);
        process.stdout.write(`ended ${t.id}\n`);
      } catch (err) {
        if (signal.aborted) return EXIT.interrupted;
        // Ended by someone else between the listing and now. By name too: the
        // supervisor's errors arrive as a name and a message.
        if (err instanceof SessionNotFoundError || (err as Error).name === 'SessionNotFoundError') continue;
        fail(`end -s ${t.id}`, err);
      }
    }
    return code;
  });
}
