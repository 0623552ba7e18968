// The supervisor through the real CLI and its socket: persistent sessions
// across CLI invocations, one supervisor per state dir, SIGTERM and kill -9
// with sessions held, re-adoption with their data, many clients at once
// while a source entry waits, cancelled begins, and protocol fuzz.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { bootstrapChroot } from '../../src/bootstrap/index.js';
import { shutdownWaitPool } from '../../src/locks/index.js';
import { connectSupervisor, SUPERVISOR_SOCKET, type SupervisorClient } from '../../src/supervisor/index.js';

import { destroyFixture, isRoot, makeFixture, stateEntries, treeDigest, type Fixture, assertNothingLeftUnder } from '../helpers/chroots.js';
import { untilOutput, WARDEN, warden, wardenAsync, writeConfig, type CliEnv, type Running } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const test = anyTest as TestFn;
const rootSerial = isRoot ? test.serial : test.serial.skip;
let fx: Fixture;
let other: string;
let env: CliEnv;

test.before(async () => {
  fx = await makeFixture('warden-cli-supervisor-');
  other = join(fx.tmp, 'other');
  await bootstrapChroot(other, { busybox: false });
  env = writeConfig(
    fx.tmp,
    `[fx]\ntype=directory\ndirectory=${fx.source}\nunion-type=overlay\n\n[other]\ntype=directory\ndirectory=${other}\nunion-type=overlay\n`,
  );
});
test.after.always(async () => {
  if (fx) destroyFixture(fx.tmp);
  await shutdownWaitPool();
});
test.afterEach.always(async (t) => {
  if (!fx) return;
  await stopSupervisor();
  t.deepEqual(sessions(), [], 'no session left');
  assertNothingLeftUnder(t, fx.tmp);
  t.false(existsSync(join(env.stateDir, SUPERVISOR_SOCKET)), 'the socket is removed with its supervisor');
});

/** Session entries of the state dir (the supervisor's own files are not sessions). */
const sessions = () => stateEntries(env.stateDir).filter((n) => !n.startsWith('supervisor.'));

async function client(): Promise<SupervisorClient> {
  const c = await connectSupervisor(env.stateDir);
  if (!c) throw new Error('no supervisor listening');
  return c;
}

async function ask(req: Parameters<SupervisorClient['request']>[0]): Promise<Record<string, unknown>> {
  const c = await client();
  try {
    return await c.request(req);
  } finally {
    c.close();
  }
}

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));

const untilGone = (pid: number) => until(() => !alive(pid), `pid ${pid} to exit`, 30_000);

/** SIGTERMs whatever supervisor runs for the state dir and waits for it to be gone; anything left is then ended. */
async function stopSupervisor(): Promise<void> {
  const c = await connectSupervisor(env.stateDir).catch(() => undefined);
  if (c) {
    const { pid } = (await c.request({ op: 'hello' })) as { pid: number };
    c.close();
    process.kill(pid, 'SIGTERM');
    await untilGone(pid);
  }
  if (sessions().length > 0) warden(env, ['recover', '--all', '--end']);
}

