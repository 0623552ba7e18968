// A real Debian for the tests that count (STYLE 12): a bookworm buildd
// chroot made by mmdebstrap and the `hello` source package, each fetched
// from Debian's mirror once per machine and cached under /var/cache/warden,
// so later runs never download again. Both are made under one fcntl lock
// (two test processes at once wait for the first) and appear atomically
// (temp name + rename(2)), so a crash never leaves a half-made cache entry.
//
// Callers that may have waited for the lock should `await shutdownWaitPool()`
// in their `after.always` hook, as every user of src/locks does.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockPath } from '../../src/locks/index.js';

/** Where the cache lives; WARDEN_DEBIAN_CACHE points it elsewhere (e.g. to test the download path). */
export const DEBIAN_CACHE = process.env.WARDEN_DEBIAN_CACHE ?? '/var/cache/warden';
export const SUITE = 'bookworm';
export const ARCH = 'amd64';
/**
 * Plain tar, not zstd: on the project's 2-core VM (load ~4 from a test suite
 * beside it) unpacking the plain 445 MB tarball took 4.5-7 s against 8 s for
 * the 144 MB .tar.zst; zstd's CPU costs more than reading 300 MB more, and
 * CPU is what the test suite is short of. Disk is cheap.
 */
export const TARBALL = join(DEBIAN_CACHE, `${SUITE}-buildd-${ARCH}.tar`);
export const SOURCE_DIR = join(DEBIAN_CACHE, 'src', `hello-${SUITE}`);

const LOCK = join(DEBIAN_CACHE, '.debian.lock');
const DEFAULT_MIRROR = 'http://deb.debian.org/debian';
/** Both downloads take minutes on a slow line; a holder stuck longer than this is a bug. */
const LOCK_TIMEOUT_MS = 30 * 60_000;
const PROBE_TIMEOUT_MS = 10_000;

export type Ensured<T> = T | { skip: string };

/**
 * The bookworm `--variant=buildd` amd64 chroot as a tarball in the cache,
 * made with mmdebstrap on first use.
 *
 * Cost, measured on the project's 2-core VM (bookworm host, mmdebstrap
 * 1.3.5, deb.debian.org, 2026-12): first run 45-72 s wall and ~110 MB
 * downloaded (apt lists and the .debs); the tarball is 445 MB. Cached: a
 * stat. A second process that asks meanwhile waits on the lock (one line
 * on stderr) and then finds the tarball made.
 * Skips (never throws) when no tarball is cached and it cannot be made:
 * not root, mmdebstrap missing, or no mirror answering.
 */
export async function ensureBookwormTarball(): Promise<Ensured<{ path: string }>> {
  if (existsSync(TARBALL)) return { path: TARBALL };
  const cannot = cannotCreate('mmdebstrap');
  if (cannot) return { skip: `no cached ${TARBALL} and ${cannot}` };
  return await withCacheLock(async () => {
    if (existsSync(TARBALL)) return { path: TARBALL }; // made by the holder we waited for
    const mirror = await reachableMirror();
    if ('skip' in mirror) return { skip: `no cached ${TARBALL} and ${mirror.skip}` };
    const tmp = `${TARBALL}.tmp-${process.pid}`;
    try {
      // --format: the temp name's extension must not choose the format.
      await run('mmdebstrap', ['--variant=buildd', `--arch=${ARCH}`, '--format=tar', SUITE, tmp, mirror.url]);
      renameSync(tmp, TARBALL);
    } finally {
      rmSync(tmp, { force: true });
    }
    return { path: TARBALL };
  });
}

/**
 * Debian's `hello` source package for bookworm (2.10-3 when written) in the
 * cache; returns its .dsc.
 *
 * Fetched by `apt-get source --download-only` against a private apt setup
 * (its own sources.list with one deb-src line, lists and cache dirs under a
 * temp dir), so the host's apt state is untouched and apt still checks the
 * files against the mirror's signed Sources index. Cost on the project's VM:
 * 2.5 s and 10.4 MB downloaded (9.5 MB of it the Sources index, thrown
 * away); 741 kB kept. Cached: a readdir.
 */
