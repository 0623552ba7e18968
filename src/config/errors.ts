// Typed outcomes of reading the configuration. Every message is built here,
// in one shape, `FILE:LINE: reason`, so terminals and editors can jump to it;
// callers read the fields rather than parse the text.
import { EXIT, exitCodeOf } from '../exit-codes.js';

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
  static readonly exit: number | undefined = EXIT.config;
  override name = 'ConfigError';
  readonly file: string;
  readonly line: number | undefined;
  /** The message without its `FILE:LINE: ` prefix. */
  readonly reason: string;

  /** The CLI's exit code for this outcome (src/exit-codes.ts). */
  get exitCode(): number {
    return exitCodeOf(this);
  }

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

/**
 * What a caller asks of a chroot (see access.ts): begin or run in its
 * sessions as themselves, run in them as root or as someone else, enter
 * its source, run there as root or as someone else, or end its stale
 * sessions on the way in (`source --recover-stale`).
 */
export type Access = 'session' | 'root' | 'source' | 'source-root' | 'recover-stale';

const ACTIONS: Record<Access, string> = {
  session: 'begin or run in sessions of',
  root: 'run commands as root or as another user in sessions of',
  source: 'enter the source of',
  'source-root': 'run commands as root or as another user in the source of',
  'recover-stale': 'end the stale sessions (--recover-stale) of',
};

/**
 * A chroot's users=, groups=, root-users=, root-groups=, source-users=,
 * source-groups=, source-root-users= or source-root-groups= does not admit
 * this caller (exit 8). `rule` is the refusal
 * in the configuration's terms ("not in source-users= or source-groups="),
 * `place` the chroot's definition, where an administrator would change it.
 */
export class PermissionDeniedError extends Error {
  static readonly exit: number | undefined = EXIT.denied;
  override name = 'PermissionDeniedError';
  readonly chroot: string;
  readonly uid: number;
  /** The caller's name from the passwd file; undefined when it has no entry. */
  readonly user: string | undefined;
  readonly access: Access;
  readonly rule: string;
  readonly place: Place;

  /** The CLI's exit code for this outcome (src/exit-codes.ts). */
  get exitCode(): number {
    return exitCodeOf(this);
  }

  constructor(o: { chroot: string; uid: number; user: string | undefined; access: Access; rule: string; place: Place }) {
    const who = o.user === undefined ? `uid ${o.uid}` : `user ${quote(o.user)} (uid ${o.uid})`;
    super(`${who} may not ${ACTIONS[o.access]} chroot ${quote(o.chroot)}: ${o.rule} (${describePlace(o.place)})`);
    this.chroot = o.chroot;
    this.uid = o.uid;
    this.user = o.user;
    this.access = o.access;
    this.rule = o.rule;
    this.place = o.place;
  }
}

/** No chroot of that name or alias (exit 4). `known`: the configured names. */
export class NoSuchChrootError extends Error {
  static readonly exit: number | undefined = EXIT.notFound;
  override name = 'NoSuchChrootError';
  readonly chroot: string;
  readonly known: readonly string[];
  constructor(name: string, known: string[]) {
    super(`no such chroot ${JSON.stringify(name)}${known.length ? ` (configured: ${known.join(', ')})` : ' (none configured)'}`);
    this.chroot = name;
    this.known = known;
  }

  /** The CLI's exit code for this outcome (src/exit-codes.ts). */
  get exitCode(): number {
    return exitCodeOf(this);
  }
}
