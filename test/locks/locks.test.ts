// The lock library against real kernel locks and a second real process
// (test/c/holder.c). Runs once per lock mode: `npm test` runs this file with
// WARDEN_LOCK_MODE unset (OFD on this kernel) and with WARDEN_LOCK_MODE=posix.
// 64 blocked waits need 64 wait threads (the default bound is 8; beyond it
// waits poll, which pool-bound.test.ts covers). Read at first use.
process.env.WARDEN_LOCK_THREADS = '64';

import anyTest, { type TestFn } from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, renameSync, symlinkSync, writeFileSync, unlinkSync, openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import {
  FileLock,
  LockAbortedError,
  LockBusyError,
  LockFileError,
  LockStateError,
  LockTimeoutError,
  lockHolders,
  lockPath,
  shutdownWaitPool,
  waitPool,
  type LockMode,
} from '../../src/locks/index.js';
import { Holder, killAllHolders, liveHolders, type Family } from '../helpers/holder.js';
import { fileFds, ourLocks, untilBlocked } from '../helpers/leaks.js';

interface Ctx {
  dir: string;
  fds: string[];
  files: string[];
}
const test = anyTest as TestFn<Ctx>;

let mode: LockMode;

test.before(() => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-mode-'));
  const l = FileLock.open(join(dir, "probe"));
  mode = l.mode;
  l.close();
  rmSync(dir, { recursive: true });
  const want = process.env.WARDEN_LOCK_MODE;
  if (want === 'posix' || want === 'ofd') if (mode !== want) throw new Error(`asked for ${want}, got ${mode}`);
});

test.beforeEach((t) => {
  t.context.dir = mkdtempSync(join(tmpdir(), 'warden-locks-'));
  t.context.files = [];
  t.context.fds = fileFds();
});

function file(t: { context: Ctx }, name = 'lock'): string {
  const p = join(t.context.dir, name);
  writeFileSync(p, '');
  t.context.files.push(p);
  return p;
}

// Nothing of ours may survive a test: fds, locks, holder processes.
test.afterEach.always(async (t) => {
  await killAllHolders();
  const locks = ourLocks(t.context.files);
  const fds = fileFds();
  rmSync(t.context.dir, { recursive: true, force: true });
  t.deepEqual(locks, [], 'no lock of ours is left in /proc/locks');
  t.deepEqual(fds, t.context.fds, 'no extra fd is left open');
  t.is(liveHolders(), 0);
});

test.after.always(async () => {
  await shutdownWaitPool();
});

/** Closes the lock when the test ends, whether it passed or not. */
function track(t: { teardown: (fn: () => void) => void }, lock: FileLock): FileLock {
  t.teardown(() => lock.close());
  return lock;
}

const opposite = (k: 'r' | 'w') => (k === 'r' ? 'shared' : 'exclusive');

// --- conflict matrix --------------------------------------------------------

const matrix: [Family, 'r' | 'w', 'shared' | 'exclusive', boolean][] = [];
for (const fam of ['ofd', 'posix'] as const) {
  matrix.push([fam, 'r', 'shared', true], [fam, 'r', 'exclusive', false], [fam, 'w', 'shared', false], [fam, 'w', 'exclusive', false]);
}

for (const [fam, held, want, compatible] of matrix) {
  test.serial(`${fam} holder with ${opposite(held)} lock: our ${want} request ${compatible ? 'succeeds' : 'is busy'}`, async (t) => {
    const p = file(t);
    const h = await Holder.start(p);
    t.is(await h.lock(fam, held), 'ok');
    const l = track(t, FileLock.open(p));
    t.is(l.tryAcquire(want), compatible);
    if (!compatible) {
      const err = await t.throwsAsync(l.acquire(want, { wait: false }), { instanceOf: LockBusyError });
      t.true(err!.holders.some((x) => x.pid === h.pid), 'the busy error names the holder pid');
      t.is(l.held, undefined);
    } else t.is(l.held, want);
    l.close();
  });

  test.serial(`we hold ${want}: ${fam} holder's ${opposite(held)} request ${compatible ? 'succeeds' : 'is busy'}`, async (t) => {
    const p = file(t);
    const l = track(t, FileLock.open(p));
    t.true(l.tryAcquire(want));
    const h = await Holder.start(p);
    t.is(await h.lock(fam, held), compatible ? 'ok' : 'busy');
    l.close();
    // Closing our handle released it: the holder gets it now.
    t.is(await h.lock(fam, 'w'), 'ok');
  });
}

