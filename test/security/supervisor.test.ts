// The supervisor against one hostile member of socket-group (issue 15):
// a real `warden supervise` as root, real throwaway users (useradd) whose
// clients are node processes started through setpriv(1), real sockets.
// Connections past the per-user cap are refused with one line naming the
// limit; idle connections are closed; a client that floods requests without
// reading replies cannot grow the supervisor's memory; at its fd limit the
// supervisor stays alive; and who began a session is recorded in its
// state.json, so its owner (and only its owner, besides root) can end it
// after a supervisor restart. Root is served within a second throughout.
// Each test leaves no process, session, mount, socket or user behind.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { readState } from '../../src/sessions/index.js';
import { connectSupervisor, SUPERVISOR_SOCKET } from '../../src/supervisor/index.js';
import { isRoot, stateEntries, type Fixture } from '../helpers/chroots.js';
import { untilOutput, WARDEN, warden, wardenAsync, writeConfig, type CliEnv, type Result, type Running } from '../helpers/cli.js';
import { makeGroup, makeUser, type TestUser } from '../helpers/users.js';
import { supervisedFixture } from '../helpers/supervised.js';
import { until } from '../helpers/wait.js';

const test = anyTest as TestFn;
// Users, setpriv and mounts need root; the reason shows in the skipped tests' titles.
const asRoot = isRoot ? test.serial : test.serial.skip;
const NEEDS_ROOT = isRoot ? '' : ' (skipped: needs root to create users and mount sessions)';

let fx: Fixture;
let env: CliEnv;

supervisedFixture(test, 'warden-security-supervisor-', (f, e) => {
  fx = f;
  env = e;
});

/** The config: socket-group, the given [warden] lines, and chroot fx open to `users`. */
function configure(group: string, wardenLines: string[], users: TestUser[]): void {
  writeConfig(
    fx.tmp,
    [
      '[warden]',
      `socket-group=${group}`,
      `hooks-dir=${fx.noHooks}`,
      ...wardenLines,
      '',
      '[fx]',
      'type=directory',
      `directory=${fx.source}`,
      'union-type=overlay',
      `users=${users.map((u) => u.name).join(',')}`,
      '',
    ].join('\n'),
  );
}

/**
 * `warden supervise` in the foreground (through `prlimit` when given an fd
 * limit); resolves once it serves. Stopped (SIGTERM) in the teardown, and
 * whatever session is left is then ended.
 */
async function supervise(t: ExecutionContext, nofile?: number): Promise<Running> {
  const s =
    nofile === undefined
      ? wardenAsync(env, ['supervise'])
      : running(spawn('prlimit', [`--nofile=${nofile}:${nofile}`, process.execPath, WARDEN, 'supervise'], {
          env: { ...process.env, WARDEN_CONFIG: env.config, WARDEN_STATE_DIR: env.stateDir, WARDEN_DEBUG: '' },
          stdio: ['pipe', 'pipe', 'pipe'],
          cwd: env.top,
        }));
  t.teardown(async () => {
    await stop(s);
    if (stateEntries(env.stateDir).some((n) => !n.startsWith('supervisor.'))) warden(env, ['recover', '--all', '--end']);
  });
  await untilOutput(s, /supervising \//, 'stderr');
  return s;
}

async function stop(s: Running): Promise<Result> {
  if (s.exitCode === null && s.signalCode === null) s.kill('SIGTERM');
  return s.result;
}

/** wardenAsync's shape for any child. */
function running(child: ChildProcess): Running {
  const output = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output.stderr += d));
  const result = new Promise<Result>((resolve) => child.once('close', (status, signal) => resolve({ status, signal, ...output })));
  return Object.assign(child, { result, output });
}

/** ms root waits for a `hello` (connect included). */
async function rootLatency(): Promise<number> {
  const t0 = performance.now();
  const c = await connectSupervisor(env.stateDir);
  if (!c) throw new Error('no supervisor listening');
  try {
    await c.request({ op: 'hello' });
  } finally {
    c.close();
  }
  return performance.now() - t0;
}

