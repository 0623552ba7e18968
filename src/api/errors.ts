// The library's own outcomes (the layers' typed errors are re-exported from
// src/index.ts as they are). Messages are built here.
import { SessionBusyError } from '../sessions/index.js';
import type { CommandResult } from './command.js';

/** A call on a Warden (or one of its sessions) after close(). */
export class WardenClosedError extends Error {
  override name = 'WardenClosedError';
  constructor(what: string) {
    super(`${what}: this warden handle was closed`);
  }

  /** As `warden` exits for an unexpected failure. */
  get exitCode(): number {
    return 1;
  }
}

/**
 * An automatic session (`warden.run`) whose command is done but which
 * processes the command left behind still use: it was left for end, as
 * `warden run -c` leaves it. `cause` says how they hold it: SessionBusyError
 * (they hold its lock: it stays active) or, in POSIX lock mode, where a
 * lock is not inherited, UnmountBusyError or TreeInUseError (they use its
 * files: it is left stale, intact). The command's result is in `result`;
 * `exitCode` is its status, as the CLI exits with it.
 */
export class SessionLeftError extends SessionBusyError {
  /** exitCodeOf gives its caller's fallback, as for any error it has no code for; `exitCode` is the command's status. */
  static override readonly exit: number | undefined = undefined;
  override name = 'SessionLeftError';
  readonly result: CommandResult;
  constructor(id: string, result: CommandResult, cause: Error & { holders?: readonly unknown[] }) {
    const holders = cause instanceof SessionBusyError ? cause.holders : [];
    super(id, `its command exited with ${result.status}, but processes it left still use the session (${cause.message}); it was left for end`, holders, cause);
    this.result = result;
  }

  override get exitCode(): number {
    return this.result.status;
  }
}
