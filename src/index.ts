// warden as a library: `import { openWarden } from 'warden'`. The only
// entry point of the package (package.json "exports"); everything a caller
// needs — the facade, its types, the typed errors with their `exitCode` —
// and nothing else. (src/api/internal/ is the library's side of the CLI:
// not exported, see src/api/internal/config.ts.)
export { openWarden, Warden, type AutoRunOptions, type BeginOptions, type LockWait, type OpenOptions, type RecoverOptions, type SourceOptions, type SourceResult, type WaitOptions, type Watch, type WatchOptions } from './api/warden.js';
export { Session, type EndOptions, type HandleState, type RunOptions } from './api/session.js';
export type { CommandResult, StdioMode } from './api/command.js';
export type { ChrootInfo, SessionInfo } from './api/describe.js';
export type { RecoverReport, SessionEvent, SessionEventName } from './sessions/index.js';
export type { LockHolder } from './locks/index.js';
export { SessionLeftError, WardenClosedError } from './api/errors.js';
export { EXIT } from './exit-codes.js';
// The layers' typed errors, as they throw them.
export { ConfigError, NoSuchChrootError, PermissionDeniedError } from './config/index.js';
export { LockAbortedError, LockBusyError, LockError, LockTimeoutError } from './locks/index.js';
export {
  RollbackError,
  RunError,
  SessionActiveError,
  SessionBusyError,
  SessionCorruptError,
  SessionError,
  SessionExistsError,
  SessionIdError,
  SessionNeedsRecoveryError,
  SessionNotFoundError,
  SourceBusyError,
  StaleSessionsError,
  StateDirAccessError,
  StateDirError,
  StateDirUntrustedError,
} from './sessions/index.js';
export { HookError, HookFailedError, HookPermissionError } from './hooks/index.js';
export { CopyInterruptedError, TreeInUseError, UnionError, UnmountBusyError } from './union/index.js';
