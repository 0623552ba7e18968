// Which mounts are at or under a path, from /proc/self/mountinfo (proc(5)),
// and the order in which they can be unmounted.
import { readFileSync, realpathSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { statxMountRoot } from './native.js';

export interface MountEntry {
  /** Mount id (field 1); ids of unmounted mounts are reused. */
  id: number;
  /** Id of the mount this one is attached to (field 2). */
  parent: number;
  /** Where it is mounted, as this process sees it (field 5), escapes decoded. */
  mountPoint: string;
  /** The directory of the filesystem mounted there (field 4): "/" unless a bind of a subtree. */
  fsRoot: string;
  fsType: string;
  source: string;
  /** Optional fields: "shared:N", "master:N", "propagate_from:N", "unbindable"; empty when private. */
  propagation: string[];
  /** Per-mount options (field 6): "rw", "ro", "nosuid", "nodev", "noexec", "relatime", ... */
  options: string[];
}

// The kernel writes space, tab, newline and backslash in paths as octal
// escapes (\040, \011, \012, \134); nothing else is escaped. fstab(5)
// uses the same escapes.
export const unescapeOctal = (s: string) => s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));

// The kernel's escaping of a path, to find it in mountinfo's raw text.
const escape = (s: string) => s.replace(/[\\ \t\n]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);

/**
 * The mount table. With `within` (a canonical path), only lines whose text
 * contains it are parsed, a superset of the mounts at or under it: a host
 * with a thousand sessions has five thousand mounts, and begin, end and
 * recover each look at the table several times.
 */
export function readMountInfo(within?: string): MountEntry[] {
  const out: MountEntry[] = [];
  const needle = within === undefined || within === '/' ? undefined : escape(within);
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (needle !== undefined && !line.includes(needle)) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-', 6);
    if (sep < 0 || f.length < sep + 3) continue;
    out.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      fsRoot: unescapeOctal(f[3]!),
      mountPoint: unescapeOctal(f[4]!),
      propagation: f.slice(6, sep),
      options: f[5]!.split(','),
      fsType: unescapeOctal(f[sep + 1]!),
      source: unescapeOctal(f[sep + 2]!),
    });
  }
  return out;
}

/**
 * The path as mountinfo spells it: absolute, symlinks resolved. A path
 * reached through a symlinked state dir would otherwise match no mount and
 * look unmounted. A missing final component is kept as given.
 */
export function canonicalPath(path: string): string {
  const abs = resolve(path);
  try {
    return realpathSync.native(abs);
  } catch {
    try {
      return join(realpathSync.native(dirname(abs)), basename(abs));
    } catch {
      return abs;
    }
  }
}

const under = (p: string, base: string) => p === base || p.startsWith(base === '/' ? '/' : `${base}/`);
const depth = (p: string) => (p === '/' ? 0 : p.split('/').length - 1);

/**
 * Every mount at or under `path`, in an order that unmounts them all:
 * children before their parents, deepest path first, and no mount before
 * one that hides it (see unmountOrder). Mount ids say nothing about age:
 * the kernel reuses the lowest free one.
 */
export function mountsUnder(path: string): MountEntry[] {
  const base = canonicalPath(path);
  return unmountOrder(readMountInfo(base).filter((m) => under(m.mountPoint, base)));
}

/** Whether something is mounted at `path` (symlinks on the way resolved): statx where the kernel says, else mountinfo. */
export function isMountPoint(path: string): boolean {
  const p = canonicalPath(path);
  return statxMountRoot(p) ?? readMountInfo(p).some((m) => m.mountPoint === p);
}

// umount2 takes a path, and a path reaches only the top of what is mounted
// along it. A mount M is out of reach while a sibling (same parent mount)
// sits on M's own point or on a directory above it: e.g. a tmpfs at
// root/run/lock, then one at root/run; or one stacked on the parent's own
// point, which hides all of the parent's other children. The same holds for
// each of M's ancestors in the set. Repeatedly take the deepest mount with
// no children left that is within reach.
function unmountOrder(mounts: MountEntry[]): MountEntry[] {
  const left = new Map(mounts.map((m) => [m.id, m]));
  const out: MountEntry[] = [];
  const deeperFirst = (a: MountEntry, b: MountEntry) => depth(b.mountPoint) - depth(a.mountPoint) || b.id - a.id;
  const hidden = (m: MountEntry) => [...left.values()].some((x) => x !== m && x.parent === m.parent && under(m.mountPoint, x.mountPoint));
  const reachable = (m: MountEntry) => {
    // The root of a namespace is its own parent (proc(5)); the bound guards against any other loop.
    for (let a: MountEntry | undefined = m, n = 0; a && n <= left.size; a = a.parent === a.id ? undefined : left.get(a.parent), n++) {
      if (hidden(a)) return false;
    }
    return true;
  };
  while (left.size > 0) {
    const parents = new Set([...left.values()].filter((m) => m.parent !== m.id).map((m) => m.parent));
    const ready = [...left.values()].filter((m) => !parents.has(m.id) && reachable(m)).sort(deeperFirst);
    // Only a table the kernel cannot produce leaves nothing ready; then plain depth order.
    const next = ready[0] ?? [...left.values()].sort(deeperFirst)[0]!;
    out.push(next);
    left.delete(next.id);
  }
  return out;
}
