// Paths inside a session, for the declarative hooks: a .fstab line's FILE
// and a .copyfiles destination, walked from the session root one component
// at a time with lstat. The chroot belongs to its users: a symlink there
// could aim a mount or a write anywhere on the host, so none is followed.
import { closeSync, constants, fchmodSync, lstatSync, mkdirSync, openSync, type Stats } from 'node:fs';
import { DeclarativeError, refuse } from './errors.js';
import { readMountInfo } from '../sys/index.js';

/** Mount points strictly below `root` (canonical), each with whether its top mount is shared, from one read of mountinfo. */
export function mountPointsBelow(root: string): Map<string, boolean> {
  const prefix = root === '/' ? '/' : `${root}/`;
  const out = new Map<string, boolean>();
  // A later line of a stack on one mount point is the top one, and wins.
  for (const m of readMountInfo(root)) if (m.mountPoint.startsWith(prefix)) out.set(m.mountPoint, m.propagation.some((p) => p.startsWith('shared:')));
  return out;
}

/**
 * The mount points below a session root as the declarative hooks of one
 * phase know them: read from mountinfo by the first that needs them, then
 * kept up to date with the mounts they make, and forgotten whenever
 * something else may have mounted (an executable hook ran, an rbind brought
 * submounts, a hook failed). Each read of mountinfo walks every mount of
 * the namespace, 5 per session: a second read per session start cost ~10%
 * of 50 begins in one process.
 */
export interface MountView {
  root?: string;
  below?: Map<string, boolean>;
}

/** mountPointsBelow(root), through `view` when there is one. */
export function viewBelow(view: MountView | undefined, root: string): Map<string, boolean> {
  if (view === undefined) return mountPointsBelow(root);
  if (view.below === undefined || view.root !== root) {
    view.below = mountPointsBelow(root);
    view.root = root;
  }
  return view.below;
}

/** '/a/./b//c/' -> ['a', 'b', 'c']; undefined when a component is '..'. */
export function components(path: string): string[] | undefined {
  const parts = path.split('/').filter((c) => c !== '' && c !== '.');
  return parts.includes('..') ? undefined : parts;
}

/** lstat that maps "not there" to undefined; any other failure is the line's. */
export function lstatOrNone(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    throw new DeclarativeError(refuse.cannotCheck(path, e as Error), undefined, { cause: e });
  }
}

export interface Walk {
  /** Where to start: the session root, or (for a mount point inside another line's bind) the bind's host source. Canonical. */
  from: string;
  parts: readonly string[];
  /** What the last component must be: a directory (made 0755 if missing) or a non-directory (an empty 0644 file if missing). */
  last: 'dir' | 'file';
  /** Why: to mount on the last component, or to write a file in it (a copy's parent dirs). */
  intent: 'mount' | 'write';
  /** Create what is missing. False when the session is the source chroot (union type none) or the walk is on the host. */
  create: boolean;
  /**
   * Mount points strictly below `from`. Nothing is created or written at or
   * under one: in a recovered session they are the binds that survived (the
   * host's own /dev, say), and a session never writes into the host.
   */
  mountPoints: { has(path: string): boolean };
  /** The bind's host source, named when the last component is of the wrong type. */
  spec?: string;
}

export type WalkEnd =
  /** Every component is there (or was made), none a symlink. */
  | { kind: 'ok'; path: string }
  /** `path` is missing and may not be created (walk.create false). */
  | { kind: 'missing'; path: string }
  /** The mount point (the last component) is a mount point already. */
  | { kind: 'mounted'; path: string };

/**
 * Walks `from`/parts. A symlink component is refused; a non-directory where
 * a directory must be is refused; a missing component is created (whatever
 * the umask) when walk.create allows and no mount point lies above it, else
 * reported as missing or refused. Throws DeclarativeError without a line
 * number (the caller adds it).
 */
export function walk(w: Walk): WalkEnd {
  let path = w.from;
  let mountAbove: string | undefined;
  for (let i = 0; i < w.parts.length; i++) {
    path = `${path === '/' ? '' : path}/${w.parts[i]}`;
    const isLast = i === w.parts.length - 1;
    if (w.mountPoints.has(path)) {
      if (w.intent === 'write') throw new DeclarativeError(refuse.writeUnderMount(path));
      if (isLast) return { kind: 'mounted', path };
      mountAbove = path;
    }
    const st = lstatOrNone(path);
    if (st === undefined) {
      if (!w.create) return { kind: 'missing', path };
      if (mountAbove !== undefined) throw new DeclarativeError(refuse.underMount(path, mountAbove));
      if (isLast && w.last === 'file') createFile(path);
      else createDir(path);
      continue;
    }
    if (st.isSymbolicLink()) throw new DeclarativeError(refuse.symlink(path, w.intent === 'write' ? 'write' : isLast ? 'mount' : 'under'));
    if (isLast && w.last === 'file') {
      if (st.isDirectory()) throw new DeclarativeError(refuse.dirForFile(path, w.spec ?? '?'));
    } else if (!st.isDirectory()) {
      throw new DeclarativeError(isLast && w.spec !== undefined ? refuse.fileForDir(path, w.spec) : refuse.notDir(path));
    }
  }
  return { kind: 'ok', path };
}

// mkdir(2) applies the umask; fchmod(2) on the new directory, opened
// without following a link, sets 0755 whatever it is (and whatever
// replaced the directory meanwhile is refused rather than chmodded).
function createDir(path: string): void {
  createWithMode(path, 0o755, () => {
    mkdirSync(path, 0o755);
    return openSync(path, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW);
  });
}

/** An empty regular file, mode 0644: the mount point of a bind of a file. */
function createFile(path: string): void {
  createWithMode(path, 0o644, () => openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o644));
}

/** Makes `path` through `make` (which returns an fd of it) and sets `mode` on that fd, whatever the umask. */
function createWithMode(path: string, mode: number, make: () => number): void {
  try {
    const fd = make();
    try {
      fchmodSync(fd, mode);
    } finally {
      closeSync(fd);
    }
  } catch (e) {
    throw new DeclarativeError(refuse.cannotCreate(path, e as Error), undefined, { cause: e });
  }
}