/** `warden supervise` in the foreground; resolves once it serves. */
async function supervise(t: { teardown(fn: () => Promise<void>): void }, args: string[] = []): Promise<Running> {
  const s = wardenAsync(env, ['supervise', ...args]);
  t.teardown(async () => {
    if (s.exitCode === null && s.signalCode === null) {
      s.kill('SIGTERM');
      await s.result;
    }
  });
  await untilOutput(s, /supervising \//, 'stderr');
  return s;
}

test('begin, supervise: --help; begin needs -c; an unknown chroot is exit 4 and starts no supervisor', (t) => {
  t.regex(warden(env, ['begin', '--help']).stdout, /warden begin -c CHROOT/);
  t.regex(warden(env, ['supervise', '--help']).stdout, /--end-sessions-on-exit/);
  t.is(warden(env, ['begin']).status, 2);
  const r = warden(env, ['begin', '-c', 'nope']);
  t.is(r.status, 4, r.stderr);
  t.is(warden(env, ['begin', '-c', 'fx', '--id', '../x']).status, 2);
  t.false(existsSync(join(env.stateDir, SUPERVISOR_SOCKET)));
});

rootSerial('begin starts a supervisor; the session survives the CLI, runs several times, and dies only at end (needs root)', async (t) => {
  const before = treeDigest(fx.source);
  const b = warden(env, ['begin', '-c', 'fx', '--id', 'p1']);
  t.is(b.status, 0, b.stderr);
  t.is(b.stdout, 'p1\n');
  t.is(statSync(join(env.stateDir, SUPERVISOR_SOCKET)).mode & 0o777, 0o600, 'the socket is 0600');
  const status = await ask({ op: 'status' });
  t.deepEqual(status.held, ['p1']);
  // The CLI that began it is gone; the session is held by the supervisor, not by it.
  t.is(warden(env, ['run', '-s', 'p1', '--', 'sh', '-c', 'echo one > /state']).status, 0);
  t.is(warden(env, ['run', '-s', 'p1', '--', 'sh', '-c', 'echo two >> /state']).status, 0);
  const cat = warden(env, ['run', '-s', 'p1', '--', 'cat', '/state']);
  t.is(cat.stdout, 'one\ntwo\n');
  const list = JSON.parse(warden(env, ['list', '--sessions', '--json']).stdout) as { id: string; status: string }[];
  t.deepEqual(list.map((e) => [e.id, e.status]), [['p1', 'active']]);
  // --json gives the id, the chroot and where it is mounted.
  const j = warden(env, ['begin', '-c', 'fx', '--id', 'p2', '--json']);
  t.like(JSON.parse(j.stdout), { id: 'p2', chroot: 'fx', root: join(env.stateDir, 'p2', 'root') });
  // A second supervisor for the same state dir: exit 5, naming the first.
  const second = warden(env, ['supervise']);
  t.is(second.status, 5, second.stderr);
  t.regex(second.stderr, new RegExp(`already running for ${env.stateDir} \\(pid ${status.pid as number}\\)`));
  for (const id of ['p1', 'p2']) {
    const e = warden(env, ['end', '-s', id]);
    t.is(e.status, 0, e.stderr);
  }
  t.deepEqual(sessions(), []);
  t.deepEqual((await ask({ op: 'status' })).held, []);
  t.deepEqual(treeDigest(fx.source), before, 'nothing written in the sessions reached the source');
  t.regex(readFileSync(join(env.stateDir, 'supervisor.log'), 'utf8'), /began p1 \(chroot fx\)[^]*ended p1/);
});

rootSerial('end --all with a supervisor: the sessions it holds are ended by it, and it goes on serving (needs root)', async (t) => {
  const sup = await supervise(t);
  for (const id of ['e1', 'e2', 'e3']) t.is(warden(env, ['begin', '-c', 'fx', '--id', id]).status, 0);
  t.deepEqual((await ask({ op: 'status' })).held, ['e1', 'e2', 'e3']);
  const all = warden(env, ['end', '--all']);
  t.is(all.status, 0, all.stderr);
  t.is(all.stdout, 'ended e1\nended e2\nended e3\n');
  t.deepEqual(sessions(), []);
  const status = await ask({ op: 'status' });
  t.deepEqual(status.held, []);
  t.regex(sup.output.stderr, /ended e1\n[^]*ended e2\n[^]*ended e3\n/);
});

rootSerial('leftovers of dead processes (an end cut short, a begin that died) are swept once the supervisor serves (needs root)', async (t) => {
  // An end killed while deleting: a .gone-* dir, its lock file already gone.
  const gone = join(env.stateDir, '.gone-cut.1-1');
  for (let d = 0; d < 3; d++) {
    mkdirSync(join(gone, 'upper', `d${d}`), { recursive: true });
    for (let f = 0; f < 500; f++) writeFileSync(join(gone, 'upper', `d${d}`, `f${f}`), '');
  }
  // A begin that died after locking and renaming its build dir: the lock file is there, nobody holds it.
  const dead = join(env.stateDir, '.new-dead.AbC123');
  mkdirSync(dead);
  writeFileSync(join(dead, 'lock'), '');
  const sup = await supervise(t);
  t.regex(sup.output.stderr, /supervising /);
  await until(() => !existsSync(gone) && !existsSync(dead), 'the leftovers to be swept');
  await until(() => /removed \.new-dead\.AbC123 \(a begin that died/.test(sup.output.stderr), 'the sweep to be logged');
  t.regex(sup.output.stderr, /removed \.gone-cut\.1-1 \(an ended session whose deletion was cut short\)/);
  t.deepEqual((await ask({ op: 'status' })).held, []);
});

rootSerial('end of a session still used by a command: exit 5 and it stays held; --force kills the command, never the supervisor (needs root)', async (t) => {
  const sup = await supervise(t);
  t.is(warden(env, ['begin', '-c', 'fx', '--id', 'busy']).status, 0);
  const run = wardenAsync(env, ['run', '-s', 'busy', '--', 'sh', '-c', 'echo started; read x']);
  await untilOutput(run, /started/);
  const e = warden(env, ['end', '-s', 'busy']);
  t.is(e.status, 5, e.stderr);
  t.regex(e.stderr, /session busy: .*held/);
  t.deepEqual((await ask({ op: 'status' })).held, ['busy']);
  const f = warden(env, ['end', '-s', 'busy', '--force']);
  t.is(f.status, 0, f.stderr);
  t.not((await run.result).status, 0, 'the command was killed');
  t.is(sup.exitCode, null, 'the supervisor is alive');
  t.deepEqual(sessions(), []);
});

rootSerial('SIGTERM leaves held sessions stale and the next supervisor re-adopts them; --end-sessions-on-exit ends them (needs root)', async (t) => {
  const first = await supervise(t);
  for (const id of ['t1', 't2']) t.is(warden(env, ['begin', '-c', 'fx', '--id', id]).status, 0);
  writeFileSync(join(env.stateDir, 't1', 'root', 'kept'), 'data\n');
  first.kill('SIGTERM');
  t.is((await first.result).status, 0);
  t.regex(first.output.stderr, /SIGTERM: stopping \(2 session\(s\) held\)[^]*stopped/);
  const listed = JSON.parse(warden(env, ['list', '--sessions', '--json']).stdout) as { id: string; status: string; mounted: boolean }[];
  t.deepEqual(listed.map((e) => [e.id, e.status, e.mounted]), [['t1', 'stale', true], ['t2', 'stale', true]]);
  const second = await supervise(t, ['--end-sessions-on-exit']);
  t.regex(second.output.stderr, /re-adopted stale session t1[^]*re-adopted stale session t2[^]*2 session\(s\) held/);
  t.deepEqual((await ask({ op: 'status' })).held, ['t1', 't2']);
  t.is(warden(env, ['run', '-s', 't1', '--', 'cat', '/kept']).stdout, 'data\n');
  second.kill('SIGTERM');
  t.is((await second.result).status, 0);
  t.regex(second.output.stderr, /ended t1 on exit[^]*ended t2 on exit/);
  t.deepEqual(sessions(), []);
});

rootSerial('kill -9 with 50 sessions held: the one with a running command stays active, the rest go stale and block a source entry; a new supervisor re-adopts all 50 with their data (needs root)', async (t) => {
  t.timeout(120_000);
  const first = await supervise(t);
  const ids = Array.from({ length: 50 }, (_, i) => `k${String(i).padStart(2, '0')}`);
  const clients = await Promise.all(ids.map(() => client()));
  await Promise.all(ids.map((id, i) => clients[i]!.request({ op: 'begin', chroot: 'fx', id })));
  for (const c of clients) c.close();
  for (const id of ids) writeFileSync(join(env.stateDir, id, 'root', 'data'), `${id}\n`);
  const run = wardenAsync(env, ['run', '-s', 'k00', '--', 'sh', '-c', 'echo started; read x; cat /data']);
  await untilOutput(run, /started/);
  first.kill('SIGKILL');
  await first.result;
  const listed = () => JSON.parse(warden(env, ['list', '--sessions', '--json']).stdout) as { id: string; status: string }[];
  const after = listed();
  t.is(after.length, 50);
  t.deepEqual(after.filter((e) => e.status === 'active').map((e) => e.id), ['k00'], 'the running command holds its session');
  t.is(after.filter((e) => e.status === 'stale').length, 49);
  const entry = warden(env, ['source', '-c', 'fx', '--no-wait', '--', 'true']);
  t.is(entry.status, 7, entry.stderr);
  t.regex(entry.stderr, /stale/);
  const second = await supervise(t);
  t.regex(second.output.stderr, /49 session\(s\) held/);
  // k00 is re-adopted once its command is done (the watch sees it go stale).
  run.stdin!.end('\n');
  const r = await run.result;
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, 'started\nk00\n');
  await untilOutput(second, /re-adopted stale session k00/, 'stderr');
  t.deepEqual(listed().map((e) => e.status), Array(50).fill('active'));
  for (const id of ids) t.is(readFileSync(join(env.stateDir, id, 'root', 'data'), 'utf8'), `${id}\n`, `${id} kept its data`);
  const enders = await Promise.all(ids.map(() => client()));
  await Promise.all(ids.map((id, i) => enders[i]!.request({ op: 'end', id })));
  for (const c of enders) c.close();
  t.deepEqual(sessions(), []);
});

rootSerial('100 clients at once while a source entry waits: every request answered, the event loop never blocked, no fd growth (needs root)', async (t) => {
  t.timeout(120_000);
  await supervise(t);
  // A session of `other` keeps its source entry waiting; begins of `other` queue behind the entry.
  t.is(warden(env, ['begin', '-c', 'other', '--id', 'o-held']).status, 0);
  const entry = wardenAsync(env, ['source', '-c', 'other', '--', 'true']);
  await untilOutput(entry, /waiting for the sessions using the source/, 'stderr');
  const queued = await client();
  // The entry holds the manage lock (and waits for .ref): the queued begin reports that it waits for the manage lock.
  let waiting!: (lock: string) => void;
  const reported = new Promise<string>((resolve) => (waiting = resolve));
  const queuedBegin = queued.request({ op: 'begin', chroot: 'other', id: 'o-queued' }, { onWait: (w) => waiting(w.lock) });
  queuedBegin.catch(() => {}); // awaited below; a failing test must not leave it unhandled
  t.is(await reported, 'manage');
  await ask({ op: 'status' }); // resets the delay histogram
  type Fds = { total: number; files: number; sockets: number };
  const base = (await ask({ op: 'status' })) as { fds: Fds; pid: number };
  const fdsOf = (pid: number) => spawnSync('ls', ['-l', `/proc/${pid}/fd`], { encoding: 'utf8' }).stdout.replace(/^.*\d\d:\d\d /gm, '');
  const baseFds = fdsOf(base.pid);
  const clients = await Promise.all(Array.from({ length: 100 }, () => client()));
  const work = clients.map(async (c, i) => {
    const id = `m${String(i).padStart(3, '0')}`;
    await c.request({ op: 'begin', chroot: 'fx', id });
    if (i % 20 === 0) {
      const r = wardenAsync(env, ['run', '-s', id, '--', 'true']);
      t.is((await r.result).status, 0);
    }
    await c.request({ op: 'status' });
    await c.request({ op: 'end', id });
    c.close();
  });
  await Promise.all(work);
  const status = (await ask({ op: 'status' })) as { fds: Fds; eventLoopDelay: { maxMs: number }; held: string[] };
  t.log(`event-loop delay over the run: max ${status.eventLoopDelay.maxMs} ms; fds ${JSON.stringify(base.fds)} -> ${JSON.stringify(status.fds)}`);
  t.true(status.eventLoopDelay.maxMs < 250, `event loop blocked for ${status.eventLoopDelay.maxMs} ms`);
  // Idle now: the delay is what lies beyond the monitor's period, near 0
  // (not the period itself, which its histogram records whole).
  const quietFrom = Date.now();
  await until(() => Date.now() - quietFrom > 1_000, 'a second of the idle supervisor');
  const idle = (await ask({ op: 'status' })) as { eventLoopDelay: { maxMs: number; meanMs: number } };
  t.true(idle.eventLoopDelay.meanMs < 20 && idle.eventLoopDelay.maxMs < 100, `idle event-loop delay ${JSON.stringify(idle.eventLoopDelay)}`);
  if (status.fds.files > base.fds.files) t.log(`fds before:\n${baseFds}\nafter:\n${fdsOf(base.pid)}`);
  // Not equal: an fd the libuv thread pool has open for a moment may be counted in either.
  t.true(status.fds.files <= base.fds.files + 1 && status.fds.sockets <= base.fds.sockets, 'no growth in file or socket fds');
  t.deepEqual(status.held, ['o-held']);
  // The queued begin is still waiting behind the entry; it gets in once the entry has run.
  t.is(warden(env, ['end', '-s', 'o-held']).status, 0);
  t.is((await entry.result).status, 0);
  t.like(await queuedBegin, { id: 'o-queued' });
  queued.close();
  t.is(warden(env, ['end', '-s', 'o-queued']).status, 0);
});

rootSerial('Ctrl-C of a begin waiting behind a source entry cancels it: exit 130, no session, the supervisor goes on (needs root)', async (t) => {
  await supervise(t);
  const hold = wardenAsync(env, ['source', '-c', 'fx', '--', 'sh', '-c', 'echo entered; read x']);
  await untilOutput(hold, /entered/);
  const b = wardenAsync(env, ['begin', '-c', 'fx', '--id', 'cancelled']);
  // After a second, named for what it is.
  await untilOutput(b, /waiting for a source entry of this chroot to finish \(pid \d+ \([\w-]+\), running\)/, 'stderr');
  b.kill('SIGINT');
  const r = await b.result;
  t.is(r.status, 130, r.stderr);
  hold.stdin!.end('\n');
  t.is((await hold.result).status, 0);
  t.deepEqual(sessions(), [], 'the cancelled begin left nothing');
  t.like(await ask({ op: 'status' }), { held: [] });
  t.is(warden(env, ['begin', '-c', 'fx', '--id', 'after']).status, 0);
  t.is(warden(env, ['end', '-s', 'after']).status, 0);
});

/** Writes raw bytes to the socket and collects what comes back until the supervisor has answered `expect` lines or closed. */
function raw(payload: Buffer | string, expect: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = connect(join(env.stateDir, SUPERVISOR_SOCKET));
    let got = '';
    const done = () => {
      s.destroy();
      resolve(got.split('\n').filter(Boolean));
    };
    s.on('data', (d) => {
      got += d.toString();
      if (got.split('\n').filter(Boolean).length >= expect) done();
    });
    s.on('close', done);
    s.on('error', reject);
    s.write(payload);
    // Nothing to wait for: hang up mid-line, as a client that died would.
    if (expect === 0) s.end();
  });
}