export async function ensureHelloSource(): Promise<Ensured<{ dsc: string }>> {
  const cached = dscIn(SOURCE_DIR);
  if (cached) return { dsc: cached };
  const cannot = cannotCreate('apt-get');
  if (cannot) return { skip: `no cached hello source in ${SOURCE_DIR} and ${cannot}` };
  return await withCacheLock(async () => {
    const again = dscIn(SOURCE_DIR);
    if (again) return { dsc: again };
    const mirror = await reachableMirror();
    if ('skip' in mirror) return { skip: `no cached hello source in ${SOURCE_DIR} and ${mirror.skip}` };
    const tmp = `${SOURCE_DIR}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    try {
      const out = join(tmp, 'out');
      for (const d of ['lists/partial', 'cache/archives/partial', 'out']) mkdirSync(join(tmp, d), { recursive: true, mode: 0o755 });
      writeFileSync(join(tmp, 'sources.list'), `deb-src ${mirror.url} ${SUITE} main\n`, { mode: 0o644 });
      const apt = [
        '-q',
        '-o', `Dir::Etc::SourceList=${join(tmp, 'sources.list')}`,
        '-o', 'Dir::Etc::SourceParts=/nonexistent',
        '-o', `Dir::State::Lists=${join(tmp, 'lists')}`,
        '-o', `Dir::Cache=${join(tmp, 'cache')}`,
        // Our own lists dir: the host's apt locks are not ours to take.
        '-o', 'Debug::NoLocking=1',
        // _apt cannot write into a root-only temp dir.
        '-o', 'APT::Sandbox::User=root',
      ];
      await run('apt-get', [...apt, 'update']);
      await run('apt-get', [...apt, 'source', '--download-only', `hello/${SUITE}`], { cwd: out });
      if (!dscIn(out)) throw new Error(`apt-get source hello left no .dsc in ${out}`);
      renameSync(out, SOURCE_DIR);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    return { dsc: dscIn(SOURCE_DIR)! };
  });
}

/**
 * Unpacks a tarball from ensureBookwormTarball() into `dir` (made if
 * missing), keeping owners, modes and xattrs (mmdebstrap(1) recommends
 * `--xattrs --xattrs-include='*'`). Measured: 4.5-7 s on the loaded 2-core
 * VM, 446 MB on disk.
 */
export async function unpackChroot(tarball: string, dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  await run('tar', ['--extract', '--file', tarball, '--directory', dir, '--numeric-owner', '--same-owner', '--same-permissions', '--xattrs', '--xattrs-include=*']);
}

/** Why this process cannot fill the cache, or undefined if it can. */
function cannotCreate(tool: string): string | undefined {
  if (process.getuid?.() !== 0) return `making it needs root (uid is ${process.getuid?.()})`;
  const path = (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':');
  if (!path.some((d) => existsSync(join(d, tool)))) return `${tool} is not installed (apt-get install ${tool})`;
  return undefined;
}

// Preconditions for `make`: none; it runs with the cache lock held, and
// the lock is released (and its fd closed) however `make` ends.
async function withCacheLock<T>(make: () => Promise<T>): Promise<T> {
  mkdirSync(DEBIAN_CACHE, { recursive: true, mode: 0o755 });
  let told = false;
  const lock = await lockPath(LOCK, 'exclusive', {
    timeout: LOCK_TIMEOUT_MS,
    onWait: (holders) => {
      if (told) return;
      told = true;
      // Said once: the wait is for a download of minutes, not a brief contention.
      process.stderr.write(`waiting for pid ${holders.map((h) => h.pid).join(',')} to fill ${DEBIAN_CACHE}\n`);
    },
  });
  try {
    return await make();
  } finally {
    lock.close();
  }
}

/** Mirrors to try: Debian's CDN, then those this machine's apt sources name. */
export function candidateMirrors(): string[] {
  const found = [DEFAULT_MIRROR];
  const files = ['/etc/apt/sources.list'];
  try {
    for (const n of readdirSync('/etc/apt/sources.list.d')) files.push(join('/etc/apt/sources.list.d', n));
  } catch {
    // no sources.list.d
  }
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    // One-line style ("deb [opts] URI suite ...") and deb822 ("URIs: a b").
    for (const m of text.matchAll(/^\s*deb(?:-src)?\s+(?:\[[^\]]*\]\s+)?(\S+)/gm)) found.push(m[1]!);
    for (const m of text.matchAll(/^\s*URIs:\s*(.+)$/gim)) found.push(...m[1]!.trim().split(/\s+/));
  }
  // Only archives that carry bookworm's main suite (not -security, not third parties).
  const usable = found.map((u) => u.replace(/\/+$/, '')).filter((u) => /^https?:\/\//.test(u) && /\/debian$/.test(u));
  return [...new Set(usable)];
}

/** The first mirror whose bookworm InRelease answers 200, or why none did. */
export async function reachableMirror(): Promise<{ url: string } | { skip: string }> {
  const failures: string[] = [];
  for (const url of candidateMirrors()) {
    const probe = `${url}/dists/${SUITE}/InRelease`;
    try {
      const res = await fetch(probe, { method: 'HEAD', signal: AbortSignal.timeout(PROBE_TIMEOUT_MS) });
      if (res.ok) return { url };
      failures.push(`${probe}: HTTP ${res.status}`);
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      failures.push(`${probe}: ${cause?.code ?? cause?.message ?? (e as Error).message}`);
    }
  }
  return { skip: `no Debian mirror reachable (${failures.join('; ')})` };
}

function dscIn(dir: string): string | undefined {
  try {
    if (!statSync(dir).isDirectory()) return undefined;
    const dsc = readdirSync(dir).find((n) => n.endsWith('.dsc'));
    return dsc === undefined ? undefined : join(dir, dsc);
  } catch {
    return undefined;
  }
}

/** Runs a command to completion; rejects with its argv, exit and stderr's tail. */
function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: opts.cwd, stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LC_ALL: 'C' } });
    let err = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      err = (err + d).slice(-4000);
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else reject(new Error(`${cmd} ${args.join(' ')}: ${signal ? `killed by ${signal}` : `exit ${code}`}\n${err.trim()}`));
    });
  });
}
