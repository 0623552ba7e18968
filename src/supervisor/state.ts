// What the parts of the supervisor share (server.ts's lifecycle,
// adoption.ts, requests.ts, handlers.ts): the sessions it holds, the ids
// being worked on, its options, its log and its stop signal.
import type { IntervalHistogram } from 'node:perf_hooks';
import type { ChrootDef, SharedChroot } from '../config/index.js';
import type { Session } from '../sessions/index.js';
import type { Acceptor } from './acceptor.js';
import type { RelayCalls, SourceSession } from './broker.js';
import type { SupervisorLimits } from './limits.js';

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
  /** The shared chroots as configured now: at start, this host's leftover registrations there are removed (recoverAll). */
  sharedChroots?: () => readonly SharedChroot[];
  /** One line per thing the supervisor did or refused (the library never prints). */
  log: (line: string) => void;
  /** End held sessions on close instead of leaving them stale for the next supervisor. */
  endSessionsOnExit?: boolean;
  /** Liveness probe interval of the state-dir watch (default 500 ms). */
  probeMs?: number;
  /**
   * Given every event of the state-dir watch as `watch: EVENT ID NS`, NS its
   * CLOCK_MONOTONIC time (bench/watch.ts measures with it).
   */
  traceWatch?: (line: string) => void;
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

/** A request being served: cancelled when its client goes away or the supervisor stops. */
export interface InFlight {
  abort: AbortController;
  done: Promise<void>;
}

/** The supervisor's state. Only the supervisor's own files use it. */
export interface SupervisorState {
  readonly o: SupervisorOptions;
  readonly stateDir: string;
  /** Sessions held, by id. */
  readonly held: Map<string, Session>;
  /** Ids some request or adoption is working on: a second one is refused, not interleaved. */
  readonly busy: Set<string>;
  /** Persistent source sessions (schroot's `-b -c source:NAME`), by id. */
  readonly sourceSessions: Map<string, SourceSession>;
  readonly inFlight: Set<InFlight>;
  readonly limits: SupervisorLimits;
  /**
   * Event-loop delay, reported (and reset) by `status`: the proof that lock
   * waits never block the loop. Its timer's period is LAG_RESOLUTION_MS.
   */
  readonly lag: IntervalHistogram;
  /** The socket and the connections until they are served. */
  acceptor: Acceptor | undefined;
  /** Aborted when the supervisor stops: cancels the lock waits of adoptions. */
  readonly stop: AbortController;
  stopping: boolean;
  /** The caller's log, which must not be able to end the supervisor either. */
  log(line: string): void;
}

/**
 * The period of the event-loop monitor (monitorEventLoopDelay's
 * resolution). Its histogram records each period's whole length, the
 * period plus the delay: `status` reports what lies beyond it.
 */
export const LAG_RESOLUTION_MS = 50;
