// Benchmark of session-tree deletion (src/union/remove.ts): 100,000 empty
// files in 100 dirs of 1,000 (a build tree's object files), deleted by
// removeTree in place and by removeTreeOffThread (500 in place, the rest in
// the worker). Prints the median of BENCH_RUNS (default 5) per way, in ms
// and in µs an entry. Run with `npm run build && node dist/bench/remove.js`
// (BENCH_ENTRIES, BENCH_RUNS to change 100,000 and 5).
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeTree, removeTreeOffThread, shutdownRemovalPool } from '../src/union/index.js';

const ENTRIES = Number(process.env.BENCH_ENTRIES ?? 100_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const PER_DIR = 1000;

function fill(dir: string): void {
  for (let d = 0; d * PER_DIR < ENTRIES; d++) {
    const sub = join(dir, 'upper', `d${d}`);
    mkdirSync(sub, { recursive: true });
    for (let i = 0; i < PER_DIR && d * PER_DIR + i < ENTRIES; i++) closeSync(openSync(join(sub, String(i)), 'w'));
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const base = mkdtempSync(join(tmpdir(), 'warden-bench-remove-'));
try {
  for (const [name, del] of [
    ['removeTree', async (d: string) => removeTree(d)],
    ['removeTreeOffThread', (d: string) => removeTreeOffThread(d)],
  ] as const) {
    const ms: number[] = [];
    for (let r = 0; r < RUNS; r++) {
      const dir = join(base, `t${r}`);
      fill(dir);
      const t0 = process.hrtime.bigint();
      await del(dir);
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    const m = median(ms);
    console.log(`${name}: ${ENTRIES} files: median ${m.toFixed(0)} ms (${((m * 1000) / ENTRIES).toFixed(1)} us/entry) over ${RUNS} runs [${ms.map((x) => x.toFixed(0)).join(', ')}]`);
  }
} finally {
  await shutdownRemovalPool();
  rmSync(base, { recursive: true, force: true });
}
