// The protocols a root `warden run`, `source` and `recover` carry out in
// their own process (DESIGN.md, "Locks"): begin, run, end, source entry,
// recover. These verbs use most of the sessions layer, so this module
// takes it whole, through its index.
export {
  assertRunnable,
  beginSession,
  endSession,
  enterSource,
  openSession,
  recoverAll,
  recoverSession,
  SessionBusyError,
  spawnInSession,
  type CommandLocks,
  type Recovered,
  type RecoverReport,
  type Session,
  type SourceEntry,
} from '../../sessions/index.js';
