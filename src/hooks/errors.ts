// The hooks layer's typed errors. Every message is built here, in one place,
// so the CLI and the logs say the same thing (execa's lib/return/message.js):
// those of failed hooks, and the reasons and hooks.log lines of the
// declarative ones (.fstab, .copyfiles).
import { showPath } from '../sys/index.js';
import { describeErrno } from '../sys/index.js';
import type { HookPhase } from './types.js';
import { EXIT, exitCodeOf } from '../exit-codes.js';

export class HookError extends Error {
  override name = 'HookError';
  /** The CLI's exit code for this outcome (src/exit-codes.ts); 1 for one it has no code for. */
  get exitCode(): number {
    return exitCodeOf(this);
  }
}

/** How a hook ended badly; the data the caller needs to report it. */
export interface HookFailure {
  hook: string;
  phase: HookPhase;
  status: number | null;
  signal: string | null;
  timedOut: boolean;
  interrupted: boolean;
  timeoutMs: number;
  stderrTail: string[];
  /** Set when the hook could not be started at all (spawn failed). */
  spawnError?: Error;
  /** Interrupted before it was started. */
  notStarted?: boolean;
  /** A declarative hook's failure (it has no process, so no status): why, one line. */
  reason?: string;
  /** ... and the line of its file that `reason` is about, when there is one. */
  line?: number;
  /** ... and the error behind it, if any (a failed read, an unexpected errno). */
  cause?: unknown;
}

/** How `base`'s hook failed: `f` says what is known, the rest is "nothing of that kind happened". */
export function hookFailure(base: Pick<HookFailure, 'hook' | 'phase' | 'timeoutMs'>, f: Partial<HookFailure>): HookFailure {
  return { hook: base.hook, phase: base.phase, status: null, signal: null, timedOut: false, interrupted: false, timeoutMs: base.timeoutMs, stderrTail: [], ...f };
}

export class HookFailedError extends HookError {
  static readonly exit: number | undefined = EXIT.hook;
  override name = 'HookFailedError';
  /** `<phase>.d/<name>`, or a profile file's path */
  readonly hook: string;
  readonly phase: HookPhase;
  readonly status: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  /** Stopped by the caller's AbortSignal (Ctrl-C), not by its own failure. */
  readonly interrupted: boolean;
  /** Last non-empty stderr lines (at most 5); the full output is in hooks.log. */
  readonly stderrTail: string[];
  /** A declarative hook's reason (`line 3: bind /sys on ...: ...` without the line). */
  readonly reason: string | undefined;
  /** The line of a declarative hook's file that failed, when one did. */
  readonly line: number | undefined;
  /** With keepGoing: the failures after this (the first) one. */
  others: HookFailedError[] = [];

  constructor(f: HookFailure, options?: { cause?: unknown }) {
    super(failureMessage(f), options);
    this.hook = f.hook;
    this.phase = f.phase;
    this.status = f.status;
    this.signal = f.signal;
    this.timedOut = f.timedOut;
    this.interrupted = f.interrupted;
    this.stderrTail = f.stderrTail;
    this.reason = f.reason;
    this.line = f.line;
  }
}

export class HookPermissionError extends HookError {
  static readonly exit: number | undefined = EXIT.hook;
  override name = 'HookPermissionError';
  readonly path: string;
  readonly reason: string;

  /** `what` names the refused thing in the message: a hook (or its dirs), or the hooks log. */
  constructor(path: string, reason: string, what = 'hook', options?: { cause?: unknown }) {
    super(`${what} ${path} refused: ${reason}`, options);
    this.path = path;
    this.reason = reason;
  }
}

export function seconds(ms: number): string {
  return `${Number((ms / 1000).toFixed(3))} s`;
}

/** One line: what happened, then the last stderr line when there is one. */
function failureMessage(f: HookFailure): string {
  const last = f.stderrTail.at(-1);
  const tail = last === undefined ? '' : `: ${last}`;
  if (f.spawnError) return `hook ${f.hook} could not be started: ${f.spawnError.message}`;
  if (f.reason !== undefined) return `hook ${f.hook} failed: ${declarativeReason(f)}`;
  if (f.timedOut) return `hook ${f.hook} timed out after ${seconds(f.timeoutMs)} and was killed${tail}`;
  if (f.interrupted && f.notStarted) return `hook ${f.hook} was interrupted before it started`;
  if (f.interrupted) return `hook ${f.hook} was interrupted and killed${tail}`;
  if (f.signal !== null) return `hook ${f.hook} was killed by ${f.signal}${tail}`;
  return `hook ${f.hook} failed with exit status ${f.status}${tail}`;
}

/** The trailer line of one hook in hooks.log. */
export function trailer(phase: HookPhase, name: string, f: HookFailure | undefined, ms: number, declarative = false): string {
  let how: string;
  if (f === undefined) how = declarative ? 'done' : 'exit status 0';
  else if (f.spawnError) how = `not started (${f.spawnError.message})`;
  else if (f.reason !== undefined) how = 'failed';
  else {
    how = f.signal !== null ? `killed by ${f.signal}` : `exit status ${f.status}`;
    if (f.timedOut) how += `, timed out after ${seconds(f.timeoutMs)}`;
    if (f.interrupted) how += ', interrupted';
  }
  return `== ${phase} ${name}: ${how}, ${Math.round(ms)} ms ==\n`;
}

