// unmountAll: nested mounts as hooks make them, and busy mounts; the same
// made off the event loop (unmountSettled's offThread).
import { closeSync, mkdirSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UnionError, UnmountBusyError, isMountPoint, mountUnion, mountsUnder, unmountAll, unmountSettled } from '../../src/union/index.js';
import { sysUmountOffThread } from '../../src/sys/native.js';
import { digest, makeLayout, makeSource, rootTest, run, scratch, startChild, stop, test, type Ctx } from './support.js';
import type { ExecutionContext } from 'ava';

/** An overlay session with what the default hooks add: /proc bound in, a tmpfs at /tmp and one nested in it. */
async function mountedSession(t: ExecutionContext<Ctx>) {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  await mountUnion(l);
  mkdirSync(join(l.root, 'proc'));
  run('mount', '--bind', '/proc', join(l.root, 'proc'));
  run('mount', '-t', 'tmpfs', 'tmpfs', join(l.root, 'tmp'));
  mkdirSync(join(l.root, 'tmp', 'inner'));
  run('mount', '-t', 'tmpfs', 'tmpfs', join(l.root, 'tmp', 'inner'));
  return { tmp, l };
}

rootTest('unmountAll takes nested mounts away deepest first and leaves nothing', async (t) => {
  const { tmp, l } = await mountedSession(t);
  const before = digest(l.source);
  // Deepest first: every mount before the one it sits on. Siblings (/tmp
  // and /proc) may come in either order: it follows mount ids, which the
  // kernel reuses, so other mounts made meanwhile change it.
  const order = mountsUnder(l.root).map((m) => m.mountPoint.slice(l.root.length));
  t.deepEqual([...order].sort(), ['', '/proc', '/tmp', '/tmp/inner']);
  t.true(order.indexOf('/tmp/inner') < order.indexOf('/tmp'), order.join(' '));
  t.is(order.at(-1), '', order.join(' '));
  unmountAll(l.root);
  t.deepEqual(mountsUnder(tmp), []);
  t.is(digest(l.source), before);
  t.notThrows(() => unmountAll(l.root), 'idempotent');
});

rootTest('unmountAll without the confirming read still takes every nested mount away in its one round', async (t) => {
  const { tmp, l } = await mountedSession(t);
  t.is(mountsUnder(l.root).length, 4);
  unmountAll(l.root, { confirm: false });
  t.deepEqual(mountsUnder(tmp), []);
  t.notThrows(() => unmountAll(l.root, { confirm: false }), 'idempotent');
});

rootTest('a process with its cwd in a mount: UnmountBusyError names it, nothing more is unmounted, a retry succeeds', async (t) => {
  const { tmp, l } = await mountedSession(t);
  const inner = join(l.root, 'tmp', 'inner');
  const child = await startChild(t, 'sleep', ['30'], { cwd: inner, stdio: 'ignore' });
  const mounted = mountsUnder(tmp).map((m) => m.id);
  const e = t.throws(() => unmountAll(l.root), { instanceOf: UnmountBusyError });
  t.true(e instanceof UnionError);
  t.is(e!.path, inner);
  t.true(e!.holders.some((h) => h.pid === child.pid && h.how === 'cwd' && h.comm === 'sleep'));
  t.false(e!.holders.some((h) => h.pid === process.pid), 'the caller does not use it');
  t.regex(e!.message, new RegExp(`^${inner}: cannot unmount: target is busy: used by .*pid ${child.pid} \\(sleep, cwd\\)`));
  t.deepEqual(mountsUnder(tmp).map((m) => m.id), mounted, 'all four mounts stay, untouched');
  await stop(child);
  unmountAll(l.root);
  t.deepEqual(mountsUnder(tmp), []);
});

rootTest('a process with an open file in the overlay: holders name the fd; deeper mounts went first', async (t) => {
  const { tmp, l } = await mountedSession(t);
  const file = join(l.root, 'etc', 'held');
  writeFileSync(file, 'x');
  // The child's stdin is the file; our copy of the fd is closed once it runs.
  const fd = openSync(file, 'r');
  const child = await startChild(t, 'sleep', ['30'], { stdio: [fd, 'ignore', 'ignore'] }).finally(() => closeSync(fd));
  const e = t.throws(() => unmountAll(l.root), { instanceOf: UnmountBusyError });
  t.is(e!.path, l.root);
  t.deepEqual(
    e!.holders.filter((h) => h.pid === child.pid),
    [{ pid: child.pid!, comm: 'sleep', how: 'fd 0' }],
  );
  t.deepEqual(mountsUnder(tmp).map((m) => m.mountPoint), [l.root], 'the mounts under it were unmounted, the busy one stays');
  await stop(child);
  unmountAll(l.root);
  t.false(isMountPoint(l.root));
});

rootTest('unmountAll of a dir with nothing mounted, or of a missing one, does nothing', async (t) => {
  const tmp = scratch(t);
  t.notThrows(() => unmountAll(tmp));
  t.notThrows(() => unmountAll(join(tmp, 'missing')));
});

rootTest('offThread: nested mounts go deepest first, the loop turning meanwhile; a busy one is named from the errno of the call made again in place', async (t) => {
  const { tmp, l } = await mountedSession(t);
  const inner = join(l.root, 'tmp', 'inner');
  const child = await startChild(t, 'sleep', ['30'], { cwd: inner, stdio: 'ignore' });
  const e = await t.throwsAsync(unmountSettled(l.root, { offThread: true }), { instanceOf: UnmountBusyError });
  t.is(e!.path, inner);
  t.true(e!.holders.some((h) => h.pid === child.pid && h.how === 'cwd'));
  t.is(mountsUnder(tmp).length, 4, 'nothing else was unmounted');
  await stop(child);
  // Turns of the event loop while it unmounts (a check-phase callback each
  // turn; a timer would need a whole millisecond to pass, and four umounts
  // can take less).
  let ticks = 0;
  let turning = true;
  const turn = () => {
    if (!turning) return;
    ticks++;
    setImmediate(turn);
  };
  setImmediate(turn);
  try {
    await unmountSettled(l.root, { offThread: true, confirm: false });
  } finally {
    turning = false;
  }
  t.deepEqual(mountsUnder(tmp), []);
  t.true(ticks > 0, 'each umount2 was awaited, not made in place');
  await t.notThrowsAsync(unmountSettled(l.root, { offThread: true }), 'idempotent');
});

test.serial("offThread: 300 umount2 calls at once, past koffi's queue of 256 async calls: each still answers with its errno", async (t) => {
  const dir = scratch(t); // not a mount point: EINVAL as root, EPERM otherwise
  const results = await Promise.allSettled(Array.from({ length: 300 }, () => sysUmountOffThread(dir)));
  t.deepEqual(results.filter((r) => r.status === 'rejected'), [], 'none rejected ("Too many asynchronous calls are running")');
  const errnos = new Set(results.map((r) => (r as PromiseFulfilledResult<number>).value));
  t.is(errnos.size, 1);
  t.not([...errnos][0], 0);
});
