// The public facade (piscina's shape): a small Warden class over a private
// engine. The engine owns everything this handle makes — sessions it holds,
// watches, operations under way — and close() takes all of it down, then
// the worker pools once the last handle in the process is closed, so that
// the process exits on its own.
import type { ChrootDef } from '../config/index.js';
import { chrootOf, hooksDirOf, hookTimeoutMsOf, loadContext, sharedChrootsOf, type Context } from '../config/index.js';
import { shutdownWaitPool } from '../locks/index.js';
import {
  beginSession,
  endSession,
  ensureStateDir,
  enterSource,
  fromChildProcess,
  listSessions,
  openSession,
  recoverAll,
  recoverSession,
  SessionBusyError,
  watchSessions,
  type RecoverReport,
  type Recovered,
  type SessionEvent,
  type SessionWatch,
  type SourceEntry,
} from '../sessions/index.js';
import { shutdownRemovalPool, TreeInUseError, UnmountBusyError } from '../union/index.js';
import { CommandStdio, runToEnd, type CommandResult } from './command.js';
import { SessionLeftError, WardenClosedError } from './errors.js';
import { commandOf, runIn, Session, type EndOptions, type SessionOwnerHooks } from './session.js';
import { describeChroot, describeSessions, lockWaitReporter, type ChrootInfo, type SessionInfo } from './describe.js';
import type { AutoRunOptions, BeginOptions, OpenOptions, RecoverOptions, SourceOptions, SourceResult, Watch, WatchOptions } from './options.js';

export type { AutoRunOptions, BeginOptions, LockWait, OpenOptions, RecoverOptions, SourceOptions, SourceResult, WaitOptions, Watch, WatchOptions } from './options.js';

/** Handles open in this process: the worker pools are shared and go when the last one closes. */
let openHandles = 0;

class Engine implements SessionOwnerHooks {
  readonly ctx: Context;
  readonly stateDir: string;
  readonly #closing = new AbortController();
  readonly held = new Set<Session>();
  readonly #heldIds = new Set<string>();
  readonly watches = new Set<SessionWatch>();
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed: Promise<void> | undefined;

