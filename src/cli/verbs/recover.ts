// warden recover (-s ID | --all) [--end] [-- CMD...]: re-adopt or end stale
// sessions in this process. A re-adopted session is held only while CMD
// runs; without CMD it is left stale but consistent (mounted, active) for
// `run -s` and `end -s`, or for a supervisor, which re-adopts and holds it.
import { recoverAll, recoverSession, spawnInSession, type RecoverReport, type Recovered } from '../../api/internal/protocols.js';
import { str, type Parsed } from '../args.js';
import { loadContext, sharedChrootsOf } from '../../api/internal/config.js';
import { EXIT, UsageError, exitCodeOf, formatError } from '../errors.js';
import { withLockWait } from '../lock-wait.js';
import { runCommand } from '../command.js';

export default async function recover(p: Parsed): Promise<number> {
  const o = p.options;
  if (Boolean(o.session) === Boolean(o.all)) throw new UsageError('give exactly one of -s ID or --all', 'recover');
  if (p.command.length > 0 && (o.all || o.end)) throw new UsageError('a command runs in one re-adopted session: use it with -s ID, without --end', 'recover');
  if ((o.user !== undefined || o.directory !== undefined || o['preserve-environment'] !== undefined) && p.command.length === 0) {
    throw new UsageError('-u, -d and -p apply to a command (-- CMD...)', 'recover');
  }
  const ctx = loadContext({ config: str(o.config), stateDir: str(o['state-dir']) });
  // Not root: the owner of a session recovers it through the supervisor (the relay this process becomes).
  if (o.session && process.getuid!() !== 0 && p.argv !== undefined) {
    const { execRelay } = await import('../relay-exec.js');
    throw execRelay(ctx.stateDir, p.argv);
  }
  const one = await withLockWait(o, async (w): Promise<Recovered | number> => {
    const common = { stateDir: ctx.stateDir, end: o.end === true, signal: w.signal, timeout: w.timeoutMs, wait: w.wait, onWait: w.onWait };
    if (o.all) return report(await recoverAll({ ...common, sharedChroots: sharedChrootsOf(ctx) }), w.signal);
    return recoverSession({ ...common, id: String(o.session) });
  });
  if (typeof one === 'number') return one;
  // With a command, stdout belongs to it.
  (p.command.length > 0 ? process.stderr : process.stdout).write(describe(toReport(one)));
  if (one.action === 'ended' || p.command.length === 0) {
    // Left stale but consistent: mounted and active, for run -s and end -s.
    if (one.action === 'readopted') one.session.release();
    return EXIT.ok;
  }
  const session = one.session;
  try {
    const locks = await session.commandLocks();
    const cmd = { command: p.command, user: str(o.user), directory: str(o.directory), preserveEnvironment: o['preserve-environment'] === true };
    return await runCommand((terminal) => spawnInSession(session, locks, { ...cmd, terminal }), locks);
  } finally {
    session.release();
  }
}

/** The line `recover -s` prints for `r` (the broker sends the same to its clients). */
export function recoveredLine(r: Recovered): string {
  return describe(toReport(r));
}

function toReport(r: Recovered): RecoverReport {
  return r.action === 'ended'
    ? { id: r.id, outcome: 'ended', killedHooks: r.killedHooks }
    : { id: r.id, outcome: 'readopted', remounted: r.remounted, phases: r.phases, killedHooks: r.killedHooks };
}

/** One line per session: what was done (stdout) or what went wrong (stderr, see report). */
function describe(r: RecoverReport): string {
  const killed = 'killedHooks' in r && r.killedHooks.length > 0 ? `; killed hooks left running by a dead warden: ${r.killedHooks.map((h) => `pid ${h.pid} (${h.phase})`).join(', ')}` : '';
  switch (r.outcome) {
    case 'readopted':
      return `recovered ${r.id}: ${r.remounted ? 're-mounted' : 'mount kept'}; hooks run: ${r.phases.join(', ') || 'none'}${killed}\n`;
    case 'ended':
      return `ended ${r.id}${killed}\n`;
    case 'removed-unpublished':
      return `removed ${r.id}: the build dir of a begin that died before publishing its session\n`;
    case 'removed-ended':
      return `removed ${r.id}: what was left of an ended session whose deletion was cut short\n`;
    case 'corrupt':
      return `warden: session ${r.id} is corrupt, left untouched: ${r.reason}\n`;
    case 'removed-registration':
      return `removed registration ${r.id} of [${r.chroot}]: its session was ended, but its end died before removing it\n`;
    case 'active':
      return '';
    case 'failed':
      return formatError(r.chroot === undefined ? `recover -s ${r.id}` : `recover --all: registrations of [${r.chroot}]`, r.error);
  }
}

/** recover --all: every outcome reported; the exit code is the first failure's (0 when none failed). */
function report(results: RecoverReport[], signal: AbortSignal): number {
  let code: number = EXIT.ok;
  for (const r of results) {
    (r.outcome === 'failed' || r.outcome === 'corrupt' ? process.stderr : process.stdout).write(describe(r));
    if (r.outcome === 'failed' && code === EXIT.ok) code = exitCodeOf(r.error);
  }
  if (signal.aborted) return EXIT.interrupted;
  if (!results.some((r) => r.outcome !== 'active')) process.stdout.write('no stale sessions\n');
  return code;
}
