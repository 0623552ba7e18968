// What one call costs (issue 16, "bench/percall"): the relay (dist/bin/warden,
// a small C client) hands each call to a running supervisor, which starts
// the command, against schroot's setuid C binary doing the same on the same
// chroot. Calls alternate between the tools; medians of BENCH_CALLS (default
// 40) calls each.
//
// Rows:
//   run `/bin/true` in a session: `warden run -s` / `schroot -r -c`   <= 1.0x
//   automatic session `/bin/true`: `warden run -c` / `schroot -c`,
//     as root and as an ordinary user (a throwaway user the bench makes
//     and removes, admitted by users= in both tools)                <= 0.25x
//   50 begins at once and 50 ends at once, separate processes        <= 0.5x
//   the supervisor's event-loop delay while 50 clients call `run -s`
//     in a loop (its `status`: max since the previous status)        <= 50 ms
//
// Needs root and schroot (installed with apt-get when missing). Not part of
// `npm test`. Run with `npm run bench:percall`.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrapChroot } from '../src/bootstrap/index.js';
import { shutdownWaitPool } from '../src/locks/index.js';
import { mountsUnder } from '../src/union/index.js';
import { ROOT, evaluate, machine, printTable, summarize, writeResults, type Row } from './lib.js';
import { background, msSince, request, startSupervisor, stopSupervisor, timed, wallOf } from './procs.js';
import * as schroot from './schroot.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 40);
const MANY = 50;
const NAME = `warden-pc-${process.pid}`;
const RELAY = join(ROOT, 'dist', 'bin', 'warden');

interface User {
  name: string;
  uid: number;
  gid: number;
}

type Series = Record<string, number[]>;
const push = (s: Series, key: string, ms: number) => (s[key] ??= []).push(ms);

/** A program run to completion as `user` (or root), timed; throws unless it exits 0. */
function timedAs(user: User | undefined, cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): number {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8', ...(user ? { uid: user.uid, gid: user.gid } : {}) });
  const ms = msSince(t);
  if (r.error) throw r.error;
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return ms;
}

