// Where each warden lock lives (DESIGN.md, "Files" and "Locks"): the file
// names, the byte ranges of a session's lock file, the paths, and handles
// on a session's lock bytes before any lock is taken. The locks
// themselves are taken in locks.ts.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FileLock } from '../locks/index.js';
import { StateDirError } from './errors.js';
import type { SessionShared } from './state.js';

export const SESSION_LOCK_FILE = 'lock';
/** `<source>/.ref`: the source lock (the flatpak / pressure-vessel convention). */
export const SOURCE_LOCK_FILE = '.ref';
export const MANAGE_DIR = '.manage';
/** `<shared-dir>/manage.lock`: the manage lock of a shared chroot, for every host. */
export const SHARED_MANAGE_FILE = 'manage.lock';
/** `<state-dir>/supervisor.lock`: one supervisor per state dir. */
export const SUPERVISOR_LOCK_FILE = 'supervisor.lock';
/** Byte 0 of `<id>/lock`: shared by every holder of the session. */
export const LIVENESS = Object.freeze({ start: 0, len: 1 });
/** Byte 1 of `<id>/lock`: exclusive while state.json is rewritten. */
export const METADATA = Object.freeze({ start: 1, len: 1 });

export function manageLockPath(stateDir: string, chroot: string): string {
  return join(stateDir, MANAGE_DIR, `${chroot}.lock`);
}

/** `<state-dir>/.manage`, made when missing (0700: the manage locks are root's). */
export function ensureManageDir(stateDir: string): void {
  try {
    mkdirSync(join(stateDir, MANAGE_DIR), { mode: 0o700 });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new StateDirError(stateDir, `cannot create ${MANAGE_DIR}: ${(e as Error).message}`, e);
  }
}

export function sourceLockPath(source: string): string {
  return join(source, SOURCE_LOCK_FILE);
}

/** Where a chroot's manage lock lives: `<shared-dir>/manage.lock` when shared (every host takes the same one), else in the state dir. */
export function manageLockPathOf(stateDir: string, chroot: string, shared: SessionShared | undefined): string {
  return shared ? join(shared.dir, SHARED_MANAGE_FILE) : manageLockPath(stateDir, chroot);
}

/** A handle on the liveness byte of an existing session lock file (no lock taken yet). */
export function openLiveness(sessionDir: string, opts: { create?: boolean; readOnly?: boolean } = {}): FileLock {
  return FileLock.open(join(sessionDir, SESSION_LOCK_FILE), { range: LIVENESS, create: opts.create ?? false, readOnly: opts.readOnly, fileMode: 0o600 });
}

/** A handle on the metadata byte of a session lock file (no lock taken yet). */
export function openMetadata(sessionDir: string): FileLock {
  return FileLock.open(join(sessionDir, SESSION_LOCK_FILE), { range: METADATA, create: false });
}
