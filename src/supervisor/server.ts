// The supervisor: one long-running process per state dir that holds
// persistent sessions between runs (their liveness and source locks, through
// the same Session objects `warden run` uses), serves begin/end requests on
// a unix socket (JSON lines) and brokers the calls of the relay (broker.ts);
// acceptor.ts is its front door. Lock waits run in worker threads, so while
// one client's begin waits behind a source entry every other client is
// served at once.
//
// One supervisor per state dir: it holds `supervisor.lock` exclusively for
// its whole life; the socket is unlinked and re-created only under that
// lock. On start it re-adopts every stale session (a previous supervisor's,
// or any crashed holder's), and while it runs it watches the state dir and
// re-adopts sessions that go stale, so nothing is silently lost.
import { existsSync, readdirSync, readlinkSync } from 'node:fs';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { join } from 'node:path';
import { accessToSource, authorize, type ChrootDef, type Credentials } from '../config/index.js';
import { FileLock } from '../locks/index.js';
import {
  beginSession,
  endSession,
  ensureStateDir,
  enterSource,
  newId,
  SessionExistsError,
  SessionNotFoundError,
  validateId,
  openSession,
  recoverAll,
  recoverSession,
  removeUnpublished,
  SessionBusyError,
  watchSessions,
  type Session,
  type SessionEvent,
  type SessionWatch,
  type WaitInfo,
} from '../sessions/index.js';
import { Acceptor, unlinkQuiet } from './acceptor.js';
import { serveRelay, type BrokerHost, type RelayCalls, type RelayedCall, type SourceSession } from './broker.js';
import { serveConnection, type ConnectionOptions } from './connection.js';
import { SessionAccessError, SupervisorRunningError, SupervisorStoppingError } from './errors.js';
import { QuietLog, resolveLimits, type SupervisorLimits } from './limits.js';
import { assertSessionOwner } from './owner.js';
import { SUPERVISOR_LOCK, SUPERVISOR_SOCKET } from './paths.js';
import { parseRequest, ProtocolError, PROTOCOL_VERSION, wireError, type Reply, type Request } from './protocol.js';


/** What a begin needs to know about a chroot, read from the configuration as it is now. */
export interface BeginSpec {
  chroot: ChrootDef;
  hooksDir: string;
  hookTimeoutMs: number;
}

export interface SupervisorOptions {
  stateDir: string;
  /** The chroot `name` (or alias) for a begin; throws (ConfigError, NoSuchChrootError) to refuse it. */
  resolveChroot: (name: string) => BeginSpec;
  /** One line per thing the supervisor did or refused (the library never prints). */
  log: (line: string) => void;
  /** End held sessions on close instead of leaving them stale for the next supervisor. */
  endSessionsOnExit?: boolean;
  /** Liveness probe interval of the state-dir watch (default 500 ms). */
  probeMs?: number;
  /** Log every event of the state-dir watch with its CLOCK_MONOTONIC time in ns (bench/watch.ts measures with it). */
  traceWatch?: boolean;
  /**
   * A gid whose members may connect (socket mode 0660, group `socketGid`);
   * default: root only (0600). Who may then do what is decided per request
   * from the peer's credentials and the chroot's access lists.
   */
  socketGid?: number;
  /**
   * Bounds on clients (limits.ts): connections per non-root uid and in
   * total, idle time, unread reply bytes and queued requests per
   * connection. Unset fields take the defaults; root is never counted.
   */
  limits?: Partial<SupervisorLimits>;
  /** The CLI's parser and messages for the calls of the relay (broker.ts). */
  relayCalls: RelayCalls;
  /**
   * A listening socket to serve instead of creating `supervisor.sock`
   * (socket activation: sd_listen_fds(3)'s fd 3). Its path, mode and
   * group are systemd's.
   */
  listenFd?: number;
}

export interface Supervisor {
  readonly stateDir: string;
  readonly socketPath: string;
  /** Ids of the sessions this supervisor holds. */
  held(): string[];
  /**
   * Stops taking requests, cancels lock waits in flight, lets the rest
   * finish, then lets go of (or ends) the held sessions, removes the socket
   * and releases supervisor.lock. Idempotent: the same promise every time.
   */
  close(): Promise<void>;
}

/** Starts a supervisor on `o.stateDir`; resolves once it re-adopted stale sessions and listens. */
export async function startSupervisor(o: SupervisorOptions): Promise<Supervisor> {
  const engine = new Engine(o);
  await engine.start();
  return engine.facade();
}

