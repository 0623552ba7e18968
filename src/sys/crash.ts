// Crash points for the crash-injection tests: named places in the session
// protocols where a test makes this process die by SIGKILL, exactly there
// and without sleeps, to check what a crash at that step leaves behind.
//
// - WARDEN_CRASH_AT=NAME kills at the first pass through NAME, NAME@N at
//   the Nth (a step that runs more than once, such as a state write).
// - WARDEN_CRASH_TRACE=FILE appends each NAME passed, one per line, so a
//   harness learns every point an operation goes through.
//
// The shipped CLI bundle defines WARDEN_CRASH_POINTS=false, so esbuild
// drops the body and a user's environment can never trigger it; the test
// bundle (dist/crash/warden.cjs, build.mjs) and the tsc output of the library,
// where the constant is not defined, read the environment.
import { appendFileSync } from 'node:fs';

declare const WARDEN_CRASH_POINTS: boolean | undefined;

const hits = new Map<string, number>();

export function crashPoint(name: string): void {
  if (typeof WARDEN_CRASH_POINTS === 'boolean' && !WARDEN_CRASH_POINTS) return;
  const at = process.env.WARDEN_CRASH_AT;
  const trace = process.env.WARDEN_CRASH_TRACE;
  if (at === undefined && trace === undefined) return;
  const n = (hits.get(name) ?? 0) + 1;
  hits.set(name, n);
  if (trace) appendFileSync(trace, `${name}@${n}\n`);
  if (at === name || at === `${name}@${n}`) process.kill(process.pid, 'SIGKILL');
}
