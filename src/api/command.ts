// A command started for a library caller: its stdio (inherit, pipe, ignore)
// as fds for the sessions layer, its status awaited, its output collected,
// and an AbortSignal that stops it. No pty and no signal forwarding: those
// are the CLI's (src/cli/command.ts), which owns a terminal; a library
// caller owns only its own fds.
import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { isCaller } from '../config/index.js';
import { isTerminal, makePipe, RunError, type Command, type CommandLocks } from '../sessions/index.js';


export type StdioMode = 'inherit' | 'pipe' | 'ignore';

export interface CommandResult {
  /** The exit code, or 128+N for death by signal N (the shell's convention, as `warden run`). */
  status: number;
  /** With `stdio: 'pipe'`: everything the command wrote, decoded as UTF-8. */
  stdout?: string;
  stderr?: string;
}

/** The fds of one command's stdio, and what this process keeps of them. */
export class CommandStdio {
  readonly fds: [number, number, number];
  readonly mode: StdioMode;
  /** The command's ends (passed to it): closed here once it has its copies. */
  #theirs: number[] = [];
  /** Our read ends, as sockets (libuv reads a pipe without a thread). */
  #readers: Socket[] = [];
  #chunks: [Buffer[], Buffer[]] = [[], []];
  #drained: Promise<void>[] = [];

  /**
   * `user`: the -u the command runs as (undefined: this process's user). A
   * command run as another user never gets a terminal of this process's
   * (it could push input into it with TIOCSTI, or read what is typed there
   * later): the CLI gives such a command a pty of its own; the library has
   * none to give, so it refuses, with RunError, to pass a terminal through.
   */
  constructor(mode: StdioMode = 'inherit', user?: string) {
    this.mode = mode;
    if (mode === 'inherit') {
      if (!isCaller({ uid: process.getuid!() }, user) && [0, 1, 2].some((fd) => isTerminal(fd))) {
        throw new RunError(
          `stdio 'inherit' would give this process's terminal to a command run as ${JSON.stringify(user)}: use stdio 'pipe' or 'ignore', or the warden command, which gives it a pty of its own`,
        );
      }
      this.fds = [0, 1, 2];
      return;
    }
    try {
      // stdin is /dev/null for both: a collected command reads nothing of ours.
      const nul = openSync('/dev/null', 'r+');
      this.#theirs.push(nul);
      if (mode === 'ignore') {
        this.fds = [nul, nul, nul];
        return;
      }
      const ends: number[] = [];
      for (const i of [0, 1] as const) {
        const [r, w] = makePipe();
        this.#theirs.push(w);
        const sock = new Socket({ fd: r, readable: true, writable: false });
        this.#readers.push(sock);
        sock.on('data', (b: Buffer) => this.#chunks[i].push(b));
        this.#drained.push(new Promise((resolve) => sock.once('close', () => resolve())));
        ends.push(w);
      }
      this.fds = [nul, ends[0]!, ends[1]!];
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** The command has its copies: ours go, so that EOF comes when it (and what it started) closes them. Idempotent. */
  releaseTheirs(): void {
    for (const fd of this.#theirs.splice(0)) closeSync(fd);
  }

  /** Releases everything (after a failed start: the readers too). Idempotent. */
  close(): void {
    this.releaseTheirs();
    for (const s of this.#readers.splice(0)) s.destroy();
  }

  /** After the command: the collected output (waits for EOF: a background process that kept the pipe delays it). */
  async result(status: number): Promise<CommandResult> {
    this.releaseTheirs();
    if (this.mode !== 'pipe') return { status };
    await Promise.all(this.#drained);
    const [out, err] = this.#chunks.map((c) => Buffer.concat(c).toString('utf8'));
    return { status, stdout: out!, stderr: err! };
  }
}

/**
 * Starts the command through `start`, waits for it, closes `locks` (ours;
 * the command keeps its inherited copies in OFD mode) and `stdio`. An abort
 * of `signal` sends SIGTERM to the command's process group; the call then
 * rejects with the signal's reason once the command has exited.
 */
export async function runToEnd(start: () => Command, locks: CommandLocks, stdio: CommandStdio, signal: AbortSignal | undefined): Promise<CommandResult> {
  let child: Command;
  try {
    signal?.throwIfAborted();
    child = start();
  } catch (e) {
    locks.close();
    stdio.close();
    throw e;
  }
  const stop = () => child.kill('SIGTERM', true);
  signal?.addEventListener('abort', stop, { once: true });
  try {
    await child.spawned;
    stdio.releaseTheirs();
    if (locks.inherited) locks.close();
    const status = await child.exited;
    const result = await stdio.result(status);
    signal?.throwIfAborted();
    return result;
  } finally {
    signal?.removeEventListener('abort', stop);
    locks.close();
    stdio.close();
  }
}