// Declarative hooks (declarative.ts, fstab.ts, copyfiles.ts). Their
// failures carry a reason and, where one applies, the file's line number;
// the reasons name paths with showPath, so a message stays one line.
const P = showPath;

/**
 * Thrown inside a declarative hook; runDeclarative turns it into a
 * HookFailure. Never leaves the hooks layer. `line` is filled in by the
 * code that knows which line it was working on.
 */
export class DeclarativeError extends HookError {
  override name = 'DeclarativeError';
  readonly reason: string;
  line: number | undefined;
  constructor(reason: string, line?: number, options?: { cause?: unknown }) {
    super(reason, options);
    this.reason = reason;
    this.line = line;
  }
}

/** getent failed (not "cannot list", exit 3): how, with the flags the phase needs (an interrupt stops it). */
export class GetentFailedError extends DeclarativeError {
  override name = 'GetentFailedError';
  readonly failure: HookFailure;
  constructor(db: string, failure: HookFailure) {
    super(refuse.getent(db, failure), undefined, { cause: failure.spawnError });
    this.failure = failure;
  }
}

/** What one .fstab line mounts, as messages name it: "bind /sys on /x/root/sys", "tmpfs tmpfs on /x/root/tmp". */
export function mountWhat(e: { bind: boolean; rec: boolean; vfstype: string; spec: string }, target: string): string {
  return `${e.rec ? 'rbind' : e.bind ? 'bind' : e.vfstype} ${P(e.spec)} on ${P(target)}`;
}

/** "line 3: bind /sys on /x/root/sys: Permission denied (EPERM)". */
function declarativeReason(f: { reason?: string; line?: number }): string {
  return f.line === undefined ? `${f.reason}` : `line ${f.line}: ${f.reason}`;
}

/** Reasons of a refused or failed line, and of a failed hook file (no line). */
export const refuse = {
  badRoot: (root: string) => `CHROOT_PATH must be an absolute path below /, not ${JSON.stringify(root)}`,
  unreadable: (path: string, e: Error) => `cannot read ${P(path)}: ${e.message}`,
  // .fstab syntax
  fields: (n: number) => `expected SPEC FILE VFSTYPE OPTIONS [FREQ [PASSNO]], found ${n} field${n === 1 ? '' : 's'}`,
  notNumber: (field: string, value: string) => `${field} ${JSON.stringify(value)} is not a number`,
  nul: (field: string) => `${field} contains a NUL character`,
  fileNotAbsolute: (file: string) => `FILE ${JSON.stringify(file)} is not an absolute path (a path inside the session, such as /proc)`,
  dotDot: (what: string, path: string) => `${what} ${P(path)} has a '..' component`,
  sessionRoot: () => 'FILE / is the session root itself; mount below it',
  sameFile: (file: string, line: number) => `FILE ${P(file)} is already the mount point of line ${line}`,
  bindSource: (spec: string) => `bind source ${JSON.stringify(spec)} is not an absolute host path`,
  emptyOption: (options: string) => `empty option in ${JSON.stringify(options)}`,
  bindOption: (opt: string) => `unknown option ${JSON.stringify(opt)} for a bind (known: defaults, rw, ro, nosuid, nodev, noexec, bind, rbind, nofail)`,
  rbindFlags: (flags: string[]) =>
    `rbind cannot be combined with ${flags.join(',')}: mount(2) would apply it to the top mount only, not to the submounts rbind brings along`,
  dataTooLong: (max: number) => `filesystem options longer than ${max} bytes`,
  // .copyfiles syntax
  copyNotAbsolute: (path: string) => `${JSON.stringify(path)} is not an absolute path`,
  copyRoot: () => '/ is not a file',
  // mount points and destinations
  symlink: (path: string, intent: 'mount' | 'under' | 'write') =>
    `${P(path)} is a symbolic link; refusing to ${intent === 'mount' ? 'mount on it' : intent === 'under' ? 'mount under it' : 'write through it'}`,
  notDir: (path: string) => `${P(path)} is not a directory`,
  dirForFile: (path: string, spec: string) => `${P(path)} is a directory, but ${P(spec)} is not (a file is bound on a file)`,
  fileForDir: (path: string, spec: string) => `${P(path)} is not a directory, but ${P(spec)} is`,
  cannotCreate: (path: string, e: Error) => `cannot create ${P(path)}: ${e.message}`,
  cannotCheck: (path: string, e: Error) => `cannot check ${P(path)}: ${e.message}`,
  underMount: (path: string, mountPoint: string) =>
    `${P(path)} is missing, and ${P(mountPoint)} above it is a mount point, not the session's own tree; refusing to create it there`,
  writeUnderMount: (path: string) => `${P(path)} is a mount point, not the session's own tree; refusing to write into it`,
  missingOnHost: (hostPath: string, line: number, spec: string, file: string) =>
    `${P(hostPath)} is missing on the host, and line ${line} binds ${P(spec)} on ${P(file)} above it; refusing to create it on the host`,
  noSource: (spec: string) => `${P(spec)} does not exist on the host (add nofail to skip it then)`,
  // mount(2)
  mount: (what: string, errnum: number) => `${what}: ${describeErrno(errnum)}`,
  private: (what: string, errnum: number, undo: number) =>
    `${what}: cannot make the new mount private: ${describeErrno(errnum)}; ${undo === 0 ? 'unmounted again' : `and unmounting it again failed: ${describeErrno(undo)}`}`,
  remount: (what: string, flags: string[], errnum: number, undo: number) =>
    `${what}: remount with ${flags.join(',')} failed: ${describeErrno(errnum)}; ${undo === 0 ? 'unmounted again' : `and unmounting it again failed: ${describeErrno(undo)}`}`,
  keepPrivate: (target: string, errnum: number) => `${P(target)} is mounted already but shared, and making it private failed: ${describeErrno(errnum)}`,
  // copies
  hostNotFile: (host: string) => `${P(host)} on the host is not a regular file`,
  destNotFile: (dest: string) => `${P(dest)} is not a regular file; refusing to replace it`,
  copy: (host: string, dest: string, e: Error) => `cannot copy ${P(host)} to ${P(dest)}: ${e.message}`,
  // nssdatabases
  nssName: (name: string, known: readonly string[]) => `${JSON.stringify(name)} is not a database warden copies (known: ${known.join(', ')})`,
  getent: (db: string, f: HookFailure) => `getent ${db} ${getentHow(f)}`,
  nssWrite: (db: string, dest: string, e: Error) => `cannot write the host's ${db} database to ${P(dest)}: ${e.message}`,
  // profile files
  profileMissing: (path: string) => `profile file ${P(path)} does not exist`,
};

