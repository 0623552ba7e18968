// Benchmark of the lock layer (src/locks): what a lock costs when free, how
// fast a waiter wakes, what many waiters cost, and whether blocked waits
// disturb the event loop. Run with `npm run bench:locks`.
//
// Each figure is set against a baseline measured in this same run: the same
// syscalls from a C loop (multi-threaded, like Node), a C process woken by
// the kernel, the process before the waiters existed, the event loop with no
// waits. The external lock holder and the C baselines are compiled from
// bench/c/ at bench time.
//
// A missed target is reported, not fatal: the exit status is non-zero only
// when the benchmark itself fails.
import { mkdtempSync, openSync, closeSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { FileLock, fileKeyOfPath, readProcLocks, shutdownWaitPool, waitPool } from '../src/locks/index.js';
import { DEFAULT_MAX_THREADS } from '../src/locks/pool.js';
import { FLOCK_SIZE, F_OFD_SETLK, F_UNLCK, F_WRLCK, encodeFlock, errno, native, strerror } from '../src/locks/native.js';
import {
  LineProcess,
  MB,
  compileC,
  evaluate,
  machine,
  median,
  nowNs,
  osThreads,
  printTable,
  sleep,
  summarize,
  until,
  within,
  writeResults,
  type Row,
  type Summary,
} from './lib.js';

const CONFIG = {
  /** Lock+unlock pairs per timed round (each round also runs PAIRS/10 untimed first). */
  pairs: 200_000,
  rounds: 7,
  /** Wake-up trials per side, after untimed warm-up trials. */
  wakeTrials: 300,
  wakeWarmup: 10,
  waiters: 1_000,
  spreadFiles: 16,
  lagWaits: 64,
  /** Trials of the polled waiter's wake-up (section 3, files > pool bound); ~0.2 s each. */
  polledTrials: 8,
  lagWindowMs: 1_000,
  /** monitorEventLoopDelay timer interval; what it records beyond this is lag. */
  lagResolutionMs: 1,
};

const FILES = CONFIG.lagWaits; // the holder opens them all once; rows use a prefix

// Everything that must be undone on the way out, also after a failure.
const openLocks = new Set<FileLock>();
const children: LineProcess[] = [];

function openLock(path: string): FileLock {
  const lock = FileLock.open(path);
  if (lock.mode !== 'ofd') {
    // The C baselines use OFD locks; POSIX mode would be a different comparison.
    throw new Error(`lock mode is ${lock.mode}, this benchmark needs OFD locks (unset WARDEN_LOCK_MODE)`);
  }
  openLocks.add(lock);
  return lock;
}

function closeLock(lock: FileLock): void {
  lock.close();
  openLocks.delete(lock);
}

/** Requests of ours blocked in the kernel ("->" lines in /proc/locks) on these files. */
function kernelWaits(keys: ReadonlySet<string>): number {
  return readProcLocks().filter((e) => e.waiting && keys.has(e.key)).length;
}

/** Any lock or request still on these files: a leak once everything is closed. */
function assertNoLocks(keys: ReadonlySet<string>, when: string): void {
  const left = readProcLocks().filter((e) => keys.has(e.key));
  if (left.length > 0) throw new Error(`${left.length} lock(s) left in /proc/locks ${when}`);
}

const keysOf = (paths: readonly string[]) => new Set(paths.map((p) => fileKeyOfPath(p)));

/** Acquires that nobody awaits yet must not crash the process as unhandled if the run fails. */
function handled<T>(ps: Promise<T>[]): Promise<T>[] {
  for (const p of ps) p.catch(() => {});
  return ps;
}

// --- 1. uncontended lock+unlock pair --------------------------------------------

function fileLockRound(lock: FileLock, pairs: number): number {
  const t0 = nowNs();
  for (let i = 0; i < pairs; i++) {
    if (!lock.tryAcquire('exclusive')) throw new Error('uncontended tryAcquire failed');
    lock.release();
  }
  return Number(nowNs() - t0) / pairs;
}

// The floor of any koffi-based path: two fcntl calls on preallocated structs.
function rawRound(fd: number, lk: Buffer, un: Buffer, pairs: number): number {
  const { fcntl } = native();
  const t0 = nowNs();
  for (let i = 0; i < pairs; i++) {
    if (fcntl(fd, F_OFD_SETLK, lk) !== 0 || fcntl(fd, F_OFD_SETLK, un) !== 0) throw new Error(`raw fcntl: ${strerror(errno())}`);
  }
  return Number(nowNs() - t0) / pairs;
}

/** One round of the C loop: `threads` idle threads (0 or 1) beside the timed one. */
function cRound(loopBinary: string, path: string, threads: 0 | 1): number {
  return Number(execFileSync(loopBinary, [path, String(CONFIG.pairs), String(threads)], { encoding: 'utf8' }));
}

async function benchUncontended(path: string, loopBinary: string): Promise<{ rows: Row[]; details: unknown }> {
  const lock = openLock(path);
  const fd = openSync(path, 'r+');
  const lk = Buffer.alloc(FLOCK_SIZE);
  const un = Buffer.alloc(FLOCK_SIZE);
  encodeFlock(lk, F_WRLCK, 0, 0);
  encodeFlock(un, F_UNLCK, 0, 0);
  const warm = Math.floor(CONFIG.pairs / 10);
  // Two C baselines (see bench/c/fcntl-loop.c): the kernel takes a reference
  // on the struct file in every fcntl only when the process has more than one
  // thread. Node always has, so the multi-threaded loop is the like-for-like
  // baseline; the single-threaded one is shown too, as the absolute floor.
  const cMt: number[] = [];
  const cSt: number[] = [];
  const lib: number[] = [];
  const raw: number[] = [];
  try {
    // Rounds interleave the four sides, so that a noisy stretch of the run
    // hits all of them; each side warms up PAIRS/10 untimed pairs per round
    // (the C program does the same inside).
    for (let r = 0; r < CONFIG.rounds; r++) {
      cMt.push(cRound(loopBinary, path, 1));
      cSt.push(cRound(loopBinary, path, 0));
      fileLockRound(lock, warm);
      lib.push(fileLockRound(lock, CONFIG.pairs));
      rawRound(fd, lk, un, warm);
      raw.push(rawRound(fd, lk, un, CONFIG.pairs));
    }
  } finally {
    closeSync(fd);
    closeLock(lock);
  }
  const [mMt, mSt, ml, mr] = [median(cMt), median(cSt), median(lib), median(raw)];
  const section =
    `1 uncontended lock+unlock pair, median of ${CONFIG.rounds} × ${CONFIG.pairs / 1000}k ` +
    '(baseline: C loop of 2× fcntl F_OFD_SETLK with 1 idle thread, as Node is multi-threaded ' +
    'and the kernel skips the struct file refcount only in single-threaded processes)';
  const st = 'C, single-threaded';
  return {
    rows: [
      { section, metric: 'FileLock tryAcquire+release', unit: 'ns', measured: ml, baseline: mMt, target: { kind: 'ratio', max: 1.35 } },
      { section, metric: 'FileLock tryAcquire+release', unit: 'ns', measured: ml, baseline: mSt, baselineNote: st, ratio: true },
      { section, metric: 'C loop with 1 idle thread', unit: 'ns', measured: mMt, baseline: mSt, baselineNote: st, ratio: true },
      { section, metric: 'raw koffi fcntl pair (preencoded)', unit: 'ns', measured: mr, baseline: mMt, ratio: true },
      { section, metric: 'of which koffi (raw − C)', unit: 'ns', measured: mr - mMt, baseline: null },
      { section, metric: 'of which FileLock JS (FileLock − raw)', unit: 'ns', measured: ml - mr, baseline: null },
    ],
    details: {
      nsPerPair: { cMultiThreaded: cMt, cSingleThreaded: cSt, fileLock: lib, raw },
      best: { cMultiThreaded: Math.min(...cMt), cSingleThreaded: Math.min(...cSt), fileLock: Math.min(...lib), raw: Math.min(...raw) },
    },
  };
}

// --- 2. wake-up latency ---------------------------------------------------------

/**
 * One trial: the holder locks, we start a wait and see it blocked in the
 * kernel, the holder unlocks; latency runs from the holder's clock read just
 * before its unlock fcntl to our promise callback.
 */
async function wakeTrialLib(holder: LineProcess, lock: FileLock, keys: ReadonlySet<string>): Promise<number> {
  await holder.send('lock 1');
  let woke = 0n;
  const granted = lock.acquire('exclusive').then(() => {
    woke = nowNs();
  });
  handled([granted]);
  await until(() => kernelWaits(keys) === 1, 'the wait to block in the kernel');
  holder.post('drop 1'); // no reply: nothing of the harness runs during the wake-up
  await within(granted, 5_000, 'wake-up after unlock');
  const unlocked = BigInt(await holder.send('stamp'));
  lock.release();
  return Number(woke - unlocked);
}

/** The same trial with a C process as the waiter: the kernel's own wake-up cost. */
async function wakeTrialC(holder: LineProcess, waiter: LineProcess, keys: ReadonlySet<string>): Promise<number> {
  await holder.send('lock 1');
  const woke = waiter.send('wait');
  await until(() => kernelWaits(keys) === 1, 'the C waiter to block in the kernel');
  holder.post('drop 1');
  const t1 = BigInt(await within(woke, 5_000, 'C wake-up after unlock'));
  const t0 = BigInt(await holder.send('stamp'));
  await waiter.send('unlock 1');
  return Number(t1 - t0);
}

async function benchWakeup(path: string, holder: LineProcess, waiter: LineProcess): Promise<{ rows: Row[]; details: unknown }> {
  const keys = keysOf([path]);
  const lock = openLock(path);
  const lib: number[] = [];
  const c: number[] = [];
  try {
    for (let i = 0; i < CONFIG.wakeWarmup; i++) {
      await wakeTrialLib(holder, lock, keys);
      await wakeTrialC(holder, waiter, keys);
    }
    for (let i = 0; i < CONFIG.wakeTrials; i++) {
      lib.push(await wakeTrialLib(holder, lock, keys));
      c.push(await wakeTrialC(holder, waiter, keys));
    }
  } finally {
    closeLock(lock);
  }
  if (Math.min(...lib, ...c) <= 0) throw new Error('non-positive wake-up latency: the two clocks are not comparable');
  const ms = (s: Summary): Summary => ({ n: s.n, min: s.min / 1e6, p50: s.p50 / 1e6, p99: s.p99 / 1e6, max: s.max / 1e6, mean: s.mean / 1e6 });
  const [sl, sc] = [ms(summarize(lib)), ms(summarize(c))];
  const section = `2 wake-up latency, unlock in another process -> acquire() resolves, ${CONFIG.wakeTrials} trials (baseline: C waiter)`;
  return {
    rows: [
      { section, metric: 'p50', unit: 'ms', measured: sl.p50, baseline: sc.p50, target: { kind: 'max', max: 0.2 } },
      { section, metric: 'p99', unit: 'ms', measured: sl.p99, baseline: sc.p99, target: { kind: 'max', max: 2 } },
      { section, metric: 'max', unit: 'ms', measured: sl.max, baseline: sc.max },
    ],
    details: { summaryMs: { lib: sl, c: sc }, samplesNs: { lib, c } },
  };
}

// --- wait pool bound ----------------------------------------------------------

/**
 * Runs `step` with a wait pool created afresh under WARDEN_LOCK_THREADS =
 * `threads` (undefined: unset, i.e. the default bound). The pool reads the
 * variable only when it is created, and shutdownWaitPool() makes the next
 * waitPool() create it again. The variable is restored afterwards; the pool
 * is shut down only after a successful step, since after a failure its
 * threads may still be blocked in the kernel (main() cleans up then).
 */
async function withPoolBound<T>(threads: number | undefined, step: () => Promise<T>): Promise<T> {
  const saved = process.env.WARDEN_LOCK_THREADS;
  const setEnv = (v: string | undefined) => {
    if (v === undefined) delete process.env.WARDEN_LOCK_THREADS;
    else process.env.WARDEN_LOCK_THREADS = v;
  };
  await shutdownWaitPool();
  setEnv(threads === undefined ? undefined : String(threads));
  try {
    const result = await step();
    await shutdownWaitPool();
    return result;
  } finally {
    setEnv(saved);
  }
}

// --- 3. many waiters -----------------------------------------------------------

// The pool runs at most DEFAULT_MAX_THREADS (8) kernel waits: an idle Node
// worker costs 7-8 MB of RSS whatever its resourceLimits, so one thread per
// file would not fit 1,000 waiters on 16 files in +100 MB. The head waiter of
// a file that finds no thread free polls F_SETLK (2, 4, ... 50 ms backoff)
// instead, so with 16 files 8 wait in the kernel and 8 poll.
async function benchManyWaiters(paths: readonly string[], holder: LineProcess): Promise<{ rows: Row[]; details: unknown }> {
  const n = paths.length;
  const keys = keysOf(paths);
  const bound = waitPool().maxThreads;
  if (bound !== DEFAULT_MAX_THREADS) throw new Error(`wait pool bound is ${bound}, this row is about the default ${DEFAULT_MAX_THREADS}`);
  const expectedWaits = Math.min(n, bound);
  // withPoolBound() left no wait threads; give the old ones a moment to exit,
  // so that "before" is the process without any.
  await sleep(50);
  await holder.send(`lock ${n}`);
  const before = { poolThreads: waitPool().threads, osThreads: osThreads(), rss: process.memoryUsage().rss };

  const tStart = nowNs();
  const locks = Array.from({ length: CONFIG.waiters }, (_, i) => openLock(paths[i % n]));
  let lastGrant = 0n;
  let granted = 0;
  const done = handled(
    locks.map((lock) =>
      lock.acquire('exclusive').then(() => {
        if (lock.held !== 'exclusive') throw new Error('acquire resolved without the lock held');
        lastGrant = nowNs();
        granted++;
        lock.release(); // lets the next waiter of this file in
      }),
    ),
  );
  await until(() => kernelWaits(keys) >= expectedWaits, `${expectedWaits} kernel wait(s)`, 20_000);
  const queuedMs = Number(nowNs() - tStart) / 1e6;
  // Sample now and once more after a moment (threads allocate lazily); keep the larger.
  const sample = () => ({
    poolThreads: waitPool().threads,
    osThreads: osThreads(),
    rss: process.memoryUsage().rss,
    kernelWaits: kernelWaits(keys),
  });
  const s1 = sample();
  await sleep(250);
  const s2 = sample();
  const during = {
    poolThreads: Math.max(s1.poolThreads, s2.poolThreads),
    osThreads: Math.max(s1.osThreads, s2.osThreads),
    rss: Math.max(s1.rss, s2.rss),
    kernelWaits: Math.max(s1.kernelWaits, s2.kernelWaits),
  };
  if (granted !== 0) throw new Error(`${granted} waiter(s) got a lock the holder still holds`);

  const unlocked = BigInt(await holder.send(`unlock ${n}`));
  await within(Promise.all(done), 30_000, `all ${CONFIG.waiters} waiters to acquire after the holder let go`);
  const drainMs = Number(lastGrant - unlocked) / 1e6;
  for (const l of locks) closeLock(l);
  assertNoLocks(keys, 'after the waiters closed');

  const polled = n > bound ? await polledWakeup(paths, holder, bound) : undefined;

  const section =
    `3 ${CONFIG.waiters} waiters on ${n} file${n === 1 ? '' : 's'}, default pool bound ${bound}` +
    (n > bound ? ` (${bound} files wait in the kernel, ${n - bound} poll F_SETLK)` : '') +
    ' (baseline: before the waiters)';
  const rows: Row[] = [
    { section, metric: 'kernel waits (one per file, ≤ bound)', unit: 'count', measured: during.kernelWaits, baseline: null, target: { kind: 'max', max: expectedWaits } },
    { section, metric: 'files polling (no thread free)', unit: 'count', measured: n - during.kernelWaits, baseline: null },
    { section, metric: 'wait pool threads', unit: 'count', measured: during.poolThreads, baseline: before.poolThreads, target: { kind: 'max', max: expectedWaits } },
    { section, metric: 'OS threads', unit: 'count', measured: during.osThreads, baseline: before.osThreads, target: { kind: 'delta', max: expectedWaits } },
    { section, metric: 'RSS', unit: 'MB', measured: during.rss / MB, baseline: before.rss / MB, target: { kind: 'delta', max: 100 } },
    {
      section,
      metric: 'extra RSS per wait thread',
      unit: 'MB',
      measured: (during.rss - before.rss) / MB / Math.max(1, during.poolThreads - before.poolThreads),
      baseline: null,
    },
    { section, metric: 'open + enqueue until blocked', unit: 'ms', measured: queuedMs, baseline: null },
    { section, metric: `drain: unlock -> ${CONFIG.waiters}th grant`, unit: 'ms', measured: drainMs, baseline: null },
    { section, metric: 'drain per grant', unit: 'us', measured: (drainMs * 1000) / CONFIG.waiters, baseline: null },
  ];
  if (polled) {
    const s = summarize(polled.map((ns) => ns / 1e6));
    const what = `polled waiter wake-up (${s.n} trials)`;
    rows.push(
      { section, metric: `${what} p50`, unit: 'ms', measured: s.p50, baseline: null },
      { section, metric: `${what} max`, unit: 'ms', measured: s.max, baseline: null },
    );
  }
  return { rows, details: { bound, before, samples: [s1, s2], drainMs, queuedMs, polledWakeupNs: polled } };
}

/**
 * Wake-up of a waiter that polls because every wait thread is taken. The
 * holder locks all `paths`; waiters for files n-1..1 start in that order, so
 * that the last `bound` files take the threads and the rest poll. Each trial
 * then starts a waiter on file 0 (which polls too), lets its backoff reach the
 * 50 ms steps, and has the holder unlock file 0 alone at a random moment.
 * Latency runs from the holder's clock read before the unlock to the grant;
 * the backoff bounds it by ~50 ms.
 */
async function polledWakeup(paths: readonly string[], holder: LineProcess, bound: number): Promise<number[]> {
  const n = paths.length;
  const keys = keysOf(paths);
  const first = keysOf(paths.slice(0, 1));
  await holder.send(`lock ${n}`);
  const locks = paths.map((p) => openLock(p));
  const others = handled(locks.slice(1).reverse().map((l) => l.acquire('exclusive')));
  await until(() => kernelWaits(keys) >= bound, `${bound} kernel waits`);
  const samples: number[] = [];
  for (let i = 0; i < CONFIG.polledTrials; i++) {
    let grantedAt = 0n;
    const granted = locks[0].acquire('exclusive').then(() => {
      grantedAt = nowNs();
    });
    handled([granted]);
    // The backoff's ramp (2+4+...+32 ms) is over by 62 ms; after that the
    // waiter polls every 50 ms, and the random delay samples its phase.
    await sleep(150 + Math.random() * 50);
    if (kernelWaits(first) !== 0 || kernelWaits(keys) !== bound) throw new Error('the waiter on file 0 is not the polling one');
    const unlocked = BigInt(await holder.send('unlock 1'));
    await within(granted, 5_000, 'the polled waiter to get the lock');
    samples.push(Number(grantedAt - unlocked));
    locks[0].release();
    await holder.send('lock 1');
  }
  await holder.send(`unlock ${n}`);
  await within(Promise.all(others), 10_000, 'the other polled-wake-up waiters');
  for (const l of locks) closeLock(l);
  assertNoLocks(keys, 'after the polled wake-up trials');
  return samples;
}

// --- 4. event-loop lag ------------------------------------------------------------

interface Lag {
  p50: number;
  p99: number;
  max: number;
  samples: number;
}

/**
 * Event-loop delay over `ms`, in ms beyond the histogram's timer interval:
 * monitorEventLoopDelay records the whole time between two ticks of a
 * `resolution` ms timer, so an idle loop reads about `resolution`.
 */
async function eventLoopLag(ms: number): Promise<Lag> {
  const h = monitorEventLoopDelay({ resolution: CONFIG.lagResolutionMs });
  h.enable();
  await sleep(ms);
  h.disable();
  const lag = (ns: number) => Math.max(0, ns / 1e6 - CONFIG.lagResolutionMs);
  return { p50: lag(h.percentile(50)), p99: lag(h.percentile(99)), max: lag(h.max), samples: h.count };
}

async function benchLoopLag(paths: readonly string[], holder: LineProcess): Promise<{ rows: Row[]; details: unknown }> {
  const n = paths.length;
  const keys = keysOf(paths);
  // The target is about blocked kernel waits, not polling: the default bound
  // (8) would leave most of these polling, so main() runs this section under
  // a bound of n (withPoolBound).
  if (waitPool().maxThreads < n) throw new Error(`wait pool bound ${waitPool().maxThreads} < ${n}: some waits would poll`);
  await sleep(50); // let the previous pool's threads exit
  const idle = await eventLoopLag(CONFIG.lagWindowMs);
  const before = { osThreads: osThreads(), rss: process.memoryUsage().rss };

  await holder.send(`lock ${n}`);
  const locks = paths.map((p) => openLock(p));
  // The ramp-up (the pool spawning a worker per wait) is watched separately:
  // it is not the steady state the target is about, but worth knowing.
  const ramp = monitorEventLoopDelay({ resolution: CONFIG.lagResolutionMs });
  ramp.enable();
  const tStart = nowNs();
  const done = handled(locks.map((l) => l.acquire('exclusive')));
  const expectedWaits = n;
  await until(() => kernelWaits(keys) >= expectedWaits, `${expectedWaits} kernel waits`, 30_000);
  const rampMs = Number(nowNs() - tStart) / 1e6;
  ramp.disable();
  const rampMaxLag = Math.max(0, ramp.max / 1e6 - CONFIG.lagResolutionMs);
  const poolThreads = waitPool().threads;
  await sleep(100); // let the ramp's garbage collections finish
  const blocked = await eventLoopLag(CONFIG.lagWindowMs);
  const during = { osThreads: osThreads(), rss: process.memoryUsage().rss };
  const stillBlocked = kernelWaits(keys);
  if (stillBlocked < expectedWaits) throw new Error(`only ${stillBlocked} of ${expectedWaits} waits were still blocked after the measurement`);

  await holder.send(`unlock ${n}`);
  await within(Promise.all(done), 30_000, `the ${n} waits to be granted`);
  for (const l of locks) closeLock(l);
  assertNoLocks(keys, 'after the lag waiters closed');

  const section = `4 event-loop lag while ${n} waits (${n} files, pool bound ${n}) are blocked in the kernel, ${CONFIG.lagWindowMs} ms window (baseline: no waits)`;
  return {
    rows: [
      { section, metric: 'lag p50', unit: 'ms', measured: blocked.p50, baseline: idle.p50 },
      { section, metric: 'lag p99', unit: 'ms', measured: blocked.p99, baseline: idle.p99 },
      { section, metric: 'lag max', unit: 'ms', measured: blocked.max, baseline: idle.max, target: { kind: 'below', max: 5 } },
      { section, metric: `lag max while the ${n} waits start`, unit: 'ms', measured: rampMaxLag, baseline: idle.max },
      { section, metric: `time until all ${n} block in the kernel`, unit: 'ms', measured: rampMs, baseline: null },
      { section, metric: 'wait pool threads', unit: 'count', measured: poolThreads, baseline: null },
      { section, metric: 'OS threads (baseline: no waits)', unit: 'count', measured: during.osThreads, baseline: before.osThreads },
      { section, metric: 'RSS (baseline: no waits)', unit: 'MB', measured: during.rss / MB, baseline: before.rss / MB },
    ],
    details: { idle, blocked, ramp: { maxLagMs: rampMaxLag, ms: rampMs }, poolThreads, before, during },
  };
}

// --- main -------------------------------------------------------------------------

async function main(): Promise<void> {
  const t0 = nowNs();
  const loopBinary = compileC('fcntl-loop', ['-pthread']);
  const lockctl = compileC('lockctl');
  const dir = mkdtempSync(join(tmpdir(), 'warden-bench-locks-'));
  const paths = Array.from({ length: FILES }, (_, i) => join(dir, `lock-${i}`));
  for (const p of paths) writeFileSync(p, '');

  const rows: Row[] = [];
  const details: Record<string, unknown> = {};
  let failure: unknown;
  try {
    const holder = await LineProcess.start(lockctl, paths);
    children.push(holder);
    const waiter = await LineProcess.start(lockctl, paths.slice(0, 1));
    children.push(waiter);

    const steps: [string, () => Promise<{ rows: Row[]; details: unknown }>][] = [
      ['uncontended', () => benchUncontended(paths[0], loopBinary)],
      ['wakeup', () => benchWakeup(paths[0], holder, waiter)],
      // Section 3 runs under the default bound, section 4 under a bound of
      // lagWaits, so that all its waits are real kernel waits.
      ['waitersOneFile', () => withPoolBound(undefined, () => benchManyWaiters(paths.slice(0, 1), holder))],
      ['waitersSpread', () => withPoolBound(undefined, () => benchManyWaiters(paths.slice(0, CONFIG.spreadFiles), holder))],
      ['loopLag', () => withPoolBound(CONFIG.lagWaits, () => benchLoopLag(paths.slice(0, CONFIG.lagWaits), holder))],
    ];
    for (const [name, step] of steps) {
      const s0 = nowNs();
      const r = await step();
      rows.push(...r.rows);
      details[name] = r.details;
      process.stderr.write(`bench:locks ${name} done in ${(Number(nowNs() - s0) / 1e9).toFixed(1)} s\n`);
    }
  } catch (e) {
    failure = e;
  } finally {
    // Closing a lock cancels its wait; stopping the holder releases anything
    // still blocked. Only then can the wait pool shut down: a thread blocked
    // in F_OFD_SETLKW cannot be terminated.
    for (const l of openLocks) l.close();
    openLocks.clear();
    for (const c of children) await c.stop();
    await within(shutdownWaitPool(), 10_000, 'the wait pool to shut down');
    rmSync(dir, { recursive: true, force: true });
  }
  if (failure) throw failure;

  const evaluated = rows.map(evaluate);
  const totalS = Number(nowNs() - t0) / 1e9;
  printTable(`warden lock benchmark (${totalS.toFixed(1)} s, ${machine().cpus} CPUs, node ${process.version})`, evaluated);
  const file = writeResults('locks', { bench: 'locks', date: new Date().toISOString(), totalS, machine: machine(), config: CONFIG, rows: evaluated, details });
  console.log(`results: ${file}`);
}

main().catch((e: unknown) => {
  console.error('bench:locks failed:', e);
  process.exitCode = 1;
});
