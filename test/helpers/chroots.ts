// Fixtures for session tests: a real chroot built from host binaries by the
// project's own builder (one per test file), a chroot definition over it,
// hook dirs written per test, and the checks that nothing leaked.
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bootstrapChroot } from '../../src/bootstrap/index.js';
import type { ChrootDef, UnionType } from '../../src/config/index.js';
import type { ExecutionContext } from 'ava';
import { mountsUnder } from '../../src/union/index.js';

/** The repository (tests run from dist/test/...). */
export const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const DEFAULT_HOOKS = join(REPO, 'hooks');
export const isRoot = process.getuid?.() === 0;

export interface Fixture {
  tmp: string;
  source: string;
  stateDir: string;
  /** An empty hooks dir (no hooks at all). */
  noHooks: string;
}

export async function makeFixture(prefix = 'warden-sessions-'): Promise<Fixture> {
  const tmp = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(tmp, 0o755);
  const source = join(tmp, 'source');
  await bootstrapChroot(source, { busybox: false });
  // dash opens /dev/null for every background job; sessions without the
  // default hooks (which bind the host's /dev) need their own.
  if (isRoot) spawnSync('mknod', ['-m', '666', join(source, 'dev', 'null'), 'c', '1', '3']);
  const noHooks = join(tmp, 'no-hooks');
  mkdirSync(noHooks, { mode: 0o755 });
  return { tmp, source, stateDir: join(tmp, 'state'), noHooks };
}

/** Unmounts anything a failed test left under `dir` (deepest first), then deletes it. */
export function destroyFixture(dir: string): void {
  for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m.mountPoint]);
  rmSync(dir, { recursive: true, force: true });
}

export function chrootDef(source: string, name = 'fx', unionType: UnionType = 'overlay'): ChrootDef {
  return {
    name,
    file: '/dev/null',
    line: 1,
    type: 'directory',
    directory: source,
    description: undefined,
    aliases: [],
    unionType,
    users: [],
    groups: [],
    rootUsers: [],
    rootGroups: [],
    sourceUsers: [],
    sourceGroups: [],
    sourceRootUsers: [],
    sourceRootGroups: [],
    hookTimeout: undefined,
    hooks: undefined,
    profile: undefined,
    profileFiles: undefined,
  };
}

/**
 * A hooks dir with the given scripts: { 'post-mount.d/10-x': 'echo hi' }.
 * Each gets a `#!/bin/sh` line and mode 0755.
 */
export function writeHooks(parent: string, scripts: Record<string, string>): string {
  const dir = mkdtempSync(join(parent, 'hooks-'));
  chmodSync(dir, 0o755);
  for (const [rel, body] of Object.entries(scripts)) {
    const path = join(dir, rel);
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    chmodSync(dirname(path), 0o755);
    writeFileSync(path, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
    chmodSync(path, 0o755);
  }
  return dir;
}

/** Every file under `dir` with its content hash, to prove a source did not change. */
export function treeDigest(dir: string): string[] {
  const r = spawnSync('sh', ['-c', 'find . -xdev -printf "%p %y %m %s %l\\n" | sort; find . -xdev -type f -exec sha256sum {} + | sort'], {
    cwd: dir,
    encoding: 'utf8',
  });
  return r.stdout.split('\n');
}

/** Session directories left in a state dir (hidden build dirs included). */
export function stateEntries(stateDir: string): string[] {
  try {
    return readdirSync(stateDir).filter((n) => n !== '.manage');
  } catch {
    return [];
  }
}

/** Processes (other than us) whose cwd or root is under `dir`. */
export function processesUnder(dir: string): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    for (const rel of ['cwd', 'root']) {
      try {
        if (readlinkSync(`/proc/${pid}/${rel}`).startsWith(dir)) out.push(Number(pid));
      } catch {
        // gone
      }
    }
  }
  return out;
}

/**
 * What every CLI test checks after itself: nothing mounted under `tmp`, no
 * process with its cwd or root there, and (given `stateDir`) no session left.
 */
export function assertNothingLeftUnder(t: ExecutionContext, tmp: string, stateDir?: string): void {
  t.deepEqual(mountsUnder(tmp).map((m) => m.mountPoint), [], 'nothing left mounted');
  t.deepEqual(processesUnder(tmp), [], 'no process left in a session');
  if (stateDir !== undefined) t.deepEqual(stateEntries(stateDir), [], 'no session left');
}
