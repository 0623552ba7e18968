// Benchmark of exclusive source entry (issue 4, "Benchmarks (bench/source)").
//
// Row 1, entry latency: a real session holds the source; `warden source -c
// bench -- sh -c 'echo go'` (the real CLI) waits for it; the session ends.
// Measured: from the end of the session (endSession returned: its last lock
// is released) to the command's first output reaching us, p50 and p99 over
// TRIALS. The baseline, interleaved: the same command started directly
// (unshare --root SOURCE -- sh -c 'echo go') from this process, i.e. what
// starting the command costs at all. Target: p50 <= 5 ms.
//
// Each row is one function returning rows and details, so further rows (the
// stale scan of bench/stale.ts) can be added to SECTIONS without touching
// the others.
//
// Needs root (mounts, chroot). Builds a private chroot from host binaries in
// a temporary directory, so nothing else's locks interfere. Run with
// `npm run bench:source` (BENCH_TRIALS=N to change the 100 trials).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrapChroot } from '../src/bootstrap/index.js';
import { loadConfig, type ChrootDef } from '../src/config/index.js';
import { fileKeyOfPath, readProcLocks, shutdownWaitPool } from '../src/locks/index.js';
import { beginSession, endSession, sourceLockPath } from '../src/sessions/index.js';
import { mountsUnder } from '../src/union/index.js';
import { ROOT, evaluate, machine, nowNs, printTable, summarize, until, writeResults, type Row, type Summary } from './lib.js';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 100);
const WARDEN = join(ROOT, 'dist', 'cli', 'warden.cjs');
const UNSHARE = ['/usr/bin/unshare', '/bin/unshare'].find((p) => existsSync(p)) ?? 'unshare';

interface Setup {
  tmp: string;
  source: string;
  stateDir: string;
  hooksDir: string;
  def: ChrootDef;
  env: NodeJS.ProcessEnv;
}

interface Section {
  rows: Row[];
  details: Record<string, Summary>;
}

/** Resolves with the time the child's stdout first delivers data (the command started and wrote). */
function firstOutput(child: ChildProcess): Promise<bigint> {
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', () => resolve(nowNs()));
    child.once('exit', (code) => reject(new Error(`${child.spawnfile} exited ${code} before printing`)));
  });
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

/** Row 1: last blocking session ends -> the source command starts. */
async function entryLatency(s: Setup): Promise<Section> {
  const refKey = () => fileKeyOfPath(sourceLockPath(s.source));
  const latency: number[] = [];
  const direct: number[] = [];
  for (let i = 0; i < TRIALS; i++) {
    // Baseline: the command itself, chrooted into the source, started from here.
    const t = nowNs();
    const plain = spawn(UNSHARE, ['--root', s.source, '--wd', '/', '--', '/bin/sh', '-c', 'echo go'], { stdio: ['ignore', 'pipe', 'inherit'] });
    direct.push(Number((await firstOutput(plain)) - t) / 1e6);
    await exitOf(plain);

    const session = await beginSession({ stateDir: s.stateDir, chroot: s.def, hooksDir: s.hooksDir, hookTimeoutMs: 10_000 });
    const entry = spawn(process.execPath, [WARDEN, 'source', '-c', 'bench', '--', '/bin/sh', '-c', 'echo go'], {
      env: s.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const started = firstOutput(entry);
    const exited = exitOf(entry);
    let stderr = '';
    entry.stderr!.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    try {
      // The entry holds the manage lock and waits in the kernel for the source.
      const key = refKey();
      await until(() => readProcLocks().some((e) => e.waiting && e.key === key), 'the entry to wait for the source lock', 30_000);
    } catch (e) {
      entry.kill('SIGKILL');
      throw new Error(`${(e as Error).message}: ${stderr}`);
    } finally {
      await endSession(session);
    }
    const ended = nowNs();
    latency.push(Number((await started) - ended) / 1e6);
    const code = await exited;
    if (code !== 0) throw new Error(`warden source exited ${code}: ${stderr}`);
  }
  const l = summarize(latency);
  const d = summarize(direct);
  const section = `source entry: last blocking session ends -> command starts (${TRIALS} trials)`;
  return {
    rows: [
      { section, metric: 'latency p50', unit: 'ms', measured: l.p50, baseline: d.p50, baselineNote: 'command started directly', target: { kind: 'max', max: 5 } },
      { section, metric: 'latency p99', unit: 'ms', measured: l.p99, baseline: d.p99, baselineNote: 'command started directly' },
    ],
    details: { entryLatency: l, directStart: d },
  };
}

// bench/stale.ts can add its stale-scan row here: a function of the same shape.
const SECTIONS: [string, (s: Setup) => Promise<Section>][] = [['entry latency', entryLatency]];

async function setUp(): Promise<Setup> {
  const tmp = mkdtempSync(join(tmpdir(), 'warden-bench-source-'));
  const source = join(tmp, 'source');
  await bootstrapChroot(source, { busybox: false });
  const hooksDir = join(tmp, 'hooks');
  mkdirSync(hooksDir, { mode: 0o755 });
  mkdirSync(join(tmp, 'etc'));
  const config = join(tmp, 'etc', 'warden.conf');
  writeFileSync(config, `[warden]\nhooks-dir=${hooksDir}\n\n[bench]\ntype=directory\ndirectory=${source}\nunion-type=overlay\n`);
  const def = loadConfig({ config }).lookup('bench');
  if (!def) throw new Error('chroot bench missing from the generated config');
  const stateDir = join(tmp, 'sessions');
  return { tmp, source, stateDir, hooksDir, def, env: { ...process.env, WARDEN_CONFIG: config, WARDEN_STATE_DIR: stateDir } };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/source mounts overlays and chroots: run it as root');
  if (!existsSync(WARDEN)) throw new Error(`${WARDEN} is missing: npm run build`);
  const s = await setUp();
  try {
    const started = Date.now();
    const rows: Row[] = [];
    const details: Record<string, Summary> = {};
    for (const [, run] of SECTIONS) {
      const r = await run(s);
      rows.push(...r.rows);
      Object.assign(details, r.details);
    }
    const evaluated = rows.map(evaluate);
    printTable(`warden source benchmark (${((Date.now() - started) / 1000).toFixed(1)} s, ${machine().cpus} CPUs, node ${process.version})`, evaluated);
    const file = writeResults('source', { bench: 'source', date: new Date().toISOString(), machine: machine(), trials: TRIALS, rows: evaluated, details });
    console.log(`results: ${file}`);
  } finally {
    await shutdownWaitPool();
    for (const m of mountsUnder(s.tmp)) spawnSync('umount', ['-l', m.mountPoint]);
    rmSync(s.tmp, { recursive: true, force: true });
  }
}

main().catch((e) => {
  console.error(`bench/source: ${(e as Error).message}`);
  process.exit(1);
});
