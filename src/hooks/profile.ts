// A chroot's schroot profile (profile=, setup.*=) in the post-mount phase:
// its fstab, copyfiles and nssdatabases, in schroot's setup.d order
// (10mount, 20copyfiles, 20nssdatabases), before the hooks dir's hooks, so a
// hook can rely on what they mount and copy (hooks/README.md, "Profiles").
import { closeSync, constants, fstatSync, openSync, readFileSync } from 'node:fs';
import { untrusted } from '../sys/index.js';
import { DeclarativeError, GetentFailedError, HookPermissionError, hookFailure, refuse } from './errors.js';
import { chunks, runOne, scratchFile, type OneHook } from './spawn.js';
import type { HookEntry, ProfileSetup } from './types.js';

/** A profile file to apply: its text, read and checked once; or why it cannot be (it fails the phase at its turn, as schroot's script does). */
export interface ProfileStep extends HookEntry {
  kind: 'fstab' | 'copyfiles' | 'nssdatabases';
  text: string | DeclarativeError;
}

const ORDER = ['fstab', 'copyfiles', 'nssdatabases'] as const;

/**
 * The profile's files in apply order, each read through the fd whose owner
 * and mode were checked: root reads them as configuration (schroot's rule;
 * the config loader checked them too, but a file may change after). Throws
 * HookPermissionError before anything of the phase has run.
 */
export function readProfile(p: ProfileSetup): ProfileStep[] {
  const out: ProfileStep[] = [];
  for (const kind of ORDER) {
    const path = p[kind];
    if (path !== undefined) out.push({ name: path, path, kind, text: readTrusted(path) });
  }
  return out;
}

function readTrusted(path: string): string | DeclarativeError {
  let fd: number;
  try {
    // Through a symlink, as schroot's scripts read it; O_NONBLOCK: a FIFO fails the isFile check instead of blocking.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return new DeclarativeError(refuse.profileMissing(path), undefined, { cause: e });
    return new DeclarativeError(refuse.unreadable(path, e as Error), undefined, { cause: e });
  }
  try {
    const st = fstatSync(fd);
    const reason = untrusted(st, 'file is');
    if (reason !== undefined) throw new HookPermissionError(path, reason, 'profile file');
    if (!st.isFile()) return new DeclarativeError(refuse.unreadable(path, new Error('not a regular file')));
    return readFileSync(fd, 'utf8');
  } catch (e) {
    if (e instanceof HookPermissionError) throw e;
    return new DeclarativeError(refuse.unreadable(path, e as Error), undefined, { cause: e });
  } finally {
    closeSync(fd);
  }
}

/**
 * getent DB as a hook is run (runOne: own process group, the hook timeout,
 * the phase's abort signal, stderr into hooks.log), its stdout into an
 * unlinked scratch file read back once it has exited.
 */
export async function getent(db: string, o: Omit<OneHook, 'path' | 'args' | 'stdoutFd'>): Promise<Buffer | 'unlistable'> {
  // An abort between two databases: runOne would not see a signal that fired before it listens.
  if (o.signal?.aborted) throw new GetentFailedError(db, hookFailure(o, { interrupted: true, notStarted: true }));
  const out = scratchFile(o.logPath, 'getent');
  try {
    const f = await runOne({ ...o, path: 'getent', args: [db], stdoutFd: out });
    if (f === undefined) return Buffer.concat([...chunks(out)]);
    // getent(1): 3, "enumeration not supported on this database" (netgroup, ethers from files).
    if (f.status === 3 && !f.timedOut && !f.interrupted) return 'unlistable';
    throw new GetentFailedError(db, f);
  } finally {
    closeSync(out);
  }
}
