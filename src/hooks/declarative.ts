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
import { DeclarativeError, hookFailure, logLine, refuse, type HookFailure } from './errors.js';
import { applyFstab } from './fstab.js';
import type { HookEntry, HookPhase, HookVars } from './types.js';
import type { MountView } from './within.js';

export interface OneDeclarative {
  entry: HookEntry;
  /** `<phase>.d/<name>` */
  hook: string;
  phase: HookPhase;
  vars: HookVars;
  logFd: number;
  timeoutMs: number;
  /** Shared by the declarative hooks of one phase (see MountView). */
  view?: MountView;
}

/** Applies one declarative hook: undefined when done, else how it failed (also written to hooks.log). Never throws. */
export function runDeclarative(o: OneDeclarative): HookFailure | undefined {
  // One small write per action: hooks.log is for people reading after the fact.
  const log = (line: string) => {
    try {
      writeSync(o.logFd, line);
    } catch {
      // the log is best effort once the hook runs, as for executables
    }
  };
  try {
    const root = o.vars.chrootPath;
    // Never the host's own root: /proc would be bound on /proc.
    if (!isAbsolute(root) || resolve(root) === '/') throw new DeclarativeError(refuse.badRoot(root));
    let text: string;
    try {
      // Through a symlinked hook to its target, as listHooks checked it.
      text = readFileSync(o.entry.path, 'utf8');
    } catch (e) {
      throw new DeclarativeError(refuse.unreadable(o.entry.path, e as Error), undefined, { cause: e });
    }
    const c = { root, none: o.vars.unionType === 'none', log, view: o.view };
    if (o.entry.kind === 'fstab') applyFstab(text, c);
    else if (o.entry.kind === 'copyfiles') applyCopyfiles(text, c);
    else throw new Error(`runDeclarative called for a ${o.entry.kind} hook: ${o.entry.path}`);
    return undefined;
  } catch (e) {
    // Anything else is a bug or an errno nobody foresaw: the hook fails with it, it does not escape the phase.
    // Whatever it mounted before failing is not in the view.
    if (o.view) o.view.below = undefined;
    const d = e instanceof DeclarativeError ? e : undefined;
    const f = hookFailure(o, { reason: d?.reason ?? (e as Error).message ?? String(e), line: d?.line, cause: d ? d.cause : e });
    log(logLine.failed(f));
    return f;
  }
}
