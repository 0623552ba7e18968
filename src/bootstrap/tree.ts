// Writes the chroot under construction so that every host path lands at the
// same path inside it, each symlink on the way recreated verbatim: /bin ->
// usr/bin, /lib64/ld-linux-x86-64.so.2 -> /lib/x86_64-linux-gnu/..., /usr/bin/sh
// -> dash. Whatever the host's layout (merged /usr or not), the chroot gets
// the same one, and the loader finds every file where the host's binaries
// and /etc/ld.so.cache say it is.
//
// Safety: the symlinks we recreate, absolute ones above all, must never be
// followed by our own writes, or `bin -> /usr/bin` would have us write into
// the host's /usr/bin. So paths are resolved here, one component at a time,
// against the *host* (lstat, readlink), and every write goes to root + (the
// host's real path): a chain of directories this object created itself in
// an emptied tree. Files are created with O_EXCL, which never follows a
// symlink; an entry that exists already as something else is a bug and is
// reported, never written through.
import {
  chmodSync,
  closeSync,
  constants,
  fchmodSync,
  lstatSync,
  mkdirSync,
  openSync,
  readlinkSync,
  realpathSync,
  renameSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { copyFile } from 'node:fs/promises';
import { posix } from 'node:path';
import { BootstrapError, ioError } from './errors.js';

const { basename, dirname, join } = posix;

/** SYMLOOP_MAX on Linux: more symlinks than this in one path is a loop. */
const MAX_SYMLINKS = 40;

export class ChrootTree {
  /** Real, absolute path of the chroot directory on the host. */
  readonly root: string;
  #dirs = new Set<string>(['/']);
  #links = new Map<string, string>();
  #files = new Set<string>();
  /** Paths already walked: the host is read once per directory, not once per file in it. */
  #resolved = new Map<string, string>();
  #copies: Promise<void>[] = [];

  constructor(root: string) {
    this.root = root;
  }

  /** Makes directory `path` (and its parents, as on the host) with exactly `mode` (no umask). */
  dir(path: string, mode = 0o755): void {
    const real = this.#resolveDir(path);
    try {
      chmodSync(this.#inTree(real), mode);
    } catch (e) {
      throw ioError(this.#inTree(real), e);
    }
  }

  /** Recreates host directory `path` if the host has it: a symlink stays a symlink (`/lib64 -> usr/lib64`). */
  mirror(path: string): void {
    if (lstatSync(path, { throwIfNoEntry: false })) this.#resolveDir(path);
  }

  /**
   * Installs host file `hostPath` at the same path, recreating each symlink
   * of the path and of the file itself. The copy runs in the background
   * until flush().
   */
  copy(hostPath: string): void {
    let path = hostPath;
    for (let hops = 0; ; hops++) {
      if (hops > MAX_SYMLINKS) throw new BootstrapError('io', hostPath, 'too many levels of symbolic links on the host');
      const host = join(this.#resolveDir(dirname(path)), basename(path));
      let st;
      try {
        st = lstatSync(host);
      } catch (e) {
        throw ioError(host, e);
      }
      if (st.isSymbolicLink()) {
        const target = readlinkSync(host);
        this.#link(host, target);
        path = target.startsWith('/') ? target : join(dirname(host), target);
        continue;
      }
      if (!st.isFile()) throw new BootstrapError('io', host, 'is not a regular file on the host');
      this.#copy(host);
      return;
    }
  }

  /** Installs host file `hostFile` (symlinks followed) at chroot path `path`, wherever the host keeps it. */
  copyTo(path: string, hostFile: string): void {
    const real = join(this.#resolveDir(dirname(path)), basename(path));
    let source: string;
    try {
      source = realpathSync(hostFile);
    } catch (e) {
      throw ioError(hostFile, e);
    }
    this.#copy(real, source);
  }

  /** Creates symlink `path` -> `target`; `target` is taken verbatim and resolves inside the chroot. */
  symlink(path: string, target: string): void {
    this.#link(join(this.#resolveDir(dirname(path)), basename(path)), target);
  }

  /** Writes a new regular file with exactly `mode`. */
  write(path: string, content: string, mode = 0o644): void {
    const real = join(this.#resolveDir(dirname(path)), basename(path));
    this.#claim(real);
    this.#files.add(real);
    writeNew(this.#inTree(real), content, mode);
  }

  /** Replaces `path` atomically (a new file renamed over it): a reader sees the old or the new content. */
  replace(path: string, content: string, mode = 0o644): void {
    const real = join(this.#resolveDir(dirname(path)), basename(path));
    const tmp = `${this.#inTree(real)}.${process.pid}.new`;
    writeNew(tmp, content, mode);
    try {
      renameSync(tmp, this.#inTree(real));
    } catch (e) {
      throw ioError(this.#inTree(real), e);
    }
    this.#files.add(real);
  }

  /** Waits for every copy; reports the first failure only after all have settled. */
  async flush(): Promise<void> {
    const results = await Promise.allSettled(this.#copies.splice(0));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }

  /**
   * Walks `path` as a chain of directories, recreating the host symlinks met
   * and creating the other components (host directories, or names the host
   * lacks) as directories; returns the real path, which the tree now has.
   */
  #resolveDir(path: string): string {
    const known = this.#resolved.get(path);
    if (known !== undefined) return known;
    const real = this.#walkDir(path);
    this.#resolved.set(path, real);
    return real;
  }

  #walkDir(path: string): string {
    let real = '/';
    const todo = path.split('/').filter((c) => c !== '' && c !== '.');
    let hops = 0;
    while (todo.length > 0) {
      const c = todo.shift()!;
      if (c === '..') {
        real = dirname(real);
        continue;
      }
      const host = join(real, c);
      const st = lstatSync(host, { throwIfNoEntry: false });
      if (st?.isSymbolicLink()) {
        if (++hops > MAX_SYMLINKS) throw new BootstrapError('io', path, 'too many levels of symbolic links on the host');
        const target = readlinkSync(host);
        this.#link(host, target);
        todo.unshift(...target.split('/').filter((t) => t !== '' && t !== '.'));
        if (target.startsWith('/')) real = '/';
        continue;
      }
      if (st && !st.isDirectory()) throw new BootstrapError('io', host, 'is not a directory on the host');
      this.#mkdir(host);
      real = host;
    }
    return real;
  }

  #mkdir(real: string): void {
    if (this.#dirs.has(real)) return;
    this.#claim(real);
    const p = this.#inTree(real);
    try {
      mkdirSync(p, 0o755);
      chmodSync(p, 0o755); // exactly, whatever the umask
    } catch (e) {
      // Only a real directory may stand there; never one reached through a symlink.
      const st = lstatSync(p, { throwIfNoEntry: false });
      if (!((e as NodeJS.ErrnoException).code === 'EEXIST' && st?.isDirectory())) throw ioError(p, e);
    }
    this.#dirs.add(real);
  }

  #link(real: string, target: string): void {
    const had = this.#links.get(real);
    if (had === target) return;
    this.#claim(real);
    try {
      symlinkSync(target, this.#inTree(real));
    } catch (e) {
      throw ioError(this.#inTree(real), e);
    }
    this.#links.set(real, target);
  }

  #copy(real: string, source = real): void {
    if (this.#files.has(real)) return;
    this.#claim(real);
    this.#files.add(real);
    const dest = this.#inTree(real);
    // COPYFILE_EXCL: the destination is created O_EXCL, never through a
    // symlink. FICLONE: a reflink where the filesystem can (cp
    // --reflink=auto), a plain copy elsewhere. Never a hard link: `warden
    // source` writes into this tree, and would write through to the host.
    const copying = copyFile(source, dest, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE).catch((e: unknown) => {
      throw ioError(dest, e);
    });
    copying.catch(() => {}); // observed in flush(); no unhandled rejection before it
    this.#copies.push(copying);
  }

  /** Where chroot path `path` (already resolved) is on the host. */
  #inTree(path: string): string {
    return this.root + path;
  }

  /** Throws if `real` is already taken by an entry of another kind: the host changed under us, or a caller bug. */
  #claim(real: string): void {
    if (this.#dirs.has(real) || this.#links.has(real) || this.#files.has(real)) {
      throw new BootstrapError('io', this.#inTree(real), 'two different entries claim this path (did the host change during the build?)');
    }
  }
}

function writeNew(path: string, content: string, mode: number): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  } catch (e) {
    throw ioError(path, e);
  }
  try {
    writeSync(fd, content);
    fchmodSync(fd, mode);
  } catch (e) {
    throw ioError(path, e);
  } finally {
    closeSync(fd);
  }
}
