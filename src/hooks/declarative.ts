// Declarative hooks: post-mount.d/NAME.fstab and NAME.copyfiles, applied by
// warden itself, in-process, in their place among the executables. Spawning
// sh for each default hook, and mount(8) from one, cost ~10 ms of every
// session start; the same mounts and copies through mount(2) and fs calls
// cost ~1 ms (hooks/README.md).
//
// They run synchronously: nothing in them waits on anything but the kernel,
// so they have no timeout and an abort is seen between hooks, not inside one.
import { readFileSync, writeSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { applyCopyfiles } from './copyfiles.js';
import { DeclarativeError, GetentFailedError, hookFailure, logLine, refuse, type HookFailure } from './errors.js';
import { applyFstab } from './fstab.js';
import { applyNssDatabases, type Getent } from './nssdatabases.js';
import type { HookEntry, HookPhase, HookVars } from './types.js';
import type { MountView } from './within.js';

export interface OneDeclarative {
  entry: HookEntry;
  /** `<phase>.d/<name>`, or a profile file's path */
  hook: string;
  phase: HookPhase;
  vars: HookVars;
  logFd: number;
  timeoutMs: number;
  /** Shared by the declarative hooks of one phase (see MountView). */
  view?: MountView;
  /** A profile file's text, read and checked already, or why it could not be (profile.ts); undefined: read entry.path. */
  text?: string | DeclarativeError;
}

/** Applies one declarative hook: undefined when done, else how it failed (also written to hooks.log). Never throws. */
export function runDeclarative(o: OneDeclarative): HookFailure | undefined {
  const log = logger(o.logFd);
  try {
    const root = sessionRoot(o);
    const text = textOf(o);
    const c = { root, none: o.vars.unionType === 'none', log, view: o.view };
    if (o.entry.kind === 'fstab') applyFstab(text, c);
    else if (o.entry.kind === 'copyfiles') applyCopyfiles(text, c);
    else throw new Error(`runDeclarative called for a ${o.entry.kind} hook: ${o.entry.path}`);
    return undefined;
  } catch (e) {
    return failed(o, e, log);
  }
}

/** Applies a profile's nssdatabases (nssdatabases.ts), getent run by `getent`: undefined when done, else how it failed. Never throws. */
export async function runNssDatabases(o: OneDeclarative & { getent: Getent }): Promise<HookFailure | undefined> {
  const log = logger(o.logFd);
  try {
    const root = sessionRoot(o);
    const text = textOf(o);
    await applyNssDatabases(text, { root, none: o.vars.unionType === 'none', log, view: o.view, getent: o.getent });
    return undefined;
  } catch (e) {
    return failed(o, e, log);
  }
}

// One small write per action: hooks.log is for people reading after the fact.
function logger(fd: number): (line: string) => void {
  return (line) => {
    try {
      writeSync(fd, line);
    } catch {
      // the log is best effort once the hook runs, as for executables
    }
  };
}

function sessionRoot(o: OneDeclarative): string {
  const root = o.vars.chrootPath;
  // Never the host's own root: /proc would be bound on /proc.
  if (!isAbsolute(root) || resolve(root) === '/') throw new DeclarativeError(refuse.badRoot(root));
  return root;
}

function textOf(o: OneDeclarative): string {
  if (o.text instanceof DeclarativeError) throw o.text;
  if (o.text !== undefined) return o.text;
  try {
    // Through a symlinked hook to its target, as listHooks checked it.
    return readFileSync(o.entry.path, 'utf8');
  } catch (e) {
    throw new DeclarativeError(refuse.unreadable(o.entry.path, e as Error), undefined, { cause: e });
  }
}

/** A declarative hook's failure from what it threw; written to hooks.log too. */
function failed(o: OneDeclarative, e: unknown, log: (line: string) => void): HookFailure {
  // Anything else is a bug or an errno nobody foresaw: the hook fails with it, it does not escape the phase.
  // Whatever it mounted before failing is not in the view.
  if (o.view) o.view.below = undefined;
  const d = e instanceof DeclarativeError ? e : undefined;
  // getent timed out or was interrupted: the phase must know (an interrupt stops even a keepGoing phase).
  const g = e instanceof GetentFailedError ? { timedOut: e.failure.timedOut, interrupted: e.failure.interrupted, stderrTail: e.failure.stderrTail } : {};
  const f = hookFailure(o, { ...g, reason: d?.reason ?? (e as Error).message ?? String(e), line: d?.line, cause: d ? d.cause : e });
  log(logLine.failed(f));
  return f;
}
