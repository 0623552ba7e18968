// Build-farm configuration: `shared-dir=` per chroot, `[warden] host=`, and
// the refusal of shared storage whose locks would stay on this host, on
// real files, real filesystems (the local disk, tmpfs) and a real FUSE
// filesystem without lock support (bindfs), through the library and the CLI.
// The accepted GlusterFS case is in test/farm/gluster.test.ts.
import test, { type ExecutionContext } from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSharedStorage, ConfigError, hostOf, loadConfig } from '../../src/config/index.js';
import { chrootOf, loadContext } from '../../src/config/context.js';
import { shutdownWaitPool } from '../../src/locks/index.js';
import { mountsUnder } from '../../src/union/index.js';
import { warden, writeConfig } from '../helpers/cli.js';
import { lines, ROOT, tree } from './tree.js';

test.after.always(() => shutdownWaitPool());

function load(root: string, checkDirectories = true) {
  return loadConfig({ config: join(root, 'warden.conf'), env: {}, cwd: root, checkDirectories });
}

const chroot = (name: string, ...more: string[]) => [`[${name}]`, 'type=directory', `directory=${ROOT}/src-${name}`, ...more];
const dirs = { 'src-sid/': '', 'src-trixie/': '', 'farm/': '', 'farm2/': '', 'a-file': '' };

interface Refusal {
  files: Record<string, string>;
  line: number;
  /** `@ROOT@` stands for the temp dir. */
  reason: string;
}

const refuses = test.macro({
  exec(t: ExecutionContext, c: Refusal) {
    const root = tree(t, { ...dirs, ...c.files });
    const file = join(root, 'warden.conf');
    const e = t.throws(() => load(root), { instanceOf: ConfigError, message: `${file}:${c.line}: ${c.reason.replaceAll(ROOT, root)}` });
    t.is(e.exitCode, 3);
  },
  title: (provided = '') => `refuses ${provided}`,
});

test('a relative shared-dir=', refuses, {
  files: { 'warden.conf': lines(...chroot('sid', 'shared-dir=farm')) },
  line: 4,
  reason: 'shared-dir= must be an absolute path, got "farm"',
});

test('a shared-dir= that does not exist', refuses, {
  files: { 'warden.conf': lines(...chroot('sid', `shared-dir=${ROOT}/nowhere`)) },
  line: 4,
  reason: `shared-dir=${ROOT}/nowhere does not exist`,
});

test('a shared-dir= that is a file', refuses, {
  files: { 'warden.conf': lines(...chroot('sid', `shared-dir=${ROOT}/a-file`)) },
  line: 4,
  reason: `shared-dir=${ROOT}/a-file is not a directory`,
});

test('a shared-dir= inside the source', refuses, {
  files: { 'src-sid/farm/': '', 'warden.conf': lines(...chroot('sid', `shared-dir=${ROOT}/src-sid/farm`)) },
  line: 4,
  reason: `shared-dir=${ROOT}/src-sid/farm of [sid] is inside its source ${ROOT}/src-sid: commands in the source could change it`,
});

test('a shared-dir= that is the source', refuses, {
  files: { 'warden.conf': lines(...chroot('sid', `shared-dir=${ROOT}/src-sid/`)) },
  line: 4,
  reason: `shared-dir=${ROOT}/src-sid of [sid] is inside its source ${ROOT}/src-sid: commands in the source could change it`,
});

test('a shared-dir= that contains the source', refuses, {
  files: { 'warden.conf': lines(...chroot('sid', `shared-dir=${ROOT}`)) },
  line: 4,
  reason: `shared-dir=${ROOT} of [sid] contains its source ${ROOT}/src-sid: keep warden's lock files beside the source`,
});

test('one shared-dir= for two chroots (spelled differently)', refuses, {
  files: {
    'warden.conf': lines(...chroot('sid', `shared-dir=${ROOT}/farm`), ...chroot('trixie', `shared-dir=${ROOT}//farm/`)),
  },
  line: 8,
  reason: `shared-dir=${ROOT}/farm of [trixie] is already the shared-dir of [sid] at ${ROOT}/warden.conf:4`,
});

