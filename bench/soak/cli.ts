// Running real `warden` CLI processes for the load, and knowing which of
// them are alive: the killer picks its victims here, and shutdown waits for
// (or kills) whatever is left.
import { spawn, type ChildProcess } from 'node:child_process';
import { WARDEN } from './setup.js';

export interface CliResult {
  kind: string;
  args: string[];
  /** Exit status; null when a signal ended it. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  /** warden's one-line error (`warden: ...`), else the last line of stderr. */
  stderrTail: string;
  /** The soak's killer SIGKILLed it (and that is what ended it). */
  killed: boolean;
  /** It outlived HUNG_MS and was killed by the soak: a finding, not load. */
  hung: boolean;
  startedAt: number;
  endedAt: number;
}

export interface LiveCli {
  kind: string;
  child: ChildProcess;
  killed: boolean;
}

/** A CLI call that takes this long is stuck: source waits at most 20 s, everything else far less. */
const HUNG_MS = 90_000;

function errorLine(stderr: string): string {
  const lines = stderr.split('\n').filter((l) => l.trim() !== '');
  return lines.findLast((l) => l.startsWith('warden: ')) ?? lines.at(-1) ?? '';
}

export class CliRunner {
  readonly #env: NodeJS.ProcessEnv;
  readonly #live = new Set<LiveCli>();
  #exited = new Set<Promise<void>>();

  constructor(env: NodeJS.ProcessEnv) {
    this.#env = env;
  }

  /** Runs `warden ARGS` to its end. Never rejects: a spawn failure is a result with code null. */
  run(kind: string, args: string[]): Promise<CliResult> {
    const startedAt = Date.now();
    // cwd / : no directory of ours that a session's `--wd` default could pick up.
    const child = spawn(process.execPath, [WARDEN, ...args], { env: this.#env, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
    const entry: LiveCli = { kind, child, killed: false };
    this.#live.add(entry);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr = (stderr + d).slice(-4096)));
    let hung = false;
    const timer = setTimeout(() => {
      hung = true;
      child.kill('SIGKILL');
    }, HUNG_MS);
    const done = new Promise<CliResult>((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        clearTimeout(timer);
        this.#live.delete(entry);
        // A kill that reached a process already exiting changed nothing.
        const killed = entry.killed && signal === 'SIGKILL';
        resolve({ kind, args, code, signal, stdout, stderrTail: errorLine(stderr), killed, hung, startedAt, endedAt: Date.now() });
      };
      // 'close' comes after the pipes are drained, so stdout is complete.
      child.once('close', finish);
      child.once('error', (e) => {
        stderr += `\nspawn failed: ${e.message}`;
        if (child.pid === undefined) finish(null, null);
      });
    });
    const exited = done.then(() => {});
    this.#exited.add(exited);
    void exited.then(() => this.#exited.delete(exited));
    return done;
  }

  /** A random live CLI process, or undefined when none runs. */
  pick(): LiveCli | undefined {
    const alive = [...this.#live].filter((e) => !e.killed && e.child.exitCode === null && e.child.signalCode === null);
    return alive[Math.floor(Math.random() * alive.length)];
  }

  /**
   * SIGKILLs one of ours. ChildProcess.kill() refuses once Node has reaped
   * the child, so this never hits a recycled pid.
   */
  kill(e: LiveCli): boolean {
    e.killed = true;
    return e.child.kill('SIGKILL');
  }

  get liveCount(): number {
    return this.#live.size;
  }

  /** Waits until every CLI process has exited and been reaped. */
  async drain(): Promise<void> {
    while (this.#exited.size > 0) await Promise.all([...this.#exited]);
  }

  /** SIGKILLs every live CLI process (shutdown, SIGINT) and waits for them. */
  async killAll(): Promise<void> {
    for (const e of this.#live) {
      e.killed = true;
      e.child.kill('SIGKILL');
    }
    await this.drain();
  }
}
