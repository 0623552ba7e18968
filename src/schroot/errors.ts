// Errors of schroot's command line, worded as schroot 1.6 words them, so a
// script that greps schroot's stderr finds the same line under warden-schroot.

/** schroot exits 1 for every failure of its own, usage errors included. */
const SCHROOT_FAILURE = 1;

/**
 * A command line schroot (or warden-schroot) refuses. `message` is the text
 * after schroot's `E: `. `hint`: schroot follows its own option errors (not
 * boost's parse errors) with `I: Run “PROG --help” ...`.
 */
export class SchrootUsageError extends Error {
  override name = 'SchrootUsageError';
  readonly exitCode = SCHROOT_FAILURE;
  readonly hint: boolean;
  /** The option that was refused, when there is one (as given: `--option`, `-o`). */
  readonly option: string | undefined;

  constructor(message: string, { hint = false, option }: { hint?: boolean; option?: string } = {}) {
    super(message);
    this.hint = hint;
    this.option = option;
  }
}

/** What schroot prints on stderr for `e` (`argv0` is its argv[0]). */
export function usageErrorText(e: SchrootUsageError, argv0: string): string {
  const hint = e.hint ? `I: Run “${argv0} --help” to list usage example and all available options\n` : '';
  return `E: ${e.message}\n${hint}`;
}

/** schroot's messages; boost::program_options' for parse errors, schroot's own for the rest. */
export const messages = {
  unrecognised: (token: string) => `unrecognised option '${token}'`,
  missingArgument: (long: string) => `the required argument for option '--${long}' is missing`,
  emptyAfterEquals: (long: string) => `the argument for option '--${long}' should follow immediately after the equal sign`,
  noArguments: (long: string) => `option '--${long}' does not take any arguments`,
  twice: (long: string) => `option '--${long}' cannot be specified more than once`,
  ambiguous: (token: string, matches: readonly string[]) =>
    `option '${token}' is ambiguous and matches ${matches.slice(0, -1).map((m) => `'--${m}', `).join('')}and '--${matches.at(-1)}'`,
  oneAction: () => 'Only one action may be specified',
  exactlyOneToBegin: () => 'Exactly one chroot must be specified when beginning a session',
  sessionNameForSession: () => '--session-name is not permitted for the specified action; did you mean to use --chroot?',
  sessionNameNotPermitted: () => '--session-name is not permitted for the specified action',
  invalidSessionName: () => 'Invalid session name',
  noSuchNamespace: (ns: string) => `${ns}: No such namespace`,
  // warden-schroot's own: schroot has these options, warden does not honour them.
  unsupported: (token: string, why: string) => `${token} is not supported by warden-schroot: ${why}`,
} as const;
