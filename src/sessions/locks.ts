// One named function per row of DESIGN.md's lock table. Everything that
// takes a warden lock goes through here, so "where is the manage lock
// taken" has one answer:
//   source    takeSourceShared, takeSourceExclusiveLocked (entry), takeSourceForDestroy (bootstrap)
//   manage    takeManageLock (`<shared-dir>/manage.lock` for a shared chroot)
//   registration (shared chroots: `<shared-dir>/sessions/<host>@<id>`, byte 0)
//             registerSessionLocked (begin), takeRegistrationShared (run, commands),
//             takeRegistrationExclusive (end, recover), registryOf (probes: list)
//   liveness  createLiveness, takeLivenessShared, takeLivenessExclusive (end, recover:
//             wait / force), waitLivenessFree (source entry), tryLivenessAbandoned (sweep),
//             downgradeLiveness; the stale probe livenessHeld
//   metadata  withMetadataLock
//   supervisor.lock  takeSupervisorLock
// Beside it: where each lock lives (lock-files.ts: file names, byte
// ranges, handles not yet locked), the manage lock as held
// (manage-lock.ts), and who holds a session's liveness byte, asked
// without taking it (lock-holders.ts).
import { dirname, join } from 'node:path';
import { FileLock, LockBusyError, LockFileError, LockTimeoutError, lockPath } from '../locks/index.js';
import type { SessionShared } from './state.js';
import { writeManageOwner } from './manage-owner.js';
import { ensureManageDir, manageLockPathOf, openLiveness, openMetadata, sourceLockPath, SUPERVISOR_LOCK_FILE, LIVENESS } from './lock-files.js';
import { livenessHolders } from './lock-holders.js';
import { ManageLock } from './manage-lock.js';
import { Registry, type RegistrationHandle } from './registry.js';
import { errnoCode, manageWaitOpts, namedByOwner, tryAcquireSettled, waitOpts, type LockWaitOptions } from './lock-waits.js';

export { errnoCode, tryAcquireSettled, type LockWaitOptions, type WaitInfo } from './lock-waits.js';

export interface ManageLockOptions extends LockWaitOptions {
  /** The chroot's source: a manage wait looks at its `.ref` to tell a source entry from begins. */
  source?: string;
  /** A shared chroot: shared-dir= and this host. */
  shared?: SessionShared | undefined;
  /** What takes it, for `manage.owner` (shared chroots). */
  what?: string;
  session?: string;
}

/**
 * manage EX: taken by begin while it claims the source and the id, and by
 * a source entry for its whole run. A shared chroot's is in shared-dir=,
 * so begins and entries of every host queue on it.
 */
export async function takeManageLock(stateDir: string, chroot: string, o: ManageLockOptions = {}): Promise<ManageLock> {
  if (!o.shared) ensureManageDir(stateDir);
  const path = manageLockPathOf(stateDir, chroot, o.shared);
  const wait = manageWaitOpts(path, o);
  const shared = o.shared;
  let lock: FileLock;
  try {
    lock = await lockPath(path, 'exclusive', { ...wait, fileMode: 0o600 });
  } catch (e) {
    throw shared ? namedByOwner(e, shared) : e;
  }
  // Not for a begin: it holds the lock for milliseconds (no wait line is
  // shown for those), and the record costs it five round trips to the
  // shared filesystem. Entries, recoveries and forget-host are named.
  const owned = shared && o.what !== 'begin' ? shared : undefined;
  if (owned) writeManageOwner(owned.dir, { host: owned.host, what: o.what ?? 'manage', ...(o.session === undefined ? {} : { session: o.session }) });
  return new ManageLock(lock, owned);
}

/** The registrations of a shared chroot, as this host sees them (registry.ts). */
export function registryOf(shared: SessionShared): Registry {
  return Registry.open(shared.dir, shared.host);
}

/**
 * registration SH (byte 0 of `<shared-dir>/sessions/<host>@<id>`): made
 * and held by begin, so that every host sees the session.
 * Preconditions: the chroot's manage lock is held EX.
 */
export async function registerSessionLocked(shared: SessionShared, reg: { session: string; chroot: string; pids: number[] }): Promise<RegistrationHandle> {
  return registryOf(shared).registerLocked(reg);
}