rootSerial('protocol fuzz: 1,000 random, truncated and oversized messages; every one answered with an error, and the supervisor still serves (needs root)', async (t) => {
  t.timeout(120_000);
  const sup = await supervise(t);
  const valid = ['{"v":1,"op":"hello"}', '{"v":1,"op":"begin","chroot":"fx","id":"z"}', '{"v":1,"op":"end","id":"z"}', '{"v":1,"op":"status"}'];
  let seed = 42;
  const rand = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
  const messages: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const base = valid[rand(valid.length)]!;
    switch (i % 5) {
      case 0: // truncated
        messages.push(base.slice(0, rand(base.length - 1)));
        break;
      case 1: // random bytes (no newline, so one message)
        messages.push(Buffer.from(Array.from({ length: 1 + rand(64) }, () => rand(256))).toString('latin1').replace(/\n/g, ' '));
        break;
      case 2: // a field of the wrong type or an unknown one
        messages.push(base.replace(/"(chroot|id)":"[a-z]*"/, '"$1":[1]').replace('"op":"hello"', '"op":"hello","x":1'));
        break;
      case 3: // wrong version or op
        messages.push(rand(2) ? base.replace('"v":1', `"v":${rand(9) + 2}`) : base.replace(/"op":"\w+"/, `"op":"o${rand(1000)}"`));
        break;
      default: // one byte flipped
        {
          const at = rand(base.length);
          messages.push(base.slice(0, at) + String.fromCharCode(33 + rand(90)) + base.slice(at + 1));
        }
        break;
    }
  }
  // Sent in batches on several connections, each message on its own line.
  let answered = 0;
  let errors = 0;
  for (let i = 0; i < messages.length; i += 100) {
    const batch = messages.slice(i, i + 100).filter((m) => m.trim() !== '');
    const replies = await raw(`${batch.join('\n')}\n`, batch.length);
    answered += replies.length;
    for (const line of replies) {
      const r = JSON.parse(line) as { ok?: boolean; wait?: unknown; error?: { name: string } };
      if (r.ok === false) errors++;
    }
    // A flipped byte may still be a valid request (a begin of "z", say): end what it made.
    if (sessions().includes('z')) await ask({ op: 'end', id: 'z' }).catch(() => {});
  }
  t.log(`${messages.length} fuzz messages, ${answered} replies, ${errors} errors`);
  t.true(answered >= messages.filter((m) => m.trim() !== '').length - 5);
  t.true(errors > 900);
  // Oversized: one error, and the line after it is served.
  const big = await raw(`${'x'.repeat(200_000)}\n{"v":1,"op":"hello","tag":"after"}\n`, 2);
  t.regex(big[0]!, /message longer than 65536 bytes/);
  t.like(JSON.parse(big[1]!), { tag: 'after', ok: true });
  // A client that disconnects mid-line, and one that sends half a request and waits: neither breaks anything.
  t.deepEqual(await raw('{"v":1,"op":"beg', 0), []);
  t.like(await ask({ op: 'hello' }), { protocol: 1 });
  t.is(sup.exitCode, null, 'still up');
  t.notRegex(sup.output.stderr, /internal error|TypeError|RangeError/);
});

