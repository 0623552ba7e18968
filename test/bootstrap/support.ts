// Shared by the bootstrap tests: temp dirs, tree listings, running in a chroot.
import anyTest, { type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdtempSync, readdirSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface Ctx {
  /** A fresh temp dir, removed after the test; the chroot goes in `${tmp}/root`. */
  tmp: string;
  root: string;
  fds: string[];
}

export const test = anyTest as TestFn<Ctx>;

/** chroot(2) needs CAP_SYS_CHROOT: tests that enter the chroot or mount are registered as skipped otherwise. */
export const isRoot = process.getuid?.() === 0;
export const rootTest = isRoot ? test : test.skip;
export const rootSerial = isRoot ? test.serial : test.serial.skip;

export function newTemp(): { tmp: string; root: string } {
  const tmp = mkdtempSync(join(tmpdir(), 'warden-bootstrap-'));
  return { tmp, root: join(tmp, 'root') };
}

/**
 * Every entry under `dir` with its type, mode, size, mtime and link target,
 * never following a symlink: two equal listings mean nothing was touched.
 */
export function listing(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const p = join(rel, name);
      const st = lstatSync(join(dir, p));
      const link = st.isSymbolicLink() ? ` -> ${readlinkSync(join(dir, p))}` : '';
      out.push(`${p} ${st.mode.toString(8)} ${st.size} ${st.mtimeMs}${link}`);
      if (st.isDirectory()) walk(p);
    }
  };
  walk('');
  return out;
}

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `script` with the chroot's /bin/sh inside `root`, with a clean environment. */
export function inChroot(root: string, script: string): Run {
  const r = spawnSync('chroot', [root, '/bin/sh', '-c', script], {
    encoding: 'utf8',
    env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LC_ALL: 'C' },
    timeout: 20_000,
  });
  if (r.error) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
