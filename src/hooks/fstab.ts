// A post-mount.d/NAME.fstab hook: the mounts of a schroot profile's fstab,
// made by warden itself through mount(2), without spawning sh and mount(8)
// (hooks/README.md has the format and the rules).
//
// The hooks layer reaches into src/union here on purpose: native.ts is the
// one place that talks to mount(2), and mountinfo.ts the one reader of
// /proc/self/mountinfo; a second copy of either in src/hooks would drift.
import { statSync } from 'node:fs';
import { DeclarativeError, logLine, mountWhat, refuse } from './errors.js';
import { components, mountPointsBelow, viewBelow, walk, type MountView } from './within.js';
import { canonicalPath, mountsUnder, readMountInfo, unescapeOctal } from '../sys/index.js';
import {
  MS_BIND,
  MS_NODEV,
  MS_NOEXEC,
  MS_NOSUID,
  MS_NOSYMFOLLOW,
  MS_PRIVATE,
  MS_RDONLY,
  MS_REC,
  MS_REMOUNT,
  sysMount,
  sysUmount,
} from '../sys/index.js';

/** One line of a .fstab file. */
export interface FstabEntry {
  line: number;
  /** Host path (binds), or the filesystem's source (`tmpfs`, `proc`, a device). */
  spec: string;
  /** Absolute path inside the session, normalised ('/dev/pts'). */
  file: string;
  parts: string[];
  vfstype: string;
  /** `bind` or `rbind`. */
  bind: boolean;
  /** `rbind`: MS_REC. */
  rec: boolean;
  /** ro, nosuid, nodev, noexec as MS_* flags, and by name for messages. */
  flags: number;
  flagNames: string[];
  nofail: boolean;
  /** Unknown options of a filesystem mount, for mount(2)'s data argument. */
  data: string | null;
}

// mount(8)'s names of the per-mount flags (and of what mountinfo shows).
const FLAGS: Record<string, number> = { ro: MS_RDONLY, nosuid: MS_NOSUID, nodev: MS_NODEV, noexec: MS_NOEXEC };
// mount(2) copies at most one page of option data.
const MAX_DATA = 4095;

/** Parses every line; throws DeclarativeError naming the first bad line. */
export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    try {
      const e = parseLine(raw, i + 1);
      const earlier = seen.get(e.file);
      if (earlier !== undefined) throw new DeclarativeError(refuse.sameFile(e.file, earlier));
      seen.set(e.file, e.line);
      out.push(e);
    } catch (err) {
      if (err instanceof DeclarativeError) err.line ??= i + 1;
      throw err;
    }
  }
  return out;
}

function parseLine(raw: string, line: number): FstabEntry {
  const fields = raw.split(/[ \t]+/);
  if (fields.length < 4 || fields.length > 6) throw new DeclarativeError(refuse.fields(fields.length));
  // fstab(5): "\040" and the like stand for a space (tab, newline, backslash, any byte) in a field.
  const [spec, file, vfstype, options] = fields.slice(0, 4).map(unescapeOctal) as [string, string, string, string];
  // FREQ and PASSNO are dump(8) and fsck(8) matters: checked, then ignored.
  for (const [name, value] of [['FREQ', fields[4]], ['PASSNO', fields[5]]] as const) {
    if (value !== undefined && !/^\d+$/.test(value)) throw new DeclarativeError(refuse.notNumber(name, value));
  }
  for (const [name, value] of [['SPEC', spec], ['FILE', file], ['VFSTYPE', vfstype], ['OPTIONS', options]] as const) {
    if (value.includes('\0')) throw new DeclarativeError(refuse.nul(name));
  }
  if (!file.startsWith('/')) throw new DeclarativeError(refuse.fileNotAbsolute(file));
  const parts = components(file);
  if (parts === undefined) throw new DeclarativeError(refuse.dotDot('FILE', file));
  if (parts.length === 0) throw new DeclarativeError(refuse.sessionRoot());

  let bind = false;
  let rec = false;
  let nofail = false;
  const named = new Set<string>();
  const rest: string[] = [];
  for (const opt of options.split(',')) {
    if (opt === '') throw new DeclarativeError(refuse.emptyOption(options));
    if (opt === 'bind') bind = true;
    else if (opt === 'rbind') bind = rec = true;
    else if (opt === 'nofail') nofail = true;
    else if (opt === 'rw') named.delete('ro');
    else if (opt in FLAGS) named.add(opt);
    else if (opt !== 'defaults') rest.push(opt);
  }
  if (bind) {
    if (rest.length > 0) throw new DeclarativeError(refuse.bindOption(rest[0]!));
    if (!spec.startsWith('/')) throw new DeclarativeError(refuse.bindSource(spec));
    if (rec && named.size > 0) throw new DeclarativeError(refuse.rbindFlags([...named]));
  }
  const data = rest.length > 0 ? rest.join(',') : null;
  if (data !== null && data.length > MAX_DATA) throw new DeclarativeError(refuse.dataTooLong(MAX_DATA));
  const flagNames = Object.keys(FLAGS).filter((n) => named.has(n));
  const flags = flagNames.reduce((acc, n) => acc | FLAGS[n]!, 0);
  return { line, spec, file: `/${parts.join('/')}`, parts, vfstype, bind, rec, flags, flagNames, nofail, data };
}

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
