// Typed outcomes of the supervisor and its clients; messages built here.

/** Another supervisor holds `<state-dir>/supervisor.lock` (exit 5). */
export class SupervisorRunningError extends Error {
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
  override name = 'RequestAbortedError';
  constructor(op: string, reason: unknown) {
    super(`${op} cancelled${reason instanceof Error ? ` (${reason.message})` : ''}`, { cause: reason });
  }
}
