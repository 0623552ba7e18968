// Which hooks a phase runs, run-parts style, and the ownership checks that
// must pass before any of them runs (they run as root).
import { lstatSync, readdirSync, statSync, type Stats } from 'node:fs';
import { join, resolve } from 'node:path';
import { untrusted } from '../sys/index.js';
import { HookPermissionError } from './errors.js';
import type { HookEntry, HookKind, HookPhase } from './types.js';

/**
 * run-parts(8)'s default name rule (the LANANA-ish one, without --lsbsysinit):
 * only [A-Za-z0-9_-]. So dotfiles (.keep), editor backups (foo~), package
 * leftovers (foo.dpkg-old, foo.rpmnew) and README.md are never run.
 */
const HOOK_NAME = /^[A-Za-z0-9_-]+$/;

/** Stop phases undo start phases, so they run in reverse order. */
function reversed(phase: HookPhase): boolean {
  return phase === 'pre-unmount' || phase === 'post-unmount';
}

/** Byte order of names (names are ASCII by HOOK_NAME and DECLARATIVE, so code-unit order is byte order). */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

const myUid = process.getuid?.() ?? 0;

function check(path: string, st: Stats, what: string, checkMode = true): void {
  const reason = untrusted(st, what, { checkMode });
  if (reason !== undefined) throw new HookPermissionError(path, reason);
}

/** stat that maps "not there" to undefined. */
function statOrNone(path: string, stat: (p: string) => Stats): Stats | undefined {
  try {
    return stat(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/**
 * Declarative hooks: `NAME.fstab` and `NAME.copyfiles` (NAME by HOOK_NAME),
 * applied by warden itself (declarative.ts), only in post-mount: they mount
 * into and copy into a session that is mounted. Elsewhere they are dotted
 * names like any other, and skipped.
 */
const DECLARATIVE = /^[A-Za-z0-9_-]+\.(fstab|copyfiles)$/;

/** What runs a hook: spawned (`exec`), or read and applied in-process. */
function kindOf(name: string, phase: HookPhase): HookKind | undefined {
  if (HOOK_NAME.test(name)) return 'exec';
  if (phase !== 'post-mount') return undefined;
  const m = DECLARATIVE.exec(name);
  return m === null ? undefined : (m[1] as 'fstab' | 'copyfiles');
}

/**
 * The hooks of a phase: validated, in run order (byte order of full names,
 * so `10-mounts.fstab` runs before `15-x` and `20-files.copyfiles`). A
 * missing hooksDir or `<phase>.d` means none. Throws HookPermissionError
 * when hooksDir, `<phase>.d`, a hook or a symlinked hook's target is not
 * owned by root (or by us when we are not root) or is group/world-writable;
 * nothing has run then. Declarative files need no x bit, but the same
 * ownership and mode: warden applies them as root.
 */
export function listHooks(hooksDirArg: string, phase: HookPhase): HookEntry[] {
  const hooksDir = resolve(hooksDirArg);
  const top = statOrNone(hooksDir, statSync);
  if (top === undefined) return [];
  check(hooksDir, top, 'directory is');
  const dir = join(hooksDir, `${phase}.d`);
  const dst = statOrNone(dir, statSync);
  if (dst === undefined) return [];
  check(dir, dst, 'directory is');

  const named: { name: string; kind: HookKind }[] = [];
  for (const name of readdirSync(dir)) {
    const kind = kindOf(name, phase);
    if (kind !== undefined) named.push({ name, kind });
  }
  named.sort((a, b) => byteOrder(a.name, b.name));
  if (reversed(phase)) named.reverse();
  const hooks: HookEntry[] = [];
  for (const { name, kind } of named) {
    const path = join(dir, name);
    // Executables need an x bit; a declarative file is read, so any regular file will do.
    const runnable = (st: Stats) => st.isFile() && (kind !== 'exec' || executable(st));
    const l = statOrNone(path, lstatSync);
    if (l === undefined) continue; // removed meanwhile
    let st = l;
    if (l.isSymbolicLink()) {
      // A symlink's own mode means nothing; who made it and what it points to do.
      check(path, l, 'symlink is', false);
      const t = statOrNone(path, statSync);
      if (t === undefined) continue; // dangling: nothing to run, as run-parts
      st = t;
      if (runnable(st)) check(path, st, 'its target is');
    }
    // Directories and non-executable files are skipped, as run-parts does.
    if (!runnable(st)) continue;
    if (st === l) check(path, st, 'file is');
    hooks.push({ name, path, kind });
  }
  return hooks;
}

/** Would exec(2) let us run it? Root needs any x bit; others own the file (checked) so need the owner's. */
function executable(st: Stats): boolean {
  return (st.mode & (myUid === 0 ? 0o111 : 0o100)) !== 0;
}
