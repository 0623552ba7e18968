// Which host programs go into a bootstrap chroot, and where they are.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { delimiter, join } from 'node:path';

/** A chroot without these is useless to warden's tests and demo: their absence is an error. */
export const REQUIRED_TOOLS: readonly string[] = ['sh', 'true', 'false', 'cat', 'ls', 'touch', 'sleep', 'id', 'sha256sum'];

/** Installed when the host has them, silently skipped otherwise. */
const OPTIONAL_TOOLS: readonly string[] = [
  'echo', 'printf', 'test', '[', 'env', 'mkdir', 'rmdir', 'rm', 'cp', 'mv', 'ln', 'chmod', 'readlink', 'stat',
  'head', 'tail', 'wc', 'sort', 'tee', 'grep', 'sed', 'find', 'dirname', 'basename', 'uname', 'hostname',
  'whoami', 'date', 'kill', 'ps', 'sync',
];

export const ALL_TOOLS: readonly string[] = [...REQUIRED_TOOLS, ...OPTIONAL_TOOLS];

/**
 * Host tools come from the system directories only, in this order, never
 * from the caller's PATH: a node_modules/.bin or ~/bin shim must not end
 * up in a chroot. /bin first so that `sh` is the /bin/sh scripts name.
 */
export const HOST_BIN_DIRS: readonly string[] = ['/bin', '/usr/bin', '/sbin', '/usr/sbin'];

/** Where an executable regular file (symlinks followed) named `name` is, searching `dirs` in order. */
export function findExecutable(name: string, dirs: readonly string[] = HOST_BIN_DIRS): string | undefined {
  for (const dir of dirs) {
    const p = join(dir, name);
    try {
      const st = statSync(p);
      if (st.isFile() && (st.mode & 0o111) !== 0) return p;
    } catch {
      // missing, or in a directory we may not search (a PATH entry under /root): not here
    }
  }
  return undefined;
}

/** The host's busybox: the first on PATH, else /bin/busybox. */
export function findBusybox(pathEnv = process.env.PATH ?? ''): string | undefined {
  const dirs = pathEnv.split(delimiter).filter((d) => d.startsWith('/'));
  return findExecutable('busybox', [...dirs, '/bin']);
}

/**
 * Chroot paths of busybox's applets (`/usr/bin/env`), from `--list-full`;
 * a build without it (`--list` only) gets every applet in /bin. Only
 * bin and sbin directories: a `linuxrc` applet has no place in a chroot.
 */
export function busyboxApplets(busybox: string): string[] {
  const run = (flag: string) => execFileSync(busybox, [flag], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  let lines: string[];
  try {
    lines = run('--list-full').split('\n');
  } catch {
    lines = run('--list')
      .split('\n')
      .map((name) => (name ? `bin/${name}` : ''));
  }
  return lines
    .map((l) => l.trim())
    .filter((l) => /^(usr\/)?s?bin\/[^/]+$/.test(l))
    .map((l) => `/${l}`);
}
