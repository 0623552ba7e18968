// lockLocality() against real filesystems: the local disk and tmpfs (the
// kernel's own locks), and bindfs, a real FUSE filesystem, without lock
// support (the kernel then keeps its locks local, silently: two mounts of
// one directory both grant the same exclusive lock) and with it
// (--enable-lock-forwarding). The glusterfs case is in test/farm/gluster.test.ts.
//
// The bindfs cases need root and bindfs (.ci/run installs it); otherwise
// they are skipped with the reason in their titles.
import anyTest, { type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { lockLocality, readProcLocks, fileKeyOfPath, shutdownWaitPool } from '../../src/locks/index.js';
import { mountsUnder } from '../../src/union/index.js';
import { Holder, killAllHolders } from '../helpers/holder.js';
import { fileFds, ourLocks } from '../helpers/leaks.js';

const test = anyTest as TestFn<{ tmp: string; fds: string[] }>;

const isRoot = process.getuid?.() === 0;
const bindfs = ['/usr/bin/bindfs', '/bin/bindfs'].find((p) => existsSync(p));
const noBindfs = !isRoot ? `needs root (uid ${process.getuid?.()}) to mount` : bindfs === undefined ? 'bindfs is not installed (apt-get install bindfs; .ci/run does)' : undefined;
const withBindfs = noBindfs ? test.serial.skip : test.serial;
const title = (s: string) => (noBindfs ? `${s} (skipped: ${noBindfs})` : s);

test.beforeEach((t) => {
  t.context.tmp = mkdtempSync(join(tmpdir(), 'warden-locality-'));
  t.context.fds = fileFds();
});

test.afterEach.always(async (t) => {
  await killAllHolders();
  for (const m of mountsUnder(t.context.tmp)) spawnSync('umount', [m.mountPoint]);
  t.deepEqual(mountsUnder(t.context.tmp), [], 'nothing left mounted');
  rmSync(t.context.tmp, { recursive: true, force: true });
  t.deepEqual(fileFds(), t.context.fds, 'no fd left open');
  t.deepEqual(ourLocks(), [], 'no lock of ours left');
});

test.after.always(() => shutdownWaitPool());

/** bindfs mounts of one source directory: what two hosts would see of a shared directory. */
function bindfsMounts(tmp: string, n: number, args: string[] = []): { source: string; mounts: string[] } {
  const source = join(tmp, 'source');
  mkdirSync(source);
  const mounts = [];
  for (let i = 0; i < n; i++) {
    const m = join(tmp, `m${i}`);
    mkdirSync(m);
    const r = spawnSync(bindfs!, [...args, source, m], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`bindfs ${args.join(' ')} ${source} ${m}: ${r.stderr}`);
    mounts.push(m);
  }
  return { source, mounts };
}

test('a local filesystem: local-fs, judged by its type, no probe file made', (t) => {
  const l = lockLocality(t.context.tmp);
  t.log(JSON.stringify(l));
  t.is(l.scope, 'local-fs');
  t.is(l.how, 'fs-type');
  t.deepEqual(readdirSync(t.context.tmp), []);
});

test('tmpfs (/dev/shm): local-fs', (t) => {
  const l = lockLocality('/dev/shm');
  t.is(l.scope, 'local-fs');
  t.is(l.fsType, 'tmpfs');
});

test('a directory that does not exist: ENOENT', (t) => {
  t.throws(() => lockLocality(join(t.context.tmp, 'missing')), { code: 'ENOENT' });
});

withBindfs(title('bindfs without lock support: two mounts both grant one exclusive lock, and lockLocality says fuse-local'), async (t) => {
  const { mounts } = bindfsMounts(t.context.tmp, 2);
  // The failure a farm on such a filesystem would suffer, shown first.
  writeFileSync(join(mounts[0]!, 'f'), '');
  const a = await Holder.start(join(mounts[0]!, 'f'));
  const b = await Holder.start(join(mounts[1]!, 'f'));
  t.is(await a.lock('ofd', 'w'), 'ok');
  t.is(await b.lock('ofd', 'w'), 'ok', 'both "hosts" hold the exclusive lock');
  // ... and the trace it leaves: the kernel recorded the lock itself.
  const key = fileKeyOfPath(join(mounts[0]!, 'f'));
  t.true(readProcLocks().some((e) => e.key === key && e.pid === -1 && e.kind === 'exclusive'), 'in /proc/locks');
  await a.kill();
  await b.kill();

  const l = lockLocality(mounts[0]!);
  t.log(JSON.stringify(l));
  t.like(l, { scope: 'fuse-local', how: 'probe', fsType: 'fuse', mountPoint: mounts[0] });
  t.deepEqual(readdirSync(mounts[0]!), ['f'], 'the probe file is gone');
});

withBindfs(title('bindfs with --enable-lock-forwarding: the filesystem answers for locks, lockLocality says cluster'), async (t) => {
  // Forwarded locks end up on the source directory's files, which both
  // mounts share: the two "hosts" now exclude each other.
  const { mounts } = bindfsMounts(t.context.tmp, 2, ['--enable-lock-forwarding', '--multithreaded']);
  writeFileSync(join(mounts[0]!, 'f'), '');
  const a = await Holder.start(join(mounts[0]!, 'f'));
  const b = await Holder.start(join(mounts[1]!, 'f'));
  t.is(await a.lock('posix', 'w'), 'ok');
  t.is(await b.lock('posix', 'w'), 'busy');
  await a.kill();
  await b.kill();
  const l = lockLocality(mounts[1]!);
  t.log(JSON.stringify(l));
  t.like(l, { scope: 'cluster', how: 'probe', fsType: 'fuse' });
});

withBindfs(title('the probe takes a few milliseconds'), (t) => {
  const { mounts } = bindfsMounts(t.context.tmp, 1);
  const times: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    lockLocality(mounts[0]!);
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  t.log(`lockLocality on bindfs: p50 ${times[10]!.toFixed(2)} ms, max ${times[19]!.toFixed(2)} ms`);
  t.pass();
});
