// One named function per row of DESIGN.md's lock table. Everything that
// takes a warden lock goes through here, so "where is the manage lock
// taken" has one answer.
import { mkdirSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { FileLock, LockFileError, lockPath, type LockHolder, type LockKind, type WaitOptions } from '../locks/index.js';
import { StateDirError, type SessionHolder } from './errors.js';

export const SESSION_LOCK_FILE = 'lock';
export const SOURCE_LOCK_FILE = '.ref';
export const MANAGE_DIR = '.manage';
/** Byte 0 of `<id>/lock`: shared by every holder of the session. */
export const LIVENESS = Object.freeze({ start: 0, len: 1 });
/** Byte 1 of `<id>/lock`: exclusive while state.json is rewritten. */
export const METADATA = Object.freeze({ start: 1, len: 1 });

/** Which lock a wait is for, and who holds it: what the CLI shows while waiting. */
export interface WaitInfo {
  lock: 'manage' | 'source' | 'liveness';
  path: string;
  holders: LockHolder[];
  /** Source waits of a source entry: the sessions behind `holders` (re-reported as they end). */
  sessions?: SessionHolder[];
  /**
   * Manage waits: the chroot's `.ref`, where a pending or running source
   * entry shows (it holds or waits for it exclusively) and begins do not.
   */
  source?: string;
}

export interface LockWaitOptions {
  timeout?: number;
  signal?: AbortSignal;
  /** false: fail at once with LockBusyError instead of waiting. */
  wait?: boolean;
  onWait?: (info: WaitInfo) => void;
}

function waitOpts(lock: WaitInfo['lock'], path: string, o: LockWaitOptions, source?: string): WaitOptions {
  const { onWait } = o;
  return {
    timeout: o.timeout,
    signal: o.signal,
    wait: o.wait,
    onWait: onWait ? (holders) => onWait(source === undefined ? { lock, path, holders } : { lock, path, holders, source }) : undefined,
  };
}

export function manageLockPath(stateDir: string, chroot: string): string {
  return join(stateDir, MANAGE_DIR, `${chroot}.lock`);
}

export function sourceLockPath(source: string): string {
  return join(source, SOURCE_LOCK_FILE);
}

/** manage EX: taken by begin while it claims the source and the id, and by a source entry for its whole run. */
export async function takeManageLock(stateDir: string, chroot: string, o: LockWaitOptions & { source?: string } = {}): Promise<FileLock> {
  const dir = join(stateDir, MANAGE_DIR);
  try {
    mkdirSync(dir, { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new StateDirError(stateDir, `cannot create ${MANAGE_DIR}: ${(e as Error).message}`, e);
  }
  const path = manageLockPath(stateDir, chroot);
  return lockPath(path, 'exclusive', { ...waitOpts('manage', path, o, o.source === undefined ? undefined : sourceLockPath(o.source)), fileMode: 0o600 });
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

/** A handle on the liveness byte of an existing session lock file (no lock taken yet). */
export function openLiveness(sessionDir: string, opts: { create?: boolean; readOnly?: boolean } = {}): FileLock {
  return FileLock.open(join(sessionDir, SESSION_LOCK_FILE), { range: LIVENESS, create: opts.create ?? false, readOnly: opts.readOnly, fileMode: 0o600 });
}

/**
 * A non-blocking attempt that looks again, briefly, at a conflict no
 * process can be named for. Whenever anything in this process forks
 * (child_process, posix_spawn, an embedding program's own children), the
 * child holds a copy of every fd of ours, close-on-exec ones included,
 * until its exec closes them: for that moment each of our open file
 * descriptions has a second holder, and a lock that only we hold (a
 * command's lock fds just closed, say) still conflicts. glibc's posix_spawn
 * even returns before the child's exec has closed them: exec releases the
 * vfork parent first. `named` lists the real other holders; while it is
 * empty, tries again after 1, 2, 4 and 8 ms. A real holder ends the retries
 * at once.
 */
export async function tryAcquireSettled(lock: FileLock, kind: LockKind, named: () => LockHolder[]): Promise<boolean> {
  for (let delay = 1; ; delay *= 2) {
    if (lock.tryAcquire(kind)) return true;
    if (delay > 8 || named().length > 0) return false;
    await sleep(delay);
  }
}

/** A handle on the metadata byte of a session lock file. */
export function openMetadata(sessionDir: string): FileLock {
  return FileLock.open(join(sessionDir, SESSION_LOCK_FILE), { range: METADATA, create: false });
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
