// Errors of the bottom layer that reach callers as they are. SessionError,
// the base of the sessions layer's errors, is defined here because RunError
// (thrown by the spawn and the pty below) has always been one of them.
import { exitCodeOf } from '../exit-codes.js';

export class SessionError extends Error {
  override name = 'SessionError';
  /** The CLI's exit code for this outcome (src/exit-codes.ts); 1 for one it has no code for. */
  get exitCode(): number {
    return exitCodeOf(this);
  }
}

/** A command could not be started in a session or source: bad -u, -d, or the exec itself. */
export class RunError extends SessionError {
  override name = 'RunError';
}
