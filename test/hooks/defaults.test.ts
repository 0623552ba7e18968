// warden's shipped hooks (hooks/ at the top of the repository), with real
// bind mounts into a scratch session root that is made private first, so
// that nothing the test mounts propagates anywhere.
import anyTest, { type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listHooks, runHooks, HookFailedError, type RunHooksOptions } from '../../src/hooks/index.js';
import { isRoot, liveOf, lines, makeFixture, mountsUnder, openFds, type Fixture } from './fixture.js';

const test = anyTest as TestFn<Fixture & { root: string }>;
const serial = isRoot ? test.serial : test.skip; // bind mounts need root: skipped visibly otherwise

// dist/test/hooks/defaults.test.js -> <repo>/hooks
const HOOKS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'hooks');

function run(argv: string[]): void {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr || r.error}`);
}

/** Unmounts everything at or under `dir`, deepest first, as warden does. */
function unmountAll(dir: string): void {
  for (const m of mountsUnder(dir)) run(['umount', m]);
}

function opts(f: Fixture, more: Partial<RunHooksOptions> = {}): RunHooksOptions {
  return { hooksDir: HOOKS, phase: 'post-mount', vars: f.vars, logPath: f.logPath, timeoutMs: 10_000, ...more };
}

/** Mount points under root, relative, sorted; with what is mounted there (the host's mount point of the same fs). */
function bindsUnder(root: string): string[] {
  return mountsUnder(root)
    .filter((m) => m !== root)
    .map((m) => m.slice(root.length))
    .sort();
}

/** The device (major:minor) and fs root of the mount at `point`, from mountinfo. */
function mountOf(point: string): string | undefined {
  let top: string | undefined;
  for (const l of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = l.split(' ');
    if (f[4] === point) top = `${f[2]} ${f[3]}`; // the last one wins: the top of a stack of mounts
  }
  return top;
}

test.before(async () => {
  // Warm up Node's first spawn (its SIGCHLD pipe) before any fd baseline.
  spawnSync('true');
  const f = makeFixture();
  await runHooks({ ...opts(f), hooksDir: join(f.dir, 'none') });
  rmSync(f.dir, { recursive: true, force: true });
});

test.beforeEach((t) => {
  const f = makeFixture('warden-default-hooks-');
  mkdirSync(f.vars.chrootPath, { recursive: true, mode: 0o755 });
  t.context = { ...f, root: f.vars.chrootPath, fds: openFds() };
});

/**
 * A private bind of the scratch root onto itself, so our binds below it
 * never propagate; unmounted (with all below it) when the test ends.
 */
function privateRoot(t: { context: { root: string }; teardown: (fn: () => void) => void }): void {
  const { root } = t.context;
  t.teardown(() => unmountAll(root));
  run(['mount', '--bind', root, root]);
  run(['mount', '--make-private', root]);
}

// Checked before cleaning up: a test's own teardown must have unmounted everything.
test.afterEach.always((t) => {
  const f = t.context;
  const live = liveOf(f);
  const mounts = mountsUnder(f.dir);
  const fds = openFds();
  try {
    unmountAll(f.dir);
  } finally {
    if (mountsUnder(f.dir).length === 0) rmSync(f.dir, { recursive: true, force: true });
  }
  t.deepEqual(mounts, [], 'nothing is left mounted under the test dir');
  t.deepEqual(live, [], 'no process of the test is left');
  t.deepEqual(fds, f.fds, 'no extra fd is left open');
});

test.serial('the shipped hooks dir passes the checks; only post-mount has hooks', (t) => {
  t.deepEqual(listHooks(HOOKS, 'post-mount').map((h) => h.path), [join(HOOKS, 'post-mount.d', '10-mounts'), join(HOOKS, 'post-mount.d', '20-files')]);
  for (const phase of ['pre-mount', 'pre-unmount', 'post-unmount'] as const) {
    t.deepEqual(listHooks(HOOKS, phase), []);
    t.true(existsSync(join(HOOKS, `${phase}.d`, '.keep')));
  }
  for (const { path: h } of listHooks(HOOKS, 'post-mount')) {
    t.is(statSync(h).mode & 0o777, 0o755);
    t.true(readFileSync(h, 'utf8').startsWith('#!/bin/sh\n'));
    t.is(spawnSync('sh', ['-n', h]).status, 0, `${h} parses`);
  }
});

serial('post-mount binds /proc, /sys, /dev, /dev/pts and copies resolv.conf and hosts', async (t) => {
  privateRoot(t);
  const { root, dir } = t.context;
  // proc/ and etc/ exist; sys/ and dev/ do not; etc/hosts is a symlink to a file outside the root.
  mkdirSync(join(root, 'proc'));
  mkdirSync(join(root, 'etc'));
  const decoy = join(dir, 'decoy');
  writeFileSync(decoy, 'decoy\n');
  symlinkSync(decoy, join(root, 'etc', 'hosts'));

  const runs = await runHooks(opts(t.context));
  t.deepEqual(runs.map((r) => r.hook), ['post-mount.d/10-mounts', 'post-mount.d/20-files']);

  t.deepEqual(bindsUnder(root), ['/dev', '/dev/pts', '/proc', '/sys']);
  for (const m of ['/proc', '/sys', '/dev', '/dev/pts']) t.is(mountOf(root + m), mountOf(m), `${m} is the host's`);
  for (const file of ['resolv.conf', 'hosts']) {
    const host = join('/etc', file);
    const copy = join(root, 'etc', file);
    if (!existsSync(host)) {
      t.false(existsSync(copy));
      continue;
    }
    t.true(lstatSync(copy).isFile(), `${copy} is a regular file`);
    t.is(readFileSync(copy, 'utf8'), readFileSync(host, 'utf8'));
  }
  t.is(readFileSync(decoy, 'utf8'), 'decoy\n', 'the symlink was replaced, not written through');

  unmountAll(root);
  t.deepEqual(mountsUnder(root), [], 'everything unmounts, deepest first');
});

