// watchSessions without mounts: session dirs made as begin leaves them,
// liveness held by a real second process (the C holder), a corrupt entry;
// and the closer: idempotent, same promise, no fd or lock left behind.
import anyTest, { type TestFn } from 'ava';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STATE_VERSION, watchSessions, type SessionEvent, type SessionState } from '../../src/sessions/index.js';
import { writeStateLocked } from '../../src/sessions/state.js';
import { BELL_DIR, ringBegun, ringEnded } from '../../src/sessions/watch-bell.js';
import { Holder } from '../helpers/holder.js';
import { allFds, ourLocks } from '../helpers/leaks.js';

const test = anyTest as TestFn<{ dir: string }>;

test.before(async () => {
  // The first watch of a process starts what libuv keeps for the rest of its life (its thread pool):
  // warm it up so the per-test fd comparison sees only what a watch leaves.
  const dir = mkdtempSync(join(tmpdir(), 'warden-watch-warm-'));
  const w = watchSessions(dir, { onEvent: () => {} });
  await w.ready;
  await w.close();
  rmSync(dir, { recursive: true });
});

test.beforeEach((t) => {
  t.context.dir = mkdtempSync(join(tmpdir(), 'warden-watch-'));
});
test.afterEach.always((t) => {
  rmSync(t.context.dir, { recursive: true, force: true });
});

function state(id: string, over: Partial<SessionState> = {}): SessionState {
  const now = new Date().toISOString();
  return { version: STATE_VERSION, id, chroot: 'demo', source: '/srv/demo', unionType: 'overlay', status: 'active', hooksDir: '/h', hookTimeoutMs: 30_000, createdAt: now, updatedAt: now, beganBy: 1, layout: 2, ...over };
}

/** Events as they come, and a way to wait for the `n`th of a kind. */
function recorder() {
  const seen: SessionEvent[] = [];
  let waiters: { done: () => boolean; resolve: () => void }[] = [];
  const counts = new Map<string, number>();
  const count = (event: string, id?: string) => counts.get(id === undefined ? event : `${event} ${id}`) ?? 0;
  return {
    seen,
    onEvent(e: SessionEvent) {
      seen.push(e);
      for (const key of [e.event, `${e.event} ${e.id}`]) counts.set(key, (counts.get(key) ?? 0) + 1);
      waiters = waiters.filter((w) => !(w.done() && (w.resolve(), true)));
    },
    /** Until the `n`th `event` of `id` (of any entry: id undefined). */
    until(event: string, id: string | undefined, n = 1): Promise<void> {
      const done = () => count(event, id) >= n;
      if (done()) return Promise.resolve();
      return new Promise((resolve) => waiters.push({ done, resolve }));
    },
  };
}

test.serial('close() is idempotent, returns the same promise, and leaves no fd, lock or timer', async (t) => {
  const before = allFds();
  const w = watchSessions(t.context.dir, { onEvent: () => t.fail('no event expected') });
  await w.ready;
  const a = w.close();
  t.is(w.close(), a);
  await a;
  t.is(w.close(), a);
  t.deepEqual(allFds(), before, 'no fd left open');
  t.deepEqual(ourLocks(), []);
  // Nothing keeps reporting after close: a new entry makes no event.
  mkdirSync(join(t.context.dir, 'late'));
  t.pass();
});

test.serial('closed before it was ready: ready resolves, nothing is watched', async (t) => {
  const before = allFds();
  const w = watchSessions(t.context.dir, { onEvent: () => t.fail('no event expected') });
  await w.close();
  await w.ready;
  t.deepEqual(allFds(), before);
});

