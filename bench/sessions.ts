// Benchmark of sessions through the real CLI (dist/cli/warden.js): what a
// user pays for `warden --version`, `warden list`, an automatic session
// `warden run -c demo -- true` with the shipped default hooks, and 20
// automatic sessions at once; plus the mount step itself, syscall against
// util-linux mount(8). Every CLI figure sits beside `node -e 0` measured
// in the same run, interleaved, since Node's start-up dominates.
//
// Needs root (mounts). Uses the demo chroot (built if missing) and a
// temporary state dir. Run with `npm run bench:sessions`.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountsUnder, mountUnion, unmountAll } from '../src/union/index.js';
import { ROOT, evaluate, machine, median, printTable, summarize, writeResults, type Row } from './lib.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 30);
const CONCURRENT = 20;
const WARDEN = join(ROOT, 'dist', 'cli', 'warden.cjs');
const DEMO = '/var/lib/warden/demo';

function timeOnce(args: string[], env: NodeJS.ProcessEnv): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(process.execPath, args, { env, stdio: ['ignore', 'ignore', 'pipe'], cwd: ROOT });
  const ms = Number(process.hrtime.bigint() - t) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return ms;
}

function spawnMs(cmd: string, args: string[]): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}`);
  return Number(process.hrtime.bigint() - t) / 1e6;
}

/** The mount step alone: mount(2) through koffi against spawning mount(8), then unmounting. */
async function mountCompare(tmp: string): Promise<Record<string, number[]>> {
  const d = join(tmp, 'mnt');
  for (const x of ['upper', 'work', 'root']) mkdirSync(join(d, x), { recursive: true });
  const layout = { type: 'overlay' as const, source: DEMO, upper: join(d, 'upper'), work: join(d, 'work'), root: join(d, 'root') };
  const out: Record<string, number[]> = { syscallMount: [], syscallUmount: [], utilMount: [], utilUmount: [] };
  for (let i = 0; i < RUNS; i++) {
    let t = process.hrtime.bigint();
    await mountUnion(layout);
    out.syscallMount!.push(Number(process.hrtime.bigint() - t) / 1e6);
    t = process.hrtime.bigint();
    unmountAll(layout.root);
    out.syscallUmount!.push(Number(process.hrtime.bigint() - t) / 1e6);
    out.utilMount!.push(
      spawnMs('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${DEMO},upperdir=${layout.upper},workdir=${layout.work}`, layout.root]),
    );
    out.utilUmount!.push(spawnMs('umount', [layout.root]));
  }
  return out;
}

async function concurrent(env: NodeJS.ProcessEnv): Promise<number> {
  const t = process.hrtime.bigint();
  await Promise.all(
    Array.from(
      { length: CONCURRENT },
      () =>
        new Promise<void>((resolve, reject) => {
          const c = spawn(process.execPath, [WARDEN, 'run', '-c', 'demo', '--', 'true'], { env, stdio: 'ignore', cwd: ROOT });
          c.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`concurrent run exited ${code}`))));
        }),
    ),
  );
  return Number(process.hrtime.bigint() - t) / 1e6;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/sessions mounts overlays: run it as root');
  if (!existsSync(WARDEN)) throw new Error(`${WARDEN} is missing: npm run build`);
  if (!existsSync(join(DEMO, 'bin', 'sh'))) spawnSync(process.execPath, [WARDEN, 'bootstrap', DEMO], { stdio: 'inherit' });
  const tmp = mkdtempSync(join(tmpdir(), 'warden-bench-'));
  const env = { ...process.env, WARDEN_STATE_DIR: join(tmp, 'sessions'), WARDEN_CONFIG: join(ROOT, 'etc', 'warden.conf') };
  try {
    const started = Date.now();
    // Warm the page cache and the demo's hooks once.
    timeOnce([WARDEN, 'run', '-c', 'demo', '--', 'true'], env);
    const series: Record<string, number[]> = { node: [], version: [], list: [], listSessions: [], run: [] };
    // Interleaved, so that drift in machine load hits every series alike.
    for (let i = 0; i < RUNS; i++) {
      series.node!.push(timeOnce(['-e', '0'], env));
      series.version!.push(timeOnce([WARDEN, '--version'], env));
      series.list!.push(timeOnce([WARDEN, 'list'], env));
      series.listSessions!.push(timeOnce([WARDEN, 'list', '--sessions'], env));
      series.run!.push(timeOnce([WARDEN, 'run', '-c', 'demo', '--', 'true'], env));
    }
    const nodeConcurrent = await (async () => {
      const t = process.hrtime.bigint();
      await Promise.all(
        Array.from({ length: CONCURRENT }, () => new Promise<void>((r) => spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' }).once('exit', () => r()))),
      );
      return Number(process.hrtime.bigint() - t) / 1e6;
    })();
    const wall = await concurrent(env);
    const mounts = await mountCompare(tmp);
    const node = median(series.node!);
    const rows: Row[] = [
      { section: 'CLI start-up (median of ' + RUNS + ')', metric: 'node -e 0', unit: 'ms', measured: node, baseline: null },
      { section: 'CLI start-up (median of ' + RUNS + ')', metric: 'warden --version', unit: 'ms', measured: median(series.version!), baseline: node, baselineNote: 'node -e 0', target: { kind: 'delta', max: 15 } },
      { section: 'CLI start-up (median of ' + RUNS + ')', metric: 'warden list', unit: 'ms', measured: median(series.list!), baseline: node, baselineNote: 'node -e 0', target: { kind: 'delta', max: 20 } },
      { section: 'CLI start-up (median of ' + RUNS + ')', metric: 'warden list --sessions', unit: 'ms', measured: median(series.listSessions!), baseline: node, baselineNote: 'node -e 0', target: { kind: 'delta', max: 20 } },
      { section: 'automatic session, default hooks', metric: 'warden run -c demo -- true', unit: 'ms', measured: median(series.run!), baseline: node, baselineNote: 'node -e 0', target: { kind: 'delta', max: 40 } },
      { section: `${CONCURRENT} concurrent automatic sessions`, metric: 'total wall time', unit: 'ms', measured: wall, baseline: nodeConcurrent, baselineNote: `${CONCURRENT}× node -e 0 at once`, ratio: true },
      { section: 'mount step (median)', metric: 'overlay mount: mount(2) via koffi', unit: 'ms', measured: median(mounts.syscallMount!), baseline: median(mounts.utilMount!), baselineNote: 'mount(8)', ratio: true },
      { section: 'mount step (median)', metric: 'unmount: umount2(2) via koffi', unit: 'ms', measured: median(mounts.syscallUmount!), baseline: median(mounts.utilUmount!), baselineNote: 'umount(8)', ratio: true },
    ];
    const evaluated = rows.map(evaluate);
    printTable(`warden sessions benchmark (${((Date.now() - started) / 1000).toFixed(1)} s, ${machine().cpus} CPUs, node ${process.version})`, evaluated);
    const details = Object.fromEntries([...Object.entries(series), ...Object.entries(mounts)].map(([k, v]) => [k, summarize(v)]));
    const file = writeResults('sessions', { bench: 'sessions', date: new Date().toISOString(), machine: machine(), runs: RUNS, rows: evaluated, details });
    console.log(`results: ${file}`);
  } finally {
    for (const m of mountsUnder(tmp)) spawnSync('umount', ['-l', m.mountPoint]);
    rmSync(tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`bench/sessions: ${(e as Error).message}`);
  process.exit(1);
});
