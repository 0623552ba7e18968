// Benchmark of persistent sessions through the supervisor (issue 5,
// "Benchmarks (bench/supervisor)").
//
//  1. `warden begin -c bench` and `warden end -s ID` through the real CLI
//     against a running supervisor, with the shipped default hooks: medians
//     beside `node -e 0`, interleaved in the same run. `warden run -s ID --
//     true` is measured alongside (the third verb of a persistent session).
//     Reported as differences from node -e 0: the bounds on them belong to
//     bench/vs-schroot, beside schroot's own figures.
//  2. The same begin and end as requests on the socket from this process (no
//     CLI start-up), beside beginSession/endSession called in this process:
//     what the supervisor adds to the library.
//  3. 1,000 persistent sessions held by one supervisor: its RSS (target <=
//     150 MB) and fds, beside the idle supervisor's; after ending them all its
//     fds must be back where they started. This chroot has no hooks: they
//     are separate processes that leave nothing in the supervisor, and 4,000
//     extra bind mounts would only slow every mount-table read of the run.
//  4. 100 `warden begin` processes at once (default hooks): total wall time,
//     beside 100 `node -e 0` at once; then the same 100 begins as concurrent
//     socket requests from this process. Each is followed by 100 concurrent
//     ends (reported). The supervisor's event-loop delay during each storm
//     is reported too, the CLI storm's beside an idle Node process's own
//     delay meanwhile (on 2 CPUs, 100 starting processes keep every process
//     waiting for a CPU).
//  5. Ending a session that wrote a build tree (BENCH_FILES files, default
//     100,000, through its mount), while a client sends `hello` every 5 ms
//     on its own connection: the supervisor's event-loop delay and the
//     slowest `hello` (targets: each <= 0.05x of the baseline), beside the
//     same tree deleted in this process by removeTree, in place: how long a
//     deletion on the event loop would hold every client.
//
// Needs root (mounts). Builds a private chroot from host binaries and starts
// its own supervisor on a temporary state dir. Run with
// `npm run bench:supervisor` (BENCH_RUNS=N for the latency series, default
// 30; BENCH_HELD=N for the held-session row, default 1000).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrapChroot } from '../src/bootstrap/index.js';
import { loadConfig } from '../src/config/index.js';
import { shutdownWaitPool } from '../src/locks/index.js';
import { beginSession, endSession } from '../src/sessions/index.js';
import { mountsUnder, removeTree } from '../src/union/index.js';
import { connectSupervisor } from '../src/supervisor/index.js';
import { MB, ROOT, evaluate, machine, median, printTable, summarize, writeResults, type Row, type Summary } from './lib.js';
import { WARDEN, background, msSince, node, request, startSupervisor, stopSupervisor } from './procs.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const HELD = Number(process.env.BENCH_HELD ?? 1000);
const CONCURRENT = 100;
const FILES = Number(process.env.BENCH_FILES ?? 100_000);
/** Files per directory of the build tree. */
const PER_DIR = 100;
const HOOKS = join(ROOT, 'hooks');

interface Setup {
  tmp: string;
  stateDir: string;
  config: string;
  env: NodeJS.ProcessEnv;
}

interface Status {
  held: string[];
  fds: { total: number; files: number; sockets: number };
  rssBytes: number;
  eventLoopDelay: { maxMs: number };
}

/** `node ARGS`, timed, with its stdout. */
const cli = (args: string[], env: NodeJS.ProcessEnv) => node(args, env);
const cliAsync = (args: string[], env: NodeJS.ProcessEnv) => background(process.execPath, args, env);
const status = async (s: Setup): Promise<Status> => (await request(s.stateDir, { op: 'status' })) as unknown as Status;

/**
 * Starts a Node process that does nothing but measure its own event-loop
 * delay; the returned function stops it and resolves with the max (ms).
 * During a storm of 100 CLI processes on 2 CPUs every process waits for a
 * CPU: this is what waiting alone costs, beside the supervisor's figure.
 */
function idleLoop(): () => Promise<number> {
  const code =
    "const h = require('node:perf_hooks').monitorEventLoopDelay({ resolution: 10 }); h.enable();" +
    "process.stdin.on('end', () => { h.disable(); process.stdout.write(String(h.max / 1e6)); }); process.stdin.resume();";
  const child = spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return async () => {
    child.stdin.end();
    await exited;
    const ms = Number(out);
    if (!Number.isFinite(ms)) throw new Error(`the idle node reported ${JSON.stringify(out)}`);
    return ms;
  };
}