serial('with union type none nothing is created in the source: missing mount points are skipped', async (t) => {
  privateRoot(t);
  const f = t.context;
  const { root } = f;
  f.vars.unionType = 'none';
  mkdirSync(join(root, 'proc'));
  await runHooks(opts(f));
  t.deepEqual(bindsUnder(root), ['/proc']);
  t.deepEqual(readdirSync(root), ['proc'], 'no sys/, dev/ or etc/ was made');
  const log = lines(f.logPath);
  t.true(log.some((l) => l.includes(`${root}/sys is missing`)));
  t.true(log.some((l) => l.includes(`${root}/dev is missing`)));
});

serial('a symlink as mount point in the chroot is refused, nothing mounted through it', async (t) => {
  privateRoot(t);
  const f = t.context;
  const { root, dir } = f;
  const elsewhere = join(dir, 'elsewhere');
  mkdirSync(elsewhere);
  symlinkSync(elsewhere, join(root, 'sys'));
  const e = await t.throwsAsync(runHooks(opts(f)), { instanceOf: HookFailedError });
  t.is(e.message, `hook post-mount.d/10-mounts failed with exit status 1: 10-mounts: ${root}/sys is a symbolic link; refusing to mount on it`);
  t.is(mountOf(elsewhere), undefined);
  t.deepEqual(bindsUnder(root), [], 'every mount point is checked before the first mount starts');
});

serial('the copies and a created etc/ are readable by all, whatever the umask warden runs with', async (t) => {
  privateRoot(t);
  const f = t.context;
  const { root } = f;
  const old = process.umask(0o077);
  try {
    await runHooks(opts(f));
  } finally {
    process.umask(old);
  }
  t.is(statSync(join(root, 'etc')).mode & 0o777, 0o755);
  for (const file of ['resolv.conf', 'hosts']) {
    if (existsSync(join('/etc', file))) t.is(statSync(join(root, 'etc', file)).mode & 0o044, 0o044, `${file} is readable by all`);
  }
  unmountAll(root);
});

serial('cost of the default post-mount phase', async (t) => {
  privateRoot(t);
  const f = t.context;
  const { root } = f;
  const times: number[] = [];
  const per: Record<string, number[]> = {};
  for (let i = 0; i < 21; i++) {
    const t0 = performance.now();
    const runs = await runHooks(opts(f));
    times.push(performance.now() - t0);
    for (const r of runs) (per[r.hook] ??= []).push(r.ms);
    for (const m of mountsUnder(root)) if (m !== root) run(['umount', m]);
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!.toFixed(1);
  t.log(`default post-mount phase: median ${median(times)} ms of ${times.length} (first ${times[0]!.toFixed(1)} ms)`);
  for (const [hook, ms] of Object.entries(per)) t.log(`  ${hook}: median ${median(ms)} ms`);
  t.pass();
});