test.serial('begun, stale, recovered, ended from the directory and the liveness lock of another process; existing entries are the starting point', async (t) => {
  const sd = t.context.dir;
  // Already there when the watch starts: no event for it.
  mkdirSync(join(sd, 'old'));
  writeFileSync(join(sd, 'old', 'lock'), '');
  writeStateLocked(join(sd, 'old'), state('old'));
  // Built aside and renamed in, as begin publishes a session, already held.
  const build = join(sd, '.new-s1.x');
  mkdirSync(build);
  writeFileSync(join(build, 'lock'), '');
  writeStateLocked(build, state('s1', { status: 'setting-up' }));
  const h = await Holder.start(join(build, 'lock'));
  t.teardown(() => h.kill());
  t.is(await h.lock('ofd', 'r', 0, 1), 'ok');

  const r = recorder();
  const w = watchSessions(sd, { probeMs: 20, onEvent: (e) => r.onEvent(e), onError: (e) => t.fail(e.message) });
  t.teardown(() => w.close());
  await w.ready;
  renameSync(build, join(sd, 's1'));
  ringBegun(sd, 's1', 'demo');
  await r.until('begun', 's1');
  writeStateLocked(join(sd, 's1'), state('s1', { status: 'active' }));
  t.is(await h.unlock('ofd', 0, 1), 'ok');
  await r.until('stale', 's1');
  t.is(await h.lock('ofd', 'r', 0, 1), 'ok');
  await r.until('recovered', 's1');
  await h.kill();
  await r.until('stale', 's1', 2);
  rmSync(join(sd, 's1'), { recursive: true });
  ringEnded(sd, 's1');
  await r.until('ended', 's1');
  await w.close();
  t.deepEqual(
    r.seen.map((e) => [e.event, e.id, e.chroot]),
    [
      ['begun', 's1', 'demo'],
      ['stale', 's1', 'demo'],
      ['recovered', 's1', 'demo'],
      ['stale', 's1', 'demo'],
      ['ended', 's1', 'demo'],
    ],
  );
  t.is(r.seen[0]!.status, 'setting-up');
  t.is(r.seen[1]!.status, 'active');
});

test.serial('a corrupt entry is reported once it stays corrupt; a dot entry or supervisor file never', async (t) => {
  const sd = t.context.dir;
  const r = recorder();
  // Made by hand, ringing nothing: found by the listing of names (listMs).
  const w = watchSessions(sd, { probeMs: 20, listMs: 50, onEvent: (e) => r.onEvent(e) });
  t.teardown(() => w.close());
  await w.ready;
  mkdirSync(join(sd, '.manage'), { recursive: true });
  writeFileSync(join(sd, '.manage', 'x.lock'), '');
  writeFileSync(join(sd, 'supervisor.log'), 'x');
  // Made by hand, not atomically: it looks different along the way, and is reported once.
  mkdirSync(join(sd, 'bad'));
  writeFileSync(join(sd, 'bad', 'lock'), '');
  writeFileSync(join(sd, 'bad', 'state.json'), 'garbage');
  await r.until('corrupt', 'bad');
  rmSync(join(sd, 'bad'), { recursive: true });
  await r.until('ended', 'bad');
  await w.close();
  t.deepEqual(r.seen.map((e) => [e.event, e.id]), [
    ['corrupt', 'bad'],
    ['ended', 'bad'],
  ]);
  t.truthy(r.seen[0]!.reason);
});

/** inotify watches this process has, over all its inotify fds (/proc/self/fdinfo). */
function inotifyWatches(): number {
  let n = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (target !== 'anon_inode:inotify') continue;
    n += readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').split('\n').filter((l) => l.startsWith('inotify wd:')).length;
  }
  return n;
}

test.serial('state.json rewritten in a session that was there before the watch: recovered, from the rewrite alone (no holder came)', async (t) => {
  const sd = t.context.dir;
  mkdirSync(join(sd, 'old'));
  writeFileSync(join(sd, 'old', 'lock'), '');
  writeStateLocked(join(sd, 'old'), state('old', { updatedAt: '2026-01-01T00:00:00.000Z' }));
  const r = recorder();
  // Session dirs are not watched: the probe sees the rewrite (a new inode).
  const w = watchSessions(sd, { probeMs: 20, onEvent: (e) => r.onEvent(e), onError: (e) => t.fail(e.message) });
  t.teardown(() => w.close());
  await w.ready;
  writeStateLocked(join(sd, 'old'), state('old'));
  await r.until('recovered', 'old');
  await w.close();
  t.deepEqual(r.seen.map((e) => [e.event, e.id]), [['recovered', 'old']]);
});

