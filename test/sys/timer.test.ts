// setLongTimeout: delays past setTimeout's 2^31-1 ms limit wait, in steps,
// instead of firing at once.
import test from 'ava';
import { MAX_TIMER_MS, setLongTimeout } from '../../src/sys/timer.js';

test('a delay longer than one step is re-armed until its deadline', async (t) => {
  const start = Date.now();
  const fired = await new Promise<number>((resolve) => setLongTimeout(() => resolve(Date.now()), 60, { step: 7 }));
  t.true(fired - start >= 60, `fired after ${fired - start} ms`);
});

test('past 2^31-1 ms nothing fires at once (Node alone would, with a TimeoutOverflowWarning)', async (t) => {
  let fired = false;
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(w.name);
  process.on('warning', onWarning);
  const cancel = setLongTimeout(() => (fired = true), MAX_TIMER_MS + 1000);
  await new Promise((r) => setTimeout(r, 50));
  cancel();
  process.off('warning', onWarning);
  t.false(fired);
  t.deepEqual(warnings, []);
});

test('cancelling stops it; cancelling twice or after it fired is harmless; Infinity never fires', async (t) => {
  let n = 0;
  const cancel = setLongTimeout(() => n++, 5, { step: 2 });
  cancel();
  cancel();
  setLongTimeout(() => n++, Infinity)();
  const done = await new Promise<() => void>((resolve) => {
    const c = setLongTimeout(() => resolve(c), 1);
  });
  done();
  await new Promise((r) => setTimeout(r, 20));
  t.is(n, 0);
});

test('a negative delay fires on the next turn', async (t) => {
  await new Promise<void>((resolve) => setLongTimeout(resolve, -5));
  t.pass();
});
