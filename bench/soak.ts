// Soak test (issue 6, "Soak"): under sustained load, with warden processes
// SIGKILLed at random, warden keeps its promise.
//
// Load, for the whole duration, from looping workers that each run real
// `warden` CLI processes one at a time (bench/soak/load.ts): 2 × automatic
// sessions (`run -c`, writing inside the session), 2 × persistent sessions
// (begin, two `run -s` that write and read back, end), source entries
// writing an incrementing N to /counter in the source, `recover --all`
// every few seconds, `list --sessions --json`; and a killer that every
// 1-3 s SIGKILLs one of those CLI processes and about once a minute the
// supervisor (which the soak then starts again).
//
// Measured (bench/soak/checker.ts, every 250 ms beside the load): the
// source never changes while an overlay of it stays mounted; nothing a
// session writes reaches the source; every session dir is active, stale or
// gone (never corrupt for a second); no lock on our files belongs to a dead
// process; no mount outlives its session dir; the supervisor stays under
// 150 MB and its file fds do not grow. Then, after shutdown: no mount, lock,
// process or session dir left. Every failed call is counted by exit code;
// only failures not explained by a kill, an expected refusal (5 busy or
// timeout, 7 stale) or a supervisor kill count as violations. Exit 1 on any
// violation or leak.
//
// Needs root (mounts, chroots). Builds a private chroot and state dir in a
// temporary directory and starts its own supervisor there. Run with
// `npm run bench:soak` (10 minutes), or
// `node dist/bench/soak.js --duration SECONDS` (or SOAK_SECONDS=N).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { readProcLocks, shutdownWaitPool } from '../src/locks/index.js';
import { listSessions } from '../src/sessions/index.js';
import { mountsUnder } from '../src/union/index.js';
import { within } from './lib.js';
import { Checker } from './soak/checker.js';
import { CliRunner } from './soak/cli.js';
import { account, automaticSessions, killer, listSessionsLoop, pause, persistentSessions, recoverAll, sourceEntries, type Load } from './soak/load.js';
import { Recorder } from './soak/record.js';
import { report, type Leaks, type Outcome } from './soak/report.js';
import { COUNTER, WARDEN, setUp, soakProcesses, tearDown, type Setup } from './soak/setup.js';
import { SoakSupervisor } from './soak/supervisor.js';

const DEFAULT_SECONDS = 600;
/** After the load stops, calls in flight finish: a source entry may wait 20 s, then run. */
const DRAIN_MS = 60_000;

