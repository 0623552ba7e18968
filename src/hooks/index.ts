// Hooks: run-parts style executables in <hooksDir>/<phase>.d/, run as root
// around a session's mount and unmount, and among them in post-mount the
// declarative NAME.fstab and NAME.copyfiles that warden applies itself,
// preceded there by the chroot's schroot profile (DESIGN.md, "Hooks";
// hooks/README.md).
import { closeSync, constants, fstatSync, openSync, writeSync } from 'node:fs';
import { runDeclarative, runNssDatabases } from './declarative.js';
import { HookFailedError, HookPermissionError, trailer } from './errors.js';
import { listHooks } from './list.js';
import { getent, readProfile, type ProfileStep } from './profile.js';
import { runOne } from './spawn.js';
import type { HookEntry, HookPhase, HookRun, HookVars, RunHooksOptions } from './types.js';
import type { MountView } from './within.js';

export type { HookEntry, HookKind, HookPhase, HookRun, HookVars, ProfileSetup, RunHooksOptions } from './types.js';
export { START_PHASES, STOP_PHASES } from './types.js';
export { HookError, HookFailedError, HookPermissionError } from './errors.js';
export { listHooks } from './list.js';
export { NSS_DATABASES } from './nssdatabases.js';
export { strayHooks, killStrayHooks, type StrayHook } from './stray.js';

const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_KILL_GRACE_MS = 2000;

/** A clean environment: nothing of ours leaks into a root hook but the locale and terminal. */
function hookEnv(phase: HookPhase, v: HookVars): Record<string, string> {
  const env: Record<string, string> = { PATH };
  for (const k of ['LANG', 'LC_ALL', 'TERM']) {
    const value = process.env[k];
    if (value !== undefined) env[k] = value;
  }
  return Object.assign(env, {
    CHROOT_NAME: v.chrootName,
    CHROOT_DIRECTORY: v.chrootDirectory,
    CHROOT_PATH: v.chrootPath,
    SESSION_ID: v.sessionId,
    CHROOT_UNION_TYPE: v.unionType,
    CHROOT_UNION_OVERLAY_DIRECTORY: v.overlayDirectory,
    WARDEN_PHASE: phase,
    WARDEN_RECOVER: v.recover ? '1' : '0',
    WARDEN_STATE_DIR: v.stateDir,
  });
}

/** hooks.log for appending; never through a symlink (O_NOFOLLOW), never anything but a regular file. */
function openLog(path: string): number {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted there fails (ENXIO) instead of blocking; it changes nothing for a regular file.
    fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ELOOP') throw new HookPermissionError(path, 'it is a symbolic link', 'hooks log', { cause: e });
    throw e;
  }
  try {
    if (!fstatSync(fd).isFile()) throw new HookPermissionError(path, 'it is not a regular file', 'hooks log');
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  return fd;
}

function interruptedBefore(phase: HookPhase, hook: string, timeoutMs: number, reason: unknown): HookFailedError {
  return new HookFailedError(
    { hook, phase, status: null, signal: null, timedOut: false, interrupted: true, notStarted: true, timeoutMs, stderrTail: [] },
    { cause: reason },
  );
}

/**
 * Runs the hooks of one phase, one after the other: in post-mount first the
 * profile's files (opts.profile), then the hooks dir's executables, each in
 * its own process group, and declarative files, in-process (all but the
 * executables skipped when opts.declarative is false). Resolves with what
 * ran; rejects with HookPermissionError before anything ran, or with the
 * (first) HookFailedError. hooks.log is opened only when there is a hook,
 * and closed before this settles.
 */
export async function runHooks(opts: RunHooksOptions): Promise<HookRun[]> {
  const { phase, signal, timeoutMs } = opts;
  if (!(timeoutMs > 0)) throw new RangeError(`hook timeout must be a positive number of ms, not ${timeoutMs}`);
  if (signal?.aborted) throw interruptedBefore(phase, `${phase}.d`, timeoutMs, signal.reason);
  const profile = phase === 'post-mount' && opts.profile !== undefined ? readProfile(opts.profile) : [];
  const listed = listHooks(opts.hooksDir, phase);
  const hooks: (HookEntry | ProfileStep)[] = [...profile, ...(opts.declarative === false ? listed.filter((h) => h.kind === 'exec') : listed)];
  if (hooks.length === 0) return [];
  const env = hookEnv(phase, opts.vars);
  const logFd = openLog(opts.logPath);
  try {
    const runs: HookRun[] = [];
    const failures: HookFailedError[] = [];
    const view: MountView = {};
    for (const entry of hooks) {
      const { name, path } = entry;
      const text = 'text' in entry ? entry.text : undefined;
      // A profile file is named by its path: it is no file of the phase's dir.
      const hook = 'text' in entry ? path : `${phase}.d/${name}`;
      if (signal?.aborted) {
        failures.push(interruptedBefore(phase, hook, timeoutMs, signal.reason));
        break;
      }
      writeSync(logFd, `== ${phase} ${name} ==\n`);
      // process.hrtime, not performance.now(): the global performance object
      // loads perf_hooks (~1 ms) on first use, in every session start.
      const t0 = process.hrtime.bigint();
      const declarative = entry.kind !== 'exec';
      const spawned = { hook, phase, env, logFd, logPath: opts.logPath, timeoutMs, killGraceMs: opts.killGraceMs ?? DEFAULT_KILL_GRACE_MS, signal };
      const f =
        entry.kind === 'exec' ? await runOne({ ...spawned, path })
        : entry.kind === 'nssdatabases' ? await runNssDatabases({ entry, hook, phase, vars: opts.vars, logFd, timeoutMs, view, text, getent: (db) => getent(db, spawned) })
        : runDeclarative({ entry, hook, phase, vars: opts.vars, logFd, timeoutMs, view, text });
      // An executable may have mounted anything.
      if (!declarative) view.below = undefined;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      writeSync(logFd, trailer(phase, name, f, ms, declarative));
      runs.push({ hook, ms });
      if (f === undefined) continue;
      failures.push(new HookFailedError(f, { cause: f.spawnError ?? f.cause ?? (f.interrupted ? signal?.reason : undefined) }));
      // An interrupt stops even a keepGoing phase: the caller asked us to stop.
      if (!opts.keepGoing || f.interrupted) break;
    }
    const [first, ...others] = failures;
    if (first !== undefined) {
      first.others = others;
      throw first;
    }
    return runs;
  } finally {
    closeSync(logFd);
  }
}