test.serial('an OFD holder and a POSIX holder conflict with each other', async (t) => {
  const p = file(t);
  const a = await Holder.start(p);
  const b = await Holder.start(p);
  t.is(await a.lock('ofd', 'w'), 'ok');
  t.is(await b.lock('posix', 'r'), 'busy');
  t.is(await a.unlock('ofd'), 'ok');
  t.is(await b.lock('posix', 'r'), 'ok');
  t.is(await a.lock('ofd', 'w'), 'busy');
});

test.serial('two handles in this process conflict like two processes', async (t) => {
  const p = file(t);
  const a = track(t, FileLock.open(p));
  const b = track(t, FileLock.open(p));
  t.true(a.tryAcquire('shared'));
  t.true(b.tryAcquire('shared'));
  t.false(b.tryAcquire('exclusive'), 'conversion refused while the other handle shares');
  t.is(b.held, 'shared', 'the refused conversion kept the shared lock');
  a.release();
  t.true(b.tryAcquire('exclusive'));
  t.false(a.tryAcquire('shared'));
  a.close();
  b.close();
});

// --- byte ranges and conversion ----------------------------------------------

test.serial('byte 0 and byte 1 are independent locks', async (t) => {
  const p = file(t);
  const live = track(t, FileLock.open(p, { range: { start: 0, len: 1 } }));
  const meta = track(t, FileLock.open(p, { range: { start: 1, len: 1 } }));
  t.true(live.tryAcquire('shared'));
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'w', 1, 1), 'ok', 'byte 1 is free while byte 0 is shared');
  t.is(await h.lock('ofd', 'w', 0, 1), 'busy', 'byte 0 is not');
  t.is(await h.lock('ofd', 'r', 0, 1), 'ok', 'byte 0 shared is compatible');
  t.false(meta.tryAcquire('exclusive'), 'byte 1 is the holder’s');
  t.is(await h.unlock('ofd', 1, 1), 'ok');
  t.true(meta.tryAcquire('exclusive'));
  t.is(await h.lock('ofd', 'w', 1, 1), 'busy');
  live.close();
  meta.close();
});

test.serial('shared -> exclusive conversion fails while another holder shares, and keeps the shared lock', async (t) => {
  const p = file(t);
  const l = track(t, FileLock.open(p));
  t.true(l.tryAcquire('shared'));
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'r'), 'ok');
  await t.throwsAsync(l.acquire('exclusive', { wait: false }), { instanceOf: LockBusyError });
  t.is(l.held, 'shared');
  t.is(await h.unlock('ofd'), 'ok');
  t.is(await h.lock('ofd', 'w'), 'busy', 'our shared lock is still there');
  t.true(l.tryAcquire('exclusive'), 'converts once alone');
  t.is(await h.lock('ofd', 'r'), 'busy');
  t.true(l.tryAcquire('shared'), 'downgrade never blocks');
  t.is(await h.lock('ofd', 'r'), 'ok');
  l.close();
});

test.serial('a blocking conversion waits for the other sharer and then holds exclusive', async (t) => {
  const p = file(t);
  const l = track(t, FileLock.open(p));
  t.true(l.tryAcquire('shared'));
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'r'), 'ok');
  const converted = l.acquire('exclusive', { timeout: 10_000 });
  await h.unlock('ofd');
  await converted;
  t.is(l.held, 'exclusive');
  t.is(await h.lock('ofd', 'r'), 'busy');
  l.close();
});

// --- waiting ----------------------------------------------------------------------

test.serial('a holder killed with SIGKILL: the waiter acquires promptly', async (t) => {
  const p = file(t);
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'w'), 'ok');
  const l = track(t, FileLock.open(p));
  const got = l.acquire('exclusive', { timeout: 10_000 });
  await h.kill();
  const t0 = performance.now();
  await got;
  t.log(`acquired ${(performance.now() - t0).toFixed(2)} ms after the holder died`);
  t.is(l.held, 'exclusive');
  l.close();
});