  constructor(ctx: Context) {
    this.ctx = ctx;
    this.stateDir = ctx.stateDir;
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  signal(what: string, signal: AbortSignal | undefined): AbortSignal {
    if (this.#closed) throw new WardenClosedError(what);
    // An already-aborted signal rejects at once, before anything is touched.
    signal?.throwIfAborted();
    return signal ? AbortSignal.any([signal, this.#closing.signal]) : this.#closing.signal;
  }

  track<T>(p: Promise<T>): Promise<T> {
    this.#inFlight.add(p);
    const done = () => this.#inFlight.delete(p);
    p.then(done, done);
    return p;
  }

  hold(s: Session): Session {
    this.held.add(s);
    this.#heldIds.add(s.id);
    return s;
  }

  forget(s: Session): void {
    this.held.delete(s);
    this.#heldIds.delete(s.id);
  }

  heldId(id: string): boolean {
    return this.#heldIds.has(id);
  }

  chroot(name: string): ChrootDef {
    return chrootOf(this.ctx, name);
  }

  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    // Reject first, then tear down (piscina): waits under way are cancelled
    // and roll back; commands under way get SIGTERM.
    this.#closing.abort(new WardenClosedError('warden.close()'));
    await Promise.allSettled([...this.#inFlight]);
    await Promise.allSettled([...this.watches].map((w) => w.close()));
    for (const s of [...this.held]) s.release();
    if (--openHandles === 0) await Promise.allSettled([shutdownWaitPool(), shutdownRemovalPool()]);
  }
}

export class Warden {
  readonly #engine: Engine;

  /** Internal: use openWarden(). */
  constructor(engine: Engine) {
    this.#engine = engine;
  }

  /** The state dir this handle works in. */
  get stateDir(): string {
    return this.#engine.stateDir;
  }

  /** Begins a session of `chroot` (name or alias), held by this process until end(), release() or close(). */
  async begin(chroot: string, o: BeginOptions = {}): Promise<Session> {
    const e = this.#engine;
    const signal = e.signal(`begin of chroot ${chroot}`, o.signal);
    const def = e.chroot(chroot);
    const held = await e.track(
      beginSession({ stateDir: e.stateDir, chroot: def, id: o.id, hooksDir: hooksDirOf(e.ctx, def), hookTimeoutMs: hookTimeoutMsOf(e.ctx, def), signal, timeout: o.timeout, wait: o.wait, onWait: lockWaitReporter(o.onWait) }),
    );
    return e.hold(new Session(held, e));
  }

  /**
   * An automatic session, as `warden run -c`: begins it, runs `argv`, ends
   * it. Resolves to the command's result; rejects with SessionLeftError
   * (carrying the result) when processes the command left behind still
   * hold the session: it is left for end, as the CLI leaves it.
   */
  async run(chroot: string, argv: readonly string[], o: AutoRunOptions = {}): Promise<CommandResult> {
    const e = this.#engine;
    const signal = e.signal(`run in chroot ${chroot}`, o.signal);
    const def = e.chroot(chroot);
    const held = await e.track(
      beginSession({ stateDir: e.stateDir, chroot: def, id: o.id, hooksDir: hooksDirOf(e.ctx, def), hookTimeoutMs: hookTimeoutMsOf(e.ctx, def), signal, timeout: o.timeout, wait: o.wait, onWait: lockWaitReporter(o.onWait) }),
    );
    return e.track(
      (async () => {
        let result: CommandResult;
        try {
          result = await runIn(held, argv, o, signal);
        } catch (err) {
          // The command never ran, or was stopped: the session still ends.
          await endSession(held).catch(() => held.release());
          throw err;
        }
        try {
          // Not cut short by the caller's signal: the mounts would stay.
          await endSession(held);
        } catch (err) {
          held.release();
          if (err instanceof SessionBusyError || err instanceof UnmountBusyError || err instanceof TreeInUseError) throw new SessionLeftError(held.id, result, err);
          throw err;
        }
        return result;
      })(),
    );
  }

  /** Enters the source of `chroot` exclusively (as `warden source`), runs `argv` in it, and lets it go once the command is done. */
  async enterSource(chroot: string, argv: readonly string[], o: SourceOptions = {}): Promise<SourceResult> {
    const e = this.#engine;
    const signal = e.signal(`source entry of chroot ${chroot}`, o.signal);
    const def = e.chroot(chroot);
    const stdio = new CommandStdio(o.stdio, o.user);
    let entry: SourceEntry;
    try {
      // The command is started (held at a gate) while the entry waits.
      entry = await e.track(
        enterSource({ stateDir: e.stateDir, chroot: def, recoverStale: o.recoverStale, signal, timeout: o.timeout, wait: o.wait, onWait: lockWaitReporter(o.onWait), command: commandOf(argv, o, stdio) }),
      );
    } catch (err) {
      stdio.close();
      throw err;
    }
    const child = entry.child!;
    try {
      const result = await e.track(runToEnd(() => fromChildProcess(child), entry, stdio, signal));
      return { ...result, recovered: entry.recovered };
    } finally {
      // A shared chroot's entry lets its locks go a moment after the command (SourceEntry.close).
      entry.close();
      await entry.released;
    }
  }

  /**
   * Re-adopts (or with `end`, ends) stale sessions: one (`id`) or `all`.
   * One report per entry dealt with; for `id`, a failure rejects (as
   * `warden recover -s`), for `all` it is reported and the rest go on.
   * Re-adopted sessions are left stale but consistent (mounted, runnable).
   */
  async recover(o: RecoverOptions): Promise<RecoverReport[]> {
    const e = this.#engine;
    if ((o.id === undefined) === (o.all !== true)) throw new TypeError('recover: give exactly one of id or all');
    const signal = e.signal('recover', o.signal);
    const common = { stateDir: e.stateDir, end: o.end === true, signal, timeout: o.timeout, wait: o.wait, onWait: lockWaitReporter(o.onWait) };
    if (o.all) return e.track(recoverAll({ ...common, sharedChroots: sharedChrootsOf(e.ctx) }));
    const one = await e.track(recoverSession({ ...common, id: o.id! }));
    if (one.action === 'readopted') one.session.release();
    return [toReport(one)];
  }

  /**
   * Ends session `id` of the state dir, as `warden end -s`: one this handle
   * holds (as its Session's end()), or one begun elsewhere (another
   * process, the CLI) that nothing else holds, or, with `wait` or `force`,
   * whose holders let go or are killed. SessionNotFoundError when there is
   * none.
   */
  async end(id: string, o: EndOptions = {}): Promise<void> {
    const e = this.#engine;
    const signal = e.signal(`end of session ${id}`, o.signal);
    const mine = [...e.held].find((s) => s.id === id);
    if (mine) return mine.end({ ...o, signal });
    const session = openSession(e.stateDir, id);
    await e.track(endSession(session, { wait: o.wait, force: o.force, timeout: o.timeout, signal, onWait: lockWaitReporter(o.onWait) }));
  }

  /** The configured chroots and the sessions of the state dir (those this handle holds are active). */
  async list(): Promise<{ chroots: ChrootInfo[]; sessions: SessionInfo[] }> {
    const e = this.#engine;
    e.signal('list', undefined);
    const chroots = [...e.ctx.config.chroots.values()].map(describeChroot);
    const sessions = describeSessions(listSessions(e.stateDir), e.stateDir, (id) => e.heldId(id));
    return { chroots, sessions };
  }

  /** Calls `onEvent` for every change of the state dir's sessions (begun, ended, stale, recovered, corrupt) until close(). */
  watch(onEvent: (event: SessionEvent) => void, o: WatchOptions = {}): Watch {
    const e = this.#engine;
    e.signal('watch', undefined);
    const w = watchSessions(ensureStateDir(e.stateDir), { onEvent, onError: o.onError, heldByCaller: (id) => e.heldId(id) });
    e.watches.add(w);
    let closed: Promise<void> | undefined;
    return {
      ready: w.ready,
      close: () => (closed ??= w.close().finally(() => e.watches.delete(w))),
    };
  }

  /**
   * Cancels what is under way (waits roll back, commands get SIGTERM),
   * closes the watches, releases the sessions still held (they go stale:
   * `recover` re-adopts or ends them) and, with the last handle of the
   * process, stops warden's worker threads. Idempotent: the same promise.
   */
  close(): Promise<void> {
    return this.#engine.close();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Opens warden as the CLI would: the same configuration and state dir lookup. */
export async function openWarden(o: OpenOptions = {}): Promise<Warden> {
  const ctx = loadContext({ config: o.config, stateDir: o.stateDir });
  openHandles++;
  return new Warden(new Engine(ctx));
}

function toReport(r: Recovered): RecoverReport {
  return r.action === 'ended'
    ? { id: r.id, outcome: 'ended', killedHooks: r.killedHooks }
    : { id: r.id, outcome: 'readopted', remounted: r.remounted, phases: r.phases, killedHooks: r.killedHooks };
}
