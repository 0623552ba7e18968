// What bootstrap refuses to do, and what it must never touch: foreign
// directories, host directories reached through symlinks planted in the tree,
// system directories, trees in use or with something mounted inside.
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, mkdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BootstrapError, MARKER, SOURCE_LOCK, bootstrapChroot, type BootstrapReason } from '../../src/bootstrap/index.js';
import { Holder, killAllHolders, liveHolders } from '../helpers/holder.js';
import { fileFds, ourLocks } from '../helpers/leaks.js';
import { listing, newTemp, rootSerial, test } from './support.js';

test.beforeEach((t) => {
  Object.assign(t.context, newTemp(), { fds: fileFds() });
});

// Nothing of ours may survive a test: fds, locks, holder processes.
test.afterEach.always(async (t) => {
  await killAllHolders();
  const locks = ourLocks(existsSync(join(t.context.root, SOURCE_LOCK)) ? [join(t.context.root, SOURCE_LOCK)] : []);
  const fds = fileFds();
  rmSync(t.context.tmp, { recursive: true, force: true });
  t.deepEqual(locks, [], 'no lock of ours is left in /proc/locks');
  t.deepEqual(fds, t.context.fds, 'no extra fd is left open');
  t.is(liveHolders(), 0);
});

async function rejects(t: { throwsAsync: (p: Promise<unknown>, e: object) => Promise<unknown> }, p: Promise<unknown>, reason: BootstrapReason) {
  const e = (await t.throwsAsync(p, { instanceOf: BootstrapError })) as BootstrapError;
  if (e.reason !== reason) throw new Error(`expected reason ${reason}, got ${e.reason}: ${e.message}`);
  return e;
}

/** A host directory outside the tree with a file in it: what planted symlinks point at. */
function hostSentinel(tmp: string): { dir: string; file: string } {
  const dir = join(tmp, 'host');
  mkdirSync(dir);
  writeFileSync(join(dir, 'sentinel'), 'keep me\n');
  return { dir, file: join(dir, 'sentinel') };
}

test.serial('a non-empty directory without the marker is refused and left exactly as it was', async (t) => {
  const { root } = t.context;
  mkdirSync(join(root, 'sub'), { recursive: true });
  writeFileSync(join(root, 'data'), 'precious');
  writeFileSync(join(root, 'sub', 'more'), 'also precious');
  symlinkSync('/etc', join(root, 'link'));
  const before = listing(root);
  const e = await rejects(t, bootstrapChroot(root), 'foreign');
  t.is(e.path, root);
  t.true(e.message.includes(root) && !e.message.includes('\n'), e.message);
  t.deepEqual(listing(root), before);
  t.false(existsSync(join(root, SOURCE_LOCK)), 'not even the lock file is created');
});

test.serial('a marker that is a symlink or not our JSON does not make a directory ours', async (t) => {
  const { root, tmp } = t.context;
  const { file } = hostSentinel(tmp);
  mkdirSync(root);
  writeFileSync(file, JSON.stringify({ format: 'warden-bootstrap', version: 1 }));
  symlinkSync(file, join(root, MARKER));
  await rejects(t, bootstrapChroot(root), 'foreign');
  unlinkSync(join(root, MARKER));
  writeFileSync(join(root, MARKER), '{"format": "something-else"}');
  await rejects(t, bootstrapChroot(root), 'foreign');
  t.is(readFileSync(file, 'utf8'), JSON.stringify({ format: 'warden-bootstrap', version: 1 }));
});

test.serial('force replaces a foreign directory', async (t) => {
  const { root } = t.context;
  mkdirSync(root);
  writeFileSync(join(root, 'data'), 'old');
  const r = await bootstrapChroot(root, { force: true, busybox: false });
  t.is(r.dir, root);
  t.false(existsSync(join(root, 'data')));
  t.true(lstatSync(join(root, MARKER)).isFile());
});

test.serial('an empty directory, or one with only a lock file, is built in without force', async (t) => {
  const { root } = t.context;
  mkdirSync(root);
  writeFileSync(join(root, SOURCE_LOCK), '');
  await t.notThrowsAsync(bootstrapChroot(root, { busybox: false }));
});

