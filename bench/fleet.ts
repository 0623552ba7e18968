// Build-farm benchmark (issue 20), on the gluster harness of the tests
// (test/helpers/gluster.ts: one glusterd, a one-brick volume, mounts A
// and B as two hosts):
//
// 1. Cross-host hand-over: host B's `warden source` (the real CLI, its own
//    config, host= and state dir) waits for host A's session; A ends it;
//    measured from the moment A's end returns to the moment B's command
//    has started (it writes a line to its stdout, which this process
//    reads). p50/p99 over BENCH_TRIALS (50) trials; target p50 <= 10 ms.
//    A's session is begun and ended in this process through the library,
//    on A's mount: its locks reach B only through the brick.
// 2. begin on the shared chroot (source and shared-dir= on the volume)
//    vs the same chroot on local disk, through the library, interleaved,
//    each session ended after it is timed: median ratio, target <= 1.5x.
// 3. The requests a begin on the shared chroot makes to the brick, by
//    fop (gluster volume profile, asked through the harness's shell so
//    that no child of ours flushes our fds), median of BENCH_COUNTED
//    (10) begins after those of 2 (profiling slows the brick: not timed).
// 4. What one request costs, on A's mount and on local disk: a lock file's
//    F_OFD_SETLK, its unlock, and an open + shared lock + close, each after
//    5 ms idle as a begin meets them (a tight loop keeps glusterfs's threads
//    awake and shows a third of it). Medians of BENCH_ROUND_TRIPS (60).
//    With 2 and 3 this bounds a shared begin from below.
//
// Root, glusterfs-server installed. `npm run bench:fleet`.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrapChroot } from '../src/bootstrap/index.js';
import { chrootOf, hooksDirOf, hookTimeoutMsOf, loadContext, type Context } from '../src/config/index.js';
import { FileLock, shutdownWaitPool } from '../src/locks/index.js';
import { beginSession, endSession } from '../src/sessions/index.js';
import { mountsUnder } from '../src/union/index.js';
import { startGlusterFarm, type Host } from '../test/helpers/gluster.js';
import { ROOT, evaluate, machine, median, nowNs, printTable, sleep, summarize, until, writeResults, type Row } from './lib.js';
import { spawnSync } from 'node:child_process';

const TRIALS = Number(process.env.BENCH_TRIALS ?? 50);
const BEGINS = Number(process.env.BENCH_BEGINS ?? 20);
const COUNTED = Number(process.env.BENCH_COUNTED ?? 10);
const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 60);
const WARDEN = join(ROOT, 'dist', 'cli', 'warden.cjs');

interface HostEnv {
  config: string;
  /** fx's source directory as this host mounts it. */
  source: string;
  stateDir: string;
  ctx: Context;
}

function hostEnv(top: string, source: string, body: string): HostEnv {
  mkdirSync(join(top, 'etc'), { recursive: true });
  const config = join(top, 'etc', 'warden.conf');
  writeFileSync(config, body);
  const stateDir = join(top, 'sessions');
  return { config, source, stateDir, ctx: loadContext({ config, stateDir }) };
}

async function begin(h: HostEnv, chroot: string) {
  const def = chrootOf(h.ctx, chroot);
  return beginSession({ stateDir: h.stateDir, chroot: def, hooksDir: hooksDirOf(h.ctx, def), hookTimeoutMs: hookTimeoutMsOf(h.ctx, def) });
}

