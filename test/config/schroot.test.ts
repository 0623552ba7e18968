// Migration path: `warden --config /etc/schroot/schroot.conf` reads a real
// schroot setup, chroot.d/ included, and loads what warden can run.
import test from 'ava';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/index.js';
import { lines, ROOT, tree } from './tree.js';

// As schroot 1.6 ships and admins extend it, with sbuild-createchroot drop-ins.
const schrootConf = lines(
  '# schroot chroot definitions.',
  '# See schroot.conf(5) for complete documentation of the file format.',
  '#',
  '# Please take note that you should not add untrusted users to',
  '# root-groups, because they will essentially have full root access',
  '# to your system.',
  '',
  '[bookworm]',
  'description=Debian 12 (bookworm)',
  `directory=${ROOT}/srv/chroot/bookworm`,
  'users=alice,bob',
  'groups=sbuild',
  'root-groups=root',
  'profile=default',
  'aliases=stable,default',
  'type=directory',
  'union-type=overlay',
  'union-overlay-directory=/var/lib/schroot/union/overlay',
  'personality=linux',
  'preserve-environment=true',
  '',
  '[sid-snap]',
  'description=Debian sid (LVM snapshot)',
  'type=lvm-snapshot',
  'device=/dev/vg0/sid_chroot',
  'lvm-snapshot-options=--size 2G',
  'users=alice',
  'root-users=alice',
  'aliases=unstable-snap',
  'source-root-users=alice',
  '',
  '[jammy]',
  'description=Ubuntu 22.04 (jammy), i386',
  'type=plain',
  `directory=${ROOT}/srv/chroot/jammy-i386`,
  'personality=linux32',
  'users=carol',
  'command-prefix=eatmydata',
  'message-verbosity=quiet',
);

// sbuild-createchroot names its drop-ins <chroot>-<random>, without .conf.
const sbuildDropIn = lines(
  '[sid-amd64-sbuild]',
  'description=Debian sid/amd64 autobuilder',
  'groups=root,sbuild',
  'root-groups=root,sbuild',
  'profile=sbuild',
  'type=directory',
  `directory=${ROOT}/srv/chroot/sid-amd64-sbuild`,
  'union-type=overlayfs',
);

test('an /etc/schroot layout loads; lvm-snapshot is reported unsupported, the rest runs', (t) => {
  const root = tree(t, {
    'srv/chroot/bookworm/': '',
    'srv/chroot/jammy-i386/': '',
    'srv/chroot/sid-amd64-sbuild/': '',
    'etc/schroot/schroot.conf': schrootConf,
    'etc/schroot/chroot.d/sid-amd64-sbuild-Xf3k9a': sbuildDropIn,
    'etc/schroot/chroot.d/sid-amd64-sbuild-Xf3k9a.dpkg-old': '[stale]\nthis is skipped\n',
    'etc/schroot/chroot.d/.sid.swp': 'binary junk',
    // other schroot directories beside the file are not read
    'etc/schroot/default/fstab': '/proc /proc none rw,bind 0 0\n',
    'etc/schroot/sbuild/nssdatabases': 'passwd\n',
  });
  const file = join(root, 'etc/schroot/schroot.conf');
  const dropIn = join(root, 'etc/schroot/chroot.d/sid-amd64-sbuild-Xf3k9a');

  const config = loadConfig({ config: file, env: {} });

  t.is(config.file, file);
  t.deepEqual([...config.chroots.keys()], ['bookworm', 'jammy', 'sid-amd64-sbuild']);
  t.like(config.lookup('stable'), {
    name: 'bookworm',
    file,
    line: 8,
    type: 'directory',
    directory: `${root}/srv/chroot/bookworm`,
    description: 'Debian 12 (bookworm)',
    aliases: ['stable', 'default'],
    unionType: 'overlay',
    users: ['alice', 'bob'],
    groups: ['sbuild'],
    rootGroups: ['root'],
  });
  t.is(config.lookup('default')?.name, 'bookworm');
  t.like(config.lookup('jammy'), { type: 'directory', unionType: 'none', users: ['carol'] });
  t.like(config.lookup('sid-amd64-sbuild'), { file: dropIn, line: 1, unionType: 'overlay', groups: ['root', 'sbuild'] });
  // profile= names a directory beside the main file, as /etc/schroot/PROFILE for schroot.
  const etc = join(root, 'etc/schroot');
  t.deepEqual(config.lookup('sid-amd64-sbuild')?.profileFiles, { fstab: `${etc}/sbuild/fstab`, copyfiles: `${etc}/sbuild/copyfiles`, nssdatabases: `${etc}/sbuild/nssdatabases` });
  t.deepEqual(config.lookup('bookworm')?.profileFiles, { fstab: `${etc}/default/fstab`, copyfiles: `${etc}/default/copyfiles`, nssdatabases: `${etc}/default/nssdatabases` });
  t.is(config.lookup('jammy')?.profileFiles, undefined);

  t.deepEqual(config.unsupported, [
    { name: 'sid-snap', file, line: 24, reason: 'type=lvm-snapshot is not supported by warden (only directory and plain are)' },
  ]);
  t.is(config.lookup('sid-snap'), undefined);

  const schrootOnly = (f: string, line: number, key: string, group: string) => ({
    file: f,
    line,
    message: `${f}:${line}: key "${key}" in [${group}] is a schroot key that warden does not use; ignored`,
  });
  t.deepEqual(config.warnings, [
    schrootOnly(file, 18, 'union-overlay-directory', 'bookworm'),
    schrootOnly(file, 19, 'personality', 'bookworm'),
    schrootOnly(file, 20, 'preserve-environment', 'bookworm'),
    schrootOnly(file, 36, 'personality', 'jammy'),
    schrootOnly(file, 38, 'command-prefix', 'jammy'),
    schrootOnly(file, 39, 'message-verbosity', 'jammy'),
  ]);
});

