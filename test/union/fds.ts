// A stricter fd check than support.ts's (which counts only fds naming
// files): every entry of /proc/self/fd, pipes and sockets included, so a
// child's stdout pipe left open is caught too. Call once per test file.
import { allFds } from '../helpers/leaks.js';
import { spawn } from 'node:child_process';
import { test } from './support.js';


// Keyed by the test's context object: the same one in its beforeEach and afterEach hooks.
const before = new WeakMap<object, string[]>();

export function checkAllFds(): void {
  test.before(async () => {
    // libuv opens its SIGCHLD plumbing on the first spawn: open it before any snapshot.
    const child = spawn('true', { stdio: 'ignore' });
    await new Promise((resolve) => child.once('close', resolve));
  });
  test.beforeEach((t) => {
    before.set(t.context, allFds());
  });
  test.afterEach.always((t) => {
    const snapshot = before.get(t.context) ?? [];
    const extra = allFds().filter((f) => !snapshot.includes(f));
    t.deepEqual(extra, [], 'no fd of any kind left open');
  });
}
