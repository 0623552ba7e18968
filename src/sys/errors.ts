// Errors of the bottom layer that reach callers as they are.
import { exitCodeOf } from '../exit-codes.js';

/** A command could not be started in a session or source: bad -u, -d, or the exec itself. */
export class RunError extends Error {
  override name = 'RunError';
  /** The CLI's exit code for this outcome (src/exit-codes.ts); 1 for one it has no code for. */
  get exitCode(): number {
    return exitCodeOf(this);
  }
}
