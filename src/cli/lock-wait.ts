// A verb's interruptible lock waits, set up in one place: Ctrl-C (and
// SIGTERM, SIGHUP) cancels them through an AbortSignal, the wait line
// (wait-line.ts) says what they wait for, and --timeout (seconds) and
// --no-wait become the options every wait takes.
import type { Parsed } from './args.js';
import { waitReporter, type WaitReporter } from './wait-line.js';

const INTERRUPTS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface LockWait {
  /** Aborted by the signals. */
  signal: AbortSignal;
  onWait: WaitReporter['onWait'];
  /** --timeout as given, in seconds (the supervisor's requests take seconds). */
  timeoutS: number | undefined;
  /** --timeout in ms, as the library's waits take it. */
  timeoutMs: number | undefined;
  /** --no-wait: false (fail at once, exit 5); otherwise undefined (wait). */
  wait: false | undefined;
}

/**
 * Runs `fn` with the verb's waits set up; the signal handlers and the wait
 * line end when it settles. `reason` is what an interrupted wait is
 * aborted with.
 */
export async function withLockWait<T>(
  o: Parsed['options'],
  fn: (w: LockWait) => Promise<T>,
  { signals = INTERRUPTS, reason = (sig: NodeJS.Signals) => new Error(`interrupted by ${sig}`) }: { signals?: readonly NodeJS.Signals[]; reason?: (sig: NodeJS.Signals) => Error } = {},
): Promise<T> {
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => abort.abort(reason(sig));
  for (const s of signals) process.on(s, onSignal);
  const waits = waitReporter();
  const timeoutS = typeof o.timeout === 'number' ? o.timeout : undefined;
  try {
    return await fn({
      signal: abort.signal,
      onWait: waits.onWait,
      timeoutS,
      timeoutMs: timeoutS === undefined ? undefined : timeoutS * 1000,
      wait: o['no-wait'] ? false : undefined,
    });
  } finally {
    waits.done();
    for (const s of signals) process.off(s, onSignal);
  }
}