async function status(): Promise<Record<string, unknown>> {
  const c = await connectSupervisor(env.stateDir);
  if (!c) throw new Error('no supervisor listening');
  try {
    return await c.request({ op: 'status' });
  } finally {
    c.close();
  }
}

/** kB of a /proc/PID/status field (VmRSS, VmHWM). */
function vm(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for pid ${pid}`);
  return Number(m[1]);
}

// A client: opens `n` connections (in batches, as a listen backlog takes
// them), sends a hello on each, and reports what each got first: a reply
// or a refusal. Then reports every close, and quits when stdin closes.
// In `flood` mode: one connection that writes `n` bytes of requests and
// never reads a reply, reporting how much the supervisor took.
const CLIENT = `
const net = require('node:net');
const [path, mode, nArg] = process.argv.slice(1);
const n = Number(nArg);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
process.stdin.on('end', () => process.exit(0)).resume();
if (mode === 'flood') {
  const s = net.connect(path);
  s.on('error', () => {});
  const line = JSON.stringify({ v: 1, op: 'hello' }) + '\\n';
  const chunk = line.repeat(Math.ceil(65536 / line.length));
  s.on('connect', () => {
    for (let sent = 0; sent < n; sent += chunk.length) s.write(chunk);
    out({ queued: s.writableLength });
  });
  const taken = () => s.bytesWritten - s.writableLength;
  setInterval(() => out({ taken: taken() }), 100);
  s.on('close', () => out({ closed: true, taken: taken() }));
} else {
  const recs = [];
  const open = (i) => new Promise((resolve) => {
    const rec = { i };
    recs.push(rec);
    const s = net.connect(path);
    let buf = '';
    s.on('connect', () => s.write(JSON.stringify({ v: 1, op: 'hello', tag: 't' + i }) + '\\n'));
    s.on('data', (d) => {
      buf += d;
      const nl = buf.indexOf('\\n');
      if (nl >= 0 && !rec.first) { rec.first = JSON.parse(buf.slice(0, nl)); rec.at = Date.now(); resolve(); }
    });
    s.on('error', (e) => { rec.error = e.code; });
    s.on('close', () => { rec.closed = Date.now(); resolve(); if (ready) report(); });
  });
  let ready = false;
  const report = () => {
    const open = recs.filter((r) => !r.closed).length;
    if (open > 0) return;
    const idle = recs.filter((r) => r.first && r.first.ok).map((r) => r.closed - r.at);
    out({ allClosed: true, minIdleMs: Math.min(...idle), maxIdleMs: Math.max(...idle) });
  };
  (async () => {
    for (let i = 0; i < n; i += 100) await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, k) => open(i + k)));
    const ok = recs.filter((r) => r.first && r.first.ok).length;
    const refusals = recs.filter((r) => r.first && !r.first.ok).map((r) => r.first.error);
    out({ ok, refused: refusals.length, refusal: refusals[0], other: recs.filter((r) => !r.first).map((r) => r.error || 'closed') });
    ready = true;
    report();
  })();
}
`;

interface Client extends Running {
  /** The next JSON line the client prints that satisfies `pred`. */
  next<T = Record<string, unknown>>(pred: (o: Record<string, unknown>) => boolean, ms?: number): Promise<T>;
}

/** The client above as `user` (its groups: its own and `extraGid`), stopped in the teardown. */
function clientAs(t: ExecutionContext, user: TestUser, extraGid: number, mode: 'hold' | 'flood', n: number): Client {
  const child = running(
    spawn('setpriv', ['--reuid', `${user.uid}`, '--regid', `${user.gid}`, `--groups=${user.gid},${extraGid}`, process.execPath, '-e', CLIENT, join(env.stateDir, SUPERVISOR_SOCKET), mode, `${n}`], {
      stdio: ['pipe', 'pipe', 'pipe'],
    }),
  );
  t.teardown(async () => {
    child.stdin!.end();
    await child.result;
  });
  let seen = 0;
  const next = async <T>(pred: (o: Record<string, unknown>) => boolean, ms = 60_000): Promise<T> => {
    let found: T | undefined;
    await until(() => {
      const lines = child.output.stdout.split('\n').slice(0, -1);
      for (; seen < lines.length; seen++) {
        const o = JSON.parse(lines[seen]!) as Record<string, unknown>;
        if (pred(o)) {
          seen++;
          found = o as T;
          return true;
        }
      }
      if (child.exitCode !== null) throw new Error(`client exited ${child.exitCode}: ${child.output.stderr}`);
      return false;
    }, 'the client to report', ms);
    return found!;
  };
  return Object.assign(child, { next });
}

/** The real CLI as `user`, with `extraGid` among its groups. */
function cliAs(user: TestUser, extraGid: number, args: string[]): Result {
  const r = spawnSync('setpriv', ['--reuid', `${user.uid}`, '--regid', `${user.gid}`, `--groups=${user.gid},${extraGid}`, process.execPath, WARDEN, ...args], {
    env: { ...process.env, WARDEN_CONFIG: env.config, WARDEN_STATE_DIR: env.stateDir, WARDEN_DEBUG: '' },
    encoding: 'utf8',
    timeout: 60_000,
    cwd: '/',
  });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

interface HoldReport {
  ok: number;
  refused: number;
  refusal?: { name: string; message: string };
  other: string[];
}

asRoot(`a user of socket-group past the per-user cap (default 64) is refused with a line naming it, logged once; other users and root are still served${NEEDS_ROOT}`, async (t) => {
  const group = makeGroup(t);
  const [mallory, alice] = [makeUser(t), makeUser(t)];
  configure(group.name, [], [mallory, alice]);
  const sup = await supervise(t);
  const flood = clientAs(t, mallory, group.gid, 'hold', 70);
  const r = await flood.next<HoldReport>((o) => 'ok' in o);
  t.is(r.ok, 64, 'the default per-user cap');
  t.is(r.refused, 6);
  t.deepEqual(r.other, []);
  t.like(r.refusal, { name: 'SupervisorLimitError', message: `too many connections: uid ${mallory.uid} has 64 open (max-connections-per-user=64)` });
  // The CLI of the same user gets the same line, as exit 5.
  const cli = cliAs(mallory, group.gid, ['begin', '-c', 'fx', '--id', 'one-too-many']);
  t.is(cli.status, 5, cli.stderr);
  t.regex(cli.stderr, /too many connections: uid \d+ has 64 open \(max-connections-per-user=64\)/);
  // The cap is per user: another one is served.
  const other = cliAs(alice, group.gid, ['begin', '-c', 'fx', '--id', 'alices']);
  t.is(other.status, 0, other.stderr);
  t.is(cliAs(alice, group.gid, ['end', '-s', 'alices']).status, 0);
  const waited = await rootLatency();
  t.log(`root waited ${waited.toFixed(1)} ms for hello with ${r.ok} connections of uid ${mallory.uid} open`);
  t.true(waited < 1000);
  // 7 refusals, one log line.
  t.is(sup.output.stderr.match(new RegExp(`refused a connection of uid ${mallory.uid}`, 'g'))?.length, 1, sup.output.stderr);
  t.like(await status(), { nonRootClients: 64 });
});

asRoot(`5,000 idle connections of one user are closed after the idle timeout (lowered to 3 s)${NEEDS_ROOT}`, async (t) => {
  t.timeout(120_000);
  const group = makeGroup(t);
  const mallory = makeUser(t);
  configure(group.name, ['max-connections-per-user=6000', 'max-connections=6000', 'idle-timeout=3'], [mallory]);
  const sup = await supervise(t);
  const idle = clientAs(t, mallory, group.gid, 'hold', 5000);
  const r = await idle.next<HoldReport>((o) => 'ok' in o);
  const held = (await status()).nonRootClients as number;
  t.log(`open at once: ${held}; opened ${r.ok} connections, ${r.refused} refused, ${r.other.length} failed (${[...new Set(r.other)].join(', ')})`);
  t.true(r.ok >= 4900, `most connections were accepted (${r.ok})`);
  const closed = await idle.next<{ minIdleMs: number; maxIdleMs: number }>((o) => 'allClosed' in o, 30_000);
  t.log(`each was closed ${closed.minIdleMs}–${closed.maxIdleMs} ms after its last reply`);
  t.true(closed.minIdleMs >= 2900, 'not before the idle timeout');
  t.true(closed.maxIdleMs < 10_000, 'and soon after it');
  const st = await status();
  t.like(st, { nonRootClients: 0 });
  t.is(sup.exitCode, null);
});

asRoot(`a client that writes 20 MB of requests without reading replies: memory stays bounded, root is served, the stalled connection is closed${NEEDS_ROOT}`, async (t) => {
  t.timeout(120_000);
  const group = makeGroup(t);
  const mallory = makeUser(t);
  configure(group.name, ['idle-timeout=10'], [mallory]);
  const sup = await supervise(t);
  const pid = sup.pid!;
  // Settled first: the supervisor's own start-up (workers, sweep) is not the flood's.
  await rootLatency();
  const before = vm(pid, 'VmRSS');
  const flood = clientAs(t, mallory, group.gid, 'flood', 20 * 1024 * 1024);
  await flood.next((o) => 'queued' in o);
  // Until the supervisor stops taking requests: what it took no longer grows for a second.
  let last = -1;
  let since = Date.now();
  let peak = before;
  await until(() => {
    peak = Math.max(peak, vm(pid, 'VmRSS'));
    const lines = flood.output.stdout.trim().split('\n');
    const taken = (JSON.parse(lines.at(-1)!) as { taken?: number }).taken ?? -1;
    if (taken !== last) {
      last = taken;
      since = Date.now();
    }
    return last > 0 && Date.now() - since > 1000;
  }, 'the supervisor to stop reading the flood', 30_000);
  const waited = await rootLatency();
  const hwm = vm(pid, 'VmHWM');
  t.log(`supervisor RSS ${(before / 1024).toFixed(0)} MB before, peak ${(peak / 1024).toFixed(0)} MB (VmHWM ${(hwm / 1024).toFixed(0)} MB); it took ${(last / 1e6).toFixed(2)} MB of the 20 MB; root waited ${waited.toFixed(1)} ms`);
  t.true(last < 20 * 1024 * 1024, 'the supervisor stopped reading before the end');
  t.true(peak - before < 200 * 1024, `RSS grew by ${((peak - before) / 1024).toFixed(0)} MB`);
  t.true(waited < 1000);
  // Stalled behind its unread replies, the connection is idle: closed after idle-timeout.
  await flood.next((o) => o.closed === true, 30_000);
  t.is(sup.exitCode, null);
  t.like(await status(), { nonRootClients: 0 });
});

asRoot(`at its fd limit (RLIMIT_NOFILE 256) the supervisor stays alive: accept and probe failures are logged, and root is served once fds are free${NEEDS_ROOT}`, async (t) => {
  t.timeout(120_000);
  const group = makeGroup(t);
  configure(group.name, [], []);
  const sup = await supervise(t, 256);
  t.regex(sup.output.stderr, /64 connections per user, 64 in all/, 'the non-root total is derived from the fd limit');
  // Root is not counted against the caps: its connections take every fd there is.
  const socks: Socket[] = [];
  t.teardown(() => socks.forEach((s) => s.destroy()));
  const path = join(env.stateDir, SUPERVISOR_SOCKET);
  let answered = 0;
  let dropped = 0;
  for (let batch = 0; batch < 4; batch++) {
    await Promise.all(
      Array.from(
        { length: 100 },
        () =>
          new Promise<void>((resolve) => {
            const s = connect(path);
            socks.push(s);
            s.on('error', () => {});
            s.on('connect', () => s.write('{"v":1,"op":"hello"}\n'));
            s.once('data', () => (answered++, resolve()));
            s.once('close', () => (dropped++, resolve()));
          }),
      ),
    );
  }
  await untilOutput(sup, /near the open-file limit/, 'stderr');
  // The state-dir watch runs into the limit too (it lists the state dir every 5 s), once
  // every fd is taken: top the connections up until it has.
  const emfile = untilOutput(sup, /watch: .*EMFILE/, 'stderr');
  let seen = false;
  void emfile.then(() => (seen = true));
  while (!seen) {
    const s = connect(path);
    socks.push(s);
    s.on('error', () => {});
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  await emfile;
  t.log(`400 root connections: ${answered} answered, ${dropped} dropped at the limit`);
  t.true(dropped > 0);
  t.is(sup.exitCode, null, 'alive at the limit');
  // Once fds are free again: root is served (a connect that raced the closes may still be dropped), and sessions work.
  const t0 = performance.now();
  for (const s of socks) s.destroy();
  let tries = 0;
  while (!(await rootLatency().then(() => true, () => false))) tries++;
  const waited = performance.now() - t0;
  t.log(`root was served ${waited.toFixed(1)} ms after the flood closed (${tries} attempt(s) dropped first)`);
  t.true(waited < 1000);
  const b = warden(env, ['begin', '-c', 'fx', '--id', 'after-emfile']);
  t.is(b.status, 0, b.stderr);
  t.is(warden(env, ['end', '-s', 'after-emfile']).status, 0);
  t.is(sup.exitCode, null);
  t.notRegex(sup.output.stderr, /internal error/);
  // libuv drops connections at the limit without a word (uv__emfile_trick): the supervisor says so before it.
  t.is(sup.output.stderr.match(/connections open, near the open-file limit \(256\)/g)?.length, 1, 'logged once a minute, not per connection');
  t.is(sup.output.stderr.match(/watch: EMFILE/g)?.length, 1, 'the probe\'s failures too');
});

asRoot(`ownership is in state.json: after a supervisor restart the owner ends its session and another user is refused (exit 8); a session with no recorded owner is root's${NEEDS_ROOT}`, async (t) => {
  const group = makeGroup(t);
  const [alice, bob] = [makeUser(t), makeUser(t)];
  configure(group.name, [], [alice, bob]);
  let sup = await supervise(t);
  const b = cliAs(alice, group.gid, ['begin', '-c', 'fx', '--id', 'alices']);
  t.is(b.status, 0, b.stderr);
  t.deepEqual(readState(join(env.stateDir, 'alices')).owner, { uid: alice.uid, gid: alice.gid });
  // Root's, with the owner field removed as an older warden wrote it.
  t.is(warden(env, ['begin', '-c', 'fx', '--id', 'legacy']).status, 0);
  t.deepEqual(readState(join(env.stateDir, 'legacy')).owner, { uid: 0, gid: 0 });
  // An automatic session records the CLI's ids.
  const auto = wardenAsync(env, ['run', '-c', 'fx', '--id', 'auto', '--', 'sh', '-c', 'echo started; read x']);
  await untilOutput(auto, /started/);
  t.deepEqual(readState(join(env.stateDir, 'auto')).owner, { uid: 0, gid: 0 });
  auto.stdin!.end('\n');
  t.is((await auto.result).status, 0);

  t.is((await stop(sup)).status, 0);
  const file = join(env.stateDir, 'legacy', 'state.json');
  const { owner: _, ...old } = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  writeFileSync(file, `${JSON.stringify(old, null, 2)}\n`);
  sup = await supervise(t);
  t.regex(sup.output.stderr, /re-adopted stale session alices/);
  t.regex(sup.output.stderr, /re-adopted stale session legacy/);

  const refused = cliAs(bob, group.gid, ['end', '-s', 'alices']);
  t.is(refused.status, 8, refused.stderr);
  t.regex(refused.stderr, new RegExp(`uid ${bob.uid} may not end session alices: it belongs to uid ${alice.uid}; only its owner and root may`));
  const legacy = cliAs(alice, group.gid, ['end', '-s', 'legacy']);
  t.is(legacy.status, 8, legacy.stderr);
  t.regex(legacy.stderr, /may not end session legacy: its state.json records no owner \(begun by an older warden\), so only root may/);
  // Re-adoption kept the owner.
  t.deepEqual(readState(join(env.stateDir, 'alices')).owner, { uid: alice.uid, gid: alice.gid });
  const own = cliAs(alice, group.gid, ['end', '-s', 'alices']);
  t.is(own.status, 0, own.stderr);
  t.is(warden(env, ['end', '-s', 'legacy']).status, 0, 'root ends it');
});