/** FILES empty files under `top`, PER_DIR to a directory: a build tree. */
function buildTree(top: string): void {
  for (let d = 0; d * PER_DIR < FILES; d++) {
    const dir = join(top, `d${d}`);
    mkdirSync(dir, { recursive: true });
    for (let f = 0; f < PER_DIR && d * PER_DIR + f < FILES; f++) closeSync(openSync(join(dir, `o${f}.o`), 'w'));
  }
}

/**
 * Sends `hello` on one connection every `everyMs` until stopped; resolves
 * with the slowest round trip (ms) and how many were answered.
 */
async function pinger(stateDir: string, everyMs: number): Promise<() => Promise<{ maxMs: number; count: number }>> {
  const client = await connectSupervisor(stateDir);
  if (!client) throw new Error('no supervisor is listening');
  let stop = false;
  let maxMs = 0;
  let count = 0;
  const loop = (async () => {
    while (!stop) {
      const t = process.hrtime.bigint();
      await client.request({ op: 'hello' });
      maxMs = Math.max(maxMs, msSince(t));
      count++;
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return async () => {
    stop = true;
    await loop;
    client.close();
    return { maxMs, count };
  };
}

/** Runs `count` calls of `fn`, at most `width` at a time. */
async function pooled<T>(count: number, width: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(width, count) }, async () => {
      while (next < count) {
        const i = next++;
        out[i] = await fn(i);
      }
    }),
  );
  return out;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/supervisor mounts overlays: run it as root');
  if (!existsSync(WARDEN)) throw new Error(`${WARDEN} is missing: npm run build`);
  const tmp = mkdtempSync(join(tmpdir(), 'warden-bench-supervisor-'));
  const source = join(tmp, 'source');
  const noHooks = join(tmp, 'no-hooks');
  const stateDir = join(tmp, 'sessions');
  const config = join(tmp, 'warden.conf');
  let supervisor: ChildProcess | undefined;
  try {
    await bootstrapChroot(source, { busybox: false });
    mkdirSync(noHooks, { mode: 0o755 });
    writeFileSync(
      config,
      `[warden]\nhooks-dir=${HOOKS}\nhook-timeout=30\n\n` +
        `[bench]\ntype=directory\ndirectory=${source}\nunion-type=overlay\n\n` +
        `[bare]\ntype=directory\ndirectory=${source}\nunion-type=overlay\nhooks=${noHooks}\n`,
    );
    const s: Setup = { tmp, stateDir, config, env: { ...process.env, WARDEN_CONFIG: config, WARDEN_STATE_DIR: stateDir } };
    const started = Date.now();
    supervisor = await startSupervisor(s.env, join(s.tmp, 'supervisor.log'));
    const rows: Row[] = [];
    const details: Record<string, Summary | number> = {};

    // 1. The CLI verbs of a persistent session, interleaved with node -e 0.
    const series: Record<string, number[]> = { node: [], begin: [], run: [], end: [] };
    const warm = cli([WARDEN, 'begin', '-c', 'bench'], s.env).stdout.trim();
    cli([WARDEN, 'run', '-s', warm, '--', 'true'], s.env);
    cli([WARDEN, 'end', '-s', warm], s.env);
    for (let i = 0; i < RUNS; i++) {
      series.node!.push(cli(['-e', '0'], s.env).ms);
      const b = cli([WARDEN, 'begin', '-c', 'bench'], s.env);
      series.begin!.push(b.ms);
      const id = b.stdout.trim();
      series.run!.push(cli([WARDEN, 'run', '-s', id, '--', 'true'], s.env).ms);
      series.end!.push(cli([WARDEN, 'end', '-s', id], s.env).ms);
    }
    const node = median(series.node!);
    const cliSection = `CLI against a running supervisor, default hooks (median of ${RUNS})`;
    rows.push(
      { section: cliSection, metric: 'node -e 0', unit: 'ms', measured: node, baseline: null },
      { section: cliSection, metric: 'warden begin -c bench', unit: 'ms', measured: median(series.begin!), baseline: node, baselineNote: 'node -e 0', delta: true },
      { section: cliSection, metric: 'warden run -s ID -- true', unit: 'ms', measured: median(series.run!), baseline: node, baselineNote: 'node -e 0', delta: true },
      { section: cliSection, metric: 'warden end -s ID', unit: 'ms', measured: median(series.end!), baseline: node, baselineNote: 'node -e 0', delta: true },
    );

    // 2. Requests on the socket beside the library in this process.
    const def = loadConfig({ config }).lookup('bench');
    if (!def) throw new Error('chroot bench missing from the generated config');
    const lib: Record<string, number[]> = { sockBegin: [], sockEnd: [], libBegin: [], libEnd: [] };
    for (let i = 0; i < RUNS; i++) {
      let t = process.hrtime.bigint();
      const { id } = (await request(stateDir, { op: 'begin', chroot: 'bench' })) as { id: string };
      lib.sockBegin!.push(msSince(t));
      t = process.hrtime.bigint();
      await request(stateDir, { op: 'end', id });
      lib.sockEnd!.push(msSince(t));
      t = process.hrtime.bigint();
      const session = await beginSession({ stateDir, chroot: def, hooksDir: HOOKS, hookTimeoutMs: 30_000 });
      lib.libBegin!.push(msSince(t));
      t = process.hrtime.bigint();
      await endSession(session);
      lib.libEnd!.push(msSince(t));
    }
    const sockSection = `socket request from a Node client, default hooks (median of ${RUNS})`;
    rows.push(
      { section: sockSection, metric: 'begin request', unit: 'ms', measured: median(lib.sockBegin!), baseline: median(lib.libBegin!), baselineNote: 'beginSession in-process', ratio: true },
      { section: sockSection, metric: 'end request', unit: 'ms', measured: median(lib.sockEnd!), baseline: median(lib.libEnd!), baselineNote: 'endSession in-process', ratio: true },
    );

    // 3. Many sessions held: RSS and fds.
    const idle = await status(s);
    let t = process.hrtime.bigint();
    const ids = await pooled(HELD, 8, async () => ((await request(stateDir, { op: 'begin', chroot: 'bare' })) as { id: string }).id);
    const beginAllMs = msSince(t);
    // Let the watcher settle on the new dirs before measuring what it costs.
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const full = await status(s);
    if (full.held.length !== HELD) throw new Error(`the supervisor holds ${full.held.length} sessions, not ${HELD}`);
    t = process.hrtime.bigint();
    await pooled(HELD, 8, (i) => request(stateDir, { op: 'end', id: ids[i]! }));
    const endAllMs = msSince(t);
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    const after = await status(s);
    const heldSection = `${HELD} persistent sessions held (no hooks)`;
    rows.push(
      { section: heldSection, metric: 'supervisor RSS', unit: 'MB', measured: full.rssBytes / MB, baseline: idle.rssBytes / MB, baselineNote: 'idle supervisor', target: { kind: 'max', max: 150 } },
      { section: heldSection, metric: 'supervisor fds', unit: 'count', measured: full.fds.total, baseline: idle.fds.total, baselineNote: 'idle supervisor' },
      { section: heldSection, metric: 'file fds per held session', unit: 'count', measured: (full.fds.files - idle.fds.files) / HELD, baseline: null, target: { kind: 'max', max: 2 } },
      { section: heldSection, metric: 'file fds after ending them all', unit: 'count', measured: after.fds.files, baseline: idle.fds.files, baselineNote: 'idle supervisor', target: { kind: 'delta', max: 0 } },
      { section: heldSection, metric: `begin ${HELD} (8 clients)`, unit: 's', measured: beginAllMs / 1000, baseline: null },
      { section: heldSection, metric: `end ${HELD} (8 clients)`, unit: 's', measured: endAllMs / 1000, baseline: null },
    );
    details.idleRssMB = idle.rssBytes / MB;
    details.heldRssMB = full.rssBytes / MB;
    details.afterRssMB = after.rssBytes / MB;
    details.heldFds = full.fds.total;
    details.heldMaxLoopDelayMs = full.eventLoopDelay.maxMs;

    // 4. 100 begins at once: CLI processes, then socket requests. A status
    // before each storm restarts the supervisor's event-loop delay record.
    t = process.hrtime.bigint();
    await Promise.all(Array.from({ length: CONCURRENT }, () => cliAsync(['-e', '0'], s.env)));
    const nodeAll = msSince(t);
    await status(s);
    const bystander = idleLoop();
    t = process.hrtime.bigint();
    const cliIds = (await Promise.all(Array.from({ length: CONCURRENT }, () => cliAsync([WARDEN, 'begin', '-c', 'bench'], s.env)))).map((o) => o.trim());
    const cliBeginAll = msSince(t);
    t = process.hrtime.bigint();
    await Promise.all(cliIds.map((id) => cliAsync([WARDEN, 'end', '-s', id], s.env)));
    const cliEndAll = msSince(t);
    const afterCli = await status(s);
    const bystanderMaxMs = await bystander();
    t = process.hrtime.bigint();
    const sockIds = await Promise.all(
      Array.from({ length: CONCURRENT }, async () => ((await request(stateDir, { op: 'begin', chroot: 'bench' })) as { id: string }).id),
    );
    const sockBeginAll = msSince(t);
    t = process.hrtime.bigint();
    await Promise.all(sockIds.map((id) => request(stateDir, { op: 'end', id })));
    const sockEndAll = msSince(t);
    const last = await status(s);
    const concSection = `${CONCURRENT} begins at once, default hooks (total wall time)`;
    rows.push(
      { section: concSection, metric: `${CONCURRENT}× warden begin`, unit: 'ms', measured: cliBeginAll, baseline: nodeAll, baselineNote: `${CONCURRENT}× node -e 0 at once`, ratio: true },
      { section: concSection, metric: `${CONCURRENT}× warden end`, unit: 'ms', measured: cliEndAll, baseline: nodeAll, baselineNote: `${CONCURRENT}× node -e 0 at once`, ratio: true },
      { section: concSection, metric: `${CONCURRENT} begin requests on the socket`, unit: 'ms', measured: sockBeginAll, baseline: null },
      { section: concSection, metric: `${CONCURRENT} end requests on the socket`, unit: 'ms', measured: sockEndAll, baseline: null },
      { section: concSection, metric: 'supervisor event-loop delay, max, CLI storm', unit: 'ms', measured: afterCli.eventLoopDelay.maxMs, baseline: bystanderMaxMs, baselineNote: 'an idle node meanwhile', ratio: true },
      { section: concSection, metric: 'supervisor event-loop delay, max, socket storm', unit: 'ms', measured: last.eventLoopDelay.maxMs, baseline: null },
    );
    if (last.held.length !== 0) throw new Error(`the supervisor still holds ${last.held.length} sessions after the run`);

    // 5. End a session with a build tree in it while a client keeps asking.
    const inPlace = join(tmp, 'in-place'); // the state dir's filesystem, outside it
    buildTree(inPlace);
    t = process.hrtime.bigint();
    removeTree(inPlace);
    const inPlaceMs = msSince(t);
    const big = (await request(stateDir, { op: 'begin', chroot: 'bare' })) as { id: string; root: string };
    buildTree(join(big.root, 'build'));
    await status(s);
    const stopPinger = await pinger(stateDir, 5);
    t = process.hrtime.bigint();
    await request(stateDir, { op: 'end', id: big.id });
    const bigEndMs = msSince(t);
    const pings = await stopPinger();
    const afterBig = await status(s);
    const bigSection = `ending a session that wrote ${FILES.toLocaleString('en-US')} files, a client asking every 5 ms`;
    const inPlaceNote = 'removeTree of the same tree, in place';
    rows.push(
      { section: bigSection, metric: 'end request', unit: 'ms', measured: bigEndMs, baseline: inPlaceMs, baselineNote: inPlaceNote, ratio: true },
      { section: bigSection, metric: 'supervisor event-loop delay, max', unit: 'ms', measured: afterBig.eventLoopDelay.maxMs, baseline: inPlaceMs, baselineNote: inPlaceNote, target: { kind: 'ratio', max: 0.05 } },
      { section: bigSection, metric: `slowest hello (${pings.count} answered)`, unit: 'ms', measured: pings.maxMs, baseline: inPlaceMs, baselineNote: inPlaceNote, target: { kind: 'ratio', max: 0.05 } },
    );

    const evaluated = rows.map(evaluate);
    printTable(`warden supervisor benchmark (${((Date.now() - started) / 1000).toFixed(1)} s, ${machine().cpus} CPUs, node ${process.version})`, evaluated);
    for (const [k, v] of Object.entries({ ...series, ...lib })) details[k] = summarize(v);
    const file = writeResults('supervisor', { bench: 'supervisor', date: new Date().toISOString(), machine: machine(), runs: RUNS, held: HELD, rows: evaluated, details });
    console.log(`results: ${file}`);
  } finally {
    if (supervisor) await stopSupervisor(supervisor);
    await shutdownWaitPool();
    for (const m of mountsUnder(tmp).reverse()) spawnSync('umount', ['-l', m.mountPoint]);
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`bench/supervisor: ${(e as Error).message}`);
  process.exit(1);
});