const HOST_RULE = 'must be a host name: letters, digits and "-", in dot-separated labels that start and end with a letter or digit';
for (const [value, why] of [
  ['', 'is empty'],
  ['build_01', HOST_RULE],
  ['-build', HOST_RULE],
  ['build-', HOST_RULE],
  ['build..example', HOST_RULE],
  ['.build', HOST_RULE],
  ['build@farm', HOST_RULE],
  ['build 01', HOST_RULE],
  ['b/01', HOST_RULE],
  ['x'.repeat(65), 'is longer than 64 characters'],
] as const) {
  test(`[warden] host=${JSON.stringify(value).slice(0, 20)}`, refuses, {
    files: { 'warden.conf': lines('[warden]', `host=${value}`) },
    line: 2,
    reason: `host= ${why}, got ${JSON.stringify(value)}`,
  });
}

test('shared-dir= and host= are read; a chroot without shared-dir= has none', (t) => {
  const root = tree(t, { ...dirs, 'warden.conf': lines('[warden]', 'host=build-01.example.org', '', ...chroot('sid', `shared-dir=${ROOT}/farm/`), ...chroot('trixie')) });
  const c = load(root);
  t.deepEqual(c.warnings, []);
  t.is(c.host, 'build-01.example.org');
  t.deepEqual(c.lookup('sid')!.sharedDir, { path: join(root, 'farm'), line: 7 });
  t.is(c.lookup('trixie')!.sharedDir, undefined);
  t.is(hostOf(c), 'build-01.example.org');
});

test('host defaults to the kernel host name; one that is no host name asks for host=', (t) => {
  t.is(hostOf({ host: undefined, file: '/etc/warden/warden.conf' }, 'b1'), 'b1');
  t.is(hostOf({ host: undefined, file: '/etc/warden/warden.conf' }, 'B-1.farm.example'), 'B-1.farm.example');
  const e = t.throws(() => hostOf({ host: undefined, file: '/etc/warden/warden.conf' }, 'my_box'), { instanceOf: ConfigError });
  t.is(e.message, `/etc/warden/warden.conf: this host's name "my_box" ${HOST_RULE}: set [warden] host= to name it in a build farm`);
  t.is(hostOf({ host: 'set', file: undefined }, 'my_box'), 'set', 'host= wins');
});

test('checkDirectories: false accepts a shared-dir= that does not exist yet', (t) => {
  const root = tree(t, { 'warden.conf': lines(...chroot('sid', `shared-dir=${ROOT}/later`)) });
  t.deepEqual(load(root, false).lookup('sid')!.sharedDir, { path: join(root, 'later'), line: 4 });
});

test('shared storage on one local filesystem is accepted when the chroot is used', (t) => {
  const root = tree(t, { ...dirs, 'warden.conf': lines(...chroot('sid', `shared-dir=${ROOT}/farm`)) });
  const ctx = loadContext({ config: join(root, 'warden.conf') }, {});
  t.is(chrootOf(ctx, 'sid').name, 'sid');
  t.is(chrootOf(ctx, 'sid').name, 'sid', 'and again (cached)');
});

test('a shared-dir= writable by others is refused when the chroot is used', (t) => {
  const root = tree(t, { ...dirs, 'warden.conf': lines(...chroot('sid', `shared-dir=${ROOT}/farm`)) });
  chmodSync(join(root, 'farm'), 0o777);
  const ctx = loadContext({ config: join(root, 'warden.conf') }, {});
  const e = t.throws(() => chrootOf(ctx, 'sid'), { instanceOf: ConfigError });
  t.is(e.message, `${join(root, 'warden.conf')}:4: refusing shared-dir=${root}/farm of [sid]: it is world-writable (mode 0777)`);
});