/** Makes session dir `id` the way begin publishes one: built aside, renamed in, the doorbell rung. */
function publish(sd: string, id: string): void {
  const build = join(sd, `.new-${id}.x`);
  mkdirSync(build);
  writeFileSync(join(build, 'lock'), '');
  writeStateLocked(build, state(id), { syncRename: false });
  renameSync(build, join(sd, id));
  ringBegun(sd, id, 'demo');
}

/** Polls (fs.watchFile) this process has running. */
function statWatchers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'StatWatcher').length;
}

test.serial('30 sessions come and go: one poll (the doorbell) however many there are, no inotify watch, nothing left once closed', async (t) => {
  const sd = t.context.dir;
  const r = recorder();
  await new Promise((resolve) => setImmediate(resolve)); // the previous test's watches are gone
  const base = inotifyWatches();
  t.is(statWatchers(), 0);
  const w = watchSessions(sd, { probeMs: 3_600_000, onEvent: (e) => r.onEvent(e), onError: (e) => t.fail(e.message) });
  t.teardown(() => w.close());
  await w.ready;
  t.is(statWatchers(), 1, 'the doorbell');
  const ids = Array.from({ length: 30 }, (_, i) => `s${i}`);
  for (const id of ids) publish(sd, id);
  for (const id of ids) await r.until('begun', id);
  // The doorbell only: neither the state dir nor session dirs nor the log are watched.
  t.is(statWatchers(), 1);
  t.is(inotifyWatches(), base);
  // Out of the sessions' names the way end takes them.
  for (const id of ids) {
    renameSync(join(sd, id), join(sd, `.gone-${id}.x`));
    ringEnded(sd, id);
  }
  for (const id of ids) await r.until('ended', id);
  await w.close();
  t.is(statWatchers(), 0);
  t.is(inotifyWatches(), base);
  t.deepEqual(
    ids.map((id) => r.seen.filter((e) => e.id === id).map((e) => e.event)),
    // Unheld, but the probe (an hour here) is what sees a session stale.
    ids.map(() => ['begun', 'ended']),
  );
});

test.serial('10,000 sessions come and go: one poll throughout, no inotify watch, the doorbell log stays bounded', async (t) => {
  const sd = t.context.dir;
  const r = recorder();
  await new Promise((resolve) => setImmediate(resolve));
  const base = inotifyWatches();
  const w = watchSessions(sd, { probeMs: 3_600_000, listMs: 3_600_000, bellPollMs: 20, onEvent: (e) => r.onEvent(e), onError: (e) => t.fail(e.message) });
  t.teardown(() => w.close());
  await w.ready;
  // Plain dirs with a state.json, in batches of 1,000: each batch rings
  // past the log's bound (64 KiB, ~1,500 rings at a time), so the log is
  // renamed aside while the watch reads it; an hour's listMs means that
  // every event came from a ring.
  for (let b = 0; b < 10; b++) {
    const ids = Array.from({ length: 1_000 }, (_, i) => `session-with-a-long-name-${b}-${i}`);
    for (const id of ids) {
      mkdirSync(join(sd, id));
      writeFileSync(join(sd, id, 'lock'), '');
      writeFileSync(join(sd, id, 'state.json'), JSON.stringify(state(id)));
      ringBegun(sd, id, 'demo');
    }
    await r.until('begun', undefined, (b + 1) * 1_000);
    t.is(statWatchers(), 1);
    for (const id of ids) {
      rmSync(join(sd, id), { recursive: true });
      ringEnded(sd, id);
    }
    await r.until('ended', undefined, (b + 1) * 1_000);
  }
  t.is(inotifyWatches(), base);
  await w.close();
  t.is(statWatchers(), 0);
  t.is(r.seen.filter((e) => e.event === 'ended').length, 10_000);
  const bell = join(sd, BELL_DIR);
  t.deepEqual(readdirSync(bell).sort(), ['rings', 'rings.old']);
  for (const f of ['rings', 'rings.old']) t.true(statSync(join(bell, f)).size <= 64 * 1024 + 64, `${f} bounded`);
});

