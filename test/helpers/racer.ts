// The attacker of the removal tests: test/c/racer.c, compiled with cc on
// first use (atomically, as holder.ts does), started as a real process that
// swaps a directory for a symbolic link in a tight loop until stopped.
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { compiled } from './cc.js';

export const racerBinary = (): string => compiled('racer');

export class Racer {
  readonly #child: ChildProcessByStdio<null, Readable, null>;
  readonly #lines: AsyncIterator<string>;
  readonly #exited: Promise<unknown>;

  private constructor(child: ChildProcessByStdio<null, Readable, null>) {
    this.#child = child;
    this.#lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    this.#exited = new Promise((resolve) => child.once('exit', resolve));
  }

  /**
   * Swaps `<dir>/<entry>/<sub>` (every entry of `dir` whose name contains
   * `match`) for a link to `target`, keeping the directory at `<stash>.N`
   * meanwhile (outside the tree, same filesystem); resolves once it runs.
   */
  static async start(dir: string, match: string, sub: string, target: string, stash: string): Promise<Racer> {
    const r = new Racer(spawn(racerBinary(), [dir, match, sub, target, stash], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const first = await r.#lines.next();
    if (first.value !== 'ready') {
      await r.stop().catch(() => {});
      throw new Error(`racer did not start: ${String(first.value)}`);
    }
    return r;
  }

  /** Stops it (SIGTERM) and resolves with how many times it put the link in place; idempotent. */
  async stop(): Promise<number> {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGTERM');
    const line = await this.#lines.next();
    await this.#exited;
    return Number(line.value ?? 0);
  }
}
