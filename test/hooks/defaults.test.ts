// warden's shipped hooks (hooks/ at the top of the repository): the
// declarative post-mount.d/10-mounts.fstab and 20-files.copyfiles, with real
// bind mounts into a scratch session root that is made private first, so
// that nothing the test mounts propagates anywhere.
import anyTest, { type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { listHooks, runHooks, HookFailedError, type RunHooksOptions } from '../../src/hooks/index.js';
import { parseCopyfiles } from '../../src/hooks/copyfiles.js';
import { parseFstab } from '../../src/hooks/fstab.js';
import { readMountInfo } from '../../src/union/index.js';
import { isRoot, liveOf, lines, makeFixture, mountsBelow, mountsUnder, nothingLeft, openFds, privateRoot, sh, unmountAllUnder, type Fixture } from './fixture.js';

const test = anyTest as TestFn<Fixture & { root: string }>;
const serial = isRoot ? test.serial : test.skip; // bind mounts need root: skipped visibly otherwise

// dist/test/hooks/defaults.test.js -> <repo>/hooks
const HOOKS = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'hooks');
const FSTAB = join(HOOKS, 'post-mount.d', '10-mounts.fstab');
const COPYFILES = join(HOOKS, 'post-mount.d', '20-files.copyfiles');
const BINDS = ['/dev', '/dev/pts', '/proc', '/sys'];

