// warden side by side with schroot (issue 6, "bench/vs-schroot"): one chroot
// built by the project's fixture builder, configured for both tools alike
// (overlay union; /proc, /sys, /dev, /dev/pts bound and /etc/resolv.conf,
// /etc/hosts copied: warden's default hooks, and a schroot profile with the
// same fstab and copyfiles), measured in one run with the tools alternating
// and `node -e 0` measured alongside (Node's start-up is most of a CLI call).
//
// Rows, medians with min/max over BENCH_RUNS runs (default 10) of each tool:
//   automatic session running `true`; begin; run `true` in a session; end
//   (warden: persistent sessions through a running supervisor); 50 sessions
//   begun at once and 50 ended at once as separate CLI processes; the same
//   50 through the library API in one Node process (warden only: an
//   orchestrator written in Node); recovering 50 sessions after a simulated
//   reboot (their mounts removed): warden's one `recover --all` against
//   schroot's one `--recover-session` per session.
// Then the correctness rows (bench/vs-schroot-checks.ts).
//
// Needs root and schroot (installed with `apt-get install -y schroot` when
// missing). Not part of `npm test`. Run with `npm run bench:vs-schroot`.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync, type ChildProcess } from 'node:child_process';
import { bootstrapChroot } from '../src/bootstrap/index.js';
import { loadConfig } from '../src/config/index.js';
import { shutdownWaitPool } from '../src/locks/index.js';
import { beginSession, endSession, type Session } from '../src/sessions/index.js';
import { mountsUnder, unmountAll } from '../src/union/index.js';
import { ROOT, evaluate, machine, printTable, summarize, writeResults, type Row, type Summary } from './lib.js';
import { WARDEN, background, msSince, node, startSupervisor, stopSupervisor, wallOf } from './procs.js';
import * as schroot from './schroot.js';
import { correctnessChecks, printChecks, type WardenSide } from './vs-schroot-checks.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 10);
const MANY = 50;
const NAME = `warden-vs-${process.pid}`;

type Series = Record<string, number[]>;

interface Bench {
  tmp: string;
  w: WardenSide;
  s: schroot.SchrootSetup;
  supervisor: ChildProcess | undefined;
  series: Series;
}

const push = (b: Bench, key: string, ms: number): void => {
  (b.series[key] ??= []).push(ms);
};
const wardenCli = (b: Bench, args: readonly string[]) => node([WARDEN, ...args], b.w.env);
const wardenAsync = (b: Bench, args: readonly string[]) => background(process.execPath, [WARDEN, ...args], b.w.env);

/** One run of the single-session rows, both tools. */
function singles(b: Bench, run: number): void {
  push(b, 'node', node(['-e', '0'], b.w.env).ms);
  push(b, 'schroot auto', schroot.automatic(b.s, ['true']).ms);
  push(b, 'warden auto', wardenCli(b, ['run', '-c', b.w.chroot, '-d', '/', '--', 'true']).ms);
  const sid = `${b.s.prefix}single-${run}`;
  push(b, 'schroot begin', schroot.begin(b.s, sid).ms);
  push(b, 'schroot run', schroot.runIn(sid, ['true']).ms);
  push(b, 'schroot end', schroot.end(sid).ms);
  const id = `single-${run}`;
  push(b, 'warden begin', wardenCli(b, ['begin', '-c', b.w.chroot, '--id', id]).ms);
  push(b, 'warden run', wardenCli(b, ['run', '-s', id, '-d', '/', '--', 'true']).ms);
  push(b, 'warden end', wardenCli(b, ['end', '-s', id]).ms);
}

/** 50 begun at once, a simulated reboot and recovery, 50 ended at once: schroot. */
async function manySchroot(b: Bench, run: number): Promise<void> {
  const ids = Array.from({ length: MANY }, (_, i) => `${b.s.prefix}m${run}-${i}`);
  push(b, 'schroot begin 50', await wallOf(ids.map((id) => () => schroot.beginAsync(b.s, id))));
  for (const id of ids) schroot.unmountSession(id);
  const t = process.hrtime.bigint();
  for (const id of ids) schroot.recover(id);
  push(b, 'schroot recover 50', msSince(t));
  push(b, 'schroot end 50', await wallOf(ids.map((id) => () => schroot.endAsync(id))));
}

/**
 * 50 `node -e 0` at once: the floor under any 50 Node CLI processes at once
 * on this machine, whatever they do (CPU-bound start-up on few cores).
 */
async function manyNode(b: Bench): Promise<void> {
  push(b, 'node 50', await wallOf(Array.from({ length: MANY }, () => () => background(process.execPath, ['-e', '0'], b.w.env))));
}