// schroot gives a chroot without profile= its `default` profile; warden does too for a schroot.conf.
test('a chroot of schroot.conf that names no profile gets schroot\'s default profile; warden.conf\'s do not', (t) => {
  const body = (name: string, extra: string[] = []) => lines(`[${name}]`, 'type=directory', `directory=${ROOT}/srv/c`, ...extra, '');
  const root = tree(t, {
    'srv/c/': '',
    'etc/schroot/schroot.conf': body('none') + body('empty', ['profile=']) + body('own', ['profile=sbuild']) + body('part', ['setup.fstab=x/fstab']) + lines('[plain]', 'type=plain', `directory=${ROOT}/srv/c`, ''),
    'etc/schroot/default/fstab': '/proc /proc none rw,bind 0 0\n',
    'etc/warden/warden.conf': body('none'),
    'etc/warden/default/fstab': '/proc /proc none rw,bind 0 0\n',
    'etc/bare/schroot.conf': body('none'),
  });
  const etc = join(root, 'etc/schroot');
  const schroot = loadConfig({ config: join(etc, 'schroot.conf'), env: {} });
  t.is(schroot.lookup('none')?.profile, 'default');
  t.deepEqual(schroot.lookup('none')?.profileFiles, { fstab: `${etc}/default/fstab`, copyfiles: `${etc}/default/copyfiles`, nssdatabases: `${etc}/default/nssdatabases` });
  t.is(schroot.lookup('empty')?.profileFiles, undefined, 'profile= (empty) turns it off');
  t.is(schroot.lookup('own')?.profile, 'sbuild');
  t.deepEqual(schroot.lookup('part')?.profileFiles, { fstab: `${root}/etc/schroot/x/fstab`, copyfiles: undefined, nssdatabases: undefined }, 'setup.* alone: only that part');
  t.is(schroot.lookup('plain')?.profileFiles, undefined, 'type=plain runs no setup scripts in schroot');
  t.is(loadConfig({ config: join(root, 'etc/warden/warden.conf'), env: {} }).lookup('none')?.profileFiles, undefined, "warden.conf: warden's default hooks");
  t.is(loadConfig({ config: join(root, 'etc/bare/schroot.conf'), env: {} }).lookup('none')?.profileFiles, undefined, 'no default/ beside it: warden\'s default hooks');
});

test('schroot.conf with a duplicate across chroot.d is refused like warden.conf', (t) => {
  const root = tree(t, {
    'srv/chroot/bookworm/': '',
    'srv/chroot/jammy-i386/': '',
    'etc/schroot/schroot.conf': schrootConf,
    'etc/schroot/chroot.d/local.conf': lines('[stable]', `directory=${ROOT}/srv/chroot/bookworm`),
  });
  const file = join(root, 'etc/schroot/schroot.conf');
  t.throws(() => loadConfig({ config: file, env: {} }), {
    message: `${root}/etc/schroot/chroot.d/local.conf:1: chroot [stable] clashes with alias "stable" of [bookworm] at ${file}:15`,
  });
});
