// Bounded polling for what a test cannot be told about (another process
// exiting, a file a hook makes, a supervisor ending a session on its own).
// Every wait has a deadline: a missed condition fails the test with its
// name instead of hanging until ava's timeout, which leaves teardown undone.
import { setTimeout as sleep } from 'node:timers/promises';

export async function until(cond: () => boolean, what = 'condition', ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}
