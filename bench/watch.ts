// Benchmark of the session watch (issue 18): what watching the state dir
// costs while sessions come and go, and how late its events are.
//
// 1,000 sessions sit in the state dir (plain dirs with a lock file and a
// state.json). A watcher process runs watchSessions on it (default probe
// interval) and reports each event with its CLOCK_MONOTONIC time; twice:
// once holding the 1,000 itself (heldByCaller, as the supervisor holds its
// sessions: the probe skips them; the targets), once probing all of them
// (as `warden watch` does: reported beside, its CPU is mostly the probe's,
// which this issue keeps as it was). This process then begins and ends BENCH_SESSIONS
// (default 200) overlay sessions through the library, one after another,
// with no hooks (hooks are separate processes whose CPU this process would
// not count: without them the baseline is smallest, the target hardest).
//
//  - CPU: the watcher's user+system CPU from just before the first begin to
//    1.2 s after its last event (chokidar's trailing rescan included), beside
//    this process's CPU for the begins and ends themselves (workers
//    included). Target: <= 0.2x.
//  - Latency: `begun` from the start of beginSession and `ended` from the start of
//    endSession: the dir appears and goes inside them, so these are upper
//    bounds. Targets: p50 <= 100 ms, p99 <= 1.5 s.
//  - The watcher's CPU over an idle window of the same length (only the
//    probe at work) is reported beside it.
//
// Needs root (mounts). Run with `npm run bench:watch`.
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import { bootstrapChroot } from '../src/bootstrap/index.js';
import { loadConfig, type ChrootDef } from '../src/config/index.js';
import { shutdownWaitPool } from '../src/locks/index.js';
import { beginSession, endSession, STATE_VERSION } from '../src/sessions/index.js';
import { mountsUnder } from '../src/union/index.js';
import { ROOT, evaluate, machine, nowNs, printTable, sleep, summarize, within, writeResults, type Row, type Summary } from './lib.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 200);
const PRESENT = Number(process.env.BENCH_PRESENT ?? 1000);
const WATCH_MODULE = pathToFileURL(join(ROOT, 'dist', 'src', 'sessions', 'watch.js')).href;

// The watcher: "ready", then "ev <ns> <event> <id>" per event; "cpu" on stdin answers "cpu <µs>".
const CHILD = `
import { createInterface } from 'node:readline';
const { watchSessions } = await import(${JSON.stringify(WATCH_MODULE)});
const held = process.argv[2] === 'held';
const w = watchSessions(process.argv[1], {
  heldByCaller: (id) => held && id.startsWith('present-'),
  onEvent: (e) => process.stdout.write('ev ' + process.hrtime.bigint() + ' ' + e.event + ' ' + e.id + '\\n'),
  onError: (e) => process.stderr.write('watch: ' + e.message + '\\n'),
});
await w.ready;
process.stdout.write('ready\\n');
createInterface({ input: process.stdin }).on('line', (l) => {
  if (l === 'cpu') { const u = process.cpuUsage(); process.stdout.write('cpu ' + (u.user + u.system) + '\\n'); }
}).on('close', () => w.close());
`;

class Watcher {
  readonly events: { ns: bigint; event: string; id: string }[] = [];
  readonly #child: ChildProcessByStdio<Writable, Readable, null>;
  #waiters: ((line: string) => void)[] = [];
  #eventWaiters: { done: () => boolean; resolve: () => void }[] = [];
  readonly exited: Promise<number | null>;

