// A timeout of any length. Node's setTimeout fires at once (with a
// TimeoutOverflowWarning) for a delay above 2^31-1 ms, about 24.8 days:
// `--timeout 3000000` (35 days) would give up before waiting at all. A
// longer delay is re-armed in steps until its deadline.

/** The longest delay setTimeout takes as it is. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Calls `fn` once after `ms` milliseconds (0 for a negative value; never
 * for Infinity). Returns the canceller; calling it after `fn` ran does
 * nothing. `unref`: the timer does not keep the process alive. `step`:
 * the longest single delay (tests shorten it to see the re-arming).
 */
export function setLongTimeout(fn: () => void, ms: number, { unref = false, step = MAX_TIMER_MS } = {}): () => void {
  if (ms === Infinity) return () => {};
  const deadline = Date.now() + Math.max(0, ms);
  let timer: NodeJS.Timeout | undefined;
  const arm = (left: number) => {
    timer = setTimeout(
      () => {
        const rest = deadline - Date.now();
        if (rest > 0) arm(rest);
        else {
          timer = undefined;
          fn();
        }
      },
      Math.min(left, step),
    );
    if (unref) timer.unref();
  };
  arm(Math.max(0, ms));
  return () => {
    if (timer) clearTimeout(timer);
    timer = undefined;
  };
}
