// A second real process holding fcntl/flock locks, driven line by line.
// test/c/holder.c is compiled with cc on first use (atomically, since ava
// runs test files in parallel processes).
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { compiled } from './cc.js';
import { createInterface, type Interface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';

export const holderBinary = (): string => compiled('holder');

export type Family = 'ofd' | 'posix' | 'flock';
export type Reply = 'ok' | 'busy' | string;

const live = new Set<Holder>();

export class Holder {
  readonly child: ChildProcessByStdio<Writable, Readable, null>;
  readonly pid: number;
  #lines: Interface;
  #pending: ((line: string) => void)[] = [];
  #exited: Promise<void>;

  private constructor(child: ChildProcessByStdio<Writable, Readable, null>) {
    this.child = child;
    this.pid = child.pid!;
    this.#lines = createInterface({ input: child.stdout });
    this.#lines.on('line', (l) => this.#pending.shift()?.(l));
    this.#exited = new Promise((r) => child.once('exit', () => r()));
    live.add(this);
  }

  static async start(path: string): Promise<Holder> {
    const child = spawn(holderBinary(), [path], { stdio: ['pipe', 'pipe', 'inherit'] });
    const h = new Holder(child);
    const first = await h.#next();
    if (first !== 'ready') throw new Error(`holder did not start: ${first}`);
    return h;
  }

  #next(): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#pending.push(resolve);
      this.#exited.then(() => reject(new Error('holder exited')));
    });
  }

  /** Sends one command and returns its one-line reply. */
  send(cmd: string): Promise<Reply> {
    const p = this.#next();
    this.child.stdin.write(cmd + '\n');
    return p;
  }

  lock(family: Family, kind: 'r' | 'w', start = 0, len = 0): Promise<Reply> {
    return this.send(`lock ${family} ${kind} ${start} ${len}`);
  }

  /** Starts a blocking request; the promise settles when the kernel answers. */
  wait(family: Family, kind: 'r' | 'w', start = 0, len = 0): Promise<Reply> {
    return this.send(`wait ${family} ${kind} ${start} ${len}`);
  }

  unlock(family: Family, start = 0, len = 0): Promise<Reply> {
    return this.send(`unlock ${family} ${start} ${len}`);
  }

  /** SIGKILL, and wait until the process is gone (its locks with it). */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.#exited;
    live.delete(this);
  }

  /** Closes stdin: a clean exit. */
  async stop(): Promise<void> {
    this.child.stdin.end();
    await this.#exited;
    live.delete(this);
  }
}

/** Kills every holder still alive (afterEach.always). */
export async function killAllHolders(): Promise<void> {
  await Promise.all([...live].map((h) => h.kill()));
}

export function liveHolders(): number {
  return live.size;
}