/**
 * registration SH on a new open file description, non-blocking: a new
 * holder (run -s, a started command), beside its liveness SH. undefined
 * while an ender or recoverer holds it EX; RegistrationMissingError when
 * the session has no registration (recover ends such a session).
 */
export function takeRegistrationShared(shared: SessionShared, id: string): FileLock | undefined {
  return registryOf(shared).holdShared(id);
}

/**
 * registration EX (end, recover), for a caller holding none of it yet:
 * undefined when there is none; RegistrationHeldError while a holder
 * keeps it (after a short settle: see Registry.takeExclusive).
 * Preconditions: liveness EX held, so no local holder remains.
 */
export async function takeRegistrationExclusive(shared: SessionShared, id: string): Promise<RegistrationHandle | undefined> {
  return registryOf(shared).takeExclusive(id);
}

/** source SH: held by every holder of a session over `source` for as long as it holds it. */
export async function takeSourceShared(source: string, o: LockWaitOptions = {}): Promise<FileLock> {
  const path = sourceLockPath(source);
  return lockPath(path, 'shared', { ...waitOpts('source', path, o), fileMode: 0o644 });
}

/**
 * source EX: a source entry, for as long as its command runs. Waits for
 * every session holder (and outside `.ref` user) to let go. `opened` sees
 * each handle before it waits (to hand its fd to a command started ahead
 * of the grant); like lockPath, a `.ref` replaced meanwhile is locked again
 * through a new handle, the old one released first (a process it was
 * handed to must not keep that lock).
 * Preconditions: the chroot's manage lock is held, so no session begins meanwhile.
 */
export async function takeSourceExclusiveLocked(source: string, o: LockWaitOptions & { opened?: (lock: FileLock) => void } = {}): Promise<FileLock> {
  const path = sourceLockPath(source);
  for (let attempt = 0; ; attempt++) {
    const lock = FileLock.open(path, { fileMode: 0o644 });
    try {
      o.opened?.(lock);
      await lock.acquire('exclusive', waitOpts('source', path, o));
      if (lock.namesSameFile()) return lock;
      lock.release();
    } catch (e) {
      lock.close();
      throw e;
    }
    lock.close();
    if (attempt >= 16) throw new LockFileError(`lock file ${path} keeps being replaced while we lock it`, { path });
  }
}

/**
 * source EX for destroying (or rebuilding) a chroot: without waiting, on a
 * `.ref` created when missing. LockBusyError (with the holders) while a
 * session, a source entry or an outside tool holds it.
 */
export async function takeSourceForDestroy(source: string): Promise<FileLock> {
  const lock = FileLock.open(sourceLockPath(source), { create: true, fileMode: 0o644 });
  try {
    await lock.acquire('exclusive', { wait: false });
  } catch (e) {
    lock.close();
    throw e;
  }
  return lock;
}

/**
 * `<state-dir>/supervisor.lock` EX, non-blocking: held for the supervisor's
 * whole life. LockBusyError (with the holders) when another supervisor runs.
 */
export function takeSupervisorLock(stateDir: string): FileLock {
  const lock = FileLock.open(join(stateDir, SUPERVISOR_LOCK_FILE), { fileMode: 0o600 });
  try {
    if (!lock.tryAcquire('exclusive')) throw new LockBusyError(lock.path, lock.range, 'exclusive', lock.holders());
  } catch (e) {
    lock.close();
    throw e;
  }
  return lock;
}

/**
 * liveness SH on a new open file description, non-blocking: a new holder
 * (run -s, a started command). undefined when an exclusive holder (end,
 * recover) has it: the session is being ended.
 */
export function takeLivenessShared(sessionDir: string): FileLock | undefined {
  const lock = openLiveness(sessionDir);
  try {
    if (lock.tryAcquire('shared')) return lock;
  } catch (e) {
    lock.close();
    throw e;
  }
  lock.close();
  return undefined;
}

/**
 * liveness SH on a lock file created here, in a session dir still being
 * built (begin): nobody else can hold it yet, so a conflict is a bug.
 */
export function createLiveness(buildDir: string): FileLock {
  const lock = openLiveness(buildDir, { create: true });
  try {
    if (!lock.tryAcquire('shared')) throw new Error(`fresh lock file in ${buildDir} is locked by someone else`);
  } catch (e) {
    lock.close();
    throw e;
  }
  return lock;
}

