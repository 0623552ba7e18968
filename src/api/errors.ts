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
 * other processes (its command's background children) still hold: it was
 * left for `end` (`warden end -s ID`), as `warden run -c` leaves it. The
 * command's result is in `result`; `exitCode` is its status, as the CLI's.
 */
export class SessionLeftError extends SessionBusyError {
  override name = 'SessionLeftError';
  readonly result: CommandResult;
  constructor(busy: SessionBusyError, result: CommandResult) {
    super(busy.id, `its command exited with ${result.status}, but the session is still held; it was left for end`, busy.holders, busy);
    this.result = result;
  }

  override get exitCode(): number {
    return this.result.status;
  }
}
