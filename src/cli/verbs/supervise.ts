// warden supervise: the supervisor in the foreground, until SIGTERM/SIGINT.
// Its log lines go to stderr (supervisor.log when `begin` started it).
import { closeSync, writeSync } from 'node:fs';
import { str, type Parsed } from '../args.js';
import { chrootOf, hookTimeoutMsOf, hooksDirOf, loadContext, sharedChrootsOf, type Context } from '../../api/internal/config.js';
import { EXIT } from '../errors.js';

/** The node arguments that start a supervisor like this CLI's context: same entry, config and state dir. */
export function supervisorArgv(ctx: Context, stateDir: string): string[] {
  const argv = [process.argv[1]!, 'supervise', '--ready-fd', '3', '--state-dir', stateDir];
  if (ctx.config.file) argv.push('--config', ctx.config.file);
  return argv;
}

/** `[warden] socket-group=` as a gid; exit 3 naming the group when it does not exist. */
async function socketGid(ctx: Context): Promise<number | undefined> {
  const group = ctx.config.socketGroup;
  if (group === undefined) return undefined;
  const { groupId, ConfigError } = await import('../../api/internal/config.js');
  const gid = groupId(group);
  if (gid === undefined) throw new ConfigError(ctx.config.file ?? '(config)', undefined, `socket-group=${group}: no such group in /etc/group`);
  return gid;
}

/**
 * The listening socket systemd passed (sd_listen_fds(3): LISTEN_PID is us,
 * LISTEN_FDS at least 1, the first at fd 3), or undefined. The variables
 * are removed so that nothing this process starts takes them for its own.
 */
function activationFd(log: (line: string) => void): number | undefined {
  const pid = process.env.LISTEN_PID;
  const fds = Number(process.env.LISTEN_FDS);
  delete process.env.LISTEN_PID;
  delete process.env.LISTEN_FDS;
  delete process.env.LISTEN_FDNAMES;
  if (pid === undefined || Number(pid) !== process.pid || !(fds >= 1)) return undefined;
  if (fds > 1) log(`systemd passed ${fds} sockets; serving the first (fd 3) only`);
  return 3;
}

export default async function supervise(p: Parsed): Promise<number> {
  const o = p.options;
  const configArg = str(o.config);
  const ctx = loadContext({ config: configArg, stateDir: str(o['state-dir']) });
  for (const w of ctx.config.warnings) process.stderr.write(`warden: warning: ${w.message}\n`);
  // A log whose reader went away (the terminal closed, the pipe's reader
  // died) is dropped, not retried: its write errors would be uncaught, the
  // handler below would log them, and that write would fail again, a loop
  // that took a whole core of an orphaned supervisor.
  let logGone = false;
  process.stderr.on('error', () => {
    logGone = true;
  });
  const log = (line: string) => {
    if (!logGone) process.stderr.write(`${new Date().toISOString()} warden-supervisor[${process.pid}]: ${line}\n`);
  };
  // The last line of defence (the supervisor catches what it expects): a user of socket-group must
  // not be able to end the supervisor, and with it the sessions of everyone, by any error it provokes.
  process.on('uncaughtException', (e) => log(`internal error, kept running: ${e.stack ?? String(e)}`));
  process.on('unhandledRejection', (e) => log(`internal error (unhandled rejection), kept running: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`));
  const [{ startSupervisor }, { limitsFromSettings }, { relayCalls }] = await Promise.all([
    import('../../supervisor/server.js'),
    import('../../supervisor/limits.js'),
    import('../relayed.js'),
  ]);
  const sup = await startSupervisor({
    stateDir: ctx.stateDir,
    // The configuration as it is at each begin: edits apply without a restart.
    resolveChroot: (name) => {
      const now = loadContext({ config: configArg ?? ctx.config.file, stateDir: ctx.stateDir });
      const chroot = chrootOf(now, name);
      return { chroot, hooksDir: hooksDirOf(now, chroot), hookTimeoutMs: hookTimeoutMsOf(now, chroot) };
    },
    sharedChroots: () => sharedChrootsOf(ctx),
    log,
    socketGid: await socketGid(ctx),
    limits: limitsFromSettings(ctx.config.supervisorLimits),
    endSessionsOnExit: o['end-sessions-on-exit'] === true,
    // Undocumented, for bench/watch.ts: the watch's events on stderr, with
    // their monotonic time. One write(2) each, not the log's stream: the
    // instrument's cost is counted in the supervisor's CPU it measures.
    traceWatch: process.env.WARDEN_TRACE_WATCH === '1' ? traceToStderr : undefined,
    relayCalls: relayCalls(ctx.stateDir, configArg ?? ctx.config.file),
    listenFd: activationFd(log),
  });
  const readyFd = typeof o['ready-fd'] === 'number' ? o['ready-fd'] : undefined;
  if (readyFd !== undefined) {
    try {
      writeSync(readyFd, 'READY\n');
      closeSync(readyFd);
    } catch (e) {
      log(`could not report readiness on fd ${readyFd}: ${(e as Error).message}`);
    }
  }
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.once(s, () => resolve(s));
  });
  log(`${signal}: stopping (${sup.held().length} session(s) held)`);
  await sup.close();
  const { shutdownWaitPool, shutdownRemovalPool } = await import('../../api/internal/pools.js');
  await Promise.all([shutdownWaitPool(), shutdownRemovalPool()]);
  log('stopped');
  return EXIT.ok;
}

/**
 * The watch's trace lines on stderr, each one write(2) when the stream has
 * nothing queued (Node's stream machinery cost the supervisor ~10% of its
 * CPU per event, counted in what the bench measures). stderr is
 * non-blocking: what a full pipe or socket does not take goes through the
 * stream, which queues it, as do all lines while anything is queued, so
 * that no line is lost or cut into another.
 */
function traceToStderr(line: string): void {
  const buf = Buffer.from(`warden-supervisor[${process.pid}]: ${line}\n`);
  let n = 0;
  if (process.stderr.writableLength === 0) {
    try {
      n = writeSync(2, buf);
    } catch {
      // EAGAIN: the stream queues it
    }
  }
  if (n < buf.length) process.stderr.write(buf.subarray(n));
}
