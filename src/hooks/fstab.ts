// A post-mount.d/NAME.fstab hook: the mounts of a schroot profile's fstab,
// made by warden itself through mount(2), without spawning sh and mount(8)
// (hooks/README.md has the format and the rules).
// mount(2) and /proc/self/mountinfo come from src/sys, the one place that
// talks to either; fstab-parse.ts reads the lines.
import { statSync } from 'node:fs';
import { DeclarativeError, logLine, mountWhat, refuse } from './errors.js';
import { FLAGS, parseFstab, type FstabEntry } from './fstab-parse.js';
import { mountPointsBelow, viewBelow, walk, type MountView } from './within.js';

export { parseFstab, type FstabEntry } from './fstab-parse.js';
import { canonicalPath, mountsUnder, readMountInfo } from '../sys/index.js';
import {
  MS_BIND,
  MS_NOSYMFOLLOW,
  MS_PRIVATE,
  MS_REC,
  MS_REMOUNT,
  sysMount,
  sysUmount,
} from '../sys/index.js';

export interface FstabContext {
  /** The session root (CHROOT_PATH), absolute. */
  root: string;
  /** Union type none: the session is the source chroot, never modified. */
  none: boolean;
  log: (line: string) => void;
  /** The phase's view of the mount points below root, shared with the hooks after this one. */
  view?: MountView;
}

/** A line whose mount point is settled: to mount at `target` (canonical). */
interface Planned {
  e: FstabEntry;
  target: string;
  /** Inside a filesystem an earlier line mounts: checked only once that is there. */
  later: boolean;
  /** What the mount point must be: a directory, or (a bind of a file) a non-directory. */
  last: 'dir' | 'file';
}

/**
 * Applies a .fstab file: every line parsed and every mount point settled
 * (refused, created or skipped) before the first mount, so a refused path
 * mounts nothing; then the mounts in file order, each made private at once.
 * A failure throws DeclarativeError with its line. Mounts this file made
 * before the failure stay: begin's and recover's rollback unmounts
 * everything under the session root, deepest first (src/sessions/begin.ts).
 */
export function applyFstab(text: string, c: FstabContext): void {
  const entries = parseFstab(text);
  if (entries.length === 0) return;
  const root = canonicalPath(c.root);
  const below = viewBelow(c.view, root);
  const planned: Planned[] = [];
  for (const e of entries) {
    try {
      const p = settle(e, root, below, planned, c);
      if (p !== undefined) planned.push(p);
    } catch (err) {
      if (err instanceof DeclarativeError) err.line ??= e.line;
      throw err;
    }
  }
  for (const p of planned) {
    try {
      if (p.later && !settleLater(p, root, c)) continue;
      mountOne(p.e, p.target);
      // Made private; an rbind also brought submounts the view does not know.
      if (c.view && p.e.rec) c.view.below = undefined;
      else c.view?.below?.set(p.target, false);
    } catch (err) {
      if (err instanceof DeclarativeError) err.line ??= p.e.line;
      throw err;
    }
    c.log(logLine.mounted(mountWhat(p.e, p.target), p.e.flagNames, p.e.data));
  }
}

/**
 * A mount point found mounted already is skipped, but kept private: a
 * warden killed between a mount and its MS_PRIVATE left it shared, and a
 * later mount under it (/dev/pts under /dev) would reach the host.
 */
function skipMounted(e: FstabEntry, target: string, shared: boolean | undefined, c: FstabContext): void {
  if (shared) {
    const p = sysMount(null, target, null, MS_PRIVATE, null);
    if (p !== 0) throw new DeclarativeError(refuse.keepPrivate(target, p));
    c.view?.below?.set(target, false);
    c.log(logLine.madePrivate(e.line, target));
  }
  c.log(logLine.alreadyMounted(e.line, target));
}

/** The host source: undefined when it is missing (or no host path at all); its stat otherwise. */
function hostSource(e: FstabEntry): { isDir: boolean } | 'missing' | undefined {
  if (!e.spec.startsWith('/')) return undefined;
  try {
    return { isDir: statSync(e.spec).isDirectory() };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return 'missing';
    throw new DeclarativeError(refuse.cannotCheck(e.spec, err as Error), undefined, { cause: err });
  }
}

/**
 * Settles one line's mount point before anything is mounted: a Planned, or
 * undefined when the line is skipped (logged). Its mount point is either
 * in the session's own tree, walked from the root; or inside a bind an
 * earlier line makes (/dev/pts in /dev), where it is the host's own
 * directory, checked there and never created; or inside a filesystem an
 * earlier line mounts, which cannot be looked at yet (settleLater).
 */
