// The frame of the tests that drive a real `warden supervise` (the
// supervisor's limits, the broker): one fixture chroot and config for the
// file, and after each test the checks that nothing was left behind: no
// session, nothing mounted and no process in one, no socket, no child.
import type { ExecutionContext, TestFn } from 'ava';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { shutdownWaitPool } from '../../src/locks/index.js';
import { SUPERVISOR_SOCKET } from '../../src/supervisor/index.js';
import { assertNothingLeftUnder, destroyFixture, isRoot, makeFixture, stateEntries, type Fixture } from './chroots.js';
import { untilOutput, warden, WARDEN, writeConfig, type CliEnv, type Result, type Running } from './cli.js';
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

/**
 * `warden supervise` on `env` (with `extra` in its environment), once it
 * serves. Stopped (SIGTERM) in the test's teardown, after which whatever
 * session is left is ended.
 */
export async function supervise(t: ExecutionContext, env: CliEnv, extra: NodeJS.ProcessEnv = {}): Promise<Running> {
  const child = spawn(process.execPath, [WARDEN, 'supervise'], {
    env: { ...process.env, WARDEN_CONFIG: env.config, WARDEN_STATE_DIR: env.stateDir, WARDEN_DEBUG: '', ...extra },
    stdio: ['pipe', 'pipe', 'pipe'],
    cwd: env.top,
  });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output.stderr += d));
  const result = new Promise<Result>((resolve) => child.once('close', (status, signal) => resolve({ status, signal, ...output })));
  const s = Object.assign(child, { result, output });
  t.teardown(async () => {
    if (s.exitCode === null && s.signalCode === null) s.kill('SIGTERM');
    await s.result;
    if (stateEntries(env.stateDir).some((n) => !n.startsWith('supervisor.'))) warden(env, ['recover', '--all', '--end']);
  });
  await untilOutput(s, /supervising \//, 'stderr');
  return s;
}
