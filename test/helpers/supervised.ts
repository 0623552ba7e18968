// The frame of the tests that drive a real `warden supervise` (the
// supervisor's limits, the broker): one fixture chroot and config for the
// file, and after each test the checks that nothing was left behind: no
// session, nothing mounted and no process in one, no socket, no child.
import type { TestFn } from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { shutdownWaitPool } from '../../src/locks/index.js';
import { SUPERVISOR_SOCKET } from '../../src/supervisor/index.js';
import { assertNothingLeftUnder, destroyFixture, isRoot, makeFixture, stateEntries, type Fixture } from './chroots.js';
import { writeConfig, type CliEnv } from './cli.js';
import { childrenOf } from './leaks.js';

/** Registers the hooks on `test`; `ready` gets the fixture and its config once made (as root only). */
export function supervisedFixture(test: TestFn, prefix: string, ready: (fx: Fixture, env: CliEnv) => void): void {
  let fx: Fixture | undefined;
  let env: CliEnv | undefined;
  let children: number[] = [];
  test.before(async () => {
    if (!isRoot) return;
    fx = await makeFixture(prefix);
    env = writeConfig(fx.tmp, '');
    ready(fx, env);
  });
  test.after.always(async () => {
    if (fx) destroyFixture(fx.tmp);
    await shutdownWaitPool();
  });
  test.beforeEach(() => {
    children = childrenOf();
  });
  test.afterEach.always((t) => {
    if (!fx || !env) return;
    t.deepEqual(stateEntries(env.stateDir).filter((n) => !n.startsWith('supervisor.')), [], 'no session left');
    assertNothingLeftUnder(t, fx.tmp);
    t.false(existsSync(join(env.stateDir, SUPERVISOR_SOCKET)), 'the socket is removed with its supervisor');
    t.deepEqual(childrenOf(), children, 'no child left');
  });
}
