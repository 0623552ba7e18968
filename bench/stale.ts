// Benchmark of the stale scan: `warden list --sessions --json` over 10,000
// session directories of which half are held (a C helper holds their
// liveness bytes, one OFD lock per session, as live sessions would) and
// half are stale. Target: under 1 s for the whole call on these machines;
// the table also shows the cost per session (the call minus the same call
// over an empty state dir, divided by the sessions) and the library's scan
// alone, in-process. Every status is checked against what the helper holds.
//
// Session dirs are cheap ones (state.json + lock file, no mounts), so no
// root is needed. Run with `npm run bench:stale` (BENCH_SESSIONS, BENCH_RUNS
// to change the 10,000 and the 5 runs).
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { listSessions } from '../src/sessions/store.js';
import { STATE_VERSION, type SessionState } from '../src/sessions/state.js';
import { LineProcess, ROOT, compileC, evaluate, machine, median, printTable, summarize, writeResults, type Row } from './lib.js';

const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 10_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const WARDEN = join(ROOT, 'dist', 'cli', 'warden.cjs');

function timeOnce(args: string[], env: NodeJS.ProcessEnv): { ms: number; stdout: string } {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { env, encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { ms, stdout: r.stdout };
}

/** `count` session dirs as begin leaves them (without mounts); returns the lock files of the even ones (to hold). */
function buildSessions(stateDir: string, count: number): string[] {
  mkdirSync(stateDir);
  const now = new Date().toISOString();
  const held: string[] = [];
  for (let i = 0; i < count; i++) {
    const id = `s-${String(i).padStart(5, '0')}`;
    const dir = join(stateDir, id);
    mkdirSync(dir);
    writeFileSync(join(dir, 'lock'), '');
    const state: SessionState = {
      version: STATE_VERSION,
      id,
      chroot: 'bench',
      source: '/srv/bench',
      unionType: 'overlay',
      status: 'active',
      hooksDir: '/etc/warden/hooks',
      hookTimeoutMs: 30_000,
      createdAt: now,
      updatedAt: now,
      beganBy: 1,
      layout: 2,
    };
    writeFileSync(join(dir, 'state.json'), `${JSON.stringify(state, null, 2)}\n`);
    if (i % 2 === 0) held.push(join(dir, 'lock'));
  }
  return held;
}

async function main(): Promise<void> {
  const tmp = mkdtempSync(join(tmpdir(), 'warden-bench-stale-'));
  const stateDir = join(tmp, 'sessions');
  const empty = join(tmp, 'empty');
  mkdirSync(join(tmp, 'etc'));
  mkdirSync(empty);
  writeFileSync(join(tmp, 'etc', 'warden.conf'), '[warden]\n');
  const env = (dir: string) => ({ ...process.env, WARDEN_CONFIG: join(tmp, 'etc', 'warden.conf'), WARDEN_STATE_DIR: dir });
  let holder: LineProcess | undefined;
  try {
    const started = Date.now();
    const held = buildSessions(stateDir, SESSIONS);
    const list = join(tmp, 'held.txt');
    writeFileSync(list, `${held.join('\n')}\n`);
    holder = await LineProcess.start(compileC('hold-many'), [list]);
    const args = [WARDEN, 'list', '--sessions', '--json'];
    // Warm the page cache and the dentry cache once.
    const first = JSON.parse(timeOnce(args, env(stateDir)).stdout) as { id: string; status: string }[];
    const counts = { active: 0, stale: 0, corrupt: 0 } as Record<string, number>;
    for (const e of first) counts[e.status] = (counts[e.status] ?? 0) + 1;
    const expectActive = Math.ceil(SESSIONS / 2);
    if (first.length !== SESSIONS || counts.active !== expectActive || counts.stale !== SESSIONS - expectActive) {
      throw new Error(`wrong statuses: ${JSON.stringify(counts)} of ${first.length}`);
    }
    const series: Record<string, number[]> = { node: [], emptyList: [], fullList: [], fullTable: [], library: [] };
    // Interleaved, so that drift in machine load hits every series alike.
    for (let i = 0; i < RUNS; i++) {
      series.node!.push(timeOnce(['-e', '0'], env(empty)).ms);
      series.emptyList!.push(timeOnce(args, env(empty)).ms);
      series.fullList!.push(timeOnce(args, env(stateDir)).ms);
      series.fullTable!.push(timeOnce([WARDEN, 'list', '--sessions'], env(stateDir)).ms);
      const t = process.hrtime.bigint();
      const n = listSessions(stateDir).length;
      series.library!.push(Number(process.hrtime.bigint() - t) / 1e6);
      if (n !== SESSIONS) throw new Error(`library listed ${n} sessions`);
    }
    const full = median(series.fullList!);
    const fixed = median(series.emptyList!);
    const perSessionUs = ((full - fixed) * 1000) / SESSIONS;
    const section = `${SESSIONS.toLocaleString('en')} sessions, half stale (median of ${RUNS})`;
    const rows: Row[] = [
      { section, metric: 'warden list --sessions --json', unit: 'ms', measured: full, baseline: median(series.node!), baselineNote: 'node -e 0', target: { kind: 'below', max: 1000 } },
      { section, metric: 'warden list --sessions (table)', unit: 'ms', measured: median(series.fullTable!), baseline: median(series.node!), baselineNote: 'node -e 0' },
      { section, metric: 'per session (minus an empty state dir)', unit: 'us', measured: perSessionUs, baseline: null },
      { section, metric: 'listSessions() in-process, per session', unit: 'us', measured: (median(series.library!) * 1000) / SESSIONS, baseline: null },
      { section: 'fixed cost', metric: 'warden list --sessions --json, empty state dir', unit: 'ms', measured: fixed, baseline: median(series.node!), baselineNote: 'node -e 0' },
    ];
    const evaluated = rows.map(evaluate);
    printTable(`warden stale-scan benchmark (${((Date.now() - started) / 1000).toFixed(1)} s, ${machine().cpus} CPUs, node ${process.version})`, evaluated);
    const details = Object.fromEntries(Object.entries(series).map(([k, v]) => [k, summarize(v)]));
    const file = writeResults('stale', { bench: 'stale', date: new Date().toISOString(), machine: machine(), sessions: SESSIONS, runs: RUNS, rows: evaluated, details });
    console.log(`results: ${file}`);
  } finally {
    await holder?.stop();
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`bench/stale: ${(e as Error).message}`);
  process.exit(1);
});
