// Commands started through node:child_process: the fallback where koffi
// cannot reach glibc's posix_spawn, a source entry's gated command, and
// the Command view of any ChildProcess.
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { constants } from 'node:os';
import { childProcess } from './child-process.js';
import type { PtySlave } from './pty.js';
import type { StartOptions } from './spawn.js';

/** A started command: its pid, a way to signal it, and its status once reaped. */
export interface Command {
  readonly pid: number | undefined;
  /** Resolves once the child has its copies of the fds (they may be closed here then). */
  readonly spawned: Promise<void>;
  /** The shell's convention: the exit code, or 128+N for death by signal N. Rejects when it could not be started. */
  readonly exited: Promise<number>;
  /**
   * Sends a signal unless the command has been reaped already; with
   * `group`, to its whole process group (it leads one: it runs in a
   * session of its own), as a terminal's Ctrl-C would.
   */
  kill(signal: NodeJS.Signals, group?: boolean): void;
}

/** util-linux setsid(1): `--ctty` makes stdin the controlling terminal (TIOCSCTTY) after setsid(2). */
const SETSID = ['/usr/bin/setsid', '/bin/setsid'].find((p) => existsSync(p)) ?? 'setsid';

/**
 * How child_process starts `argv` with pty slave `t` as its controlling
 * terminal (setsid --ctty) and its stdio as `t` says, `fds` at 3 and up.
 * setsid(1) takes fd 0 as the terminal, so when the caller's stdin is to
 * stay (a file), it comes in above `fds` and the host's sh moves it back
 * to 0 once the slave is the controlling terminal (which it stays).
 */
export function viaSetsid(
  t: PtySlave,
  argv: readonly string[],
  fds: readonly (number | 'pipe')[],
  given: readonly [number, number, number] | undefined = undefined,
): { argv: string[]; stdio: (number | 'inherit' | 'pipe')[] } {
  const own = (i: 0 | 1 | 2) => given?.[i] ?? 'inherit';
  const stdio: (number | 'inherit' | 'pipe')[] = [t.fd, t.stdout ? t.fd : own(1), t.stderr ? t.fd : own(2), ...fds];
  if (t.stdin) return { argv: [SETSID, '--ctty', ...argv], stdio };
  const k = stdio.length;
  return { argv: [SETSID, '--ctty', '/bin/sh', '-c', `exec 0<&${k} ${k}<&-; exec "$@"`, 'warden-stdin', ...argv], stdio: [...stdio, given?.[0] ?? 0] };
}

/**
 * startCommand's fallback. With a pty, setsid(1) does setsid and TIOCSCTTY
 * before exec'ing `file` in the same process (it forks only when it leads a
 * process group, which a child of ours not detached does not).
 */
export function startWithChildProcess(file: string, args: readonly string[], env: NodeJS.ProcessEnv, fds: readonly number[], o: StartOptions): ChildProcess {
  const t = o.terminal;
  if (t) {
    const s = viaSetsid(t, [file, ...args], fds, o.stdio);
    return childProcess().spawn(s.argv[0]!, s.argv.slice(1), { stdio: s.stdio, env });
  }
  const stdio: (number | 'inherit')[] = o.stdio ? [...o.stdio] : ['inherit', 'inherit', 'inherit'];
  return childProcess().spawn(file, [...args], { stdio: [...stdio, ...fds], env, detached: true });
}

/** A ChildProcess seen as a Command (a source entry's gated command, or the fallback above). */
export function fromChildProcess(child: ChildProcess): Command {
  const status = (code: number | null, signal: NodeJS.Signals | null) => code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
  const exited = new Promise<number>((resolve, reject) => {
    // A child started ahead (source entry) may be done already.
    if (child.exitCode !== null || child.signalCode !== null) return resolve(status(child.exitCode, child.signalCode));
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(status(code, signal)));
  });
  const spawned = new Promise<void>((resolve) => {
    if (child.pid !== undefined) resolve();
    else child.once('spawn', () => resolve());
  });
  // The caller awaits `exited`; a spawn error rejects that, not this.
  spawned.catch(() => {});
  return {
    get pid() {
      return child.pid;
    },
    spawned,
    exited,
    kill(signal, group = false) {
      try {
        if (group && child.pid !== undefined && child.exitCode === null && child.signalCode === null) process.kill(-child.pid, signal);
        else child.kill(signal);
      } catch {
        // already gone
      }
    },
  };
}