test.serial('sessions that ring no doorbell (made and removed by hand, an older warden) are found by the listing of names', async (t) => {
  const sd = t.context.dir;
  const r = recorder();
  const w = watchSessions(sd, { probeMs: 20, listMs: 100, onEvent: (e) => r.onEvent(e), onError: (e) => t.fail(e.message) });
  t.teardown(() => w.close());
  await w.ready;
  const build = join(sd, '.new-quiet.x');
  mkdirSync(build);
  writeFileSync(join(build, 'lock'), '');
  writeStateLocked(build, state('quiet'), { syncRename: false });
  renameSync(build, join(sd, 'quiet'));
  await r.until('begun', 'quiet');
  rmSync(join(sd, 'quiet'), { recursive: true });
  await r.until('ended', 'quiet');
  await w.close();
  t.deepEqual(r.seen.map((e) => [e.event, e.id]), [
    ['begun', 'quiet'],
    ['stale', 'quiet'],
    ['ended', 'quiet'],
  ]);
});

test.serial('a ring is seen at once, not by the listing: begun and ended within a listing interval of an hour', async (t) => {
  const sd = t.context.dir;
  const r = recorder();
  const w = watchSessions(sd, { probeMs: 3_600_000, listMs: 3_600_000, onEvent: (e) => r.onEvent(e), onError: (e) => t.fail(e.message) });
  t.teardown(() => w.close());
  await w.ready;
  publish(sd, 'rung');
  await r.until('begun', 'rung');
  renameSync(join(sd, 'rung'), join(sd, '.gone-rung.x'));
  ringEnded(sd, 'rung');
  await r.until('ended', 'rung');
  await w.close();
  // Nothing holds it, but staleness is the probe's to see (an hour here): a look at a session never opens its lock.
  t.deepEqual(r.seen.map((e) => [e.event, e.id]), [
    ['begun', 'rung'],
    ['ended', 'rung'],
  ]);
  t.deepEqual(readdirSync(join(sd, BELL_DIR)), ['rings']);
});

test.serial('a session begun and ended between two looks is reported from its rings: begun (with its chroot), then ended', async (t) => {
  const sd = t.context.dir;
  const r = recorder();
  const w = watchSessions(sd, { probeMs: 3_600_000, listMs: 3_600_000, bellPollMs: 300, onEvent: (e) => r.onEvent(e), onError: (e) => t.fail(e.message) });
  t.teardown(() => w.close());
  await w.ready;
  publish(sd, 'brief');
  renameSync(join(sd, 'brief'), join(sd, '.gone-brief.x'));
  ringEnded(sd, 'brief');
  // And one that rang its end only (its begin was never rung): never seen, so nothing to say.
  ringEnded(sd, 'unknown');
  await r.until('ended', 'brief');
  await w.close();
  t.deepEqual(r.seen.map((e) => [e.event, e.id, e.chroot]), [
    ['begun', 'brief', 'demo'],
    ['ended', 'brief', 'demo'],
  ]);
});

