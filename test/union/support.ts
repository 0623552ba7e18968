// Fixtures for the union tests: a scratch dir per test, small source trees
// built by hand, real mounts and real child processes, and the checks that
// a test left nothing behind (mounts, children, fds).
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { chmodSync, chownSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mountsUnder, unmountAll, type UnionLayout, type UnionType } from '../../src/union/index.js';
import { fileFds } from '../helpers/leaks.js';

export interface Ctx {
  fds: string[];
  /** What teardown had to clean up: each entry fails the test in afterEach.always. */
  leaks: string[];
  children: ChildProcess[];
}

export const test = anyTest as TestFn<Ctx>;
export const isRoot = process.getuid?.() === 0;
/** Mount tests need root, and run one at a time in a file (fd and child checks are per process). */
export const rootTest = isRoot ? test.serial : test.serial.skip;

test.beforeEach((t) => {
  t.context.fds = fileFds();
  t.context.leaks = [];
  t.context.children = [];
});

// Teardown (which runs before this hook) has recorded and cleaned up
// whatever the test left; any such record fails the test here.
test.afterEach.always((t) => {
  t.deepEqual(t.context.leaks, [], 'the test left mounts or processes behind');
  t.deepEqual(childPids(), [], 'child processes still alive');
  t.deepEqual(fileFds(), t.context.fds, 'file descriptors leaked');
});

/** Our children, from /proc/<pid>/stat (field 4 is the parent pid). */
export function childPids(): number[] {
  const out: number[] = [];
  for (const pid of readdirSync('/proc').filter((n) => /^[0-9]+$/.test(n))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid) out.push(Number(pid));
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/**
 * A fresh dir under the system tmp dir. Its teardown kills children the
 * test left alive, unmounts what it left mounted (unmountAll, and
 * `umount -l` only as a last resort) and deletes it, recording each leak.
 */
export function scratch(t: ExecutionContext<Ctx>): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-union-'));
  chmodSync(dir, 0o755);
  t.teardown(async () => {
    for (const child of t.context.children) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      t.context.leaks.push(`child ${child.pid} alive`);
      await stop(child);
    }
    const left = mountsUnder(dir);
    if (left.length > 0) {
      t.context.leaks.push(...left.map((m) => `mounted: ${m.mountPoint}`));
      try {
        unmountAll(dir);
      } catch {
        for (const m of mountsUnder(dir)) spawnSync('umount', ['-l', m.mountPoint]);
      }
    }
    if (mountsUnder(dir).length === 0) rmSync(dir, { recursive: true, force: true });
    else t.context.leaks.push(`${dir} kept: still mounted`);
  });
  return dir;
}

/** Runs a command that must succeed (test set-up: mount, chattr, ...). */
export function run(cmd: string, ...args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? r.stderr.trim()}`);
  return r.stdout;
}

/** A child process, started (exec done, cwd set) when this resolves; killed by teardown if the test does not. */
export async function startChild(t: ExecutionContext<Ctx>, cmd: string, args: string[], options: SpawnOptions): Promise<ChildProcess> {
  const child = spawn(cmd, args, options);
  t.context.children.push(child);
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', reject);
  });
  return child;
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
}

/**
 * A small source tree: plain files, nested dirs, a relative and a dangling
 * absolute symlink, two hard links, a file with mode 0640 and foreign
 * owners (when root), a setuid file, a 0700 dir and a fifo.
 */
export function makeSource(parent: string): string {
  const source = join(parent, 'source');
  mkdirSync(join(source, 'etc', 'deep', 'er'), { recursive: true, mode: 0o755 });
  mkdirSync(join(source, 'tmp'), { mode: 0o755 });
  writeFileSync(join(source, 'etc', 'hostname'), 'source\n');
  writeFileSync(join(source, 'etc', 'deep', 'er', 'leaf'), 'leaf\n');
  writeFileSync(join(source, 'etc', 'shadow'), 'secret\n', { mode: 0o640 });
  chmodSync(join(source, 'etc', 'shadow'), 0o640);
  if (isRoot) chownSync(join(source, 'etc', 'shadow'), 1234, 5678);
  writeFileSync(join(source, 'hard1'), 'linked\n');
  linkSync(join(source, 'hard1'), join(source, 'hard2'));
  symlinkSync('etc/hostname', join(source, 'rel-link'));
  symlinkSync('/nonexistent/target', join(source, 'abs-link'));
  run('mkfifo', join(source, 'fifo'));
  writeFileSync(join(source, 'setuid'), '#!/bin/sh\n', { mode: 0o755 });
  chmodSync(join(source, 'setuid'), 0o4755);
  mkdirSync(join(source, 'private'), { mode: 0o700 });
  return source;
}

/** upper, work and root as the session code makes them: empty, mode 0755. */
export function makeLayout(parent: string, type: UnionType, source: string): UnionLayout {
  const s = join(parent, 'session');
  const l = { type, source, upper: join(s, 'upper'), work: join(s, 'work'), root: join(s, 'root') };
  for (const d of [s, l.upper, l.work, l.root]) mkdirSync(d, { mode: 0o755 });
  return l;
}

/** Makes `dir` a shared mount (a bind onto itself), as / is under systemd: propagation then matters. */
export function makeShared(dir: string): void {
  run('mount', '--bind', dir, dir);
  run('mount', '--make-shared', dir);
}

/** Every path under dir with type, mode, owner and content: to prove a tree did not change. */
export function digest(dir: string): string {
  return run('sh', '-c', `cd "$1" && find . -xdev -printf '%p %y %m %U:%G %l\\n' | sort && find . -xdev -type f -exec sha256sum {} + | sort`, 'sh', dir);
}
