// Helpers shared by the benchmarks in bench/: compiling their C
// counterparts, driving an external process line by line, statistics, and
// reporting (a table on stdout, JSON under bench/results/).
//
// Every figure a bench reports sits beside a baseline measured in the same
// run, and a target is a bound on the figure or on its ratio to the baseline:
// absolute numbers from one machine mean little on another.
import { execFileSync, spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, release } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';

// dist/bench/lib.js -> repository root
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BENCH_DIR = join(ROOT, 'bench');
const BUILD_DIR = join(BENCH_DIR, '.build');
const RESULTS_DIR = join(BENCH_DIR, 'results');

/**
 * Compiles bench/c/<name>.c with `cc -O2` (plus `flags`, e.g. -pthread) into
 * bench/.build/<name> unless the binary is newer than its source, and returns
 * the binary's path. Built at bench time so that the C baseline runs with this
 * machine's compiler and kernel headers; written under a temporary name and
 * renamed so that an interrupted build never leaves a broken binary that looks
 * up to date. Only the source's age is compared: after changing `flags`,
 * delete bench/.build.
 */
export function compileC(name: string, flags: readonly string[] = []): string {
  const source = join(BENCH_DIR, 'c', `${name}.c`);
  const binary = join(BUILD_DIR, name);
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return binary;
  mkdirSync(BUILD_DIR, { recursive: true });
  const tmp = `${binary}.${process.pid}`;
  execFileSync('cc', ['-O2', '-Wall', '-Wextra', ...flags, '-o', tmp, source], { stdio: 'inherit' });
  renameSync(tmp, binary);
  return binary;
}

/**
 * A child process that answers commands one line each (stdin -> stdout).
 * Replies are matched to requests in order; a command that answers nothing
 * goes through post().
 */
export class LineProcess {
  readonly child: ChildProcessByStdio<Writable, Readable, null>;
  #pending: { resolve: (line: string) => void; reject: (e: Error) => void }[] = [];
  #exited: Promise<void>;
  #exitError: Error | undefined;

  private constructor(child: ChildProcessByStdio<Writable, Readable, null>) {
    this.child = child;
    createInterface({ input: child.stdout }).on('line', (line) => {
      const p = this.#pending.shift();
      if (!p) return;
      // "err ..." is how our C helpers report a failed syscall.
      if (line.startsWith('err ')) p.reject(new Error(`${child.spawnfile}: ${line.slice(4)}`));
      else p.resolve(line);
    });
    this.#exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.#exitError = new Error(`${child.spawnfile} exited (${signal ?? code})`);
        for (const p of this.#pending.splice(0)) p.reject(this.#exitError);
        resolve();
      }),
    );
  }

  /** Starts `binary` and waits for its "ready" line. */
  static async start(binary: string, args: readonly string[]): Promise<LineProcess> {
    const proc = new LineProcess(spawn(binary, args, { stdio: ['pipe', 'pipe', 'inherit'] }));
    const first = await proc.#next();
    if (first !== 'ready') throw new Error(`${binary} did not start: ${first}`);
    return proc;
  }

  #next(): Promise<string> {
    if (this.#exitError) return Promise.reject(this.#exitError);
    return new Promise((resolve, reject) => this.#pending.push({ resolve, reject }));
  }

  /** Sends one command and returns its reply line. */
  send(cmd: string): Promise<string> {
    const reply = this.#next();
    this.child.stdin.write(cmd + '\n');
    return reply;
  }

  /** Sends a command that answers nothing. */
  post(cmd: string): void {
    this.child.stdin.write(cmd + '\n');
  }

  /** Closes its stdin (our helpers exit at EOF) and waits for the exit; SIGKILL after `graceMs`. */
  async stop(graceMs = 2_000): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.stdin.end();
      const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
      await this.#exited;
      clearTimeout(timer);
    }
  }
}

// --- time and polling ---------------------------------------------------------

/** CLOCK_MONOTONIC in nanoseconds (libuv's uv_hrtime on Linux). */
export const nowNs = (): bigint => process.hrtime.bigint();

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `cond` until it holds. The first polls are back to back on the event
 * loop (setImmediate), later ones 1 ms apart, so a quick condition is seen
 * quickly without spinning a core for a slow one.
 */
export async function until(cond: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (let i = 0; !cond(); i++) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await (i < 20 ? new Promise<void>((resolve) => setImmediate(resolve)) : sleep(1));
  }
}

/** Rejects with an error naming `what` if `p` has not settled after `ms`. */
export async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

// --- this process -------------------------------------------------------------

