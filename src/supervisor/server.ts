// The supervisor: one long-running process per state dir that holds
// persistent sessions between runs (their liveness and source locks, through
// the same Session objects `warden run` uses), serves begin/end requests on
// a unix socket (JSON lines: requests.ts, handlers.ts) and brokers the calls
// of the relay (broker.ts); acceptor.ts is its front door, adoption.ts its
// side of recover. This file is its lifecycle: start and close. Lock waits run in worker threads, so while
// one client's begin waits behind a source entry every other client is
// served at once.
//
// One supervisor per state dir: it holds `supervisor.lock` exclusively for
// its whole life; the socket is unlinked and re-created only under that
// lock. On start it re-adopts every stale session (a previous supervisor's,
// or any crashed holder's), and while it runs it watches the state dir and
// re-adopts sessions that go stale, so nothing is silently lost.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { join } from 'node:path';
import { LockBusyError, type FileLock } from '../locks/index.js';
import { endSession, ensureStateDir, takeSupervisorLock, watchSessions, type Session, type SessionWatch } from '../sessions/index.js';
import { Acceptor, unlinkQuiet } from './acceptor.js';
import { adoptAll, Adopter, sweep } from './adoption.js';
import { serveRelay, type BrokerHost, type SourceSession } from './broker.js';
import { serveConnection, type ConnectionOptions } from './connection.js';
import { SupervisorRunningError, SupervisorStoppingError } from './errors.js';
import { brokerHost } from './handlers.js';
import { QuietLog, resolveLimits } from './limits.js';
import { SUPERVISOR_SOCKET } from './paths.js';
import { Requests } from './requests.js';
import { LAG_RESOLUTION_MS, type InFlight, type SupervisorOptions, type SupervisorState } from './state.js';

export type { BeginSpec, SupervisorOptions } from './state.js';

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

class Engine {
  readonly #s: SupervisorState;
  readonly #socketPath: string;
  /** Refusals, accept failures and repeated watch errors: one line per kind per minute. */
  readonly #quiet: QuietLog;
  /** RLIMIT_NOFILE at start. */
  readonly #nofile: number;
  readonly #requests: Requests;
  readonly #adopter: Adopter;
  #connOpts: ConnectionOptions | undefined;
  #broker: BrokerHost | undefined;
  #lock: FileLock | undefined;
  #watch: SessionWatch | undefined;
  /** The sweep of dead processes' leftovers, started once serving. */
  #sweeping: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;

