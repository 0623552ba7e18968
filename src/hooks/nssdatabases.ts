// A schroot profile's nssdatabases: the host's passwd, group, ... written
// into the session's /etc from getent(1)'s listing, as schroot's
// setup.d/20nssdatabases does (`getent DB > "$CHROOT_PATH/etc/DB"`), so the
// host's users (sbuild's, say) exist in the session. The session is the
// users' ground: /etc/DB is written through a directory fd of /etc, opened
// without following a link, and a symlink planted at /etc/DB is replaced,
// never written through.
import { closeSync, constants, fchmodSync, fstatSync, openSync, statSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { sameBytes } from './copyfiles.js';
import { DeclarativeError, logLine, refuse } from './errors.js';
import { lstatOrNone, viewBelow, walk, type MountView } from './within.js';
import { canonicalPath } from '../sys/index.js';

/**
 * The databases getent(1) lists that have an /etc file of that name (glibc's
 * "files" service). schroot takes any name; a name outside this list would
 * make warden write an arbitrary /etc file as root, so it is refused.
 */
export const NSS_DATABASES: readonly string[] = Object.freeze([
  'passwd',
  'shadow',
  'group',
  'gshadow',
  'services',
  'protocols',
  'networks',
  'hosts',
  'netgroup',
  'aliases',
  'ethers',
  'rpc',
]);

/** Made 0640 when the session has none (root's group: warden does not guess the session's shadow group). */
const SECRET = new Set(['shadow', 'gshadow']);

export interface NssEntry {
  line: number;
  db: string;
}

/** One database name a line, `#` comment lines and blank lines (schroot's format). Throws DeclarativeError naming the first bad line. */
export function parseNssDatabases(text: string): NssEntry[] {
  const out: NssEntry[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    if (!NSS_DATABASES.includes(raw)) throw new DeclarativeError(refuse.nssName(raw, NSS_DATABASES), i + 1);
    out.push({ line: i + 1, db: raw });
  }
  return out;
}

/** getent DB: its output, or 'unlistable' (exit status 3: the host's source cannot enumerate it). Throws DeclarativeError when it fails otherwise. */
export type Getent = (db: string) => Promise<Buffer | 'unlistable'>;

export interface NssContext {
  root: string;
  /** Union type none: the session is the source chroot; nothing is written. */
  none: boolean;
  log: (line: string) => void;
  view?: MountView;
  getent: Getent;
}

/**
 * Writes each named database into the session, in file order. The whole
 * file is parsed first: a bad line writes nothing. getent's failure, or a
 * refused destination, throws DeclarativeError with its line; databases
 * written before it stay (the session is rolled back or recovered as a whole).
 */
export async function applyNssDatabases(text: string, c: NssContext): Promise<void> {
  const entries = parseNssDatabases(text);
  if (entries.length === 0) return;
  if (c.none) {
    c.log(logLine.nssNone());
    return;
  }
  const root = canonicalPath(c.root);
  for (const e of entries) {
    try {
      // Before touching the session: a failed getent leaves the chroot's file as it was.
      const content = await c.getent(e.db);
      const dest = `${root === '/' ? '' : root}/etc/${e.db}`;
      if (content === 'unlistable') c.log(logLine.nssNoEnumeration(e.line, e.db, dest));
      // Read again per entry: nothing else runs meanwhile, but this keeps the view's rules.
      else writeDb(e, content, root, viewBelow(c.view, root), c);
    } catch (err) {
      if (err instanceof DeclarativeError) err.line ??= e.line;
      throw err;
    }
  }
}

function writeDb(e: NssEntry, content: Buffer, root: string, below: ReadonlyMap<string, boolean>, c: NssContext): void {
  // /etc: made 0755 when missing; a symlink or a mount point there is refused.
  walk({ from: root, parts: ['etc'], last: 'dir', intent: 'write', create: true, mountPoints: below });
  const etcPath = `${root === '/' ? '' : root}/etc`;
  const dest = `${etcPath}/${e.db}`;
  if (below.has(dest)) throw new DeclarativeError(refuse.writeUnderMount(dest));
  // The walk looked at /etc by path; what is written is relative to this fd,
  // opened without following a link: an /etc swapped for a symlink since
  // fails here (ELOOP), and one swapped afterwards is not the directory used.
  let etc: number;
  try {
    etc = openSync(etcPath, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new DeclarativeError(refuse.symlink(etcPath, 'write'), undefined, { cause: err });
    throw new DeclarativeError(refuse.nssWrite(e.db, dest, err as Error), undefined, { cause: err });
  }
  try {
    // /proc/self/fd/N is that directory itself: only the last component is
    // looked up, and every call below refuses to follow it (O_NOFOLLOW, lstat, unlink).
    writeAt(`/proc/self/fd/${etc}/${e.db}`, e, content, dest, c);
  } finally {
    closeSync(etc);
  }
}

function writeAt(at: string, e: NssEntry, content: Buffer, dest: string, c: NssContext): void {
  const st = lstatOrNone(at);
  if (st !== undefined && !st.isFile() && !st.isSymbolicLink()) throw new DeclarativeError(refuse.destNotFile(dest));
  if (st?.isFile()) {
    // schroot skips a database that is the host's own file (a session on the host's /etc): getent would list it into itself.
    if (sameInode(st, `/etc/${e.db}`)) {
      c.log(logLine.nssSameFile(e.line, e.db, dest));
      return;
    }
    // Already the host's (a recovered session): left alone, which spares an overlay the copy-up.
    if (st.size === content.length && sameBytes(at, content)) {
      c.log(logLine.nssSame(e.line, e.db, dest));
      return;
    }
  }
  let fd: number | undefined;
  try {
    if (st?.isSymbolicLink()) unlinkSync(at);
    // An existing file is truncated and keeps its owner and mode (schroot's
    // `>`: shadow stays 0640 root:shadow); a new one is 0644, 0640 for shadow
    // and gshadow, whatever the umask. O_NONBLOCK: a FIFO put there meanwhile
    // fails the fstat below instead of blocking the open.
    const keep = st?.isFile() === true;
    const flags = constants.O_WRONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | (keep ? constants.O_TRUNC : constants.O_CREAT | constants.O_EXCL);
    const mode = SECRET.has(e.db) ? 0o640 : 0o644;
    fd = openSync(at, flags, mode);
    if (!fstatSync(fd).isFile()) throw new DeclarativeError(refuse.destNotFile(dest));
    if (!keep) fchmodSync(fd, mode);
    for (let n = 0; n < content.length; ) n += writeSync(fd, content, n, content.length - n);
  } catch (err) {
    if (err instanceof DeclarativeError) throw err;
    throw new DeclarativeError(refuse.nssWrite(e.db, dest, err as Error), undefined, { cause: err });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
  c.log(logLine.nssWritten(e.db, dest, st?.isSymbolicLink() === true));
}

function sameInode(st: Stats, hostPath: string): boolean {
  try {
    const h = statSync(hostPath);
    return h.dev === st.dev && h.ino === st.ino;
  } catch {
    return false;
  }
}