/** The same for warden: CLI begins held by the supervisor; the reboot takes the supervisor down too. */
async function manyWarden(b: Bench, run: number): Promise<void> {
  const ids = Array.from({ length: MANY }, (_, i) => `m${run}-${i}`);
  push(b, 'warden begin 50', await wallOf(ids.map((id) => () => wardenAsync(b, ['begin', '-c', b.w.chroot, '--id', id]))));
  await stopSupervisor(b.supervisor!);
  b.supervisor = undefined;
  for (const id of ids) unmountAll(join(b.w.stateDir, id, 'root'));
  push(b, 'warden recover 50', wardenCli(b, ['recover', '--all']).ms);
  // A new supervisor re-adopts them (their mounts are back), then ends them on request.
  b.supervisor = await startSupervisor(b.w.env, join(b.tmp, 'supervisor.log'));
  push(b, 'warden end 50', await wallOf(ids.map((id) => () => wardenAsync(b, ['end', '-s', id]))));
}

/** 50 begun and 50 ended at once through the library, in this process. */
async function manyLibrary(b: Bench): Promise<void> {
  const def = loadConfig({ config: b.w.env.WARDEN_CONFIG }).lookup(b.w.chroot)!;
  const spec = { stateDir: b.w.stateDir, chroot: def, hooksDir: join(ROOT, 'hooks'), hookTimeoutMs: 30_000 };
  const t = process.hrtime.bigint();
  const sessions: Session[] = await Promise.all(Array.from({ length: MANY }, () => beginSession(spec)));
  push(b, 'library begin 50', msSince(t));
  push(b, 'library end 50', await wallOf(sessions.map((s) => () => endSession(s))));
}

const med = (b: Bench, key: string): number => summarize(b.series[key]!).p50;

function rows(b: Bench): Row[] {
  const n = med(b, 'node');
  const vs = (section: string, metric: string, w: string, s: string, max?: number): Row => ({
    section,
    metric,
    unit: 'ms',
    measured: med(b, w),
    baseline: med(b, s),
    baselineNote: 'schroot',
    ...(max === undefined ? { ratio: true } : { target: { kind: 'ratio' as const, max } }),
  });
  const vsNode = (section: string, metric: string, w: string, max: number): Row => ({
    section,
    metric,
    unit: 'ms',
    measured: med(b, w),
    baseline: n,
    baselineNote: 'node -e 0',
    target: { kind: 'delta', max },
  });
  const one = `one session (median of ${RUNS})`;
  const many = `${MANY} sessions (median of ${RUNS})`;
  return [
    { section: one, metric: 'node -e 0', unit: 'ms', measured: n, baseline: null },
    vs(one, 'automatic session `true`: warden / schroot', 'warden auto', 'schroot auto', 0.75),
    vsNode(one, 'automatic session `true`: warden - node -e 0', 'warden auto', 40),
    vs(one, 'begin: warden / schroot', 'warden begin', 'schroot begin'),
    vsNode(one, 'begin (supervisor): warden - node -e 0', 'warden begin', 25),
    vs(one, 'run `true` in a session: warden / schroot', 'warden run', 'schroot run'),
    vsNode(one, 'run `true` in a session: warden - node -e 0', 'warden run', 15),
    vs(one, 'end: warden / schroot', 'warden end', 'schroot end'),
    vsNode(one, 'end (supervisor): warden - node -e 0', 'warden end', 25),
    vs(many, `${MANY} begun at once, CLI processes`, 'warden begin 50', 'schroot begin 50', 0.8),
    vs(many, `${MANY} ended at once, CLI processes`, 'warden end 50', 'schroot end 50', 0.8),
    vs(many, `${MANY} × node -e 0 at once (the floor under ${MANY} Node CLI processes)`, 'node 50', 'schroot begin 50'),
    vs(many, `${MANY} begun at once, library in one process`, 'library begin 50', 'schroot begin 50', 0.1),
    vs(many, `${MANY} ended at once, library in one process`, 'library end 50', 'schroot end 50', 0.1),
    vs(many, `recover ${MANY} after a reboot: one recover --all / ${MANY} --recover-session`, 'warden recover 50', 'schroot recover 50', 0.25),
  ];
}

