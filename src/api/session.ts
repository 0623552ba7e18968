// A session begun through a Warden handle and held by this process (its
// liveness and source locks) until end() or release(), or the handle's
// close(), which releases it: it then goes stale, and `recover` (or
// `end`) deals with it as with the session of a process that died.
import { assertRunnable, endSession, spawnInSession, type Session as Held } from '../sessions/index.js';
import { CommandStdio, runToEnd, type CommandResult, type StdioMode } from './command.js';
import { WardenClosedError } from './errors.js';
import { lockWaitReporter } from './describe.js';
import type { LockWait } from './options.js';

export interface RunOptions {
  /** Run as this user (name or uid, from the host's /etc/passwd); default: this process's. */
  user?: string;
  /** Working directory inside the session (absolute); default: this process's cwd when it exists there, else `/`. */
  directory?: string;
  /**
   * The command's environment, minus schroot's filter of dangerous
   * variables (as `-p` keeps the caller's). Default: the minimal one
   * `warden run` gives (TERM of this process's, HOME, USER, LOGNAME, PATH).
   */
  env?: NodeJS.ProcessEnv;
  /** inherit (default): this process's fds 0-2; pipe: stdout and stderr collected as strings; ignore: /dev/null. stdin is /dev/null unless inherited. */
  stdio?: StdioMode;
  /** Stops the command (SIGTERM to its process group); the call rejects with the reason once it has exited. */
  signal?: AbortSignal;
}

export interface EndOptions {
  /** Wait for other holders (processes the session's commands left behind) to let go. */
  wait?: boolean;
  /** Kill other holders (SIGTERM, then SIGKILL). */
  force?: boolean;
  signal?: AbortSignal;
  /** ms; for the wait of `wait`. */
  timeout?: number;
  /** Called when the wait of `wait` begins, and again when what it waits for changes. */
  onWait?: (wait: LockWait) => void;
}

/** What a Session needs of its Warden: cancellation and bookkeeping. */
export interface SessionOwnerHooks {
  /** The caller's signal joined with the handle's own (aborted by close()); throws once closed. */
  signal(what: string, signal: AbortSignal | undefined): AbortSignal;
  track<T>(p: Promise<T>): Promise<T>;
  forget(session: Session): void;
}

export type HandleState = 'held' | 'released' | 'ended';

export class Session {
  readonly #held: Held;
  readonly #owner: SessionOwnerHooks;
  #state: HandleState = 'held';

  /** Internal: made by Warden.begin. */
  constructor(held: Held, owner: SessionOwnerHooks) {
    this.#held = held;
    this.#owner = owner;
  }

  get id(): string {
    return this.#held.id;
  }

  get chroot(): string {
    return this.#held.state.chroot;
  }

  /** Where the session's view is mounted (its `/`). */
  get root(): string {
    return this.#held.paths.root;
  }

  /** held: this process holds it; released: let go (stale unless someone else holds it); ended: gone. */
  get state(): HandleState {
    return this.#state;
  }

  /** Runs `argv` in the session and resolves to its status (128+N for signal N), with its output for `stdio: 'pipe'`. */
  async run(argv: readonly string[], o: RunOptions = {}): Promise<CommandResult> {
    const signal = this.#owner.signal(`run in session ${this.id}`, o.signal);
    this.#assertHeld('run');
    return this.#owner.track(runIn(this.#held, argv, o, signal));
  }

  /**
   * Ends the session (hooks, unmount, delete). Throws SessionBusyError while
   * other processes hold it (unless `wait` or `force`); it stays held then.
   */
  async end(o: EndOptions = {}): Promise<void> {
    const signal = this.#owner.signal(`end of session ${this.id}`, o.signal);
    this.#assertHeld('end');
    await this.#owner.track(endSession(this.#held, { wait: o.wait, force: o.force, timeout: o.timeout, signal, onWait: lockWaitReporter(o.onWait) }));
    this.#state = 'ended';
    this.#owner.forget(this);
  }

  /** Stops holding the session without ending it: it goes stale (see `recover`). Idempotent. */
  release(): void {
    if (this.#state !== 'held') return;
    this.#held.release();
    this.#state = 'released';
    this.#owner.forget(this);
  }

  #assertHeld(what: string): void {
    if (this.#state !== 'held') throw new WardenClosedError(`${what} in session ${this.id}: the session was ${this.#state} through this handle`);
  }
}

/** Runs `argv` in a session this process holds (beside a Session handle: an automatic run uses it too). */
export async function runIn(held: Held, argv: readonly string[], o: RunOptions, signal: AbortSignal): Promise<CommandResult> {
  signal.throwIfAborted();
  const locks = await held.commandLocks();
  let stdio: CommandStdio;
  try {
    assertRunnable(held);
    stdio = new CommandStdio(o.stdio, o.user);
  } catch (e) {
    locks.close();
    throw e;
  }
  const cmd = commandOf(argv, o, stdio);
  return runToEnd(() => spawnInSession(held, locks, cmd), locks, stdio, signal);
}

export function commandOf(argv: readonly string[], o: RunOptions, stdio: CommandStdio) {
  return {
    command: [...argv],
    user: o.user,
    directory: o.directory,
    env: o.env,
    preserveEnvironment: o.env !== undefined,
    stdio: stdio.fds,
  };
}
