// A scratch hooks dir per test, and the checks that nothing of a test
// survives it: processes, fds, mounts.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { HookPhase, HookVars } from '../../src/hooks/index.js';
import { allFds } from '../helpers/leaks.js';

export interface Fixture {
  /** The test's temp dir (0755); also the hooks' WARDEN_STATE_DIR, which marks their processes. */
  dir: string;
  hooksDir: string;
  logPath: string;
  /** A file hooks append to, to show what ran and in which order. */
  out: string;
  vars: HookVars;
  fds: string[];
}

export function makeFixture(prefix = 'warden-hooks-'): Fixture {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o755);
  const hooksDir = join(dir, 'hooks');
  mkdirSync(hooksDir, { mode: 0o755 });
  chmodSync(hooksDir, 0o755);
  return {
    dir,
    hooksDir,
    logPath: join(dir, 'hooks.log'),
    out: join(dir, 'out'),
    vars: {
      chrootName: 'bookworm',
      chrootDirectory: join(dir, 'source'),
      // The contract's layout: CHROOT_PATH is <state-dir>/<id>/root.
      chrootPath: join(dir, 'bookworm-1', 'root'),
      sessionId: 'bookworm-1',
      unionType: 'overlay',
      overlayDirectory: dir,
      stateDir: dir,
      recover: false,
    },
    fds: openFds(),
  };
}

/** Writes `<hooksDir>/<phase>.d/<name>` (making the phase dir 0755): a sh script with `body`. */
export function addHook(f: Fixture, phase: HookPhase, name: string, body: string, mode = 0o755): string {
  const d = join(f.hooksDir, `${phase}.d`);
  mkdirSync(d, { recursive: true, mode: 0o755 });
  chmodSync(d, 0o755);
  const path = join(d, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, mode);
  return path;
}

/**
 * Writes a declarative hook, `<hooksDir>/<phase>.d/<name>` (NAME.fstab or
 * NAME.copyfiles), with `text` as is; mode 0644 unless told.
 */
export function addDeclared(f: Fixture, phase: HookPhase, name: string, text: string, mode = 0o644): string {
  const d = join(f.hooksDir, `${phase}.d`);
  mkdirSync(d, { recursive: true, mode: 0o755 });
  chmodSync(d, 0o755);
  const path = join(d, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

/** A hook that appends its own name (and $1) to the fixture's out file, then runs `more`. */
export function recorder(f: Fixture, phase: HookPhase, name: string, more = ''): string {
  return addHook(f, phase, name, `echo "${name} $1" >> '${f.out}'\n${more}`);
}

export function lines(path: string): string[] {
  try {
    return readFileSync(path, 'utf8').split('\n').filter((l) => l !== '');
  } catch {
    return [];
  }
}

/** This process's fds and what they name; sockets and pipes by inode, so a leaked one shows. */
export const openFds = allFds;

interface Proc {
  pid: number;
  state: string;
  pgrp: number;
}

function procStat(pid: string): Proc | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { pid: Number(pid), state: f[0]!, pgrp: Number(f[2]) };
  } catch {
    return undefined;
  }
}

function pids(): string[] {
  return readdirSync('/proc').filter((e) => /^\d+$/.test(e));
}

/** Live (not zombie) processes of a process group. */
export function liveInGroup(pgrp: number): number[] {
  return pids()
    .map(procStat)
    .filter((p): p is Proc => p !== undefined && p.pgrp === pgrp && p.state !== 'Z' && p.state !== 'X')
    .map((p) => p.pid);
}

/** Live processes started by this fixture's hooks: they inherit WARDEN_STATE_DIR=<dir>. */
export function liveOf(f: Fixture): number[] {
  const mark = Buffer.from(`\0WARDEN_STATE_DIR=${f.dir}\0`);
  const found: number[] = [];
  for (const pid of pids()) {
    const p = procStat(pid);
    if (p === undefined || p.state === 'Z' || p.state === 'X') continue;
    try {
      if (Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${pid}/environ`)]).includes(mark)) found.push(p.pid);
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Mount points at or under `dir`, from /proc/self/mountinfo (field 5), deepest first. */
export function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => l.split(' ')[4]!.replace(/\\040/g, ' '))
    .filter((m) => m === dir || m.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** Resolves once `path` exists: the event a test synchronises on (a hook got that far). */
export async function untilExists(path: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      readFileSync(path);
      return;
    } catch {
      if (Date.now() > deadline) throw new Error(`${path} did not appear within ${timeoutMs} ms`);
    }
    await new Promise((r) => setTimeout(r, 2));
  }
}

export const isRoot = process.getuid?.() === 0;

/** Runs a command (mount(8), umount(8)) for a test's set-up or teardown; throws with its stderr. */
export function sh(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr || r.error}`);
}

/** Unmounts everything at or under `dir`, deepest first, as warden does. */
export function unmountAllUnder(dir: string): void {
  for (const m of mountsUnder(dir)) sh(['umount', m]);
}

/**
 * A private bind of a scratch session root onto itself, so that the mounts
 * a test makes below it never propagate anywhere; unmounted (with all below
 * it) when the test ends.
 */
export function privateRoot(t: { teardown: (fn: () => void) => void }, root: string): void {
  mkdirSync(root, { recursive: true, mode: 0o755 });
  t.teardown(() => unmountAllUnder(root));
  sh(['mount', '--bind', root, root]);
  sh(['mount', '--make-private', root]);
}

/** Mount points strictly under `root`, relative ("/proc"), sorted. */
export function mountsBelow(root: string): string[] {
  return mountsUnder(root)
    .filter((m) => m !== root)
    .map((m) => m.slice(root.length))
    .sort();
}

/**
 * A test's leak check, made before its dir goes: nothing mounted under it,
 * no process of it alive, no fd beyond those at its start. Cleans up either way.
 */
export function nothingLeft(t: { deepEqual: (a: unknown, b: unknown, m?: string) => void }, f: Fixture & { fds: string[] }): void {
  const live = liveOf(f);
  const mounts = mountsUnder(f.dir);
  const fds = openFds();
  try {
    unmountAllUnder(f.dir);
  } finally {
    if (mountsUnder(f.dir).length === 0) rmSync(f.dir, { recursive: true, force: true });
  }
  t.deepEqual(mounts, [], 'nothing is left mounted under the test dir');
  t.deepEqual(live, [], 'no process of the test is left');
  t.deepEqual(fds, f.fds, 'no extra fd is left open');
}
