// A post-mount.d/NAME.copyfiles hook: schroot's copyfiles, host files copied
// to the same paths inside the session, by warden itself (hooks/README.md).
import { closeSync, constants, fchmodSync, fstatSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { DeclarativeError, logLine, refuse } from './errors.js';
import { components, lstatOrNone, viewBelow, walk, type MountView } from './within.js';
import { canonicalPath } from '../sys/index.js';

export interface CopyEntry {
  line: number;
  /** Absolute, normalised: the host file and, under the session root, its copy. */
  path: string;
  parts: string[];
}

/** One absolute path a line; `#` comments and blank lines. Throws DeclarativeError naming the first bad line. */
export function parseCopyfiles(text: string): CopyEntry[] {
  const out: CopyEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    const line = i + 1;
    if (!raw.startsWith('/')) throw new DeclarativeError(refuse.copyNotAbsolute(raw), line);
    if (raw.includes('\0')) throw new DeclarativeError(refuse.nul('path'), line);
    const parts = components(raw);
    if (parts === undefined) throw new DeclarativeError(refuse.dotDot('path', raw), line);
    if (parts.length === 0) throw new DeclarativeError(refuse.copyRoot(), line);
    out.push({ line, path: `/${parts.join('/')}`, parts });
  }
  return out;
}

export interface CopyContext {
  root: string;
  /** Union type none: the session is the source chroot; nothing is copied. */
  none: boolean;
  log: (line: string) => void;
  /** The phase's view of the mount points below root (see MountView). */
  view?: MountView;
}

/**
 * Copies each line's host file into the session, in file order. The whole
 * file is parsed first: a bad line copies nothing. A failure throws
 * DeclarativeError with its line; copies made before it stay (the session
 * is rolled back, or recovered again, as a whole).
 */
export function applyCopyfiles(text: string, c: CopyContext): void {
  const entries = parseCopyfiles(text);
  if (entries.length === 0) return;
  if (c.none) {
    c.log(logLine.copyNone());
    return;
  }
  const root = canonicalPath(c.root);
  const below = viewBelow(c.view, root);
  for (const e of entries) {
    try {
      copyOne(e, root, below, c);
    } catch (err) {
      if (err instanceof DeclarativeError) err.line ??= e.line;
      throw err;
    }
  }
}

function copyOne(e: CopyEntry, root: string, below: ReadonlyMap<string, boolean>, c: CopyContext): void {
  // The host's path is read through its symlinks (resolv.conf is often one into /run).
  const content = readHost(e.path);
  if (content === undefined) {
    c.log(logLine.noHostFile(e.line, e.path));
    return;
  }
  // The parent dirs: made 0755 when missing; a symlink or a mount point among them is refused.
  walk({ from: root, parts: e.parts.slice(0, -1), last: 'dir', intent: 'write', create: true, mountPoints: below });
  const dest = `${root === '/' ? '' : root}${e.path}`;
  if (below.has(dest)) throw new DeclarativeError(refuse.writeUnderMount(dest));
  // Writing through a symlink in the chroot (an absolute one points into
  // the host) would change its target: the link is replaced instead.
  const st = lstatOrNone(dest);
  if (st !== undefined && !st.isFile() && !st.isSymbolicLink()) throw new DeclarativeError(refuse.destNotFile(dest));
  // Already a copy (a recovered session, or a chroot whose file is the
  // host's): left alone, which spares an overlay the copy-up of the file.
  if (st?.isFile() && st.size === content.length && (st.mode & 0o7777) === 0o644 && sameBytes(dest, content)) {
    c.log(logLine.alreadyCopied(e.line, e.path, dest));
    return;
  }
  try {
    if (st?.isSymbolicLink()) unlinkSync(dest);
  } catch (err) {
    throw new DeclarativeError(refuse.copy(e.path, dest, err as Error), undefined, { cause: err });
  }
  writeCopy(e.path, dest, content);
  c.log(logLine.copied(e.path, dest));
}

/** Does the regular file at `path` hold exactly `content`? (Read without following a link.) */
export function sameBytes(path: string, content: Buffer): boolean {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return false; // gone or replaced meanwhile: written afresh below
  }
  try {
    return fstatSync(fd).isFile() && readFileSync(fd).equals(content);
  } finally {
    closeSync(fd);
  }
}

/** The host file's bytes; undefined when it is missing (or a dangling link). */
function readHost(path: string): Buffer | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO there fails the isFile check below instead of blocking the open.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw new DeclarativeError(refuse.unreadable(path, err as Error), undefined, { cause: err });
  }
  try {
    if (!fstatSync(fd).isFile()) throw new DeclarativeError(refuse.hostNotFile(path));
    return readFileSync(fd);
  } catch (err) {
    if (err instanceof DeclarativeError) throw err;
    throw new DeclarativeError(refuse.unreadable(path, err as Error), undefined, { cause: err });
  } finally {
    closeSync(fd);
  }
}

/**
 * A regular file, mode 0644 whatever the umask (an existing one is
 * truncated and re-moded), never opened through a link (O_NOFOLLOW) nor
 * blocked on a FIFO put there meanwhile (O_NONBLOCK; O_TRUNC does nothing
 * to one, and the fstat refuses it). O_TRUNC at open rather than a later
 * ftruncate: overlayfs then copies up no data it would throw away.
 */
function writeCopy(host: string, dest: string, content: Buffer): void {
  let fd: number | undefined;
  try {
    fd = openSync(dest, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o644);
    if (!fstatSync(fd).isFile()) throw new DeclarativeError(refuse.destNotFile(dest));
    fchmodSync(fd, 0o644);
    for (let at = 0; at < content.length; ) at += writeSync(fd, content, at, content.length - at);
  } catch (err) {
    if (err instanceof DeclarativeError) throw err;
    throw new DeclarativeError(refuse.copy(host, dest, err as Error), undefined, { cause: err });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
