// The supervisor: a long-running holder of persistent sessions, its control
// socket and protocol, and the client side the CLI uses.
export { startSupervisor, type BeginSpec, type Supervisor, type SupervisorOptions } from './server.js';
export { connectSupervisor, ensureSupervisor, supervisorReady, SupervisorClient, type ClientRequest, type RequestOptions, type StartOptions } from './client.js';
export { SUPERVISOR_LOCK, SUPERVISOR_LOG, SUPERVISOR_SOCKET } from './paths.js';
export { MAX_LINE_BYTES, PROTOCOL_VERSION, parseRequest, ProtocolError, type Reply, type Request, type WireError } from './protocol.js';
export { peerCredentials, selfCredentials, PeerCredentialsError } from './peercred.js';
export { assertSessionOwner } from './owner.js';
export { DEFAULT_LIMITS, limitsFromSettings, resolveLimits, type SupervisorLimits } from './limits.js';
export { RequestAbortedError, SessionAccessError, SupervisorAccessError, SupervisorLimitError, SupervisorConnectionError, SupervisorRunningError, SupervisorStoppingError, SupervisorUnavailableError } from './errors.js';
export { HANGUP_GRACE_MS, type RelayCalls, type RelayedCall, type SourceSessionFacts } from './broker.js';
