// The soak's table and results file: load done, failures, kills, one row per
// invariant (target: none broken), leaks after shutdown, and the supervisor's
// footprint.
import { readFileSync } from 'node:fs';
import { evaluate, machine, printTable, writeResults, type EvaluatedRow, type Row } from '../lib.js';
import type { SupervisorFigures } from './checker.js';
import { INVARIANTS, type Recorder } from './record.js';
import type { SoakSupervisor } from './supervisor.js';

/** What shutdown found left behind. */
export interface Leaks {
  mounts: string[];
  locks: string[];
  processes: string[];
  sessionDirs: string[];
}

export interface Outcome {
  seconds: number;
  rec: Recorder;
  sup: SoakSupervisor;
  figures: SupervisorFigures;
  /** `fds.files - 2 × held` of the last supervisor after every session ended, and when the checker first saw it. */
  fdExcess: { end: number; start: number } | undefined;
  leaks: Leaks;
  counter: { issued: number; written: number; final: string };
  /** CPU time the soak and its reaped children used over the whole run (supervisor start to shutdown), and that run's wall time. */
  cpu: { seconds: number; wallS: number };
}

const OP_ORDER = ['run -c', 'begin', 'run -s', 'end', 'source', 'recover', 'list', 'end (leftover)', 'recover (shutdown)', 'end (shutdown)'];
const byOrder = (a: string, b: string) => (OP_ORDER.indexOf(a) + 1 || 99) - (OP_ORDER.indexOf(b) + 1 || 99) || (a < b ? -1 : 1);

function countRows(section: string, m: ReadonlyMap<string, number>, order: (a: string, b: string) => number): Row[] {
  return [...m.keys()].sort(order).map((k) => ({ section, metric: k, unit: 'count', measured: m.get(k)!, baseline: null }));
}

function rows(o: Outcome): Row[] {
  const { rec, figures, leaks } = o;
  const out: Row[] = [];
  const cpus = machine().cpus as number;
  out.push({
    section: 'load',
    metric: 'CPU time of the soak and the processes it reaped',
    unit: 's',
    measured: o.cpu.seconds,
    baseline: o.cpu.wallS * cpus,
    baselineNote: `${cpus} CPUs × ${o.cpu.wallS.toFixed(0)} s wall`,
    ratio: true,
  });
  out.push(...countRows('operations completed (exit 0)', rec.ops, byOrder));
  out.push(...countRows('failures: killed, refused (exit 5, 7, ...), or during a supervisor kill', rec.failures, (a, b) => byOrder(a.split(':')[0]!, b.split(':')[0]!) || (a < b ? -1 : 1)));
  out.push(...countRows('kills injected (SIGKILL sent; one may reach a process that is already exiting)', rec.kills, byOrder));
  const v = 'invariant violations';
  for (const inv of INVARIANTS) out.push({ section: v, metric: inv, unit: 'count', measured: rec.violations.filter((x) => x.invariant === inv).length, baseline: null, target: { kind: 'max', max: 0 } });
  out.push({ section: v, metric: 'soak checker errors', unit: 'count', measured: rec.errors.length, baseline: null, target: { kind: 'max', max: 0 } });
  const l = 'left behind after shutdown';
  out.push(
    { section: l, metric: 'mounts under the temp dir', unit: 'count', measured: leaks.mounts.length, baseline: null, target: { kind: 'max', max: 0 } },
    { section: l, metric: 'locks on our files (/proc/locks)', unit: 'count', measured: leaks.locks.length, baseline: null, target: { kind: 'max', max: 0 } },
    { section: l, metric: 'processes the soak started', unit: 'count', measured: leaks.processes.length, baseline: null, target: { kind: 'max', max: 0 } },
    { section: l, metric: 'session directories', unit: 'count', measured: leaks.sessionDirs.length, baseline: null, target: { kind: 'max', max: 0 } },
  );
  const s = `supervisor (status every 5 s; ${o.sup.pids.size} supervisor process(es))`;
  out.push({ section: s, metric: 'max RSS', unit: 'MB', measured: figures.maxRssMB, baseline: figures.first ? figures.first.rssBytes / 2 ** 20 : null, baselineNote: 'first status', target: { kind: 'max', max: 150 } });
  if (o.fdExcess) {
    out.push({
      section: s,
      metric: 'file fds − 2 × held, after all sessions ended',
      unit: 'count',
      measured: o.fdExcess.end,
      baseline: o.fdExcess.start,
      baselineNote: 'same supervisor, first status',
      target: { kind: 'delta', max: 20 },
    });
  }
  out.push(
    { section: s, metric: 'max growth of file fds − 2 × held', unit: 'count', measured: figures.maxFdGrowth, baseline: null },
    { section: s, metric: 'max event-loop delay between statuses', unit: 'ms', measured: figures.maxLoopDelayMs, baseline: null },
  );
  return out;
}

function tail(path: string, n: number): string[] {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-n);
  } catch {
    return [];
  }
}

/** Prints the table, writes bench/results/soak.json; true when the run is clean. */
export function report(o: Outcome): boolean {
  const evaluated: EvaluatedRow[] = rows(o).map(evaluate);
  const m = machine();
  printTable(`warden soak (${o.seconds} s of load, ${m.cpus} CPUs, node ${process.version})`, evaluated);
  for (const v of o.rec.violations) console.log(`violation at ${v.t.toFixed(1)} s: ${v.invariant}: ${v.details}`);
  for (const [k, list] of Object.entries(o.leaks)) for (const item of list as string[]) console.log(`left behind (${k}): ${item}`);
  const clean = evaluated.every((r) => r.pass !== false);
  const file = writeResults('soak', {
    bench: 'soak',
    date: new Date().toISOString(),
    machine: m,
    seconds: o.seconds,
    clean,
    rows: evaluated,
    violations: o.rec.violations,
    errors: o.rec.errors,
    failureSamples: Object.fromEntries(o.rec.samples),
    leaks: o.leaks,
    counter: o.counter,
    supervisor: { ...o.figures, pids: [...o.sup.pids], outages: o.sup.outages.map(([a, b]) => ({ killedAt: new Date(a).toISOString(), restartMs: b - a })) },
    // What a reader needs to chase a violation after the temp dir is gone.
    supervisorLogs: clean ? undefined : Object.fromEntries(o.sup.logs.map((p) => [p, tail(p, 60)])),
  });
  console.log(`results: ${file}`);
  return clean;
}
