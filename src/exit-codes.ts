// The exit code of each expected failure (DESIGN.md, "Commands"): one table,
// read by the CLI when it exits and by the errors themselves (`exitCode`,
// for library callers). By constructor name, so that this file imports no
// layer (and the CLI loads none of them just to report an error).

export const EXIT = { ok: 0, failure: 1, usage: 2, config: 3, notFound: 4, busy: 5, hook: 6, stale: 7, denied: 8, interrupted: 130 } as const;

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
  RegistrationHeldError: EXIT.busy,
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
