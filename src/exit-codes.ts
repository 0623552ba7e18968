// The exit code of each expected failure (DESIGN.md, "Commands"). Each
// error class declares its own, `static readonly exit = EXIT.busy`
// (subclasses inherit it); this file reads it, so it imports no layer (and
// the CLI loads none of them just to report an error). An error rebuilt
// from the supervisor's wire carries the code its class declared there.

export const EXIT = { ok: 0, failure: 1, usage: 2, config: 3, notFound: 4, busy: 5, hook: 6, stale: 7, denied: 8, interrupted: 130 } as const;

/** What an error class may declare about its exit code. */
interface Declares {
  /** The CLI's exit code for this outcome. */
  exit?: number | undefined;
  /** The code is the cause's (a failed rollback keeps the first failure as its cause). */
  exitFromCause?: boolean;
}

/** The code `e`'s own class declares (130 for an interrupted hook), or the one it carried over the wire; undefined when none. */
export function declaredExitCode(e: unknown): number | undefined {
  if (!(e instanceof Error)) return undefined;
  const code = (e as { wireExit?: number }).wireExit ?? (e.constructor as Declares).exit;
  // A hook killed because the user pressed Ctrl-C did not fail: the user stopped it.
  if (code === EXIT.hook && (e as Error & { interrupted?: boolean }).interrupted === true) return EXIT.interrupted;
  return code;
}

/** The exit code for `e`; `fallback` for an error whose class declares none (1, or 125 for run). */
export function exitCodeOf(e: unknown, fallback: number = EXIT.failure): number {
  let err: unknown = e;
  while (err instanceof Error && (err.constructor as Declares).exitFromCause && err.cause) err = err.cause;
  return declaredExitCode(err) || fallback;
}