export interface LivenessExclusiveOptions extends LockWaitOptions {
  /** Kill the other holders (SIGTERM, then SIGKILL after `forceGraceMs`). */
  force?: boolean;
  forceGraceMs?: number;
}

/**
 * liveness EX (end and recover, while they work), on `lock`: a handle of
 * our own, which may hold SH already (end converts it). Granted at once
 * when no other holder remains (true); otherwise, unless `wait` or
 * `force`, LockBusyError naming the other holders; with `force` they are
 * killed first; with `wait` (or after the kill) it waits (`timeout`,
 * `signal`, `onWait`).
 */
export async function takeLivenessExclusive(lock: FileLock, o: LivenessExclusiveOptions = {}): Promise<boolean> {
  const sessionDir = dirname(lock.path);
  const others = () => livenessHolders(sessionDir, lock);
  if (await tryAcquireSettled(lock, 'exclusive', others)) return true;
  if (!o.wait && !o.force) throw new LockBusyError(lock.path, LIVENESS, 'exclusive', others());
  if (o.force) {
    const grace = o.forceGraceMs ?? 5000;
    for (const sig of ['SIGTERM', 'SIGKILL'] as const) {
      for (const h of others()) {
        if (h.pid > 0 && h.pid !== process.pid) {
          try {
            process.kill(h.pid, sig);
          } catch {
            // already gone
          }
        }
      }
      try {
        await lock.acquire('exclusive', { timeout: grace, signal: o.signal });
        return false;
      } catch (e) {
        if (sig === 'SIGKILL' || !(e instanceof LockTimeoutError)) throw e;
      }
    }
  }
  await lock.acquire('exclusive', waitOpts('liveness', lock.path, { timeout: o.timeout, signal: o.signal, onWait: o.onWait }));
  return false;
}

/**
 * Waits until nothing holds session `sessionDir` (its ender or recoverer
 * is done): liveness EX, released at once. Returns at once when the
 * session's lock file is gone (ended meanwhile).
 */
export async function waitLivenessFree(sessionDir: string, o: LockWaitOptions = {}): Promise<void> {
  let lock: FileLock;
  try {
    lock = openLiveness(sessionDir);
  } catch {
    return; // ended meanwhile
  }
  try {
    await lock.acquire('exclusive', waitOpts('liveness', lock.path, o));
  } finally {
    lock.close();
  }
}

/**
 * The sweep's test for a hidden dir of a dead process (recover: build dirs,
 * `.gone-*` dirs): liveness EX, non-blocking. undefined while its owner
 * lives; `{ lock }` to keep while deleting; `{}` when it has no lock file.
 */
export function tryLivenessAbandoned(dir: string): { lock?: FileLock } | undefined {
  let lock: FileLock;
  try {
    lock = openLiveness(dir);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return {};
    throw e;
  }
  try {
    if (lock.tryAcquire('exclusive')) return { lock };
  } catch (e) {
    lock.close();
    throw e;
  }
  lock.close();
  return undefined;
}

/** liveness EX -> SH, once the session is set up again (recover). fcntl(2): converting an exclusive lock to shared never blocks. */
export function downgradeLiveness(lock: FileLock): boolean {
  return lock.tryAcquire('shared');
}

/**
 * Stale probe: would an exclusive liveness lock be granted now? Asked with
 * F_(OFD_)GETLK, so the probe itself never takes the lock and never makes a
 * concurrent `run -s` fail its non-blocking shared attempt.
 */
export function livenessHeld(sessionDir: string): boolean {
  const lock = openLiveness(sessionDir, { readOnly: true });
  try {
    return lock.conflict('exclusive') !== undefined;
  } finally {
    lock.close();
  }
}

/**
 * Runs `fn` with the metadata byte locked exclusively (a short wait: writers
 * hold it only around one state.json rewrite).
 */
export async function withMetadataLock<T>(sessionDir: string, fn: () => T | Promise<T>): Promise<T> {
  const lock = openMetadata(sessionDir);
  try {
    await lock.acquire('exclusive', { timeout: 10_000 });
    // Awaited here: the lock is held until an asynchronous fn is done.
    return await fn();
  } finally {
    lock.close();
  }
}
