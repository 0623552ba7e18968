// How the CLI reports failures: the exit code of each error type
// (src/exit-codes.ts), and one line `warden: <what>: <why>` per error.

import { EXIT } from '../exit-codes.js';

export class UsageError extends Error {
  static readonly exit: number | undefined = EXIT.usage;
  override name = 'UsageError';
  readonly verb: string | undefined;
  constructor(message: string, verb?: string) {
    super(message);
    this.verb = verb;
  }
}

/** The caller may do it, but only root can carry it out from the command line (exit 8). */
export class RootRequiredError extends Error {
  static readonly exit: number | undefined = EXIT.denied;
  override name = 'RootRequiredError';
  constructor(what: string) {
    super(`${what} from the command line needs root: the lock files and mounts are root's (uid ${process.getuid!()} may begin and end sessions through the supervisor's socket)`);
  }
}

// The table lives below the CLI: the library's errors carry their code too.
export { EXIT, exitCodeOf } from '../exit-codes.js';

const HINTS: Record<string, string> = {
  SessionBusyError: 'hint: `warden info ID` shows the holders; `warden end -s ID --wait` waits for them, `--force` kills them',
  UnmountBusyError: 'hint: the session is intact; end it again once those processes have exited',
  TreeInUseError: 'hint: the session is intact; end it again once those processes have exited',
  SessionActiveError: 'hint: `warden info ID` shows the holders; `warden end -s ID` ends an active session',
  LockTimeoutError: 'hint: `warden locks` shows who holds warden locks',
  SourceBusyError: 'hint: `warden list --sessions` shows the sessions; the entry gets in once they end (`warden end -s ID`)',
  SupervisorRunningError: 'hint: `warden begin` and `warden end` talk to the running one; stop it (SIGTERM) to replace it',
  SupervisorUnavailableError: 'hint: run `warden supervise` in the foreground to see why it does not start',
  StaleSessionsError: 'hint: `warden list --sessions` shows them; `--recover-stale` ends them (and deletes what was written in them) before entering',
};

/**
 * StaleSessionsError naming other hosts' sessions: --recover-stale cannot
 * end those (their overlays are mounted there), so the table's hint would mislead.
 */
function staleHint(e: unknown): string | undefined {
  if (!(e instanceof Error) || e.name !== 'StaleSessionsError') return undefined;
  const { ids, remote } = e as Error & { ids?: readonly unknown[]; remote?: readonly unknown[] };
  if (!remote || remote.length === 0) return undefined;
  const there = 'only the host a session is on can end it (`warden recover --all --end` there), or `warden forget-host` once that host is gone for good';
  return ids && ids.length > 0
    ? `hint: ${there}; \`--recover-stale\` ends this host's stale sessions alone (and deletes what was written in them)`
    : `hint: ${there}; \`--recover-stale\` cannot end them from here`;
}

/** `warden: <what>: <why>` plus a hint line where one helps. */
export function formatError(what: string, e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const name = e instanceof Error ? e.name : '';
  const hint = staleHint(e) ?? HINTS[name];
  const lines = [`warden: ${what}: ${msg.split('\n')[0]}`];
  if (name === 'UsageError') lines.push(`Try 'warden ${(e as UsageError).verb ?? ''} --help'.`.replace('  ', ' '));
  else if (hint) lines.push(hint);
  return `${lines.join('\n')}\n`;
}