async function setUp(tmp: string): Promise<{ w: WardenSide; s: schroot.SchrootSetup }> {
  const source = join(tmp, 'source');
  await bootstrapChroot(source, { busybox: false });
  const config = join(tmp, 'warden.conf');
  writeFileSync(config, `[warden]\nhooks-dir=${join(ROOT, 'hooks')}\nhook-timeout=60\n\n[${NAME}]\ntype=directory\ndirectory=${source}\nunion-type=overlay\n`);
  const stateDir = join(tmp, 'sessions');
  const w: WardenSide = { chroot: NAME, source, stateDir, env: { ...process.env, WARDEN_CONFIG: config, WARDEN_STATE_DIR: stateDir } };
  return { w, s: schroot.configureSchroot(NAME, source, tmp) };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/vs-schroot mounts overlays and configures schroot: run it as root');
  const installed = schroot.ensureSchroot();
  const tmp = mkdtempSync(join(tmpdir(), 'warden-vs-schroot-'));
  let b: Bench | undefined;
  try {
    const { w, s } = await setUp(tmp);
    b = { tmp, w, s, supervisor: undefined, series: {} };
    b.supervisor = await startSupervisor(w.env, join(tmp, 'supervisor.log'));
    const started = Date.now();
    // Warm both tools' files into the page cache.
    singles(b, -1);
    b.series = {};
    for (let run = 0; run < RUNS; run++) {
      singles(b, run);
      // Alternate which tool goes first, so that drift hits both alike.
      if (run % 2 === 0) {
        await manySchroot(b, run);
        await manyWarden(b, run);
      } else {
        await manyWarden(b, run);
        await manySchroot(b, run);
      }
      await manyLibrary(b);
      await manyNode(b);
      process.stderr.write(`run ${run + 1}/${RUNS} done\n`);
    }
    const checks = await correctnessChecks(s, w);
    const evaluated = rows(b).map(evaluate);
    printTable(`warden vs schroot (${((Date.now() - started) / 1000).toFixed(0)} s, ${machine().cpus} CPUs, node ${process.version}, schroot ${schrootVersion()})`, evaluated);
    printSpread(b.series);
    console.log('');
    printChecks(checks);
    const details: Record<string, Summary> = Object.fromEntries(Object.entries(b.series).map(([k, v]) => [k, summarize(v)]));
    const file = writeResults('vs-schroot', { bench: 'vs-schroot', date: new Date().toISOString(), machine: machine(), schroot: schrootVersion(), schrootInstall: installed, runs: RUNS, rows: evaluated, details, checks });
    console.log(`results: ${file}`);
  } finally {
    if (b?.supervisor) await stopSupervisor(b.supervisor);
    await shutdownWaitPool();
    if (b) schroot.removeSchroot(b.s);
    for (const m of mountsUnder(tmp).reverse()) spawnSync('umount', ['-l', m.mountPoint]);
    rmSync(tmp, { recursive: true, force: true });
  }
}

/** Every series as median (min-max), the two tools side by side. */
function printSpread(series: Series): void {
  const fmt = (key: string) => {
    const v = series[key];
    if (!v) return '—';
    const x = summarize(v);
    return `${x.p50.toFixed(0)} ms (${x.min.toFixed(0)}-${x.max.toFixed(0)})`;
  };
  const lines = ['', `median (min-max) of ${RUNS} runs       warden                    schroot`];
  for (const [label, w, sc] of [
    ['automatic session `true`', 'warden auto', 'schroot auto'],
    ['begin', 'warden begin', 'schroot begin'],
    ['run `true` in a session', 'warden run', 'schroot run'],
    ['end', 'warden end', 'schroot end'],
    [`${MANY} begun at once (CLI)`, 'warden begin 50', 'schroot begin 50'],
    [`${MANY} ended at once (CLI)`, 'warden end 50', 'schroot end 50'],
    [`${MANY} begun at once (library)`, 'library begin 50', ''],
    [`${MANY} ended at once (library)`, 'library end 50', ''],
    [`recover ${MANY} after a reboot`, 'warden recover 50', 'schroot recover 50'],
    ['node -e 0', 'node', ''],
    [`${MANY} × node -e 0 at once`, 'node 50', ''],
  ]) {
    lines.push(`${label!.padEnd(36)}${fmt(w!).padEnd(26)}${sc ? fmt(sc) : ''}`);
  }
  console.log(lines.join('\n'));
}

function schrootVersion(): string {
  const r = spawnSync(schroot.SCHROOT, ['--version'], { encoding: 'utf8' });
  return /schroot \(Debian sbuild\) ([\w.+~-]+)/.exec(r.stdout)?.[1] ?? r.stdout.split('\n')[0] ?? 'unknown';
}

main().catch((e) => {
  console.error(`bench/vs-schroot: ${(e as Error).message}`);
  process.exit(1);
});
