// A registration file (registry.ts): its two lock bytes, its JSON, the
// errors of the registry, and the steps both the registry and a holder's
// handle take on one file (open, probe, settle, read and write the record).
import { ftruncateSync, readFileSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXIT } from '../exit-codes.js';
import { FileLock } from '../locks/index.js';

export const LIVENESS = Object.freeze({ start: 0, len: 1 });
export const METADATA = Object.freeze({ start: 1, len: 1 });

/** What a registration says about its session. */
export interface Registration {
  host: string;
  session: string;
  chroot: string;
  /** The holders' pids, on `host`, when registered (and updated). */
  pids: number[];
  /** When the session began (ISO 8601). */
  began: string;
}

export interface RegistryEntry {
  host: string;
  session: string;
  /** `active`: some holder, on some host, holds byte 0. `stale`: nobody does. */
  status: 'active' | 'stale';
  /** The file's JSON; undefined if it cannot be read or parsed. */
  record: Registration | undefined;
  path: string;
}

export class RegistryError extends Error {
  override name = 'RegistryError';
}

/** A session of this name and host is registered already. */
export class RegistrationExistsError extends RegistryError {
  override name = 'RegistrationExistsError';
}

/** The session has no registration (never made, or removed: an orphan left by a crash, or forgotten). */
export class RegistrationMissingError extends RegistryError {
  override name = 'RegistrationMissingError';
}

/** Other holders keep the registration (unregister), or a host to forget still holds some (forgetHost). */
export class RegistrationHeldError extends RegistryError {
  static readonly exit: number | undefined = EXIT.busy;
  override name = 'RegistrationHeldError';
  readonly held: readonly RegistryEntry[];
  constructor(message: string, held: readonly RegistryEntry[]) {
    super(message);
    this.held = held;
  }
}

/** "host-a@sid-1 (pids 12, 13 on host-a, since 2026-12-06T09:00:00.000Z)": how messages name a session of any host. */
export function describeRegistration(e: Pick<RegistryEntry, 'host' | 'session' | 'record'>): string {
  const r = e.record;
  return r ? `${e.host}@${e.session} (pids ${r.pids.join(', ') || 'none'} on ${e.host}, since ${r.began})` : `${e.host}@${e.session}`;
}

/** How long an ender retries a registration whose last holder just exited (see takeExclusive). */
export const SETTLE_MS = 2000;

export function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code ?? ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code;
}

export function openRegistration(path: string): FileLock {
  try {
    return FileLock.open(path, { create: false, range: LIVENESS, fileMode: 0o600 });
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ENOENT' || code === 'ESTALE') throw new RegistrationMissingError(`no registration ${path}`, { cause: e });
    throw e;
  }
}

/**
 * settled() for EX, where a registration removed by another host (forget-host)
 * may still be cached by this host's FUSE mount: the lock then fails with
 * ESTALE, and the handle is closed (false, lock.closed).
 */
export async function settledOrGone(lock: FileLock, settleMs: number): Promise<boolean> {
  try {
    return await settled(lock, 'exclusive', settleMs);
  } catch (e) {
    if (!/Stale file handle/.test((e as Error).message)) throw e;
    lock.close();
    return false;
  }
}

/** tryAcquire, again after 1, 2, 4... ms until `settleMs` have passed. */
export async function settled(lock: FileLock, kind: 'shared' | 'exclusive', settleMs: number): Promise<boolean> {
  const end = Date.now() + settleMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 100)) {
    if (lock.tryAcquire(kind)) return true;
    if (Date.now() >= end) return false;
    await sleep(delay);
  }
}

/** byte 0 EX non-blocking: taken => nobody holds the session => stale. undefined if the file is gone. */
export function probe(path: string): 'active' | 'stale' | undefined {
  let lock: FileLock;
  try {
    lock = FileLock.open(path, { create: false, range: LIVENESS });
  } catch {
    return undefined;
  }
  try {
    if (!lock.tryAcquire('exclusive')) return 'active';
    lock.release(); // explicitly: a close alone frees it only when FUSE_RELEASE arrives
    return lock.namesSameFile() ? 'stale' : undefined;
  } finally {
    lock.close();
  }
}

// Not fsynced: the record only describes (the lock is the truth), and an
// fsync through glusterfs is a round trip to the brick's disk on every begin.
export function writeRecord(fd: number, record: Registration, truncate = true): void {
  const text = `${JSON.stringify(record)}\n`;
  if (truncate) ftruncateSync(fd, 0);
  writeSync(fd, text, 0, 'utf8');
}

export function readRecord(path: string): Registration | undefined {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as Registration;
    return typeof r.host === 'string' && typeof r.session === 'string' && Array.isArray(r.pids) ? r : undefined;
  } catch {
    return undefined;
  }
}

