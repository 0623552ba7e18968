// Processes the benchmarks drive: a program run to completion and timed
// (the CLI, schroot, `node -e 0`), many at once, and a supervisor of our
// own on a bench's state dir, started and stopped as systemd would.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectSupervisor, supervisorReady, type ClientRequest } from '../src/supervisor/index.js';
import { ROOT } from './lib.js';

export const WARDEN = join(ROOT, 'dist', 'cli', 'warden.cjs');

export const msSince = (t: bigint): number => Number(process.hrtime.bigint() - t) / 1e6;

export interface Ran {
  ms: number;
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `cmd ARGS` to completion and times it; `check` (default) throws unless it exits 0. */
export function timed(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv, check = true): Ran {
  const t = process.hrtime.bigint();
  const r = spawnSync(cmd, args, { env, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  const ms = msSince(t);
  if (r.error) throw r.error;
  if (check && r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return { ms, status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** `node ARGS`, timed; throws unless it exits 0. */
export const node = (args: readonly string[], env: NodeJS.ProcessEnv): Ran => timed(process.execPath, args, env);

/** Runs `cmd ARGS` in the background; resolves with its stdout once it exits 0, rejects otherwise. */
export function background(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { env, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    c.once('error', reject);
    // 'close', not 'exit': at 'exit' what the child wrote last may still be
    // unread in the pipe (a `warden begin` that writes its id and _exits at
    // once came back empty now and then).
    c.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} ${args.join(' ')} exited ${code}: ${err.trim()}`))));
  });
}

/** Runs all of `jobs` at once and returns the wall time until the last one is done. */
export async function wallOf(jobs: readonly (() => Promise<unknown>)[]): Promise<number> {
  const t = process.hrtime.bigint();
  await Promise.all(jobs.map((j) => j()));
  return msSince(t);
}

/** One request on its own connection, as the CLI makes it. */
export async function request(stateDir: string, req: ClientRequest): Promise<Record<string, unknown>> {
  const client = await connectSupervisor(stateDir);
  if (!client) throw new Error('no supervisor is listening');
  try {
    return await client.request(req);
  } finally {
    client.close();
  }
}

/**
 * Spawns `warden supervise --ready-fd 3` with `env` (its config and state
 * dir), logging to `logPath`, and resolves once it said READY (ready) or
 * closed fd 3 without saying it (not ready: it failed, or another
 * supervisor holds the state dir and this one exits 5).
 */
export async function spawnSupervisor(env: NodeJS.ProcessEnv, logPath: string): Promise<{ child: ChildProcess; ready: boolean }> {
  const log = openSync(logPath, 'a');
  const child = spawn(process.execPath, [WARDEN, 'supervise', '--ready-fd', '3'], { env, cwd: '/', stdio: ['ignore', log, log, 'pipe'] });
  closeSync(log);
  const ready = await supervisorReady(child);
  return { child, ready };
}

/** spawnSupervisor, which must get ready: throws with the end of its log otherwise. */
export async function startSupervisor(env: NodeJS.ProcessEnv, logPath: string): Promise<ChildProcess> {
  const { child, ready } = await spawnSupervisor(env, logPath);
  if (!ready) throw new Error(`the supervisor did not start: ${readFileSync(logPath, 'utf8').trim()}`);
  return child;
}

/** SIGTERM (SIGKILL after a minute) and wait for the exit. */
export async function stopSupervisor(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  await exited;
  clearTimeout(timer);
}