test.serial('timeout rejects with LockTimeoutError naming the holder, and leaves nothing behind', async (t) => {
  const p = file(t);
  const h = await Holder.start(p);
  t.is(await h.lock('posix', 'w'), 'ok');
  const l = track(t, FileLock.open(p));
  const err = await t.throwsAsync(l.acquire('shared', { timeout: 50 }), { instanceOf: LockTimeoutError });
  t.true(err!.holders.some((x) => x.pid === h.pid));
  t.regex(err!.message, new RegExp(`pid ${h.pid}`));
  t.is(l.held, undefined);
  t.deepEqual(ourLocks([p]), []);
  t.is(await h.unlock('posix'), 'ok');
  t.true(l.tryAcquire('exclusive'), 'the handle is usable after a timeout');
  l.close();
});

test.serial('a timeout past 2^31-1 ms waits (Node would fire it at once): the wait still gets the lock when the holder lets go', async (t) => {
  const p = file(t);
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'w'), 'ok');
  const l = track(t, FileLock.open(p));
  let settled = false;
  const got = l.acquire('exclusive', { timeout: 40 * 24 * 3600 * 1000 }).finally(() => (settled = true));
  await untilBlocked([p], 1);
  // Node fires an overflowing timeout after 1 ms; timers fire in order of expiry.
  await new Promise((r) => setTimeout(r, 1));
  t.false(settled, 'a 40-day timeout did not fire at once');
  await h.kill();
  await got;
  t.is(l.held, 'exclusive');
  l.close();
  t.deepEqual(ourLocks([p]), []);
});

test.serial('abort rejects with LockAbortedError carrying the reason; an aborted signal rejects at once', async (t) => {
  const p = file(t);
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'w'), 'ok');
  const l = track(t, FileLock.open(p));
  const ac = new AbortController();
  const pending = l.acquire('exclusive', { signal: ac.signal });
  await untilBlocked([p], 1);
  ac.abort(new Error('ctrl-c'));
  const err = await t.throwsAsync(pending, { instanceOf: LockAbortedError });
  t.is((err!.cause as Error).message, 'ctrl-c');
  await t.throwsAsync(l.acquire('shared', { signal: ac.signal }), { instanceOf: LockAbortedError });
  t.deepEqual(ourLocks([p]), []);
  l.close();
});

test.serial('closing a handle while it waits cancels the wait and closes the fd', async (t) => {
  const p = file(t);
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'w'), 'ok');
  const l = track(t, FileLock.open(p));
  const pending = l.acquire('exclusive');
  await untilBlocked([p], 1);
  l.close();
  await t.throwsAsync(pending, { instanceOf: LockAbortedError });
  t.true(l.closed);
});

test.serial('misuse throws LockStateError: release unheld, two acquires at once, use after close', async (t) => {
  const p = file(t);
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'w'), 'ok');
  const l = track(t, FileLock.open(p));
  t.throws(() => l.release(), { instanceOf: LockStateError });
  const first = l.acquire('shared', { timeout: 30 });
  await t.throwsAsync(l.acquire('shared'), { instanceOf: LockStateError });
  await t.throwsAsync(first, { instanceOf: LockTimeoutError });
  l.close();
  l.close(); // idempotent
  t.throws(() => l.tryAcquire('shared'), { instanceOf: LockStateError });
});

test.serial('race: 200 trials of cancel vs release at random moments never leak a lock', async (t) => {
  const p = file(t);
  const h = await Holder.start(p);
  const l = track(t, FileLock.open(p));
  let granted = 0;
  let cancelled = 0;
  for (let i = 0; i < 200; i++) {
    t.is(await h.lock('ofd', 'w'), 'ok');
    const ac = new AbortController();
    const pending = l.acquire('exclusive', { signal: ac.signal }).then(
      () => true,
      (e) => {
        if (!(e instanceof LockAbortedError)) throw e;
        return false;
      },
    );
    const d1 = Math.random() * 3;
    const d2 = Math.random() * 3;
    await Promise.all([
      new Promise<void>((r) => setTimeout(() => (ac.abort(), r()), d1)),
      new Promise<void>((r) => setTimeout(() => void h.unlock('ofd').then(() => r()), d2)),
    ]);
    const won = await pending;
    if (won) {
      granted++;
      t.is(l.held, 'exclusive');
      t.is(await h.lock('ofd', 'r'), 'busy', 'a resolved wait really holds the lock');
      l.release();
    } else {
      cancelled++;
      t.is(l.held, undefined);
      // A rejected wait holds nothing, even if the kernel granted it late.
      t.is(await h.lock('ofd', 'w'), 'ok', `trial ${i}: lock free after a cancelled wait`);
      t.is(await h.unlock('ofd'), 'ok');
    }
  }
  t.log(`${granted} granted, ${cancelled} cancelled`);
  t.true(granted > 0 && cancelled > 0, 'both outcomes were exercised');
  l.close();
});

