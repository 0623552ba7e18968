// The soak's supervisor: started by the soak (so the soak knows what to stop),
// killed with SIGKILL now and then and started again (re-adoption under
// load), stopped with SIGTERM at the end, whichever one is running then.
import type { ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectSupervisor } from '../../src/supervisor/index.js';
import { spawnSupervisor } from '../procs.js';
import { alive, type Setup } from './setup.js';

export interface Status {
  pid: number;
  held: string[];
  fds: { total: number; files: number; sockets: number };
  rssBytes: number;
  eventLoopDelay: { maxMs: number };
}

/** [killedAt, runningAgainAt] of each supervisor kill: requests in flight then may fail for that reason alone. */
export type Outage = [number, number];

export class SoakSupervisor {
  readonly #s: Setup;
  /** The one we started, while it is the one running. */
  #child: ChildProcess | undefined;
  #starts = 0;
  readonly outages: Outage[] = [];
  /** When the kill in progress began (undefined while none is). */
  #killing: number | undefined;
  /** Pids of every supervisor seen running (ours, or one a `warden begin` started). */
  readonly pids = new Set<number>();

  constructor(s: Setup) {
    this.#s = s;
  }

  /** Log files of every supervisor: the ones the soak started, and supervisor.log of one a `warden begin` started. */
  get logs(): string[] {
    return Array.from({ length: this.#starts }, (_, i) => join(this.#s.tmp, `supervisor-${i + 1}.log`)).concat(join(this.#s.stateDir, 'supervisor.log')).filter((p) => existsSync(p));
  }

  /**
   * Starts `warden supervise` and waits for READY on fd 3. When a `warden
   * begin` started one meanwhile (it does when it finds none listening), that
   * one is adopted: the newcomer exits 5 on supervisor.lock.
   */
  async start(): Promise<number> {
    const logPath = join(this.#s.tmp, `supervisor-${++this.#starts}.log`);
    const { child, ready } = await spawnSupervisor(this.#s.env, logPath);
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    if (ready) {
      this.#child = child;
      this.pids.add(child.pid!);
      return child.pid!;
    }
    await exited;
    this.#child = undefined;
    const running = await this.status();
    if (running) {
      this.pids.add(running.pid);
      return running.pid;
    }
    throw new Error(`the supervisor did not start: ${readFileSync(logPath, 'utf8').trim().split('\n').slice(-3).join(' | ')}`);
  }

  /** `status` on the socket; undefined when no supervisor answers within `timeoutMs`. */
  async status(timeoutMs = 5_000): Promise<Status | undefined> {
    let client;
    try {
      client = await connectSupervisor(this.#s.stateDir);
    } catch {
      return undefined;
    }
    if (!client) return undefined;
    const timer = setTimeout(() => client.close(), timeoutMs);
    try {
      return (await client.request({ op: 'status' })) as unknown as Status;
    } catch {
      return undefined;
    } finally {
      clearTimeout(timer);
      client.close();
    }
  }

  /** The pid of the supervisor running now: ours if it still runs, else whichever answers on the socket. */
  async currentPid(): Promise<number | undefined> {
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) return this.#child.pid;
    return (await this.status())?.pid;
  }

  /** SIGKILLs the running supervisor and starts a new one, recording the outage. */
  async killAndRestart(): Promise<void> {
    const pid = await this.currentPid();
    const killedAt = Date.now();
    this.#killing = killedAt;
    if (pid !== undefined) await this.#signalAndWait(pid, 'SIGKILL', 10_000);
    try {
      await this.start();
    } finally {
      this.outages.push([killedAt, Date.now()]);
      this.#killing = undefined;
    }
  }

  /**
   * Whether a supervisor kill overlapped [from, to], widened by `graceMs`
   * after the restart: the new supervisor re-adopts the stale sessions of
   * the old one, and requests racing that re-adoption may be refused.
   */
  outageDuring(from: number, to: number, graceMs = 2_000): boolean {
    if (this.#killing !== undefined && to >= this.#killing) return true;
    return this.outages.some(([a, b]) => from <= b + graceMs && to >= a);
  }

  /** SIGTERM to whichever supervisor runs, and wait for it (SIGKILL after `graceMs`). */
  async stop(graceMs = 60_000): Promise<void> {
    const pid = await this.currentPid();
    if (pid !== undefined) await this.#signalAndWait(pid, 'SIGTERM', graceMs);
    // One we started and that died on its own still needs reaping.
    if (this.#child && this.#child.exitCode === null && this.#child.signalCode === null) await this.#signalAndWait(this.#child.pid!, 'SIGKILL', 10_000);
    this.#child = undefined;
  }

  async #signalAndWait(pid: number, sig: NodeJS.Signals, graceMs: number): Promise<void> {
    const ours = this.#child?.pid === pid ? this.#child : undefined;
    const reaped = ours ? new Promise<void>((resolve) => (ours.exitCode !== null || ours.signalCode !== null ? resolve() : ours.once('exit', () => resolve()))) : undefined;
    try {
      process.kill(pid, sig);
    } catch {
      // already gone
    }
    const deadline = Date.now() + graceMs;
    // Not our child (a `warden begin` started it): all we can do is watch /proc.
    while (alive(pid)) {
      if (Date.now() > deadline) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await reaped;
    if (ours) this.#child = undefined;
  }
}
