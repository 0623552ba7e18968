// How the CLI reports failures: one table from error type to exit code
// (DESIGN.md, "Commands"), and one line `warden: <what>: <why>` per error.

export class UsageError extends Error {
  override name = 'UsageError';
  readonly verb: string | undefined;
  constructor(message: string, verb?: string) {
    super(message);
    this.verb = verb;
  }
}

/** No chroot of that name or alias (exit 4). */
export class NoSuchChrootError extends Error {
  override name = 'NoSuchChrootError';
  constructor(name: string, known: string[]) {
    super(`no such chroot ${JSON.stringify(name)}${known.length ? ` (configured: ${known.join(', ')})` : ' (none configured)'}`);
  }
}

/** The caller may do it, but only root can carry it out from the command line (exit 8). */
export class RootRequiredError extends Error {
  override name = 'RootRequiredError';
  constructor(what: string) {
    super(`${what} from the command line needs root: the lock files and mounts are root's (uid ${process.getuid!()} may begin and end sessions through the supervisor's socket)`);
  }
}

export const EXIT = { ok: 0, failure: 1, usage: 2, config: 3, notFound: 4, busy: 5, hook: 6, stale: 7, denied: 8, interrupted: 130 } as const;

// By constructor name, so this table needs no import of the layers (and
// the CLI loads none of them just to report an error).
const CODES: Record<string, number> = {
  UsageError: EXIT.usage,
  SessionIdError: EXIT.usage,
  ConfigError: EXIT.config,
  StateDirUntrustedError: EXIT.config,
  NoSuchChrootError: EXIT.notFound,
  SessionNotFoundError: EXIT.notFound,
  LockBusyError: EXIT.busy,
  LockTimeoutError: EXIT.busy,
  SessionBusyError: EXIT.busy,
  TreeInUseError: EXIT.busy,
  SessionActiveError: EXIT.busy,
  HookFailedError: EXIT.hook,
  HookPermissionError: EXIT.hook,
  StaleSessionsError: EXIT.stale,
  SourceBusyError: EXIT.busy,
  SessionNeedsRecoveryError: EXIT.stale,
  PermissionDeniedError: EXIT.denied,
  RootRequiredError: EXIT.denied,
  StateDirAccessError: EXIT.denied,
  SessionAccessError: EXIT.denied,
  SupervisorAccessError: EXIT.denied,
  SupervisorLimitError: EXIT.busy,
  SupervisorRunningError: EXIT.busy,
  ProtocolError: EXIT.usage,
  RequestAbortedError: EXIT.interrupted,
  LockAbortedError: EXIT.interrupted,
  CopyInterruptedError: EXIT.interrupted,
};

/** The exit code for `e`; `fallback` for anything not in the table (1, or 125 for run). */
export function exitCodeOf(e: unknown, fallback: number = EXIT.failure): number {
  let err: unknown = e;
  // A failed rollback keeps the first failure as its cause: that decides.
  while (err instanceof Error && err.name === 'RollbackError' && err.cause) err = err.cause;
  // A hook killed because the user pressed Ctrl-C did not fail: the user stopped it.
  if (err instanceof Error && err.name === 'HookFailedError' && (err as Error & { interrupted?: boolean }).interrupted) return EXIT.interrupted;
  return (err instanceof Error && CODES[err.name]) || fallback;
}

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

/** `warden: <what>: <why>` plus a hint line where one helps. */
export function formatError(what: string, e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  const name = e instanceof Error ? e.name : '';
  const hint = HINTS[name];
  const lines = [`warden: ${what}: ${msg.split('\n')[0]}`];
  if (name === 'UsageError') lines.push(`Try 'warden ${(e as UsageError).verb ?? ''} --help'.`.replace('  ', ' '));
  else if (hint) lines.push(hint);
  return `${lines.join('\n')}\n`;
}