  constructor(stateDir: string, held: boolean) {
    this.#child = spawn(process.execPath, [...(process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`] : []), '--input-type=module', '-e', CHILD, '--', stateDir, held ? 'held' : 'probed'], { stdio: ['pipe', 'pipe', 'inherit'] });
    this.exited = new Promise((resolve) => this.#child.once('exit', resolve));
    createInterface({ input: this.#child.stdout }).on('line', (line) => {
      if (line.startsWith('ev ')) {
        const [, ns, event, id] = line.split(' ');
        this.events.push({ ns: BigInt(ns!), event: event!, id: id! });
        this.#eventWaiters = this.#eventWaiters.filter((w) => !(w.done() && (w.resolve(), true)));
      } else this.#waiters.shift()?.(line);
    });
  }

  static async start(stateDir: string, held: boolean): Promise<Watcher> {
    const w = new Watcher(stateDir, held);
    const first = await within(new Promise<string>((resolve) => w.#waiters.push(resolve)), 60_000, 'the watcher to be ready');
    if (first !== 'ready') throw new Error(`watcher: ${first}`);
    return w;
  }

  async cpuUs(): Promise<number> {
    const reply = new Promise<string>((resolve) => this.#waiters.push(resolve));
    this.#child.stdin.write('cpu\n');
    return Number((await reply).split(' ')[1]);
  }

  until(event: string, id: string): Promise<void> {
    const done = () => this.events.some((e) => e.event === event && e.id === id);
    if (done()) return Promise.resolve();
    return within(new Promise((resolve) => this.#eventWaiters.push({ done, resolve })), 30_000, `${event} ${id}`);
  }

  /** Closes its stdin: the watch closes and the process must exit on its own. */
  async stop(): Promise<number | null> {
    this.#child.stdin.end();
    return within(this.exited, 10_000, 'the watcher to exit on its own after close()');
  }
}

const cpuUs = (): number => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

interface Measured {
  rows: Row[];
  latency: Record<string, Summary>;
}

/**
 * One watcher process (`held`: it holds the sessions present itself, as the
 * supervisor does, so the probe skips them; otherwise it probes all of them,
 * as `warden watch` does) while this process begins and ends SESSIONS
 * sessions.
 */
async function measure(stateDir: string, def: ChrootDef, hooksDir: string, held: boolean, target: boolean): Promise<Measured> {
  const watcher = await Watcher.start(stateDir, held);
  try {
    await sleep(1_500); // the watch's start-up and first probes settle
    const begunFrom = new Map<string, bigint>();
    const endedFrom = new Map<string, bigint>();
    const wStart = await watcher.cpuUs();
    const mine0 = cpuUs();
    const t0 = nowNs();
    for (let i = 0; i < SESSIONS; i++) {
      const t = nowNs();
      const session = await beginSession({ stateDir, chroot: def, hooksDir, hookTimeoutMs: 30_000 });
      begunFrom.set(session.id, t);
      // Each event waited for before the next step: a session begun and
      // ended faster than the watcher looks is never seen (the watch
      // compares states), and a latency needs its event.
      await watcher.until('begun', session.id);
      endedFrom.set(session.id, nowNs());
      await endSession(session);
      await watcher.until('ended', session.id);
    }
    const mine = cpuUs() - mine0;
    const wallMs = Number(nowNs() - t0) / 1e6;
    await sleep(1_200); // a listing chokidar still had to do
    const watched = (await watcher.cpuUs()) - wStart;
    const windowMs = Number(nowNs() - t0) / 1e6;

    // The watcher's idle cost over a window as long (the probe alone).
    const idle0 = await watcher.cpuUs();
    await sleep(windowMs);
    const idle = (await watcher.cpuUs()) - idle0;

    const lat = (event: string, from: Map<string, bigint>) =>
      [...from].map(([id, t]) => {
        const e = watcher.events.find((x) => x.event === event && x.id === id);
        if (!e) throw new Error(`no ${event} event for ${id}`);
        return Number(e.ns - t) / 1e6;
      });
    const begun = summarize(lat('begun', begunFrom));
    const ended = summarize(lat('ended', endedFrom));
    const all = summarize([...lat('begun', begunFrom), ...lat('ended', endedFrom)]);
    const spurious = watcher.events.filter((e) => !begunFrom.has(e.id));
    if (spurious.length) throw new Error(`events for entries never made: ${JSON.stringify(spurious.slice(0, 5))}`);

    const who = held ? `a watcher holding the ${PRESENT} present (as the supervisor)` : `a watcher probing all ${PRESENT} present (as warden watch)`;
    const cpuSection = `${SESSIONS} library begins+ends (overlay, no hooks), ${who}`;
    const latSection = `event latency, ${who}`;
    const rows: Row[] = [
      { section: cpuSection, metric: 'watcher CPU during the begins+ends (+1.2 s)', unit: 'ms', measured: watched / 1e3, baseline: mine / 1e3, baselineNote: 'CPU of the begins+ends', ...(target ? { target: { kind: 'ratio', max: 0.2 } as const } : { ratio: true }) },
      { section: cpuSection, metric: 'watcher CPU idle, same length (probe only)', unit: 'ms', measured: idle / 1e3, baseline: mine / 1e3, baselineNote: 'CPU of the begins+ends', ratio: true },
      { section: cpuSection, metric: 'wall time of the begins+ends', unit: 'ms', measured: wallMs, baseline: null },
      { section: latSection, metric: 'p50, begun and ended', unit: 'ms', measured: all.p50, baseline: null, target: { kind: 'max', max: 100 } },
      { section: latSection, metric: 'p99, begun and ended', unit: 'ms', measured: all.p99, baseline: null, target: { kind: 'max', max: 1_500 } },
      { section: latSection, metric: 'begun p50 (from the begin call: upper bound)', unit: 'ms', measured: begun.p50, baseline: null },
      { section: latSection, metric: 'begun p99', unit: 'ms', measured: begun.p99, baseline: null },
      { section: latSection, metric: 'ended p50 (from the end call: upper bound)', unit: 'ms', measured: ended.p50, baseline: null },
      { section: latSection, metric: 'ended p99', unit: 'ms', measured: ended.p99, baseline: null },
    ];
    return { rows, latency: { begun, ended, all } };
  } finally {
    const code = await watcher.stop();
    if (code !== 0) throw new Error(`the watcher exited ${code} after close()`);
  }
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/watch mounts overlays: run it as root');
  const tmp = mkdtempSync(join(tmpdir(), 'warden-bench-watch-'));
  const source = join(tmp, 'source');
  const noHooks = join(tmp, 'no-hooks');
  const stateDir = join(tmp, 'sessions');
  const config = join(tmp, 'warden.conf');
  try {
    await bootstrapChroot(source, { busybox: false });
    mkdirSync(noHooks, { mode: 0o755 });
    mkdirSync(stateDir, { mode: 0o711 });
    writeFileSync(config, `[bare]\ntype=directory\ndirectory=${source}\nunion-type=overlay\nhooks=${noHooks}\n`);
    const def = loadConfig({ config }).lookup('bare');
    if (!def) throw new Error('chroot bare missing from the generated config');
    const now = new Date().toISOString();
    for (let i = 0; i < PRESENT; i++) {
      const id = `present-${i}`;
      mkdirSync(join(stateDir, id));
      writeFileSync(join(stateDir, id, 'lock'), '', { mode: 0o600 });
      const state = { version: STATE_VERSION, id, chroot: 'bare', source, unionType: 'overlay', status: 'active', hooksDir: noHooks, hookTimeoutMs: 30_000, createdAt: now, updatedAt: now, beganBy: 0, layout: 2 };
      writeFileSync(join(stateDir, id, 'state.json'), JSON.stringify(state));
    }
    // Warm the library (first mount, worker pool) before anything is measured.
    await endSession(await beginSession({ stateDir, chroot: def, hooksDir: noHooks, hookTimeoutMs: 30_000 }));

    const supervisorLike = await measure(stateDir, def, noHooks, true, true);
    const watchLike = await measure(stateDir, def, noHooks, false, false);
    const rows = [...supervisorLike.rows, ...watchLike.rows];
    const evaluated = rows.map(evaluate);
    printTable('bench/watch: the session watch (chokidar on the state dir, depth 0)', evaluated);
    const path = writeResults('watch', { bench: 'watch', date: new Date().toISOString(), machine: machine(), sessions: SESSIONS, present: PRESENT, rows: evaluated, latency: { supervisorLike: supervisorLike.latency, watchLike: watchLike.latency } });
    console.log(`results: ${path}`);
    if (evaluated.some((r) => r.pass === false)) process.exitCode = 1;
  } finally {
    await shutdownWaitPool();
    for (const m of mountsUnder(tmp).reverse()) spawnSync('umount', ['-l', m.mountPoint]);
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`bench/watch: ${(e as Error).message}`);
  process.exit(1);
});