/** How getent ended badly, for refuse.getent: what failureMessage says of a hook, without the hook's name. */
function getentHow(f: HookFailure): string {
  const last = f.stderrTail.at(-1);
  const tail = last === undefined ? '' : `: ${last}`;
  if (f.spawnError) return `could not be started: ${f.spawnError.message}`;
  if (f.timedOut) return `timed out after ${seconds(f.timeoutMs)} and was killed${tail}`;
  if (f.interrupted) return `was interrupted${f.notStarted ? ' before it started' : ' and killed'}${tail}`;
  if (f.signal !== null) return `was killed by ${f.signal}${tail}`;
  return `failed with exit status ${f.status}${tail}`;
}

/** hooks.log lines of a declarative hook: one per action. */
export const logLine = {
  mounted: (what: string, flags: string[], data: string | null) =>
    `mounted: ${what}${flags.length > 0 ? ` (${flags.join(',')})` : ''}${data === null ? '' : ` with ${data}`}\n`,
  alreadyMounted: (line: number, target: string) => `skipped: line ${line}: ${P(target)} is already a mount point (a mount that survived, when recovering)\n`,
  madePrivate: (line: number, target: string) => `made private: line ${line}: ${P(target)} was a shared mount (a start killed between mounting it and making it private)\n`,
  noSource: (line: number, spec: string, file: string) => `skipped: line ${line}: ${P(spec)} does not exist on the host (nofail); ${P(file)} not mounted\n`,
  unionNone: (line: number, path: string, file: string) =>
    `skipped: line ${line}: ${P(path)} is missing and the source chroot is not modified (union type none); ${P(file)} not mounted\n`,
  withRbind: (line: number, target: string, rbindLine: number) => `skipped: line ${line}: ${P(target)} comes with the rbind of line ${rbindLine}\n`,
  copied: (host: string, dest: string) => `copied: ${P(host)} to ${P(dest)}\n`,
  alreadyCopied: (line: number, host: string, dest: string) => `skipped: line ${line}: ${P(dest)} is already a copy of ${P(host)}\n`,
  noHostFile: (line: number, host: string) => `skipped: line ${line}: ${P(host)} does not exist on the host\n`,
  copyNone: () => 'skipped: union type none: the source chroot is not modified; nothing copied\n',
  nssWritten: (db: string, dest: string, replacedLink: boolean) => `written: the host's ${db} database (getent ${db}) to ${P(dest)}${replacedLink ? ', replacing a symbolic link' : ''}\n`,
  nssSame: (line: number, db: string, dest: string) => `skipped: line ${line}: ${P(dest)} already holds the host's ${db} database\n`,
  nssSameFile: (line: number, db: string, dest: string) => `skipped: line ${line}: ${P(dest)} is the host's /etc/${db} itself\n`,
  nssNoEnumeration: (line: number, db: string, dest: string) =>
    `skipped: line ${line}: getent cannot list the ${db} database on this host (exit status 3); ${P(dest)} left as it is\n`,
  nssNone: () => 'skipped: union type none: the source chroot is not modified; no database written\n',
  failed: (f: { reason?: string; line?: number }) => `failed: ${declarativeReason(f)}\n`,
};