  constructor(o: SupervisorOptions) {
    const stateDir = ensureStateDir(o.stateDir);
    const { limits, nofile, notes } = resolveLimits(o.limits);
    this.#s = {
      o,
      stateDir,
      held: new Map<string, Session>(),
      busy: new Set<string>(),
      sourceSessions: new Map<string, SourceSession>(),
      inFlight: new Set<InFlight>(),
      limits,
      // A timer every LAG_RESOLUTION_MS (50 ms, not Node's default 10): an
      // idle supervisor's CPU is its wake-ups (bench/watch.ts, idle row); a
      // stall shorter than that may go unseen, a longer one never does
      // (bench/percall's bound on it is 50 ms).
      lag: monitorEventLoopDelay({ resolution: LAG_RESOLUTION_MS }),
      acceptor: undefined,
      stop: new AbortController(),
      stopping: false,
      log: (line) => {
        try {
          o.log(line);
        } catch {
          // a log that fails (stderr gone) has nowhere to report it
        }
      },
    };
    this.#socketPath = join(stateDir, SUPERVISOR_SOCKET);
    this.#nofile = nofile;
    this.#quiet = new QuietLog((line) => this.#s.log(line));
    this.#requests = new Requests(this.#s);
    this.#adopter = new Adopter(this.#s);
    for (const n of notes) this.#s.log(n);
  }

  facade(): Supervisor {
    const s = this.#s;
    return {
      stateDir: s.stateDir,
      socketPath: this.#socketPath,
      held: () => [...s.held.keys()].sort(),
      close: () => this.close(),
    };
  }

  async start(): Promise<void> {
    const s = this.#s;
    try {
      this.#lock = takeSupervisorLock(s.stateDir);
    } catch (e) {
      if (e instanceof LockBusyError) throw new SupervisorRunningError(s.stateDir, e.holders[0]?.pid);
      throw e;
    }
    s.lag.enable();
    try {
      await adoptAll(s);
      s.acceptor = new Acceptor({
        socketPath: this.#socketPath,
        listenFd: s.o.listenFd,
        socketGid: s.o.socketGid,
        limits: s.limits,
        nofile: this.#nofile,
        quiet: this.#quiet,
        stopping: () => s.stopping,
        serveJson: (c, who) => serveConnection(c, who, this.#connectionOptions(), () => {}),
        serveRelay: (c, fd, who, waiter) => serveRelay(c, fd, who, this.#brokerHost(), waiter, s.limits.idleMs),
      });
      await s.acceptor.listen();
      this.#watch = watchSessions(s.stateDir, {
        probeMs: s.o.probeMs,
        heldByCaller: (id) => s.held.has(id),
        onEvent: (e) => this.#adopter.onEvent(e),
        onError: (e) => this.#quiet.note(`watch:${(e as NodeJS.ErrnoException).code ?? e.message}`, `watch: ${e.message}`),
      });
      await this.#watch.ready;
      this.#sweeping = sweep(s);
    } catch (e) {
      await this.close();
      throw e;
    }
    const l = s.limits;
    s.log(
      `supervising ${s.stateDir} (pid ${process.pid}, ${s.held.size} session(s) held, socket ${this.#socketPath}; ` +
        `limits: ${l.connectionsPerUser} connections per user, ${l.connections} in all, idle ${l.idleMs / 1000} s, ` +
        `${l.replyBufferBytes} reply bytes and ${l.queuedRequests} queued requests per connection)`,
    );
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const s = this.#s;
    s.stopping = true;
    s.stop.abort(new SupervisorStoppingError());
    const acceptor = s.acceptor;
    const listening = acceptor ? acceptor.stopListening() : Promise.resolve(false);
    // Waits are cancelled; work past its waits (hooks, mounts) completes.
    for (const f of s.inFlight) f.abort.abort(new SupervisorStoppingError());
    await Promise.allSettled([...s.inFlight].map((f) => f.done));
    await this.#adopter.settled;
    await this.#sweeping;
    await acceptor?.destroyClients();
    const listened = await listening;
    await this.#watch?.close();
    s.lag.disable();
    for (const [id, src] of s.sourceSessions) {
      src.entry.close();
      s.log(`let go of source session ${id} on exit`);
    }
    s.sourceSessions.clear();
    for (const [id, session] of [...s.held]) {
      if (s.o.endSessionsOnExit) {
        try {
          await endSession(session, { offThread: true });
          s.log(`ended ${id} on exit`);
        } catch (e) {
          session.release();
          s.log(`could not end ${id} on exit (left stale): ${(e as Error).message}`);
        }
      } else {
        session.release();
      }
      s.held.delete(id);
    }
    if (this.#lock) {
      // Only the holder of supervisor.lock removes the socket; systemd's stays for the next activation.
      if (listened && !acceptor!.activated) unlinkQuiet(this.#socketPath);
      this.#lock.close();
      this.#lock = undefined;
    }
  }

  #brokerHost(): BrokerHost {
    return (this.#broker ??= brokerHost(this.#s));
  }

  #connectionOptions(): ConnectionOptions {
    return (this.#connOpts ??= {
      limits: this.#s.limits,
      turn: () => this.#requests.turn(),
      serve: (line, send, gone, hungUp, who) => this.#requests.serve(line, send, gone, hungUp, who),
      log: (line) => this.#s.log(line),
    });
  }
}
