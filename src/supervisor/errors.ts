import { EXIT } from '../exit-codes.js';
// Typed outcomes of the supervisor and its clients; messages built here.

/** Another supervisor holds `<state-dir>/supervisor.lock` (exit 5). */
export class SupervisorRunningError extends Error {
  static readonly exit: number | undefined = EXIT.busy;
  override name = 'SupervisorRunningError';
  readonly stateDir: string;
  readonly pid: number | undefined;
  constructor(stateDir: string, pid: number | undefined) {
    super(`a supervisor is already running for ${stateDir}${pid !== undefined && pid > 0 ? ` (pid ${pid})` : ''}`);
    this.stateDir = stateDir;
    this.pid = pid;
  }
}

/** No supervisor could be reached or started (exit 1). */
export class SupervisorUnavailableError extends Error {
  override name = 'SupervisorUnavailableError';
  constructor(what: string, cause?: unknown) {
    super(what, cause === undefined ? undefined : { cause });
  }
}

/** The supervisor is shutting down and takes no new requests, or cancelled a wait to do so. */
export class SupervisorStoppingError extends Error {
  override name = 'SupervisorStoppingError';
  constructor() {
    super('the supervisor is shutting down');
  }
}

/** The connection broke before the final reply arrived. */
export class SupervisorConnectionError extends Error {
  override name = 'SupervisorConnectionError';
  constructor(what: string, cause?: unknown) {
    super(what, cause === undefined ? undefined : { cause });
  }
}

/** The client cancelled its request (Ctrl-C): it disconnected, and the supervisor cancels or rolls back the request. */
export class RequestAbortedError extends Error {
  static readonly exit: number | undefined = EXIT.interrupted;
  override name = 'RequestAbortedError';
  constructor(op: string, reason: unknown) {
    super(`${op} cancelled${reason instanceof Error ? ` (${reason.message})` : ''}`, { cause: reason });
  }
}

/** A non-root client asked to end (or run in) a session it did not begin (exit 8). */
export class SessionAccessError extends Error {
  static readonly exit: number | undefined = EXIT.denied;
  override name = 'SessionAccessError';
  readonly id: string;
  readonly uid: number;
  /** The session's owner as state.json records it; undefined when it records none (then only root may). */
  readonly owner: number | undefined;
  constructor(id: string, uid: number, owner: number | undefined, action: 'end' | 'run in' | 'recover' = 'end') {
    super(
      `uid ${uid} may not ${action} session ${id}: ${owner === undefined ? 'its state.json records no owner (begun by an older warden), so only root may' : `it belongs to uid ${owner}; only its owner and root may`}`,
    );
    this.id = id;
    this.uid = uid;
    this.owner = owner;
  }
}

/** The supervisor refused a connection or closed one: a bound on its clients was reached (exit 5). */
export class SupervisorLimitError extends Error {
  static readonly exit: number | undefined = EXIT.busy;
  override name = 'SupervisorLimitError';
  /** The `[warden]` key of the bound. */
  readonly limit: string;
  constructor(limit: string, message: string) {
    super(message);
    this.limit = limit;
  }
}

/** The socket's permissions keep this client out (exit 8). */
export class SupervisorAccessError extends Error {
  static readonly exit: number | undefined = EXIT.denied;
  override name = 'SupervisorAccessError';
  constructor(socketPath: string, cause?: unknown) {
    super(`permission denied connecting to the supervisor at ${socketPath}: only root and members of [warden] socket-group= may connect`, cause === undefined ? undefined : { cause });
  }
}
