// With the wait pool bounded to 2 threads, 6 contended locks still all get
// their lock: the waits beyond the bound poll instead of queueing behind
// blocked threads. (Own file: the bound is read once per process.)
process.env.WARDEN_LOCK_THREADS = '2';

import test from 'ava';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileLock, shutdownWaitPool, waitPool } from '../../src/locks/index.js';
import { Holder, killAllHolders } from '../helpers/holder.js';
import { ourLocks, untilBlocked } from '../helpers/leaks.js';

test.after.always(async () => {
  await killAllHolders();
  await shutdownWaitPool();
});

test('waits beyond the thread bound poll, and all are granted', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-pool-'));
  const paths = Array.from({ length: 6 }, (_, i) => join(dir, `l${i}`));
  for (const p of paths) writeFileSync(p, '');
  const holders = await Promise.all(paths.map((p) => Holder.start(p)));
  for (const h of holders) t.is(await h.lock('ofd', 'w'), 'ok');
  const locks = paths.map((p) => FileLock.open(p));
  const waits = locks.map((l) => l.acquire('exclusive', { timeout: 10_000 }));
  await untilBlocked(paths, 2);
  t.is(waitPool().maxThreads, 2);
  t.is(waitPool().active, 2, 'two kernel waits, four polling');
  t.true(waitPool().threads <= 2);
  // Release in reverse: the polling ones (last) must not wait for the blocked ones.
  for (const h of [...holders].reverse()) await h.kill();
  await Promise.all(waits);
  t.true(locks.every((l) => l.held === 'exclusive'));
  for (const l of locks) l.close();
  t.deepEqual(ourLocks(paths), []);
  rmSync(dir, { recursive: true });
});