/** One hand-over: A holds a session, B's entry waits for it, A ends it. Returns ms from A's end returning to B's command running. */
async function handOver(a: HostEnv, b: HostEnv, sharedB: string): Promise<number> {
  const session = await begin(a, 'fx');
  const entry = spawn(process.execPath, [WARDEN, 'source', '-c', 'fx', '--', 'sh', '-c', 'echo in'], {
    env: { ...process.env, WARDEN_CONFIG: b.config, WARDEN_STATE_DIR: b.stateDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  entry.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const started = new Promise<bigint>((resolve) => entry.stdout.once('data', () => resolve(nowNs())));
  const exited = new Promise<number | null>((resolve) => entry.once('close', resolve));
  // B holds the shared manage lock (its manage.owner says so), then blocks in fcntl for the source.
  await until(() => {
    try {
      return JSON.parse(readFileSync(join(sharedB, 'manage.owner'), 'utf8')).host === 'host-b';
    } catch {
      return false;
    }
  }, "B's entry taking the manage lock");
  await until(() => blockedOn(entry.pid!, join(b.source, '.ref')), "B's entry waiting for the source lock");
  await endSession(session);
  const ended = nowNs();
  const at = await Promise.race([started, exited.then(() => undefined)]);
  const status = await exited;
  if (at === undefined || status !== 0) throw new Error(`B's entry failed (${status}): ${stderr}`);
  return Number(at - ended) / 1e6;
}

/**
 * A thread of `pid` sleeps in a blocking lock request on `file`: its
 * /proc/PID/task/TID/syscall is fcntl (x86_64: 72; arm64: 25) with
 * F_OFD_SETLKW (38) or F_SETLKW (7) on an fd that names `file`. Any fcntl
 * is not enough: a non-blocking F_OFD_SETLK through FUSE takes a round
 * trip, and a trial timed from then counts the entry's work before its
 * wait (its probes, its wait report) as hand-over. glusterfs keeps remote
 * locks out of /proc/locks.
 */
function blockedOn(pid: number, file: string): boolean {
  const nr = process.arch === 'arm64' ? '25' : '72';
  try {
    return readdirSync(`/proc/${pid}/task`).some((tid) => {
      try {
        const [call, fd, cmd] = readFileSync(`/proc/${pid}/task/${tid}/syscall`, 'utf8').split(' ');
        return call === nr && (Number(cmd) === 38 || Number(cmd) === 7) && readlinkSync(`/proc/${pid}/fd/${Number(fd)}`) === file;
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

/** "LK 4, CREATE 1, ...": a begin's requests, most frequent first. */
function describeFops(f: Record<string, number>): string {
  return Object.entries(f).sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([k, v]) => `${k} ${v}`).join(', ');
}

/** Medians in ms of a lock file's lock, unlock, and open + shared lock + close in `dir`, each after 5 ms idle. */
async function roundTrips(dir: string): Promise<{ lock: number; unlock: number; openLockClose: number }> {
  const path = join(dir, 'round-trip.lock');
  writeFileSync(path, '', { mode: 0o600 });
  const range = { start: 0, len: 0 };
  const held = FileLock.open(path, { create: false, range });
  const lock: number[] = [];
  const unlock: number[] = [];
  const olc: number[] = [];
  try {
    for (let i = 0; i < ROUND_TRIPS; i++) {
      await sleep(5);
      let t = nowNs();
      if (!held.tryAcquire('exclusive')) throw new Error(`${path} is locked by someone else`);
      lock.push(Number(nowNs() - t) / 1e6);
      t = nowNs();
      held.release();
      unlock.push(Number(nowNs() - t) / 1e6);
      await sleep(5);
      t = nowNs();
      const other = FileLock.open(path, { create: false, range });
      try {
        other.tryAcquire('shared');
      } finally {
        other.close();
      }
      olc.push(Number(nowNs() - t) / 1e6);
    }
  } finally {
    held.close();
    rmSync(path, { force: true });
  }
  return { lock: median(lock), unlock: median(unlock), openLockClose: median(olc) };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('needs root (mounts)');
  const farm = await startGlusterFarm();
  if ('skip' in farm) throw new Error(`no gluster farm: ${farm.skip}`);
  const local = mkdtempSync(join(tmpdir(), 'warden-bench-fleet-'));
  const t0 = Date.now();
  try {
    await bootstrapChroot(join(farm.mounts.A, 'src'), { busybox: false });
    await bootstrapChroot(join(local, 'src'), { busybox: false });
    mkdirSync(join(farm.mounts.A, 'shared'), { mode: 0o755 });
    const hooks = join(local, 'no-hooks');
    mkdirSync(hooks, { mode: 0o755 });
    const env = {} as Record<Host, HostEnv>;
    for (const h of ['A', 'B'] as const) {
      env[h] = hostEnv(
        join(local, h),
        join(farm.mounts[h], 'src'),
        `[warden]\nhost=host-${h.toLowerCase()}\nhooks-dir=${hooks}\n\n` +
          `[fx]\ntype=directory\ndirectory=${join(farm.mounts[h], 'src')}\nunion-type=overlay\nshared-dir=${join(farm.mounts[h], 'shared')}\n\n` +
          `[lx]\ntype=directory\ndirectory=${join(local, 'src')}\nunion-type=overlay\n`,
      );
    }
    // Warm-up: the CLI's code cache, the volume's first lookups.
    await handOver(env.A, env.B, join(farm.mounts.B, 'shared'));
    const latencies: number[] = [];
    for (let i = 0; i < TRIALS; i++) latencies.push(await handOver(env.A, env.B, join(farm.mounts.B, 'shared')));
    const beginsShared: number[] = [];
    const beginsLocal: number[] = [];
    for (let i = 0; i < BEGINS + 1; i++) {
      for (const [chroot, out] of [['fx', beginsShared], ['lx', beginsLocal]] as const) {
        const t = nowNs();
        const s = await begin(env.A, chroot);
        const ms = Number(nowNs() - t) / 1e6;
        await endSession(s);
        if (i > 0) out.push(ms); // the first of each: warm-up
      }
    }
    // Requests per begin, by fop: profiling on from here (it slows the brick).
    await farm.brickFops();
    const counted: Record<string, number>[] = [];
    for (let i = 0; i < COUNTED; i++) {
      await farm.brickFops();
      const s = await begin(env.A, 'fx');
      counted.push(await farm.brickFops());
      await endSession(s);
    }
    const totals = counted.map((c) => Object.values(c).reduce((a, b) => a + b, 0));
    // The breakdown shown: a begin with the most frequent total (a begin past a cache timeout makes more lookups).
    const mode = [...totals].sort((a, b) => totals.filter((t) => t === b).length - totals.filter((t) => t === a).length || a - b)[0];
    const typical = counted[totals.indexOf(mode!)]!;
    const rtShared = await roundTrips(join(farm.mounts.A, 'shared'));
    const rtLocal = await roundTrips(local);
    const lat = summarize(latencies);
    const section1 = `A's last session ends -> B's entry command runs (${TRIALS} trials)`;
    const section2 = `begin, library, no hooks (median of ${BEGINS})`;
    const section4 = `one request on A's mount, after 5 ms idle (median of ${ROUND_TRIPS})`;
    const rows: Row[] = [
      { section: section1, metric: 'p50', unit: 'ms', measured: lat.p50, baseline: null, target: { kind: 'max', max: 10 } },
      { section: section1, metric: 'p99', unit: 'ms', measured: lat.p99, baseline: null },
      { section: section1, metric: 'max', unit: 'ms', measured: lat.max, baseline: null },
      { section: section2, metric: 'begin on the shared chroot (gluster)', unit: 'ms', measured: median(beginsShared), baseline: median(beginsLocal), baselineNote: 'local chroot', target: { kind: 'ratio', max: 1.5 } },
      { section: `requests to the brick per shared begin (median of ${COUNTED}; typical: ${describeFops(typical)})`, metric: 'requests', unit: 'count', measured: median(totals), baseline: null },
      { section: section4, metric: 'lock (F_OFD_SETLK)', unit: 'ms', measured: rtShared.lock, baseline: rtLocal.lock, baselineNote: 'local disk', ratio: true },
      { section: section4, metric: 'unlock', unit: 'ms', measured: rtShared.unlock, baseline: rtLocal.unlock, baselineNote: 'local disk', ratio: true },
      { section: section4, metric: 'open + shared lock + close', unit: 'ms', measured: rtShared.openLockClose, baseline: rtLocal.openLockClose, baselineNote: 'local disk', ratio: true },
    ];
    const evaluated = rows.map(evaluate);
    printTable(`warden fleet benchmark (${((Date.now() - t0) / 1000).toFixed(1)} s, ${machine().cpus} CPUs, node ${process.version}, glusterfs mounts as two hosts)`, evaluated);
    const file = writeResults('fleet', {
      bench: 'fleet',
      date: new Date().toISOString(),
      machine: machine(),
      farmTimings: farm.timings,
      rows: evaluated,
      details: { roundTripsMs: { shared: rtShared, local: rtLocal }, beginRequests: { totals, counted }, handOverMs: lat, beginSharedMs: summarize(beginsShared), beginLocalMs: summarize(beginsLocal), raw: { latencies, beginsShared, beginsLocal } },
    });
    console.log(`results: ${file}`);
  } finally {
    for (const m of mountsUnder(local).reverse()) spawnSync('umount', ['-l', m.mountPoint]);
    rmSync(local, { recursive: true, force: true });
    await farm.close();
    await shutdownWaitPool();
  }
}

main().catch((e) => {
  console.error(`bench/fleet: ${(e as Error).stack ?? e}`);
  process.exit(1);
});
