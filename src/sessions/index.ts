// The sessions layer: DESIGN.md's protocols, one named function each.
export { beginSession, type BeginOptions } from './begin.js';
export { endSession, type EndOptions } from './end.js';
export { openSession } from './open.js';
export { assertRunnable, spawnInSession, RunError, type CommandOptions } from './run.js';
export { boundedBy, ownAttributes, readProcessAttributes, type ProcessAttributes } from './attributes.js';
export { fromChildProcess, makePipe, type Command } from '../sys/index.js';
export { Pty, isTerminal, type PtySlave, type PtyStdio } from '../sys/index.js';
export { commandEnvironment, ENVIRONMENT_FILTER, type EnvironmentOptions } from './environment.js';
export { enterSource, sourceHolders, spawnInSource, type SourceOptions } from './source.js';
export { SourceEntry } from './source-entry.js';
export { Session, sessionPaths, type CommandLocks, type SessionPaths } from './session.js';
export { ensureStateDir, inspectEntry, listSessions, type EntryStatus, type ListOptions, type SessionEntry } from './store.js';
export { newId, validateId, ID_PATTERN } from './ids.js';
export { livenessHeld, takeManageLock, takeSourceForDestroy, takeSourceShared, takeSupervisorLock, type LockWaitOptions, type WaitInfo } from './locks.js';
export { manageLockPath, sourceLockPath, LIVENESS, METADATA, MANAGE_DIR, SESSION_LOCK_FILE, SOURCE_LOCK_FILE, SUPERVISOR_LOCK_FILE } from './lock-files.js';
export { readState, sessionOwner, STATE_FILE, STATE_VERSION, type SessionOwner, type SessionState, type SessionStatus } from './state.js';
export {
  RollbackError,
  SessionActiveError,
  SessionBusyError,
  SessionCorruptError,
  SessionError,
  SessionExistsError,
  SessionIdError,
  SessionNeedsRecoveryError,
  SessionNotFoundError,
  StateDirError,
  StateDirUntrustedError,
  StateDirAccessError,
} from './errors.js';
export { describeSessionHolders, SourceBusyError, StaleSessionsError, type SessionHolder } from './errors.js';
export { lockCensus, type CensusOptions, type LockRow } from './census.js';
export { recoverSession, type RecoverOptions, type Recovered } from './recover.js';
export { recoverAll, type RecoverAllOptions, type RecoverReport } from './recover-all.js';
export { removeUnpublished } from './sweep.js';
export { watchSessions, DEFAULT_PROBE_MS, type SessionEvent, type SessionEventName, type SessionWatch, type WatchOptions } from './watch.js';
