// Driving the real `warden` binary (the bundle that package.json's bin
// names) with a config of its own in a temp dir.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './chroots.js';

export const WARDEN = join(REPO, 'dist', 'cli', 'warden.cjs');

export interface CliEnv {
  /** Directory with etc/warden.conf, sessions/ and hooks. */
  top: string;
  config: string;
  stateDir: string;
}

/** Writes `<top>/etc/warden.conf` with `[warden]` settings and the given chroot groups. */
export function writeConfig(top: string, body: string): CliEnv {
  mkdirSync(join(top, 'etc'), { recursive: true });
  const config = join(top, 'etc', 'warden.conf');
  writeFileSync(config, body);
  return { top, config, stateDir: join(top, 'sessions') };
}

export interface Result {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const env = (e: CliEnv) => ({ ...process.env, WARDEN_CONFIG: e.config, WARDEN_STATE_DIR: e.stateDir, WARDEN_DEBUG: '' });

export function warden(e: CliEnv, args: string[], input?: string): Result {
  const r = spawnSync(process.execPath, [WARDEN, ...args], { env: env(e), encoding: 'utf8', input, timeout: 60_000, cwd: e.top });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

export type Running = ChildProcess & { result: Promise<Result>; output: { stdout: string; stderr: string } };

export function wardenAsync(e: CliEnv, args: string[], opts: { detached?: boolean } = {}): Running {
  const child = spawn(process.execPath, [WARDEN, ...args], { env: env(e), stdio: ['pipe', 'pipe', 'pipe'], cwd: e.top, detached: opts.detached });
  const output = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output.stderr += d));
  const result = new Promise<Result>((resolve) => child.once('close', (status, signal) => resolve({ status, signal, ...output })));
  return Object.assign(child, { result, output });
}

/** Resolves when `stream` has printed (so far, or from now on) something matching `re`. */
export function untilOutput(child: Running, re: RegExp, stream: 'stdout' | 'stderr' = 'stdout'): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (!re.test(child.output[stream])) return false;
      child[stream]!.off('data', on);
      resolve();
      return true;
    };
    // Our listener runs after wardenAsync's, so output already holds the chunk.
    const on = () => check();
    if (check()) return;
    child[stream]!.on('data', on);
    child.once('exit', () => setImmediate(() => check() || reject(new Error(`exited before printing ${re}: ${child.output[stream]}`))));
  });
}

/** The test build of the CLI, with crash points (WARDEN_CRASH_AT) compiled in. */
export const CRASH = join(REPO, 'dist', 'crash', 'warden.cjs');

/** Runs the crash build with `e`'s config, which must die by SIGKILL at `point`. */
export function crashAt(e: CliEnv, point: string, args: string[]): void {
  const r = spawnSync(process.execPath, [CRASH, ...args], {
    env: { ...process.env, WARDEN_CONFIG: e.config, WARDEN_STATE_DIR: e.stateDir, WARDEN_CRASH_AT: point },
    encoding: 'utf8',
    cwd: e.top,
    timeout: 60_000,
  });
  if (r.signal !== 'SIGKILL') throw new Error(`warden was to die at ${point}, but exited ${r.status}: ${r.stderr}`);
}
