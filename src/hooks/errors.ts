// The hooks layer's typed errors. Every message is built here, in one place,
// so the CLI and the logs say the same thing (execa's lib/return/message.js).
import type { HookPhase } from './types.js';

export class HookError extends Error {
  override name = 'HookError';
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
}

export class HookFailedError extends HookError {
  override name = 'HookFailedError';
  /** `<phase>.d/<name>` */
  readonly hook: string;
  readonly phase: HookPhase;
  readonly status: number | null;
  readonly signal: string | null;
  readonly timedOut: boolean;
  /** Stopped by the caller's AbortSignal (Ctrl-C), not by its own failure. */
  readonly interrupted: boolean;
  /** Last non-empty stderr lines (at most 5); the full output is in hooks.log. */
  readonly stderrTail: string[];
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
  }
}

export class HookPermissionError extends HookError {
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
export function failureMessage(f: HookFailure): string {
  const last = f.stderrTail.at(-1);
  const tail = last === undefined ? '' : `: ${last}`;
  if (f.spawnError) return `hook ${f.hook} could not be started: ${f.spawnError.message}`;
  if (f.timedOut) return `hook ${f.hook} timed out after ${seconds(f.timeoutMs)} and was killed${tail}`;
  if (f.interrupted && f.notStarted) return `hook ${f.hook} was interrupted before it started`;
  if (f.interrupted) return `hook ${f.hook} was interrupted and killed${tail}`;
  if (f.signal !== null) return `hook ${f.hook} was killed by ${f.signal}${tail}`;
  return `hook ${f.hook} failed with exit status ${f.status}${tail}`;
}

/** The trailer line of one hook in hooks.log. */
export function trailer(phase: HookPhase, name: string, f: HookFailure | undefined, ms: number): string {
  let how: string;
  if (f === undefined) how = 'exit status 0';
  else if (f.spawnError) how = `not started (${f.spawnError.message})`;
  else {
    how = f.signal !== null ? `killed by ${f.signal}` : `exit status ${f.status}`;
    if (f.timedOut) how += `, timed out after ${seconds(f.timeoutMs)}`;
    if (f.interrupted) how += ', interrupted';
  }
  return `== ${phase} ${name}: ${how}, ${Math.round(ms)} ms ==\n`;
}