function makeUser(): User {
  const name = `wdbench${process.pid % 100000}`;
  const r = spawnSync('useradd', ['--no-create-home', '--home-dir', '/nonexistent', '--shell', '/bin/sh', '--user-group', name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`useradd ${name}: ${r.stderr.trim()}`);
  const id = spawnSync('id', [name], { encoding: 'utf8' }).stdout;
  const m = /uid=(\d+).*gid=(\d+)/.exec(id)!;
  return { name, uid: Number(m[1]), gid: Number(m[2]) };
}

function removeUser(u: User): void {
  spawnSync('pkill', ['-KILL', '-u', u.name]);
  spawnSync('userdel', [u.name]);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/percall mounts overlays, configures schroot and makes a user: run it as root');
  const installed = schroot.ensureSchroot();
  const tmp = mkdtempSync(join(tmpdir(), 'warden-percall-'));
  spawnSync('chmod', ['755', tmp]);
  const user = makeUser();
  let sup: ChildProcess | undefined;
  let s: schroot.SchrootSetup | undefined;
  const series: Series = {};
  try {
    const source = join(tmp, 'source');
    await bootstrapChroot(source, { busybox: false });
    const config = join(tmp, 'warden.conf');
    writeFileSync(
      config,
      `[warden]\nhooks-dir=${join(ROOT, 'hooks')}\nhook-timeout=60\nsocket-group=${user.name}\n\n[${NAME}]\ntype=directory\ndirectory=${source}\nunion-type=overlay\nusers=${user.name}\n`,
    );
    const stateDir = join(tmp, 'sessions');
    // The supervisor reads the configuration; the relay needs only the state dir (with
    // WARDEN_CONFIG it would hand the call to the Node CLI, which may pick another state dir).
    const supEnv = { PATH: process.env.PATH, WARDEN_CONFIG: config, WARDEN_STATE_DIR: stateDir };
    const env = { PATH: process.env.PATH, WARDEN_STATE_DIR: stateDir };
    const userEnv = { PATH: '/usr/bin:/bin', WARDEN_STATE_DIR: stateDir };
    s = schroot.configureSchroot(NAME, source, tmp, { users: [user.name] });
    sup = await startSupervisor(supEnv, join(tmp, 'supervisor.log'));
    const started = Date.now();

    const wid = (await background(RELAY, ['begin', '-c', NAME], env)).trim();
    const sid = `${s.prefix}pc`;
    schroot.begin(s, sid);
    const calls: [string, () => number][] = [
      ['node -e 0', () => timed(process.execPath, ['-e', '0'], env).ms],
      ['warden run -s', () => timedAs(undefined, RELAY, ['run', '-s', wid, '-d', '/', '--', '/bin/true'], env)],
      ['schroot run -s', () => timedAs(undefined, schroot.SCHROOT, ['-r', '-c', sid, '-d', '/', '--', '/bin/true'], env)],
      ['warden run -c', () => timedAs(undefined, RELAY, ['run', '-c', NAME, '-d', '/', '--', '/bin/true'], env)],
      ['schroot run -c', () => timedAs(undefined, schroot.SCHROOT, ['-c', NAME, '-d', '/', '--', '/bin/true'], env)],
      ['warden run -c (user)', () => timedAs(user, RELAY, ['run', '-c', NAME, '-d', '/', '--', '/bin/true'], userEnv)],
      ['schroot run -c (user)', () => timedAs(user, schroot.SCHROOT, ['-c', NAME, '-d', '/', '--', '/bin/true'], userEnv)],
    ];
    // Warm the page cache, then alternate: each round runs every kind once, in a rotated order.
    for (const [, f] of calls) f();
    for (let i = 0; i < CALLS; i++) {
      for (let k = 0; k < calls.length; k++) {
        const [key, f] = calls[(i + k) % calls.length]!;
        push(series, key, f());
      }
    }
    spawnSync(RELAY, ['end', '-s', wid], { env });
    schroot.end(sid);

    const rounds = Math.max(3, Math.round(CALLS / 10));
    for (let r = 0; r < rounds; r++) {
      const ids = Array.from({ length: MANY }, (_, i) => `m${r}-${i}`);
      const sids = ids.map((id) => `${s!.prefix}${id}`);
      const order = r % 2 === 0 ? ['warden', 'schroot'] : ['schroot', 'warden'];
      for (const tool of order) {
        if (tool === 'warden') {
          push(series, 'warden begin 50', await wallOf(ids.map((id) => () => background(RELAY, ['begin', '-c', NAME, '--id', id], env))));
          push(series, 'warden end 50', await wallOf(ids.map((id) => () => background(RELAY, ['end', '-s', id], env))));
        } else {
          push(series, 'schroot begin 50', await wallOf(sids.map((id) => () => schroot.beginAsync(s!, id))));
          push(series, 'schroot end 50', await wallOf(sids.map((id) => () => schroot.endAsync(id))));
        }
      }
    }

    // 50 clients calling run -s in a loop for a few seconds; the supervisor's loop delay meanwhile.
    const loopId = (await background(RELAY, ['begin', '-c', NAME], env)).trim();
    await request(stateDir, { op: 'status' }); // resets the delay histogram
    const until = Date.now() + 5000;
    let done = 0;
    await Promise.all(
      Array.from({ length: MANY }, async () => {
        while (Date.now() < until) {
          await background(RELAY, ['run', '-s', loopId, '-d', '/', '--', '/bin/true'], env);
          done++;
        }
      }),
    );
    const status = (await request(stateDir, { op: 'status' })) as { eventLoopDelay: { maxMs: number; p99Ms: number } };
    spawnSync(RELAY, ['end', '-s', loopId], { env });

    const med = (k: string) => summarize(series[k]!).p50;
    const one = `one call (median of ${CALLS}, calls alternating)`;
    const many = `${MANY} at once (median of ${rounds})`;
    const vs = (section: string, metric: string, w: string, sc: string, max: number): Row => ({
      section,
      metric,
      unit: 'ms',
      measured: med(w),
      baseline: med(sc),
      baselineNote: 'schroot',
      target: { kind: 'ratio', max },
    });
    const rows: Row[] = [
      { section: one, metric: 'node -e 0 (what a Node CLI call would cost at least)', unit: 'ms', measured: med('node -e 0'), baseline: null },
      vs(one, 'run `/bin/true` in a session: warden run -s / schroot -r -c', 'warden run -s', 'schroot run -s', 1.0),
      vs(one, 'automatic session `/bin/true`, root: warden run -c / schroot -c', 'warden run -c', 'schroot run -c', 0.25),
      vs(one, 'automatic session `/bin/true`, ordinary user: warden run -c / schroot -c', 'warden run -c (user)', 'schroot run -c (user)', 0.25),
      vs(many, `${MANY} begun at once, separate processes`, 'warden begin 50', 'schroot begin 50', 0.5),
      vs(many, `${MANY} ended at once, separate processes`, 'warden end 50', 'schroot end 50', 0.5),
      {
        section: `supervisor while ${MANY} clients call run -s in a loop (5 s, ${done} calls)`,
        metric: 'event-loop delay, max',
        unit: 'ms',
        measured: status.eventLoopDelay.maxMs,
        baseline: null,
        target: { kind: 'max', max: 50 },
      },
    ];
    const evaluated = rows.map(evaluate);
    printTable(`warden per call vs schroot (${((Date.now() - started) / 1000).toFixed(0)} s, ${machine().cpus} CPUs, node ${process.version})`, evaluated);
    const spread = Object.entries(series).map(([k, v]) => {
      const x = summarize(v);
      return `${k.padEnd(26)} ${x.p50.toFixed(1)} ms (${x.min.toFixed(1)}-${x.max.toFixed(1)}, n=${v.length})`;
    });
    console.log(['', 'median (min-max)', ...spread].join('\n'));
    const details = Object.fromEntries(Object.entries(series).map(([k, v]) => [k, summarize(v)]));
    const file = writeResults('percall', { bench: 'percall', date: new Date().toISOString(), machine: machine(), schrootInstall: installed, calls: CALLS, rows: evaluated, details, eventLoopDelay: status.eventLoopDelay, loopCalls: done });
    console.log(`results: ${file}`);
  } finally {
    if (sup) await stopSupervisor(sup);
    await shutdownWaitPool();
    if (s) schroot.removeSchroot(s);
    for (const m of mountsUnder(tmp).reverse()) spawnSync('umount', ['-l', m.mountPoint]);
    rmSync(tmp, { recursive: true, force: true });
    removeUser(user);
  }
}

main().catch((e) => {
  console.error(`bench/percall: ${(e as Error).stack ?? (e as Error).message}`);
  process.exit(1);
});