test.serial('rebuild never follows symlinks out of the tree', async (t) => {
  const { root, tmp } = t.context;
  await bootstrapChroot(root, { busybox: false });
  const host = hostSentinel(tmp);
  const hostBefore = listing(host.dir);
  // Absolute links to a host directory, at the top, deeper down, in place of a
  // directory the build creates, in place of a file it writes, and as .ref.
  symlinkSync(host.dir, join(root, 'evil'));
  symlinkSync(host.dir, join(root, 'usr', 'evil'));
  rmSync(join(root, 'tmp'), { recursive: true });
  symlinkSync(host.dir, join(root, 'tmp'));
  unlinkSync(join(root, 'etc', 'hostname'));
  symlinkSync(host.file, join(root, 'etc', 'hostname'));
  unlinkSync(join(root, SOURCE_LOCK));
  symlinkSync(host.file, join(root, SOURCE_LOCK));

  await bootstrapChroot(root, { busybox: false });

  t.deepEqual(listing(host.dir), hostBefore);
  t.is(readFileSync(host.file, 'utf8'), 'keep me\n');
  t.false(existsSync(join(root, 'evil')));
  t.false(existsSync(join(root, 'usr', 'evil')));
  t.true(lstatSync(join(root, 'tmp')).isDirectory());
  t.is(readFileSync(join(root, 'etc', 'hostname'), 'utf8'), 'warden-demo\n');
  t.true(lstatSync(join(root, SOURCE_LOCK)).isFile());
});

test.serial('DIR given through a symlink is built in the directory it names', async (t) => {
  const { root, tmp } = t.context;
  mkdirSync(root);
  symlinkSync(root, join(tmp, 'alias'));
  const r = await bootstrapChroot(join(tmp, 'alias'), { busybox: false });
  t.is(r.dir, root);
  t.true(lstatSync(join(tmp, 'alias')).isSymbolicLink());
  t.true(existsSync(join(root, MARKER)));
});

// Without force, so that even a broken system-directory check could only end
// in 'foreign': the reason proves which check refused.
const refused = test.macro({
  async exec(t, dir: string, opts: { force?: boolean } = {}) {
    const e = await rejects(t, bootstrapChroot(dir, opts), 'refused');
    t.false(e.message.includes('\n'));
  },
  title: (_p, dir: string, opts: { force?: boolean } = {}) => `${dir} is refused${opts.force ? ' even with force' : ''}`,
});
test.serial(refused, '/');
test.serial(refused, '/usr');
test.serial(refused, '/etc');
test.serial(refused, '/bin');
test.serial(refused, '/usr/../var/lib');
test.serial(refused, '/tmp');
test.serial(refused, '/proc/self');
test.serial(refused, '/proc/1/root');
// '/' also has mount points below it: the mount check would stop even a broken refusal.
test.serial(refused, '/', { force: true });

test.serial('a path that is a file is refused', async (t) => {
  const { root } = t.context;
  writeFileSync(root, 'not a dir');
  await rejects(t, bootstrapChroot(root), 'not-a-directory');
  t.is(readFileSync(root, 'utf8'), 'not a dir');
});

test.serial('a held source lock (a live session) blocks a rebuild, which touches nothing', async (t) => {
  const { root } = t.context;
  await bootstrapChroot(root, { busybox: false });
  const before = listing(root);
  const holder = await Holder.start(join(root, SOURCE_LOCK));
  t.is(await holder.lock('ofd', 'r'), 'ok');
  const e = await rejects(t, bootstrapChroot(root, { busybox: false }), 'in-use');
  t.true(e.message.includes(`pid ${holder.pid}`), e.message);
  t.deepEqual(listing(root), before);
  await holder.kill();
  await t.notThrowsAsync(bootstrapChroot(root, { busybox: false }));
});

test.serial('a busybox that does not exist fails before DIR is created', async (t) => {
  const { root, tmp } = t.context;
  await rejects(t, bootstrapChroot(root, { busybox: join(tmp, 'no-busybox') }), 'missing-tool');
  t.false(existsSync(root));
});

rootSerial('something mounted inside blocks a rebuild, and the mounted tree is untouched (needs root)', async (t) => {
  const { root, tmp } = t.context;
  await bootstrapChroot(root, { busybox: false });
  const host = hostSentinel(tmp);
  const mount = spawnSync('mount', ['--bind', host.dir, join(root, 'proc')], { encoding: 'utf8' });
  t.is(mount.status, 0, mount.stderr);
  t.teardown(() => {
    spawnSync('umount', [join(root, 'proc')]);
  });
  const e = await rejects(t, bootstrapChroot(root, { busybox: false }), 'mounted');
  t.is(e.path, join(root, 'proc'));
  t.is(readFileSync(host.file, 'utf8'), 'keep me\n');
  t.true(existsSync(join(root, MARKER)));
});