/** A request being served: cancelled when its client goes away or the supervisor stops. */
interface InFlight {
  abort: AbortController;
  done: Promise<void>;
}

class Engine {
  readonly #o: SupervisorOptions;
  readonly #stateDir: string;
  readonly #socketPath: string;
  readonly #held = new Map<string, Session>();
  /** Ids some request or adoption is working on: a second one is refused, not interleaved. */
  readonly #busy = new Set<string>();
  readonly #inFlight = new Set<InFlight>();
  readonly #limits: SupervisorLimits;
  /** Refusals, accept failures and repeated watch errors: one line per kind per minute. */
  readonly #quiet: QuietLog;
  #connOpts: ConnectionOptions | undefined;
  /** RLIMIT_NOFILE at start. */
  readonly #nofile: number;
  /** Requests waiting for their turn to start (see #turn). */
  readonly #starts: (() => void)[] = [];
  #lock: FileLock | undefined;
  /** Event-loop delay, reported (and reset) by `status`: the proof that lock waits never block the loop. */
  readonly #lag: IntervalHistogram = monitorEventLoopDelay({ resolution: 10 });
  /** The socket and the connections until they are served. */
  #acceptor: Acceptor | undefined;
  #broker: BrokerHost | undefined;
  /** Persistent source sessions (schroot's `-b -c source:NAME`), by id. */
  readonly #sourceSessions = new Map<string, SourceSession>();
  #watch: SessionWatch | undefined;
  /** Adoptions of sessions seen going stale, one at a time. */
  #adopting: Promise<void> = Promise.resolve();
  /** The sweep of dead processes' leftovers, started once serving. */
  #sweeping: Promise<void> = Promise.resolve();
  #stopping = false;
  /** Aborted when the supervisor stops: cancels the lock waits of adoptions. */
  readonly #stop = new AbortController();
  #closing: Promise<void> | undefined;

  constructor(o: SupervisorOptions) {
    this.#o = o;
    this.#stateDir = ensureStateDir(o.stateDir);
    this.#socketPath = join(this.#stateDir, SUPERVISOR_SOCKET);
    const { limits, nofile, notes } = resolveLimits(o.limits);
    this.#limits = limits;
    this.#nofile = nofile;
    this.#quiet = new QuietLog((line) => this.#log(line));
    for (const n of notes) this.#log(n);
  }

