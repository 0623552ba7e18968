// Typed outcomes of reading the configuration. Every message is built here,
// in one shape, `FILE:LINE: reason`, so terminals and editors can jump to it;
// callers read the fields rather than parse the text.

/** A spot in a configuration file; `line` is 1-based. */
export interface Place {
  file: string;
  line: number;
}

export function describePlace(place: Place): string {
  return `${place.file}:${place.line}`;
}

/**
 * The configuration cannot be used: bad syntax, an invalid value, a clash of
 * names, a missing directory or an unreadable file. The CLI maps it to exit 3.
 * `line` is undefined only when the problem is the file itself (missing,
 * unreadable), not something on one of its lines.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly file: string;
  readonly line: number | undefined;
  /** The message without its `FILE:LINE: ` prefix. */
  readonly reason: string;

  constructor(file: string, line: number | undefined, reason: string, opts: { cause?: unknown } = {}) {
    super(`${line === undefined ? file : describePlace({ file, line })}: ${reason}`, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.file = file;
    this.line = line;
    this.reason = reason;
  }
}

/** Something warden skipped but that does not stop it: an unknown or schroot-only key. */
export interface ConfigWarning {
  file: string;
  line: number;
  /** Already formatted as `FILE:LINE: reason`, like ConfigError's message. */
  message: string;
}

export function configWarning(place: Place, reason: string): ConfigWarning {
  return { file: place.file, line: place.line, message: `${describePlace(place)}: ${reason}` };
}

/** Shows a configured value the way the user must look for it: quoted, whitespace visible. */
export function quote(value: string): string {
  return JSON.stringify(value);
}