test('a shared-dir= that resolves into the source through a symlink is refused when the chroot is used', (t) => {
  const root = tree(t, { ...dirs, 'src-sid/inner/': '', 'warden.conf': lines(...chroot('sid', `shared-dir=${ROOT}/link`)) });
  symlinkSync(join(root, 'src-sid', 'inner'), join(root, 'link'));
  const ctx = loadContext({ config: join(root, 'warden.conf') }, {});
  const e = t.throws(() => chrootOf(ctx, 'sid'), { instanceOf: ConfigError });
  t.is(e.line, 4);
  t.regex(e.message, /shared-dir=.*\/link of \[sid\] resolves to .*\/src-sid\/inner, inside its source/);
});

test('a source on another filesystem than shared-dir= is refused when the chroot is used', (t) => {
  const shm = mkdtempSync('/dev/shm/warden-shared-');
  t.teardown(() => rmSync(shm, { recursive: true, force: true }));
  const root = tree(t, { ...dirs, 'warden.conf': lines('[sid]', 'type=directory', `directory=${shm}`, `shared-dir=${ROOT}/farm`) });
  const ctx = loadContext({ config: join(root, 'warden.conf') }, {});
  const e = t.throws(() => chrootOf(ctx, 'sid'), { instanceOf: ConfigError });
  t.is(e.exitCode, 3);
  t.true(e.message.startsWith(`${join(root, 'warden.conf')}:4: shared-dir=${root}/farm of [sid] is on `), e.message);
  t.true(e.message.includes(` but its source ${shm} is not on that filesystem: both must be on the one shared filesystem`), e.message);
});

const isRoot = process.getuid?.() === 0;
const bindfs = ['/usr/bin/bindfs', '/bin/bindfs'].find((p) => existsSync(p));
const noBindfs = !isRoot ? `needs root (uid ${process.getuid?.()}) to mount` : bindfs === undefined ? 'bindfs is not installed (apt-get install bindfs; .ci/run does)' : undefined;

(noBindfs ? test.serial.skip : test.serial)(
  `a shared-dir= on a FUSE filesystem without lock support (bindfs) is exit 3 naming the filesystem${noBindfs ? ` (skipped: ${noBindfs})` : ''}`,
  (t) => {
    const top = mkdtempSync(join(tmpdir(), 'warden-shared-fuse-'));
    const lower = join(top, 'lower');
    const mnt = join(top, 'mnt');
    for (const d of [lower, join(lower, 'farm'), join(lower, 'source'), mnt]) mkdirSync(d);
    const mounted = spawnSync(bindfs!, [lower, mnt], { encoding: 'utf8' });
    t.teardown(() => {
      for (const m of mountsUnder(top)) spawnSync('umount', [m.mountPoint]);
      if (mountsUnder(top).length === 0) rmSync(top, { recursive: true, force: true });
    });
    t.is(mounted.status, 0, mounted.stderr);
    const env = writeConfig(top, lines('[sid]', 'type=directory', `directory=${mnt}/source`, `shared-dir=${mnt}/farm`));
    const reason =
      `shared-dir=${mnt}/farm of [sid] is on fuse ${lower} at ${mnt}, a FUSE filesystem that does not implement fcntl locks: ` +
      'the kernel keeps them on this host, so other hosts would not see them (use a filesystem whose locks are cluster-wide, such as a GlusterFS mount)';
    // The library, where the chroot is first used:
    const ctx = loadContext({ config: env.config }, {});
    const e = t.throws(() => chrootOf(ctx, 'sid'), { instanceOf: ConfigError });
    t.is(e.message, `${env.config}:4: ${reason}`);
    t.throws(() => checkSharedStorage(ctx.config, ctx.config.lookup('sid')!), { instanceOf: ConfigError }, 'refused again: a refusal is not cached');
    // The CLI: exit 3, the same line, for an entry and for a session.
    for (const args of [['source', '-c', 'sid', '--', 'true'], ['run', '-c', 'sid', '--', 'true'], ['begin', '-c', 'sid']]) {
      const r = warden(env, args);
      t.is(r.status, 3, `${args.join(' ')}: ${r.stderr}`);
      t.true(r.stderr.includes(reason), r.stderr);
    }
    t.deepEqual(
      spawnSync('ls', ['-A', join(lower, 'farm')], { encoding: 'utf8' }).stdout,
      '',
      'no probe file left',
    );
  },
);