test.serial('an atomic state.json rewrite (tmp + rename) is no ended or begun', async (t) => {
  const sd = t.context.dir;
  publish(sd, 's1');
  const h = await Holder.start(join(sd, 's1', 'lock'));
  t.teardown(() => h.kill());
  t.is(await h.lock('ofd', 'r', 0, 1), 'ok');
  const r = recorder();
  const w = watchSessions(sd, { probeMs: 20, onEvent: (e) => r.onEvent(e), onError: (e) => t.fail(e.message) });
  t.teardown(() => w.close());
  await w.ready;
  for (let i = 0; i < 20; i++) writeStateLocked(join(sd, 's1'), state('s1', { status: i % 2 ? 'active' : 'ending' }));
  writeStateLocked(join(sd, 's1'), state('s1'));
  // Synchronise on the probe: it reads the rewrites before it sees the holder go.
  t.is(await h.unlock('ofd', 0, 1), 'ok');
  await r.until('stale', 's1');
  await w.close();
  t.deepEqual(r.seen.map((e) => [e.event, e.id]), [['stale', 's1']]);
});

/** Runs `body` (an ES module) in a fresh node; resolves with its stdout and exit code, or rejects if it does not exit on its own. */
function runAlone(body: string, timeoutMs = 15_000): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', body], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`did not exit on its own within ${timeoutMs} ms; said: ${out}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

const closeWhileRemoving = (when: 'same-tick' | 'in-event') => `
import { mkdirSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
const { watchSessions } = await import(${JSON.stringify(new URL('../../src/sessions/watch.js', import.meta.url).href)});
const { ringBegun, ringEnded } = await import(${JSON.stringify(new URL('../../src/sessions/watch-bell.js', import.meta.url).href)});
const wds = () => readdirSync('/proc/self/fd').filter((fd) => { try { return readlinkSync('/proc/self/fd/' + fd) === 'anon_inode:inotify'; } catch { return false; } })
  .reduce((n, fd) => n + readFileSync('/proc/self/fdinfo/' + fd, 'utf8').split('\\n').filter((l) => l.startsWith('inotify wd:')).length, 0);
const sd = mkdtempSync(join(tmpdir(), 'warden-watch-close-'));
const make = (id) => { mkdirSync(join(sd, id)); writeFileSync(join(sd, id, 'lock'), ''); writeFileSync(join(sd, id, 'state.json'), '{}'); ringBegun(sd, id, 'demo'); };
const remove = (id) => { rmSync(join(sd, id), { recursive: true }); ringEnded(sd, id); };
for (let i = 0; i < 50; i++) make('s' + i);
let w;
let closed;
const after = [];
w = watchSessions(sd, { probeMs: 10, onEvent: (e) => {
  if (closed) after.push(e.event);
  ${when === 'in-event' ? "if (e.event === 'ended' && !closed) closed = w.close();" : ''}
} });
await w.ready;
for (let i = 0; i < 50; i++) remove('s' + i);
${when === 'same-tick' ? 'closed = w.close();' : "while (!closed) await new Promise((r) => setTimeout(r, 5));"}
await closed;
await new Promise((r) => setImmediate(r));
// More coming and going after close: nothing may wake the watcher.
make('late');
remove('late');
rmSync(sd, { recursive: true });
// chokidar 5's close() forgets its throttles but leaves their timers, the
// longest its 1 s re-listing throttle (a listing cut short by close() never
// clears it): by then nothing of the watch may be left.
await new Promise((r) => setTimeout(r, 1100));
console.log(JSON.stringify({ wds: wds(), after, resources: process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'PipeWrap') }));
`;

for (const when of ['same-tick', 'in-event'] as const) {
  test.serial(`session dirs removed while the watch closes (${when}): no watch revived, no handle left, the process exits on its own`, async (t) => {
    const { code, out } = await runAlone(closeWhileRemoving(when));
    t.is(code, 0);
    const r = JSON.parse(out.trim().split('\n').pop()!) as { wds: number; after: string[]; resources: string[] };
    t.is(r.wds, 0, 'no inotify watch after close');
    t.deepEqual(r.after, [], 'no event after close');
    t.deepEqual(r.resources, [], 'no handle, timer or request left (but stdio)');
  });
}