function durationSeconds(argv: readonly string[]): number {
  let text = process.env.SOAK_SECONDS;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--duration') text = argv[++i];
    else if (a.startsWith('--duration=')) text = a.slice('--duration='.length);
    else throw new Error(`unknown argument ${JSON.stringify(a)} (usage: soak.js [--duration SECONDS])`);
  }
  if (text === undefined) return DEFAULT_SECONDS;
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--duration ${JSON.stringify(text)}: not a positive number of seconds`);
  return n;
}

/** Starts every worker; each resolves when the load stops and its last call is done. */
function startLoad(l: Load): Promise<void>[] {
  const workers: [string, () => Promise<void>][] = [
    ['automatic 1', () => automaticSessions(l, 1)],
    ['automatic 2', () => automaticSessions(l, 2)],
    ['persistent 1', () => persistentSessions(l, 1)],
    ['persistent 2', () => persistentSessions(l, 2)],
    ['source', () => sourceEntries(l)],
    ['recover', () => recoverAll(l)],
    ['list', () => listSessionsLoop(l)],
    ['killer', () => killer(l)],
  ];
  return workers.map(([name, run]) => run().catch((e) => l.rec.error(`worker ${name}`, e)));
}

/**
 * Ends every session left: stale ones through `recover --all --end`, the
 * ones the supervisor holds (re-adopted leftovers) through `end -s`. A few
 * rounds, since an end may meet a command that is still finishing.
 */
async function endEverything(l: Load, stateDir: string): Promise<void> {
  for (let round = 0; round < 5; round++) {
    account(l, await l.cli.run('recover (shutdown)', ['recover', '--all', '--end']), [4, 5]);
    const left = listSessions(stateDir).filter((e) => e.status !== 'corrupt');
    if (left.length === 0) return;
    for (const e of left) account(l, await l.cli.run('end (shutdown)', ['end', '-s', e.id, '--wait', '--timeout', '30']), [4, 5]);
  }
}

/**
 * CPU seconds used by this process and every child it has reaped (the CLI
 * processes, the supervisors and, through them, their hooks and commands):
 * /proc/self/stat utime, stime, cutime, cstime, in USER_HZ ticks (100 on
 * Linux whatever CONFIG_HZ is).
 */
function cpuSeconds(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').replace(/^.*\) /, '').split(' ');
  // After "pid (comm) ", field 3 (state) is index 0: utime..cstime are fields 14-17.
  return fields.slice(11, 15).reduce((a, f) => a + Number(f), 0) / 100;
}

/** What is left once everything of ours should have stopped. */
function findLeaks(s: Setup, lockKeys: ReadonlyMap<string, string>): Leaks {
  const hidden = readdirSync(s.stateDir).filter((n) => n.startsWith('.new-'));
  return {
    mounts: mountsUnder(s.tmp).map((m) => `${m.fsType} ${m.mountPoint}`),
    locks: readProcLocks()
      .filter((e) => lockKeys.has(e.key))
      .map((e) => `${e.family} ${e.kind}${e.waiting ? ' (waiting)' : ''} pid ${e.pid} on ${lockKeys.get(e.key)}`),
    processes: soakProcesses(s.tmp).map((p) => `${p.pid} ${p.cmdline}`),
    sessionDirs: [...listSessions(s.stateDir).map((e) => `${e.id} (${e.status}${e.reason ? `: ${e.reason}` : ''})`), ...hidden],
  };
}

/** The counter may only hold the last value known written or a later one (an entry killed after its command ran). */
function checkCounter(l: Load, source: string): string {
  const text = readFileSync(join(source, COUNTER), 'utf8').trim();
  const n = Number(text);
  if (!(Number.isInteger(n) && n >= l.counter.written && n <= l.counter.issued)) {
    l.rec.violation('source counter lost a write', `/counter holds ${JSON.stringify(text)}; last known written ${l.counter.written}, last issued ${l.counter.issued}`);
  }
  return text;
}

/** Rejects once `signal` aborts (at once if it already has). */
function aborted(signal: AbortSignal): Promise<never> {
  const p = new Promise<never>((_, reject) => {
    if (signal.aborted) reject(new Error('interrupted'));
    else signal.addEventListener('abort', () => reject(new Error('interrupted')), { once: true });
  });
  p.catch(() => {});
  return p;
}

/** The load for `seconds`; then the calls in flight finish, or are killed after DRAIN_MS. */
async function runLoad(l: Load, seconds: number, interrupted: Promise<never>): Promise<void> {
  const load = new AbortController();
  const workers = startLoad({ ...l, stop: AbortSignal.any([load.signal, l.stop]) });
  await Promise.race([pause(seconds * 1000, l.stop), interrupted]);
  load.abort();
  try {
    await within(Promise.race([Promise.all(workers), interrupted]), DRAIN_MS, 'the last calls of the load');
  } catch (e) {
    if (l.stop.aborted) throw e;
    l.rec.error('shutdown', e);
    await l.cli.killAll();
    await Promise.all(workers);
  }
}

/** Ends every session, takes the supervisor's last status, stops it; returns its file-fd excess then and at its start. */
async function shutDown(l: Load, s: Setup, checker: Checker, interrupted: Promise<never>): Promise<Outcome['fdExcess']> {
  await Promise.race([endEverything(l, s.stateDir), interrupted]);
  const last = await l.sup.status();
  const start = last ? checker.baseExcess(last.pid) : undefined;
  await checker.stop();
  await l.sup.stop();
  await l.cli.drain();
  return last && start !== undefined ? { end: last.fds.files - 2 * last.held.length, start } : undefined;
}

async function soak(s: Setup, seconds: number, stop: AbortSignal): Promise<Outcome> {
  const rec = new Recorder();
  const sup = new SoakSupervisor(s);
  const cli = new CliRunner(s.env);
  const checker = new Checker(s, rec, sup);
  const l: Load = { cli, rec, sup, stop, counter: { issued: 0, written: 0 } };
  const interrupted = aborted(stop);
  const cpu0 = cpuSeconds();
  const t0 = Date.now();
  try {
    const starting = sup.start();
    // Interrupted meanwhile: its failure comes after the race is decided.
    starting.catch(() => {});
    await Promise.race([starting, interrupted]);
    await checker.start();
    console.error(`[soak] ${seconds} s of load on ${s.tmp}`);
    await runLoad(l, seconds, interrupted);
    console.error(`[soak] load stopped after ${rec.elapsedS.toFixed(0)} s; ending every session`);
    const fdExcess = await shutDown(l, s, checker, interrupted);
    const counter = { ...l.counter, final: checkCounter(l, s.source) };
    const cpu = { seconds: cpuSeconds() - cpu0, wallS: (Date.now() - t0) / 1000 };
    return { seconds, rec, sup, figures: checker.figures, fdExcess, leaks: findLeaks(s, checker.lockKeys), counter, cpu };
  } finally {
    // After an interruption or a failure: nothing of ours may keep running.
    await checker.stop();
    await cli.killAll();
    await sup.stop().catch((e) => rec.error('stopping the supervisor', e));
  }
}

async function main(): Promise<number> {
  const seconds = durationSeconds(process.argv.slice(2));
  if (process.getuid?.() !== 0) {
    console.error('bench/soak: needs root (it mounts overlays and enters chroots): run it as root');
    return 1;
  }
  if (!existsSync(WARDEN)) throw new Error(`${WARDEN} is missing: npm run build`);
  const stop = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    console.error(`[soak] ${sig}: stopping, cleaning up`);
    stop.abort(new Error(sig));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const s = await setUp();
  try {
    const outcome = await soak(s, seconds, stop.signal);
    return report(outcome) ? 0 : 1;
  } finally {
    await shutdownWaitPool();
    for (const p of tearDown(s)) console.error(`bench/soak: ${p}`);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

main().then(
  (code) => process.exit(code),
  (e) => {
    console.error(`bench/soak: ${(e as Error).message}`);
    process.exit(1);
  },
);