/**
 * A begin whose client closes the connection while a post-mount hook runs.
 * With `stopped`, the supervisor is SIGSTOPped across the close and the
 * rest of the hook, so when it runs again the hook has exited and the
 * close is not yet read: the order in which a loaded machine may see them.
 */
async function disconnectMidBegin(t: ExecutionContext, stopped: boolean): Promise<void> {
  // A post-mount hook that waits for a go file, so the disconnect lands mid-begin.
  const hooks = join(fx.tmp, 'slow-hooks');
  spawnSync('sh', ['-c', `rm -f ${fx.tmp}/in-hook ${fx.tmp}/go ${fx.tmp}/hook-done; mkdir -p ${hooks}/post-mount.d && chmod 755 ${hooks} ${hooks}/post-mount.d`]);
  writeFileSync(join(hooks, 'post-mount.d', '10-slow'), `#!/bin/sh\ntouch ${fx.tmp}/in-hook\nwhile [ ! -e ${fx.tmp}/go ]; do sleep 0.02; done\ntouch ${fx.tmp}/hook-done\n`, { mode: 0o755 });
  const slowEnv = writeConfig(fx.tmp, `${readFileSync(env.config, 'utf8')}\n[slow]\ntype=directory\ndirectory=${fx.source}\nhooks=${hooks}\n`);
  t.teardown(() => writeConfig(fx.tmp, readFileSync(slowEnv.config, 'utf8').replace(/\n\[slow\][^]*$/, '\n')));
  const sup = await supervise(t);
  t.teardown(() => void sup.kill('SIGCONT'));
  const c = await client();
  const begin = c.request({ op: 'begin', chroot: 'slow', id: 'gone' }).catch((e: Error) => e);
  await until(() => existsSync(join(fx.tmp, 'in-hook')), 'the hook to start');
  if (stopped) sup.kill('SIGSTOP');
  c.close();
  t.true((await begin) instanceof Error);
  writeFileSync(join(fx.tmp, 'go'), '');
  if (stopped) {
    await until(() => existsSync(join(fx.tmp, 'hook-done')), 'the hook to finish');
    sup.kill('SIGCONT');
  }
  // The begin is cancelled (its hook is stopped) or, had it got past its
  // last step, rolled back all the same: nobody knows of the session.
  await until(() => sessions().length === 0, 'the session to be rolled back');
  t.deepEqual((await ask({ op: 'status' })).held, []);
  t.notRegex(sup.output.stderr, /began gone \(chroot/, 'never held as a session of its own');
}

rootSerial('a begin whose client disconnects while hooks run is rolled back (needs root)', disconnectMidBegin, false);
rootSerial('a begin whose client disconnected is rolled back even when its hooks finish before the supervisor reads the close (needs root)', disconnectMidBegin, true);

rootSerial('through socket-group, non-root clients: begin allowed or refused (exit 8) by the chroot\'s lists; only the owner or root ends a session (needs root)', async (t) => {
  const NOBODY = 65534;
  const GROUP = 4322;
  const original = readFileSync(env.config, 'utf8');
  writeConfig(fx.tmp, `[warden]\nsocket-group=${GROUP}\n\n${original}\n[mine]\ntype=directory\ndirectory=${fx.source}\nusers=${NOBODY}\n`);
  t.teardown(() => writeConfig(fx.tmp, original));
  await supervise(t);
  const sock = statSync(join(env.stateDir, SUPERVISOR_SOCKET));
  t.is(sock.mode & 0o777, 0o660);
  t.is(sock.gid, GROUP);
  const as = (uid: number, groups: number[], args: string[]) => {
    const r = spawnSync('setpriv', ['--reuid', `${uid}`, '--regid', `${uid}`, groups.length ? `--groups=${groups.join(',')}` : '--clear-groups', process.execPath, WARDEN, ...args], {
      env: { ...process.env, WARDEN_CONFIG: env.config, WARDEN_STATE_DIR: env.stateDir },
      encoding: 'utf8',
      cwd: '/',
    });
    return r;
  };
  // Not in the socket's group: cannot even connect.
  const outsider = as(NOBODY, [], ['begin', '-c', 'mine']);
  t.is(outsider.status, 8, outsider.stderr);
  t.regex(outsider.stderr, /permission denied connecting to the supervisor at .*socket-group=/);
  // Connected, but fx has no users=: refused, naming the rule.
  const refused = as(NOBODY, [GROUP], ['begin', '-c', 'fx']);
  t.is(refused.status, 8, refused.stderr);
  t.regex(refused.stderr, /uid 65534\)? may not .*chroot "fx": .*users=/);
  // users= names nobody: allowed; the session is begun (as root) and held for them.
  const allowed = as(NOBODY, [GROUP], ['begin', '-c', 'mine', '--id', 'nb']);
  t.is(allowed.status, 0, allowed.stderr);
  t.is(allowed.stdout, 'nb\n');
  // Another user may not end it; its owner may.
  const other = as(NOBODY - 1, [GROUP], ['end', '-s', 'nb']);
  t.is(other.status, 8, other.stderr);
  t.regex(other.stderr, /uid 65533 may not end session nb: it belongs to uid 65534/);
  const own = as(NOBODY, [GROUP], ['end', '-s', 'nb']);
  t.is(own.status, 0, own.stderr);
  t.deepEqual(sessions(), []);
});

rootSerial('a supervisor whose log reader went away goes on serving, without spinning on the failed writes (needs root)', async (t) => {
  const sup = await supervise(t);
  // The reader of its stderr goes (a closed terminal, a dead parent): every log line now fails with EPIPE.
  sup.stderr!.destroy();
  t.is(warden(env, ['begin', '-c', 'fx', '--id', 'unlogged']).status, 0, 'served, and its log line failed');
  const ticks = () => {
    const f = readFileSync(`/proc/${sup.pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return Number(f[11]) + Number(f[12]); // utime + stime, in clock ticks (1/100 s)
  };
  const before = ticks();
  // A window of a second of its CPU time: a loop of failed writes took a whole core.
  await new Promise((r) => setTimeout(r, 1000));
  const used = ticks() - before;
  t.true(used < 30, `${used} ticks of CPU in a second`);
  t.is(warden(env, ['end', '-s', 'unlogged']).status, 0, 'still serving');
  t.deepEqual(sessions(), []);
});