/** OS threads of this process, from /proc/self/status (workers included). */
export function osThreads(): number {
  const m = /^Threads:\s+(\d+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error('no Threads: line in /proc/self/status');
  return Number(m[1]);
}

export const MB = 1024 * 1024;

// --- statistics ---------------------------------------------------------------

export interface Summary {
  n: number;
  min: number;
  p50: number;
  p99: number;
  max: number;
  mean: number;
}

/** Nearest-rank quantile of an ascending array. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil(q * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function summarize(values: readonly number[]): Summary {
  const s = [...values].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / s.length;
  return { n: s.length, min: s[0], p50: quantile(s, 0.5), p99: quantile(s, 0.99), max: s[s.length - 1], mean };
}

export function median(values: readonly number[]): number {
  return summarize(values).p50;
}

// --- reporting ----------------------------------------------------------------

export type Unit = 'ns' | 'us' | 'ms' | 's' | 'MB' | 'count' | 'x';

/**
 * What a figure must meet:
 *  ratio  measured / baseline <= max
 *  max    measured <= max          below  measured < max
 *  delta  measured - baseline <= max
 * All bounds but ratio are in the row's unit.
 */
export type Target =
  | { kind: 'ratio'; max: number }
  | { kind: 'max'; max: number }
  | { kind: 'below'; max: number }
  | { kind: 'delta'; max: number };

export interface Row {
  /** Section of the table, e.g. "1 uncontended lock+unlock". */
  section: string;
  metric: string;
  unit: Unit;
  measured: number;
  /** Same quantity measured in the same run without the thing under test. */
  baseline: number | null;
  /** What the baseline is, when the section header does not say. */
  baselineNote?: string;
  /** Absent: reported for information only. */
  target?: Target;
  /** For an information row: show measured / baseline anyway. */
  ratio?: boolean;
  /** For an information row: show measured - baseline anyway. */
  delta?: boolean;
}

export interface EvaluatedRow extends Row {
  pass: boolean | null;
  /** measured / baseline (ratio targets) or measured - baseline (delta targets). */
  compared: number | null;
}

export function evaluate(row: Row): EvaluatedRow {
  const t = row.target;
  if (!t) {
    if (row.delta && row.baseline !== null) return { ...row, pass: null, compared: row.measured - row.baseline };
    return { ...row, pass: null, compared: row.ratio && row.baseline ? row.measured / row.baseline : null };
  }
  switch (t.kind) {
    case 'ratio': {
      const r = row.baseline ? row.measured / row.baseline : NaN;
      return { ...row, pass: r <= t.max, compared: r };
    }
    case 'delta': {
      const d = row.measured - (row.baseline ?? NaN);
      return { ...row, pass: d <= t.max, compared: d };
    }
    case 'max':
      return { ...row, pass: row.measured <= t.max, compared: null };
    case 'below':
      return { ...row, pass: row.measured < t.max, compared: null };
  }
}

export function formatValue(v: number, unit: Unit): string {
  if (!Number.isFinite(v)) return String(v);
  switch (unit) {
    case 'ns':
      return `${v.toFixed(0)} ns`;
    case 'us':
      return `${v.toFixed(1)} µs`;
    case 'ms':
      return `${v.toFixed(3)} ms`;
    case 's':
      return `${v.toFixed(2)} s`;
    case 'MB':
      return `${v.toFixed(1)} MB`;
    case 'count':
      return v.toFixed(0);
    case 'x':
      return `${v.toFixed(2)}×`;
  }
}

function formatTarget(t: Target, unit: Unit): string {
  switch (t.kind) {
    case 'ratio':
      return `≤ ${t.max}× baseline`;
    case 'max':
      return `≤ ${formatValue(t.max, unit)}`;
    case 'below':
      return `< ${formatValue(t.max, unit)}`;
    case 'delta':
      return `≤ baseline + ${formatValue(t.max, unit)}`;
  }
}

function formatResult(r: EvaluatedRow): string {
  if (r.pass === null) {
    if (r.compared === null) return 'info';
    return r.delta ? `info (+${formatValue(r.compared, r.unit)})` : `info (${r.compared.toFixed(2)}×)`;
  }
  const verdict = r.pass ? 'PASS' : 'FAIL';
  if (r.target?.kind === 'ratio' && r.compared !== null) return `${verdict} (${r.compared.toFixed(2)}×)`;
  if (r.target?.kind === 'delta' && r.compared !== null) return `${verdict} (+${formatValue(r.compared, r.unit)})`;
  return verdict;
}

/** Prints rows as an aligned text table, one header line per section. */
export function printTable(title: string, rows: readonly EvaluatedRow[]): void {
  const header = ['metric', 'measured', 'baseline', 'target', 'result'];
  const cells = rows.map((r) => [
    r.metric,
    formatValue(r.measured, r.unit),
    r.baseline === null ? '—' : formatValue(r.baseline, r.unit) + (r.baselineNote ? ` (${r.baselineNote})` : ''),
    r.target ? formatTarget(r.target, r.unit) : '—',
    formatResult(r),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  // Numbers right-aligned, text left-aligned.
  const line = (c: string[]) =>
    c.map((s, i) => (i === 1 || i === 2 ? s.padStart(widths[i]) : s.padEnd(widths[i]))).join('  ').trimEnd();
  const rule = '-'.repeat(widths.reduce((a, b) => a + b + 2, -2));
  const out: string[] = [title, rule, line(header), rule];
  let section: string | undefined;
  rows.forEach((r, i) => {
    if (r.section !== section) {
      section = r.section;
      out.push(`[${section}]`);
    }
    out.push(line(cells[i]));
  });
  out.push(rule);
  const failed = rows.filter((r) => r.pass === false).length;
  const checked = rows.filter((r) => r.pass !== null).length;
  out.push(`${checked - failed}/${checked} targets met${failed ? `; FAILED: ${rows.filter((r) => r.pass === false).map((r) => r.metric).join('; ')}` : ''}`);
  console.log(out.join('\n'));
}

/** Facts about the machine that a reader of a results file needs to compare runs. */
export function machine(): Record<string, unknown> {
  return {
    node: process.version,
    kernel: release(),
    arch: process.arch,
    cpus: availableParallelism(),
    cpuModel: cpus()[0]?.model ?? 'unknown',
  };
}

/** Writes bench/results/<name>.json and returns its path. */
export function writeResults(name: string, data: unknown): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const path = join(RESULTS_DIR, `${name}.json`);
  writeFileSync(path, JSON.stringify(data, null, 2) + '\n');
  return path;
}