test.serial('waiters for one lock queue behind a single kernel wait (one thread)', async (t) => {
  const p = file(t);
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'w'), 'ok');
  const locks = Array.from({ length: 50 }, () => track(t, FileLock.open(p)));
  const order: number[] = [];
  const all = locks.map((l, i) =>
    l.acquire('exclusive', { timeout: 20_000 }).then(() => {
      order.push(i);
      l.release();
    }),
  );
  await untilBlocked([p], 1);
  t.is(waitPool().active, 1, 'one kernel wait for 50 waiters');
  await h.unlock('ofd');
  await Promise.all(all);
  t.deepEqual(order, [...order].sort((a, b) => a - b), 'granted in arrival order');
  for (const l of locks) l.close();
});

test.serial('shared waiters are all granted together once the writer leaves', async (t) => {
  const p = file(t);
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'w'), 'ok');
  const locks = Array.from({ length: 10 }, () => track(t, FileLock.open(p)));
  const all = Promise.all(locks.map((l) => l.acquire('shared', { timeout: 10_000 })));
  await h.unlock('ofd');
  await all;
  t.true(locks.every((l) => l.held === 'shared'));
  t.is(await h.lock('ofd', 'r'), 'ok');
  t.is(await h.lock('ofd', 'w'), 'busy');
  for (const l of locks) l.close();
});

test.serial('a lock on a free file is granted at once while other waits are blocked', async (t) => {
  const held = Array.from({ length: 8 }, (_, i) => file(t, `busy${i}`));
  const holders = await Promise.all(held.map((p) => Holder.start(p)));
  for (const h of holders) t.is(await h.lock('ofd', 'w'), 'ok');
  const waiting = held.map((p) => track(t, FileLock.open(p)));
  let settled = 0;
  const waits = waiting.map((l) => l.acquire('exclusive').finally(() => settled++).catch((e) => e));
  await untilBlocked(held, 8);
  const active = waitPool().active;
  const free = track(t, FileLock.open(file(t, 'free')));
  await free.acquire('exclusive');
  t.is(free.held, 'exclusive');
  t.is(settled, 0, 'the blocked waits are still blocked');
  t.is(waitPool().active, active, 'no wait thread was involved');
  for (const l of waiting) l.close();
  for (const e of await Promise.all(waits)) t.true(e instanceof LockAbortedError);
});

test.serial('the event loop keeps ticking while 64 waits are blocked', async (t) => {
  const paths = Array.from({ length: 64 }, (_, i) => file(t, `l${i}`));
  const holders = await Promise.all(paths.map((p) => Holder.start(p)));
  for (const h of holders) t.is(await h.lock('ofd', 'w'), 'ok');
  const locks = paths.map((p) => track(t, FileLock.open(p)));
  const waits = locks.map((l) => l.acquire('exclusive').catch((e) => e));
  await untilBlocked(paths, 64);
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  await new Promise((r) => setTimeout(r, 500));
  h.disable();
  const maxLagMs = h.max / 1e6 - 1; // minus the sampling resolution
  t.log(`event loop lag with 64 blocked waits: max ${maxLagMs.toFixed(2)} ms, p50 ${(h.percentile(50) / 1e6 - 1).toFixed(3)} ms`);
  // A wait that blocked the loop would hold it for the whole 500 ms; the
  // bound leaves room for a busy 2-core CI machine (lag is a bench figure).
  t.true(maxLagMs < 100, `max lag ${maxLagMs} ms`);
  for (const l of locks) l.close();
  await Promise.all(waits);
});

// --- inheritance and file identity --------------------------------------------