function opts(f: Fixture, more: Partial<RunHooksOptions> = {}): RunHooksOptions {
  return { hooksDir: HOOKS, phase: 'post-mount', vars: f.vars, logPath: f.logPath, timeoutMs: 10_000, ...more };
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

/** The shipped fstab's line for FILE, as a number (so the test does not hard-code the comment block's length). */
function lineOf(file: string): number {
  return parseFstab(readFileSync(FSTAB, 'utf8')).find((e) => e.file === file)!.line;
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

// Checked before cleaning up: a test's own teardown must have unmounted everything.
test.afterEach.always((t) => nothingLeft(t, t.context));

test.serial('the shipped hooks dir passes the checks; only post-mount has hooks, both declarative', (t) => {
  t.deepEqual(listHooks(HOOKS, 'post-mount'), [
    { name: '10-mounts.fstab', path: FSTAB, kind: 'fstab' },
    { name: '20-files.copyfiles', path: COPYFILES, kind: 'copyfiles' },
  ]);
  for (const phase of ['pre-mount', 'pre-unmount', 'post-unmount'] as const) {
    t.deepEqual(listHooks(HOOKS, phase), []);
    t.true(existsSync(join(HOOKS, `${phase}.d`, '.keep')));
  }
  for (const h of [FSTAB, COPYFILES]) t.is(statSync(h).mode & 0o777, 0o644, `${h} is 0644: read, not run`);
  // Plain binds (never rbind), /dev/pts after /dev and only where the host has it.
  t.deepEqual(
    parseFstab(readFileSync(FSTAB, 'utf8')).map((e) => [e.spec, e.file, e.bind, e.rec, e.flags, e.nofail, e.data]),
    [
      ['/proc', '/proc', true, false, 0, false, null],
      ['/sys', '/sys', true, false, 0, false, null],
      ['/dev', '/dev', true, false, 0, false, null],
      ['/dev/pts', '/dev/pts', true, false, 0, true, null],
    ],
  );
  t.deepEqual(
    parseCopyfiles(readFileSync(COPYFILES, 'utf8')).map((e) => e.path),
    ['/etc/resolv.conf', '/etc/hosts'],
  );
});

serial('post-mount binds /proc, /sys, /dev, /dev/pts and copies resolv.conf and hosts', async (t) => {
  privateRoot(t, t.context.root);
  const { root, dir } = t.context;
  // proc/ and etc/ exist; sys/ and dev/ do not; etc/hosts is a symlink to a file outside the root.
  mkdirSync(join(root, 'proc'));
  mkdirSync(join(root, 'etc'));
  const decoy = join(dir, 'decoy');
  writeFileSync(decoy, 'decoy\n');
  symlinkSync(decoy, join(root, 'etc', 'hosts'));

  const runs = await runHooks(opts(t.context));
  t.deepEqual(runs.map((r) => r.hook), ['post-mount.d/10-mounts.fstab', 'post-mount.d/20-files.copyfiles']);

  const hasPts = existsSync('/dev/pts');
  t.deepEqual(mountsBelow(root), hasPts ? BINDS : BINDS.filter((m) => m !== '/dev/pts'));
  for (const m of ['/proc', '/sys', '/dev', ...(hasPts ? ['/dev/pts'] : [])]) t.is(mountOf(root + m), mountOf(m), `${m} is the host's`);
  // Each bind is private: it joined no peer group of the host's.
  for (const m of readMountInfo().filter((e) => e.mountPoint.startsWith(`${root}/`))) t.deepEqual(m.propagation, [], `${m.mountPoint} is private`);
  t.false(existsSync(join(dir, 'bookworm-1', 'binds.fstab')), 'no fstab is written for mount(8) any more');
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

  // hooks.log: header, one line per action, trailer, for each.
  const log = lines(t.context.logPath);
  t.is(log[0], '== post-mount 10-mounts.fstab ==');
  t.is(log[1], `mounted: bind /proc on ${root}/proc`);
  t.regex(log.find((l) => l.startsWith('== post-mount 10-mounts.fstab:'))!, /^== post-mount 10-mounts\.fstab: done, \d+ ms ==$/);
  t.true(log.includes('== post-mount 20-files.copyfiles =='));
  if (existsSync('/etc/hosts')) t.true(log.includes(`copied: /etc/hosts to ${root}/etc/hosts`));
  t.regex(log.at(-1)!, /^== post-mount 20-files\.copyfiles: done, \d+ ms ==$/);

  unmountAllUnder(root);
  t.deepEqual(mountsUnder(root), [], 'everything unmounts, deepest first');
});

serial('run again on a recovered session, the phase skips the binds that survived and doubles nothing', async (t) => {
  privateRoot(t, t.context.root);
  const f = t.context;
  const { root } = f;
  await runHooks(opts(f));
  const first = readMountInfo().filter((m) => m.mountPoint.startsWith(`${root}/`)).length;
  f.vars.recover = true;
  const runs = await runHooks(opts(f));
  t.is(runs.length, 2);
  t.is(readMountInfo().filter((m) => m.mountPoint.startsWith(`${root}/`)).length, first, 'no mount was stacked on another');
  const log = lines(f.logPath);
  for (const m of mountsBelow(root)) {
    t.true(log.includes(`skipped: line ${lineOf(m)}: ${root}${m} is already a mount point (a mount that survived, when recovering)`), `${m} skipped`);
  }
  unmountAllUnder(root);
});

serial('with union type none nothing is created in the source: missing mount points are skipped, nothing copied', async (t) => {
  privateRoot(t, t.context.root);
  const f = t.context;
  const { root } = f;
  f.vars.unionType = 'none';
  mkdirSync(join(root, 'proc'));
  await runHooks(opts(f));
  t.deepEqual(mountsBelow(root), ['/proc']);
  t.deepEqual(readdirSync(root), ['proc'], 'no sys/, dev/ or etc/ was made');
  const log = lines(f.logPath);
  t.true(log.includes(`skipped: line ${lineOf('/sys')}: ${root}/sys is missing and the source chroot is not modified (union type none); /sys not mounted`));
  t.true(log.includes(`skipped: line ${lineOf('/dev')}: ${root}/dev is missing and the source chroot is not modified (union type none); /dev not mounted`));
  t.true(log.includes('skipped: union type none: the source chroot is not modified; nothing copied'));
  unmountAllUnder(root);
});

serial('with union type none and the mount points there, /dev/pts is bound on the host directory the /dev bind shows', async (t) => {
  privateRoot(t, t.context.root);
  const f = t.context;
  const { root } = f;
  f.vars.unionType = 'none';
  // An empty dev/, as in a freshly bootstrapped chroot: dev/pts is not in the source.
  for (const d of ['proc', 'sys', 'dev']) mkdirSync(join(root, d));
  await runHooks(opts(f));
  t.deepEqual(mountsBelow(root), existsSync('/dev/pts') ? BINDS : BINDS.filter((m) => m !== '/dev/pts'));
  unmountAllUnder(root);
  t.deepEqual(readdirSync(join(root, 'dev')), [], 'nothing was created in the source');
});

serial('a symlink as mount point in the chroot is refused, nothing mounted through it', async (t) => {
  privateRoot(t, t.context.root);
  const f = t.context;
  const { root, dir } = f;
  const elsewhere = join(dir, 'elsewhere');
  mkdirSync(elsewhere);
  symlinkSync(elsewhere, join(root, 'sys'));
  const e = await t.throwsAsync(runHooks(opts(f)), { instanceOf: HookFailedError });
  t.is(e.message, `hook post-mount.d/10-mounts.fstab failed: line ${lineOf('/sys')}: ${root}/sys is a symbolic link; refusing to mount on it`);
  t.like(e, { hook: 'post-mount.d/10-mounts.fstab', line: lineOf('/sys'), status: null, signal: null });
  t.is(mountOf(elsewhere), undefined);
  t.deepEqual(mountsBelow(root), [], 'every mount point is checked before the first mount starts');
  t.false(existsSync(join(root, 'etc')), '20-files.copyfiles did not run');
  t.true(lines(f.logPath).includes(`failed: line ${lineOf('/sys')}: ${root}/sys is a symbolic link; refusing to mount on it`));
});

serial('the copies, a created etc/ and created mount points are readable by all, whatever the umask warden runs with', async (t) => {
  privateRoot(t, t.context.root);
  const f = t.context;
  const { root } = f;
  const old = process.umask(0o077);
  try {
    await runHooks(opts(f));
  } finally {
    process.umask(old);
  }
  unmountAllUnder(root);
  for (const d of ['etc', 'proc', 'sys', 'dev']) t.is(statSync(join(root, d)).mode & 0o777, 0o755, `${d}/ was made 0755`);
  for (const file of ['resolv.conf', 'hosts']) {
    if (existsSync(join('/etc', file))) t.is(statSync(join(root, 'etc', file)).mode & 0o777, 0o644, `${file} is 0644`);
  }
});

serial('cost of the default post-mount phase', async (t) => {
  privateRoot(t, t.context.root);
  const f = t.context;
  const { root } = f;
  const times: number[] = [];
  const per: Record<string, number[]> = {};
  for (let i = 0; i < 21; i++) {
    const t0 = performance.now();
    const runs = await runHooks(opts(f));
    times.push(performance.now() - t0);
    for (const r of runs) (per[r.hook] ??= []).push(r.ms);
    for (const m of mountsUnder(root)) if (m !== root) sh(['umount', m]);
  }
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1]!.toFixed(1);
  t.log(`default post-mount phase: median ${median(times)} ms of ${times.length} (first ${times[0]!.toFixed(1)} ms)`);
  for (const [hook, ms] of Object.entries(per)) t.log(`  ${hook}: median ${median(ms)} ms`);
  // From the second run on, the copies above are there already and left
  // alone; a session's start makes them anew, as these runs do.
  const fresh: number[] = [];
  for (let i = 0; i < 11; i++) {
    rmSync(join(root, 'etc'), { recursive: true, force: true });
    const t0 = performance.now();
    await runHooks(opts(f));
    fresh.push(performance.now() - t0);
    for (const m of mountsUnder(root)) if (m !== root) sh(['umount', m]);
  }
  t.log(`  with etc/ made and copied afresh each time: median ${median(fresh)} ms of ${fresh.length}`);
  t.pass();
});
