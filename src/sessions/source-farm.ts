// A shared chroot's source entry (build farms): what the registrations of
// every host add to source.ts's steps. Remote sessions are invisible to
// this host's /proc/locks, and glusterfs gives no pid for a remote lock:
// the registrations name them.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { FileLock } from '../locks/index.js';
import type { SessionHolder, StaleRegistration } from './errors.js';
import { registryOf, type LockWaitOptions } from './locks.js';
import { waitOpts } from './lock-waits.js';
import type { RegistryEntry } from './registry.js';
import type { SessionShared } from './state.js';

/** Every registration of the chroot, probed (never blocks). */
export function registrations(shared: SessionShared | undefined): RegistryEntry[] {
  return shared ? registryOf(shared).list() : [];
}

/**
 * A registration of this host whose session dir is gone: its end died
 * between removing the dir and the registration (or it was ended by hand).
 * Nothing of it is mounted anywhere; once stale it is only a leftover.
 */
export function isOwnOrphan(shared: SessionShared, stateDir: string, e: RegistryEntry): boolean {
  return e.host === shared.host && !existsSync(join(stateDir, e.session));
}

/**
 * The stale registrations that block an entry: every host's, but this
 * host's own only when its session dir is gone (a stale session of this
 * host with its dir is reported, or ended, as a local one). This host's
 * stale orphans are removed on the way: nothing of them is left to guard.
 * Preconditions: the chroot's manage lock is held (no begin registers meanwhile).
 */
export async function staleRegistrationsLocked(shared: SessionShared | undefined, stateDir: string): Promise<StaleRegistration[]> {
  if (!shared) return [];
  const out: StaleRegistration[] = [];
  const all = registrations(shared);
  await removeOwnOrphansLocked(shared, stateDir, all);
  for (const e of all) {
    if (e.status !== 'stale' || e.host === shared.host) continue;
    out.push({ host: e.host, id: e.session, pids: e.record?.pids ?? [], since: e.record?.began });
  }
  return out;
}

/** This host's stale registrations without a session dir here (isOwnOrphan), among `entries`. */
export function ownOrphans(shared: SessionShared, stateDir: string, entries: readonly RegistryEntry[]): RegistryEntry[] {
  return entries.filter((e) => e.status === 'stale' && isOwnOrphan(shared, stateDir, e));
}

/**
 * Removes this host's orphans among `entries` (default: the registry now)
 * and returns those removed. Each is taken EX without waiting and checked
 * to be the file it names, so a registration that someone holds (it is not
 * stale after all) or that went meanwhile is left alone; another host's is
 * never touched.
 * Preconditions: the chroot's manage lock is held (no begin of this host
 * registers meanwhile, so a session dir cannot appear for an orphan's id).
 */
export async function removeOwnOrphansLocked(shared: SessionShared, stateDir: string, entries: readonly RegistryEntry[] = registrations(shared)): Promise<RegistryEntry[]> {
  const removed: RegistryEntry[] = [];
  for (const e of ownOrphans(shared, stateDir, entries)) {
    const handle = await registryOf(shared).takeExclusive(e.session, 0).catch(() => undefined);
    if (!handle) continue;
    // Under EX: nobody can hold it now, and the check above cannot have changed.
    if (existsSync(join(stateDir, e.session))) {
      handle.close();
      continue;
    }
    handle.remove();
    removed.push(e);
  }
  return removed;
}

/** Sessions of other hosts that hold the registration now: who a source wait waits for, by name. */
export function remoteHolders(shared: SessionShared | undefined): SessionHolder[] {
  if (!shared) return [];
  return registrations(shared)
    .filter((e) => e.status === 'active' && e.host !== shared.host)
    .map((e) => ({ id: e.session, host: e.host, pids: e.record?.pids ?? [], createdAt: e.record?.began ?? '' }));
}

/**
 * Waits until nothing holds registration `e` (its ender or recoverer, on
 * its host, is done), then lets go at once: registration EX, released
 * explicitly (FUSE releases a closed fd's lock asynchronously).
 * Preconditions: the chroot's manage lock is held, the source lock is not.
 */
export async function waitRegistrationFreeLocked(e: RegistryEntry, o: LockWaitOptions): Promise<void> {
  let lock: FileLock;
  try {
    lock = FileLock.open(e.path, { create: false, range: { start: 0, len: 1 } });
  } catch {
    return; // removed meanwhile
  }
  try {
    await lock.acquire('exclusive', waitOpts('liveness', e.path, o));
    lock.release();
  } finally {
    lock.close();
  }
}