test.serial('a lock fd inherited by a child keeps the lock after the parent closes its copy (OFD mode)', async (t) => {
  const p = file(t);
  const l = track(t, FileLock.open(p));
  t.true(l.tryAcquire('exclusive'));
  const child = spawn('sleep', ['30'], { stdio: ['ignore', 'ignore', 'ignore', l.fd] });
  await new Promise((r) => child.once('spawn', r));
  if (mode === 'ofd') {
    const pids = l.holders().map((x) => x.pid);
    t.true(pids.includes(process.pid) && pids.includes(child.pid!), 'both processes sharing the OFD are reported');
  }
  l.close();
  const h = await Holder.start(p);
  if (mode === 'ofd') {
    t.is(await h.lock('ofd', 'r'), 'busy', 'the child holds the lock through the inherited OFD');
  } else {
    // POSIX locks belong to the process and are not inherited (fcntl(2)).
    t.is(await h.lock('ofd', 'r'), 'ok', 'POSIX mode: the child holds nothing');
  }
  child.kill('SIGKILL');
  await new Promise((r) => child.once('exit', r));
  t.is(await h.lock('ofd', 'w'), 'ok', 'the lock went with the child');
});

test.serial('a lock file that is a symlink is refused, not followed', async (t) => {
  const target = file(t, 'target');
  const link = join(t.context.dir, 'link');
  symlinkSync(target, link);
  const err = t.throws(() => FileLock.open(link), { instanceOf: LockFileError });
  t.regex(err!.message, /symbolic link/);
  t.throws(() => FileLock.open(t.context.dir), { instanceOf: LockFileError });
  t.throws(() => FileLock.open(join(t.context.dir, 'missing'), { create: false }), { instanceOf: LockFileError, message: /does not exist/ });
});

test.serial('lockPath notices a lock file replaced under it and locks the new one', async (t) => {
  const p = file(t, '.ref');
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'w'), 'ok');
  const pending = lockPath(p, 'shared', { timeout: 10_000 });
  await untilBlocked([p], 1);
  // Someone replaces .ref while we wait for the old inode, then lets go of it.
  writeFileSync(p + '.new', '');
  renameSync(p + '.new', p);
  await h.unlock('ofd');
  const l = await pending;
  t.true(l.namesSameFile());
  const h2 = await Holder.start(p);
  t.is(await h2.lock('ofd', 'w'), 'busy', 'the lock is on the file the path names now');
  l.close();
  unlinkSync(p);
});

test.serial('flock(2) holders do not conflict with our fcntl locks (local filesystem)', async (t) => {
  // On Linux, flock and fcntl locks are separate families on local
  // filesystems; warden never uses flock, and this documents why that matters:
  // a flock holder is invisible to warden (and to flatpak, bwrap).
  const p = file(t);
  const h = await Holder.start(p);
  t.is(await h.lock('flock', 'w'), 'ok');
  const l = track(t, FileLock.open(p));
  t.true(l.tryAcquire('exclusive'));
  t.is(await h.lock('ofd', 'r'), 'busy');
  l.close();
  const flockers = lockHolders(p).filter((x) => x.family === 'FLOCK');
  t.is(flockers.length, 1, 'inspection still shows the flock holder');
});

test.serial('holders() lists OFD holders with their pid and fd, and POSIX holders with their pid', async (t) => {
  const p = file(t);
  const a = await Holder.start(p);
  const b = await Holder.start(p);
  t.is(await a.lock('ofd', 'r', 0, 1), 'ok');
  t.is(await b.lock('posix', 'r', 0, 1), 'ok');
  const l = track(t, FileLock.open(p, { range: { start: 0, len: 1 } }));
  const hs = l.holders();
  const ofd = hs.find((x) => x.family === 'OFD');
  const px = hs.find((x) => x.family === 'POSIX');
  t.is(ofd?.pid, a.pid);
  t.is(typeof ofd?.fd, 'number');
  t.is(px?.pid, b.pid);
  t.is(ofd?.comm, 'holder');
  // F_GETLK answers "what blocks me" in one syscall (OFD owners have no pid).
  t.is(l.conflict('shared'), undefined);
  const c = l.conflict('exclusive');
  t.is(c?.kind, 'shared');
  t.deepEqual(c?.range, { start: 0, len: 1 });
  t.true(c!.pid === -1 || c!.pid === b.pid);
  l.close();
});