  facade(): Supervisor {
    return {
      stateDir: this.#stateDir,
      socketPath: this.#socketPath,
      held: () => [...this.#held.keys()].sort(),
      close: () => this.close(),
    };
  }

  async start(): Promise<void> {
    const lock = FileLock.open(join(this.#stateDir, SUPERVISOR_LOCK), { fileMode: 0o600 });
    try {
      if (!lock.tryAcquire('exclusive')) throw new SupervisorRunningError(this.#stateDir, lock.holders()[0]?.pid);
    } catch (e) {
      lock.close();
      throw e;
    }
    this.#lock = lock;
    this.#lag.enable();
    try {
      await this.#adoptAll();
      this.#acceptor = new Acceptor({
        socketPath: this.#socketPath,
        listenFd: this.#o.listenFd,
        socketGid: this.#o.socketGid,
        limits: this.#limits,
        nofile: this.#nofile,
        quiet: this.#quiet,
        stopping: () => this.#stopping,
        serveJson: (c, who) => serveConnection(c, who, this.#connectionOptions(), () => {}),
        serveRelay: (c, fd, who, waiter) => serveRelay(c, fd, who, this.#brokerHost(), waiter, this.#limits.idleMs),
      });
      await this.#acceptor.listen();
      this.#watch = watchSessions(this.#stateDir, {
        probeMs: this.#o.probeMs,
        heldByCaller: (id) => this.#held.has(id),
        onEvent: (e) => this.#onEvent(e),
        onError: (e) => this.#quiet.note(`watch:${(e as NodeJS.ErrnoException).code ?? e.message}`, `watch: ${e.message}`),
      });
      await this.#watch.ready;
      this.#sweeping = this.#sweep();
    } catch (e) {
      await this.close();
      throw e;
    }
    const l = this.#limits;
    this.#log(
      `supervising ${this.#stateDir} (pid ${process.pid}, ${this.#held.size} session(s) held, socket ${this.#socketPath}; ` +
        `limits: ${l.connectionsPerUser} connections per user, ${l.connections} in all, idle ${l.idleMs / 1000} s, ` +
        `${l.replyBufferBytes} reply bytes and ${l.queuedRequests} queued requests per connection)`,
    );
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#stopping = true;
    this.#stop.abort(new SupervisorStoppingError());
    const acceptor = this.#acceptor;
    const listening = acceptor ? acceptor.stopListening() : Promise.resolve(false);
    // Waits are cancelled; work past its waits (hooks, mounts) completes.
    for (const f of this.#inFlight) f.abort.abort(new SupervisorStoppingError());
    await Promise.allSettled([...this.#inFlight].map((f) => f.done));
    await this.#adopting;
    await this.#sweeping;
    await acceptor?.destroyClients();
    const listened = await listening;
    await this.#watch?.close();
    this.#lag.disable();
    for (const [id, src] of this.#sourceSessions) {
      src.entry.close();
      this.#log(`let go of source session ${id} on exit`);
    }
    this.#sourceSessions.clear();
    for (const [id, session] of [...this.#held]) {
      if (this.#o.endSessionsOnExit) {
        try {
          await endSession(session, { offThread: true });
          this.#log(`ended ${id} on exit`);
        } catch (e) {
          session.release();
          this.#log(`could not end ${id} on exit (left stale): ${(e as Error).message}`);
        }
      } else {
        session.release();
      }
      this.#held.delete(id);
    }
    if (this.#lock) {
      // Only the holder of supervisor.lock removes the socket; systemd's stays for the next activation.
      if (listened && !acceptor!.activated) unlinkQuiet(this.#socketPath);
      this.#lock.close();
      this.#lock = undefined;
    }
  }

  /** The caller's log, which must not be able to end the supervisor either. */
  #log(line: string): void {
    try {
      this.#o.log(line);
    } catch {
      // a log that fails (stderr gone) has nowhere to report it
    }
  }

  // --- adoption ----------------------------------------------------------------

  /**
   * At start: every stale session re-adopted and held (recover --all's
   * rules and its single scan for stray hooks), corrupt entries reported,
   * dead begins' build dirs removed.
   */
  async #adoptAll(): Promise<void> {
    const reports = await recoverAll({
      stateDir: this.#stateDir,
      signal: this.#stop.signal,
      sweep: false,
      keep: (session) => {
        if (this.#stopping) return false;
        this.#held.set(session.id, session);
        return true;
      },
    });
    for (const r of reports) {
      if (r.outcome === 'readopted') this.#log(readopted(r.id, r.remounted, r.killedHooks.length));
      else if (r.outcome === 'ended') this.#log(endedStale(r.id));
      else if (r.outcome === 'corrupt') this.#log(`corrupt entry ${r.id} left alone: ${r.reason}`);
      else if (r.outcome === 'failed') this.#log(`could not re-adopt stale session ${r.id}: ${(r.error as Error).message}`);
    }
  }

  /**
   * Once serving: the build dirs of dead begins and the `.gone-*` dirs of
   * ends cut short, deleted off the event loop. Clients need not wait for
   * them: nobody can reach these dirs by a session id.
   */
  async #sweep(): Promise<void> {
    let reports;
    try {
      reports = await removeUnpublished(this.#stateDir, { offThread: true, signal: this.#stop.signal });
    } catch (e) {
      this.#log(`could not sweep the leftovers of dead processes: ${(e as Error).message}`);
      return;
    }
    for (const r of reports) {
      if (r.outcome === 'removed-unpublished') this.#log(`removed ${r.id} (a begin that died before publishing it)`);
      else if (r.outcome === 'removed-ended') this.#log(`removed ${r.id} (an ended session whose deletion was cut short)`);
      else if (r.outcome === 'failed') this.#log(`could not remove ${r.id}: ${(r.error as Error).message}`);
    }
  }

  /** Re-adopts the stale session `id` (recover's rules) and holds it; logs what happened. */
  async #adopt(id: string): Promise<void> {
    if (this.#held.has(id) || this.#busy.has(id)) return;
    this.#busy.add(id);
    try {
      const r = await recoverSession({ stateDir: this.#stateDir, id, signal: this.#stop.signal });
      if (r.action === 'readopted') {
        if (this.#stopping && !this.#o.endSessionsOnExit) {
          r.session.release();
          return;
        }
        this.#held.set(id, r.session);
        this.#log(readopted(id, r.remounted, r.killedHooks.length));
      } else {
        this.#log(endedStale(id));
      }
    } catch (e) {
      const name = (e as Error).name;
      // Held again by someone (a run -s, a recover) or gone meanwhile: nothing to do.
      if (name === 'SessionActiveError' || name === 'SessionNotFoundError') return;
      this.#log(`could not re-adopt stale session ${id}: ${(e as Error).message}`);
    } finally {
      this.#busy.delete(id);
    }
  }

  #onEvent(e: SessionEvent): void {
    if (this.#o.traceWatch) this.#log(`watch: ${e.event} ${e.id} ${process.hrtime.bigint()}`);
    if (this.#stopping) return;
    if (e.event === 'stale') {
      this.#log(`session ${e.id} went stale; re-adopting it`);
      this.#adopting = this.#adopting.then(() => this.#adopt(e.id));
    } else if (e.event === 'ended' && this.#held.has(e.id) && !this.#busy.has(e.id)) {
      // Its directory was removed behind our back (by hand): nothing is left to hold.
      this.#held.get(e.id)!.release();
      this.#held.delete(e.id);
      this.#log(`session ${e.id} was removed from the state dir by someone else; let go of it`);
    } else if (e.event === 'corrupt') {
      this.#log(`corrupt entry ${e.id}: ${e.reason ?? 'corrupt'}`);
    }
  }

  // --- the socket ------------------------------------------------------------------

  /**
   * A persistent source session: the source entry of DESIGN.md (manage EX,
   * then source EX once the chroot's sessions have ended; begins queue
   * behind it) held by the supervisor under a session id until it is
   * ended. Its locks are this process's: a supervisor that stops lets the
   * source go (OFD locks a running command inherited stay with it).
   */
  async #beginSource(call: Extract<RelayedCall, { verb: 'source-begin' }>, who: Credentials, signal: AbortSignal, onWait: (info: WaitInfo) => void): Promise<{ id: string }> {
    const spec = this.#o.resolveChroot(call.chroot);
    if (who.uid !== 0) for (const access of accessToSource(who, {})) authorize(spec.chroot, who, access);
    const id = call.id === undefined ? newId(spec.chroot.name) : validateId(call.id);
    const taken = () => this.#sourceSessions.has(id) || this.#busy.has(id) || existsSync(join(this.#stateDir, id));
    if (taken()) throw new SessionExistsError(id);
    this.#busy.add(id);
    try {
      const entry = await enterSource({
        stateDir: this.#stateDir,
        chroot: spec.chroot,
        signal,
        timeout: call.timeout === undefined ? undefined : call.timeout * 1000,
        wait: call.wait,
        onWait,
      });
      if (signal.aborted || this.#stopping) {
        entry.close();
        throw signal.reason ?? new SupervisorStoppingError();
      }
      this.#sourceSessions.set(id, { id, entry, owner: who });
      this.#log(`began source session ${id} (chroot ${spec.chroot.name}) for uid ${who.uid}: new sessions of it wait until it ends`);
      return { id };
    } finally {
      this.#busy.delete(id);
    }
  }

  #brokerHost(): BrokerHost {
    return (this.#broker ??= {
      stateDir: this.#stateDir,
      calls: this.#o.relayCalls,
      resolveChroot: (name) => this.#o.resolveChroot(name),
      begin: async (call, who, signal, hungUp, onWait) => {
        const r = await this.#begin({ v: PROTOCOL_VERSION, op: 'begin', chroot: call.chroot, id: call.id, timeout: call.timeout, wait: call.wait }, who, signal, hungUp, onWait);
        return { id: r.id as string };
      },
      end: async (call, who, signal, onWait) => {
        await this.#end({ v: PROTOCOL_VERSION, op: 'end', id: call.id, wait: call.wait, force: call.force, timeout: call.timeout }, who, signal, onWait);
      },
      hold: (session) => {
        this.#held.set(session.id, session);
        this.#log(`holding ${session.id}: its automatic session's command left processes holding it`);
      },
      recover: async (id, o) => {
        if (this.#busy.has(id)) throw new SessionBusyError(id, 'another request of the supervisor is working on it', []);
        this.#busy.add(id);
        try {
          const r = await recoverSession({ stateDir: this.#stateDir, id, ...o });
          if (r.action === 'readopted') {
            this.#held.set(id, r.session);
            this.#log(readopted(id, r.remounted, r.killedHooks.length));
          } else {
            this.#log(endedStale(id));
          }
          return r;
        } finally {
          this.#busy.delete(id);
        }
      },
      beginSource: (call, who, signal, onWait) => this.#beginSource(call, who, signal, onWait),
      sourceSession: (id) => this.#sourceSessions.get(id),
      endSource: (id, who) => {
        const src = this.#sourceSessions.get(id);
        if (!src) throw new SessionNotFoundError(id, this.#stateDir);
        if (who.uid !== 0 && who.uid !== src.owner.uid) throw new SessionAccessError(id, who.uid, src.owner.uid, 'end');
        this.#sourceSessions.delete(id);
        src.entry.close();
        this.#log(`ended source session ${id} (chroot ${src.entry.chroot}): its source is let go`);
      },
      sourceSessions: () => [...this.#sourceSessions.values()].map((x) => ({ id: x.id, chroot: x.entry.chroot, ownerUid: x.owner.uid })),
      stopping: () => this.#stopping,
      log: (line) => this.#log(line),
    });
  }

  #connectionOptions(): ConnectionOptions {
    return (this.#connOpts ??= {
      limits: this.#limits,
      turn: () => this.#turn(),
      serve: (line, send, gone, hungUp, who) => this.#serve(line, send, gone, hungUp, who),
      log: (line) => this.#log(line),
    });
  }

  /**
   * Resolves in a later turn of the event loop than any request started
   * before it. A request runs synchronously up to its first real wait, and
   * the steps of an end (unmount, reading mountinfo, removing the dir,
   * fsync) are all synchronous: a burst of 100 requests read in one poll
   * phase would otherwise run back to back for a second, with no timer or
   * client served in between. Started one per turn, each costs the loop at
   * most its own first stretch (~10 ms).
   */
  #turn(): Promise<void> {
    return new Promise((resolve) => {
      this.#starts.push(resolve);
      if (this.#starts.length === 1) setImmediate(() => this.#startNext());
    });
  }

  #startNext(): void {
    const next = this.#starts.shift();
    next?.();
    // Queued from inside a check-phase callback: runs in the next iteration, after timers and I/O.
    if (this.#starts.length > 0) setImmediate(() => this.#startNext());
  }

  /** Serves one request line; never throws (every failure becomes an error reply). */
  async #serve(line: string, send: (r: Reply) => void, gone: AbortSignal, hungUp: () => boolean, who: Credentials | Error): Promise<void> {
    let req: Request;
    try {
      req = parseRequest(line);
    } catch (e) {
      const tag = e instanceof ProtocolError ? e.tag : undefined;
      send({ v: PROTOCOL_VERSION, ...(tag === undefined ? {} : { tag }), ok: false, error: wireError(e) });
      return;
    }
    const tag = req.tag === undefined ? {} : { tag: req.tag };
    if (this.#stopping) {
      send({ v: PROTOCOL_VERSION, ...tag, ok: false, error: wireError(new SupervisorStoppingError()) });
      return;
    }
    const abort = new AbortController();
    const onGone = () => abort.abort(gone.reason);
    gone.addEventListener('abort', onGone, { once: true });
    if (gone.aborted) abort.abort(gone.reason);
    let finish!: () => void;
    const f: InFlight = { abort, done: new Promise<void>((resolve) => (finish = resolve)) };
    this.#inFlight.add(f);
    try {
      if (who instanceof Error) throw who;
      const result = await this.#handle(req, who, abort.signal, hungUp, (wait) => send({ v: PROTOCOL_VERSION, ...tag, wait }));
      send({ v: PROTOCOL_VERSION, ...tag, ok: true, result });
    } catch (e) {
      send({ v: PROTOCOL_VERSION, ...tag, ok: false, error: wireError(e) });
    } finally {
      gone.removeEventListener('abort', onGone);
      this.#inFlight.delete(f);
      finish();
    }
  }

  async #handle(req: Request, who: Credentials, signal: AbortSignal, hungUp: () => boolean, onWait: (info: WaitInfo) => void): Promise<Record<string, unknown>> {
    switch (req.op) {
      case 'hello':
        return { pid: process.pid, stateDir: this.#stateDir, protocol: PROTOCOL_VERSION };
      case 'status':
        return this.#status();
      case 'begin':
        return this.#begin(req, who, signal, hungUp, onWait);
      case 'end':
        return this.#end(req, who, signal, onWait);
    }
  }

  /** What the supervisor holds and how it is doing; the event-loop delay is since the previous status. */
  #status(): Record<string, unknown> {
    const lag = { maxMs: round(this.#lag.max / 1e6), p99Ms: round(this.#lag.percentile(99) / 1e6), meanMs: round(this.#lag.mean / 1e6) };
    this.#lag.reset();
    return {
      pid: process.pid,
      stateDir: this.#stateDir,
      held: [...this.#held.keys()].sort(),
      inFlight: this.#inFlight.size - 1,
      relayed: this.#acceptor?.relayed ?? 0,
      clients: this.#acceptor?.clients.size ?? 0,
      nonRootClients: this.#acceptor?.nonRoot ?? 0,
      limits: this.#limits,
      fds: fdCounts(),
      rssBytes: process.memoryUsage.rss(),
      eventLoopDelay: lag,
    };
  }

  async #begin(req: Extract<Request, { op: 'begin' }>, who: Credentials, signal: AbortSignal, hungUp: () => boolean, onWait: (info: WaitInfo) => void): Promise<Record<string, unknown>> {
    const spec = this.#o.resolveChroot(req.chroot);
    authorize(spec.chroot, who, 'session');
    const session = await beginSession({
      stateDir: this.#stateDir,
      chroot: spec.chroot,
      id: req.id,
      hooksDir: spec.hooksDir,
      hookTimeoutMs: spec.hookTimeoutMs,
      owner: { uid: who.uid, gid: who.gid },
      signal,
      timeout: req.timeout === undefined ? undefined : req.timeout * 1000,
      wait: req.wait,
      onWait,
    });
    // The client went away (or we are stopping) while the session was set
    // up past its last wait: nobody learns its id, so it is rolled back.
    // The kernel is asked too: a client that closed while the last hook
    // finished may not have been read yet, and its 'close' would come only
    // after the session is held for nobody.
    if (signal.aborted || hungUp()) {
      this.#log(`began ${session.id} for a client that went away; ending it`);
      await endSession(session, { offThread: true }).catch((e) => {
        session.release();
        this.#log(`could not end ${session.id} (left stale): ${(e as Error).message}`);
      });
      throw signal.reason;
    }
    this.#held.set(session.id, session);
    this.#log(`began ${session.id} (chroot ${spec.chroot.name}) for uid ${who.uid}${who.pid ? ` pid ${who.pid}` : ''}`);
    return { id: session.id, chroot: spec.chroot.name, root: session.paths.root };
  }

  async #end(req: Extract<Request, { op: 'end' }>, who: Credentials, signal: AbortSignal, onWait: (info: WaitInfo) => void): Promise<Record<string, unknown>> {
    const held = this.#held.get(req.id);
    const session = held ?? openSession(this.#stateDir, req.id);
    // The owner as state.json records it: it outlives this supervisor.
    assertSessionOwner(session.state, who, 'end');
    if (this.#busy.has(req.id)) throw new SessionBusyError(req.id, 'another request of the supervisor is working on it', []);
    this.#busy.add(req.id);
    try {
      await endSession(session, {
        wait: req.wait,
        force: req.force,
        timeout: req.timeout === undefined ? undefined : req.timeout * 1000,
        signal,
        onWait,
        offThread: true,
      });
      this.#held.delete(req.id);
      this.#log(`ended ${req.id}${held ? '' : ' (not held by this supervisor)'}`);
      return { id: req.id };
    } finally {
      this.#busy.delete(req.id);
    }
  }
}

/**
 * This process's fds by kind: files (locks, logs) and sockets (clients)
 * are what a leak would grow; the rest are pipes of hooks in flight and the
 * eventfds and epoll fds of lock-wait worker threads, which come and go
 * with the pool.
 */
function fdCounts(): { total: number; files: number; sockets: number } {
  let files = 0;
  let sockets = 0;
  const fds = readdirSync('/proc/self/fd');
  for (const fd of fds) {
    let target: string;
    try {
      target = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue; // the fd of the readdir itself
    }
    if (target.startsWith('/')) files++;
    else if (target.startsWith('socket:')) sockets++;
  }
  return { total: fds.length - 1, files, sockets };
}

function readopted(id: string, remounted: boolean, killedHooks: number): string {
  const how = remounted ? 'mounted again' : 'its mount was still in place';
  const killed = killedHooks > 0 ? `; killed ${killedHooks} hook(s) a dead warden left running` : '';
  return `re-adopted stale session ${id} (${how}${killed})`;
}

const endedStale = (id: string) => `ended stale session ${id} (it was being ended when its holder died)`;

const round = (x: number) => (Number.isFinite(x) ? Math.round(x * 100) / 100 : 0);