function settle(e: FstabEntry, root: string, below: ReadonlyMap<string, boolean>, planned: readonly Planned[], c: FstabContext): Planned | undefined {
  const target = root === '/' ? e.file : `${root}${e.file}`;
  const src = hostSource(e);
  if (src === 'missing') {
    if (!e.nofail) throw new DeclarativeError(refuse.noSource(e.spec));
    c.log(logLine.noSource(e.line, e.spec, e.file));
    return undefined;
  }
  const last = e.bind && src !== undefined && !src.isDir ? 'file' : 'dir';
  const outer = enclosing(e, planned);
  if (outer === undefined) {
    const end = walk({ from: root, parts: e.parts, last, intent: 'mount', create: !c.none, mountPoints: below, spec: e.bind ? e.spec : undefined });
    if (end.kind === 'mounted') {
      skipMounted(e, target, below.get(target), c);
      return undefined;
    }
    if (end.kind === 'missing') {
      c.log(logLine.unionNone(e.line, end.path, e.file));
      return undefined;
    }
    return { e, target, later: false, last };
  }
  if (!outer.e.bind) return { e, target, later: true, last };
  // What the outer bind will show here is the host's own tree under its source.
  const from = canonicalPath(outer.e.spec);
  const parts = e.parts.slice(outer.e.parts.length);
  if (outer.e.rec) {
    const hostPath = `${from === '/' ? '' : from}/${parts.join('/')}`;
    if (readMountInfo(hostPath).some((m) => m.mountPoint === hostPath)) {
      c.log(logLine.withRbind(e.line, target, outer.e.line));
      return undefined;
    }
  }
  const end = walk({ from, parts, last, intent: 'mount', create: false, mountPoints: new Set(), spec: e.bind ? e.spec : undefined });
  if (end.kind === 'missing') throw new DeclarativeError(refuse.missingOnHost(end.path, outer.e.line, outer.e.spec, outer.e.file));
  return { e, target, later: false, last };
}

/** The deepest earlier line to be mounted whose FILE holds e's. */
function enclosing(e: FstabEntry, planned: readonly Planned[]): Planned | undefined {
  let best: Planned | undefined;
  for (const p of planned) {
    if (e.file.startsWith(`${p.e.file}/`) && (best === undefined || p.e.parts.length > best.e.parts.length)) best = p;
  }
  return best;
}

/**
 * A mount point inside a filesystem an earlier line has just mounted
 * (binfmt_misc in proc's /proc/sys/fs/binfmt_misc, say): walked now that
 * it is there. That filesystem is a mount point below the root, so nothing
 * is created in it. False when the line is skipped (logged).
 */
function settleLater(p: Planned, root: string, c: FstabContext): boolean {
  const { e } = p;
  const below = mountPointsBelow(root);
  const end = walk({ from: root, parts: e.parts, last: p.last, intent: 'mount', create: !c.none, mountPoints: below, spec: e.bind ? e.spec : undefined });
  if (end.kind === 'mounted') skipMounted(e, p.target, below.get(p.target), c);
  else if (end.kind === 'missing') c.log(logLine.unionNone(e.line, end.path, e.file));
  return end.kind === 'ok';
}

/**
 * mount(2), then MS_PRIVATE on the new mount (MS_REC for rbind): a new
 * mount under a shared parent is itself shared, and a bind of a shared host
 * mount (systemd makes / shared) joins the host's peer group, so the
 * /dev/pts bind under the session's /dev would show up in the host's /dev
 * too (mount_namespaces(7); src/union/mount.ts does the same for the
 * session root). Then, for a bind with ro/nosuid/nodev/noexec, the remount
 * that applies them: the kernel ignores them on the bind call itself.
 * Whatever fails after the mount is made unmounts it again.
 */
function mountOne(e: FstabEntry, target: string): void {
  const what = mountWhat(e, target);
  const before = e.rec ? new Set(mountsUnder(target).map((m) => m.id)) : undefined;
  const made = e.bind
    ? sysMount(e.spec, target, null, MS_BIND | (e.rec ? MS_REC : 0), null)
    : sysMount(e.spec, target, e.vfstype, e.flags, e.data);
  if (made !== 0) throw new DeclarativeError(refuse.mount(what, made));
  const priv = sysMount(null, target, null, MS_PRIVATE | (e.rec ? MS_REC : 0), null);
  if (priv !== 0) throw new DeclarativeError(refuse.private(what, priv, undo(target, before)));
  if (!e.bind || e.flags === 0) return;
  // MS_REMOUNT|MS_BIND sets the mount's flags to exactly those given (all
  // but the atime ones): keep the ones the bind inherited from its source
  // (a nosuid,nodev,noexec /sys), add the asked ones.
  const remount = sysMount(null, target, null, MS_REMOUNT | MS_BIND | inheritedFlags(target) | e.flags, null);
  if (remount !== 0) throw new DeclarativeError(refuse.remount(what, e.flagNames, remount, undo(target, before)));
}

/** The per-mount flags of the top mount at `target`, as mountinfo shows them. */
function inheritedFlags(target: string): number {
  let options: string[] = [];
  for (const m of readMountInfo(target)) if (m.mountPoint === target) options = m.options; // the last one is the top
  let flags = 0;
  for (const o of options) flags |= FLAGS[o] ?? (o === 'nosymfollow' ? MS_NOSYMFOLLOW : 0);
  return flags;
}

/** Unmounts what mountOne just made at `target` (for rbind, each new submount first): 0, or the first errno. */
function undo(target: string, before: ReadonlySet<number> | undefined): number {
  if (before === undefined) return sysUmount(target);
  let first = 0;
  for (const m of mountsUnder(target)) {
    if (before.has(m.id)) continue;
    const e = sysUmount(m.mountPoint);
    if (e !== 0 && first === 0) first = e;
  }
  return first;
}