// --- POSIX-mode traps handled in-process ---------------------------------------

test.serial('closing another fd of the file does not drop our lock (POSIX trap handled)', async (t) => {
  const p = file(t);
  const a = track(t, FileLock.open(p));
  t.true(a.tryAcquire('exclusive'));
  const b = track(t, FileLock.open(p));
  b.close(); // in POSIX mode a plain close(2) here would drop a's lock
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'r'), 'busy', 'still locked after another handle closed');
  a.close();
  t.is(await h.lock('ofd', 'r'), 'ok');
  // An fd opened by unrelated code is the caller's to avoid in POSIX mode;
  // in OFD mode it is harmless:
  if (mode === 'ofd') {
    const c = track(t, FileLock.open(p));
    t.true(c.tryAcquire('shared'));
    closeSync(openSync(p, 'r'));
    t.is(await h.lock('ofd', 'w'), 'busy');
    c.close();
  }
});

test.serial('releasing one of two shared handles keeps the other one’s lock', async (t) => {
  const p = file(t);
  const a = track(t, FileLock.open(p));
  const b = track(t, FileLock.open(p));
  t.true(a.tryAcquire('shared'));
  t.true(b.tryAcquire('shared'));
  a.release();
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'w'), 'busy', 'b still shares');
  b.release();
  t.is(await h.lock('ofd', 'w'), 'ok');
  a.close();
  b.close();
});

test.serial('an in-process waiter gets the lock when another handle of ours releases it', async (t) => {
  const p = file(t);
  const a = track(t, FileLock.open(p));
  const b = track(t, FileLock.open(p));
  t.true(a.tryAcquire('exclusive'));
  const pending = b.acquire('exclusive', { timeout: 10_000 });
  // OFD: b waits in the kernel; POSIX: for a's release in this process (no kernel wait to see).
  if (mode === 'ofd') await untilBlocked([p], 1);
  else await new Promise(setImmediate);
  t.is(b.held, undefined);
  a.release();
  await pending;
  t.is(b.held, 'exclusive');
  const h = await Holder.start(p);
  t.is(await h.lock('ofd', 'r'), 'busy');
  a.close();
  b.close();
});

// A cycle the kernel's POSIX deadlock check sees, though nothing is stuck:
// we hold X and wait for Y; python holds Y and waits for X, then lets Y go
// once it gets X. In POSIX mode F_SETLKW first fails with EDEADLK (the
// check is per process); the wait must keep asking, not fail. In OFD mode
// there is no check and the wait simply blocks. Either way: granted.
test.serial('a wait the kernel calls a deadlock (POSIX, per process) keeps waiting and is granted once the cycle breaks', async (t) => {
  const x = file(t, 'x');
  const y = file(t, 'y');
  const mine = FileLock.open(x);
  mine.tryAcquire('exclusive');
  const script = [
    'import fcntl, sys',
    'y = open(sys.argv[2], "r+"); fcntl.lockf(y, fcntl.LOCK_EX)',
    'print("holding", flush=True)',
    'x = open(sys.argv[1], "r+"); fcntl.lockf(x, fcntl.LOCK_EX)',
    'fcntl.lockf(y, fcntl.LOCK_UN); print("got x", flush=True)',
    'sys.stdin.read()',
  ].join('\n');
  const py = spawn('python3', ['-c', script, x, y], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  const printed = (what: string) =>
    new Promise<void>((resolve) => {
      const check = () => out.includes(what) && (py.stdout!.off('data', on), resolve(), true);
      const on = (d: Buffer) => ((out += d.toString()), check());
      if (!check()) py.stdout!.on('data', on);
    });
  const exited = new Promise((resolve) => py.once('exit', resolve));
  await printed('holding');
  await untilBlocked([x], 1); // python now waits for x, which we hold
  const theirs = FileLock.open(y);
  const wait = theirs.acquire('exclusive', { timeout: 10_000 });
  // Give the wait time to meet EDEADLK (POSIX) or block (OFD) before the cycle breaks.
  await untilBlocked([y], mode === 'posix' ? 0 : 1);
  await new Promise((r) => setTimeout(r, 100));
  mine.close();
  await printed('got x');
  await wait;
  t.is(theirs.held, 'exclusive');
  theirs.close();
  py.stdin!.end();
  await exited;
});
