// loadConfig on real files in temp dirs: every refusal names FILE:LINE and
// echoes the bad value; warnings, aliases, unsupported types, chroot.d/.
import test, { type ExecutionContext } from 'ava';
import { chmodSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig, type ChrootDef } from '../../src/config/index.js';
import { lines, ROOT, tree } from './tree.js';

const NAME_RULE = 'must start with a letter or digit and contain only letters, digits, ".", "_" and "-"';

/** Loads <root>/warden.conf explicitly, with an environment that cannot point elsewhere. */
function load(root: string, checkDirectories = true) {
  return loadConfig({ config: join(root, 'warden.conf'), env: {}, cwd: root, checkDirectories });
}

interface Refusal {
  files: Record<string, string>;
  /** Relative to the temp dir. */
  file: string;
  line: number;
  /** `@ROOT@` stands for the temp dir. */
  reason: string;
}

const refuses = test.macro({
  exec(t: ExecutionContext, c: Refusal) {
    const root = tree(t, c.files);
    const file = join(root, c.file);
    const reason = c.reason.replaceAll(ROOT, root);
    const e = t.throws(() => load(root), { instanceOf: ConfigError, message: `${file}:${c.line}: ${reason}` });
    t.is(e.file, file);
    t.is(e.line, c.line);
  },
  title: (provided = '') => `refuses ${provided}`,
});

const chroot = (name: string, ...more: string[]) => [`[${name}]`, 'type=directory', `directory=${ROOT}`, ...more];

test('an unterminated group header', refuses, {
  files: { 'warden.conf': lines(...chroot('sid'), '[bad') },
  file: 'warden.conf',
  line: 4,
  reason: 'invalid group header "[bad": expected [name] alone on the line',
});

test('a line without "="', refuses, {
  files: { 'warden.conf': lines('[sid]', 'type directory') },
  file: 'warden.conf',
  line: 2,
  reason: 'expected [group], key=value or a # comment, got "type directory"',
});

test('a key before any group', refuses, {
  files: { 'warden.conf': lines('# settings', 'state-dir=/var/lib/warden') },
  file: 'warden.conf',
  line: 2,
  reason: 'key "state-dir" appears before any [group]',
});

test('a duplicate key', refuses, {
  files: { 'warden.conf': lines(...chroot('sid'), 'union-type=overlay', 'union-type=copy') },
  file: 'warden.conf',
  line: 5,
  reason: 'duplicate key "union-type" in [sid] (first set at line 4)',
});

test('an invalid group name in chroot.d', refuses, {
  files: { 'warden.conf': lines(...chroot('sid')), 'chroot.d/extra.conf': lines('', '[sid/amd64]') },
  file: 'chroot.d/extra.conf',
  line: 2,
  reason: `invalid group name "sid/amd64": ${NAME_RULE}`,
});

test('the same chroot in the main file and in chroot.d', refuses, {
  files: { 'warden.conf': lines('[warden]', '', ...chroot('sid')), 'chroot.d/sid.conf': lines('# sid again', ...chroot('sid')) },
  file: 'chroot.d/sid.conf',
  line: 2,
  reason: `chroot [sid] is already defined at ${ROOT}/warden.conf:3`,
});

test('the same chroot twice in one file', refuses, {
  files: { 'warden.conf': lines(...chroot('sid'), ...chroot('sid')) },
  file: 'warden.conf',
  line: 4,
  reason: `chroot [sid] is already defined at ${ROOT}/warden.conf:1`,
});

test('an alias used by two chroots', refuses, {
  files: { 'warden.conf': lines(...chroot('bookworm', 'aliases=stable'), ...chroot('trixie', 'aliases=testing, stable')) },
  file: 'warden.conf',
  line: 8,
  reason: `alias "stable" of [trixie] clashes with alias "stable" of [bookworm] at ${ROOT}/warden.conf:4`,
});

test('an alias that is another chroot\'s name, across files', refuses, {
  files: { 'warden.conf': lines(...chroot('sid')), 'chroot.d/10-unstable': lines(...chroot('unstable', 'aliases=sid')) },
  file: 'chroot.d/10-unstable',
  line: 4,
  reason: `alias "sid" of [unstable] clashes with chroot [sid] at ${ROOT}/warden.conf:1`,
});

test('a chroot named like an earlier alias', refuses, {
  files: { 'warden.conf': lines(...chroot('bookworm', 'aliases=stable'), '', ...chroot('stable')) },
  file: 'warden.conf',
  line: 6,
  reason: `chroot [stable] clashes with alias "stable" of [bookworm] at ${ROOT}/warden.conf:4`,
});

test('an alias listed twice by its own chroot', refuses, {
  files: { 'warden.conf': lines(...chroot('sid', 'aliases=unstable,unstable')) },
  file: 'warden.conf',
  line: 4,
  reason: `alias "unstable" of [sid] clashes with alias "unstable" of [sid] at ${ROOT}/warden.conf:4`,
});

test('an alias of an unsupported chroot that clashes', refuses, {
  files: { 'warden.conf': lines(...chroot('sid'), '[sid-snap]', 'type=lvm-snapshot', 'aliases=sid') },
  file: 'warden.conf',
  line: 6,
  reason: `alias "sid" of [sid-snap] clashes with chroot [sid] at ${ROOT}/warden.conf:1`,
});

test('an invalid alias', refuses, {
  files: { 'warden.conf': lines(...chroot('sid', 'aliases=unstable, source:sid')) },
  file: 'warden.conf',
  line: 4,
  reason: `alias "source:sid" of [sid] ${NAME_RULE}`,
});

test('the alias "warden"', refuses, {
  files: { 'warden.conf': lines(...chroot('sid', 'aliases=warden')) },
  file: 'warden.conf',
  line: 4,
  reason: 'alias "warden" of [sid] is reserved for the [warden] group',
});

test('a chroot without directory=', refuses, {
  files: { 'warden.conf': lines('[warden]', '[sid]', 'type=directory', 'description=no tree') },
  file: 'warden.conf',
  line: 2,
  reason: 'chroot [sid] has no directory= (required)',
});

test('a directory that does not exist', refuses, {
  files: { 'warden.conf': lines('[sid]', `directory=${ROOT}/srv/sid`) },
  file: 'warden.conf',
  line: 2,
  reason: `directory=${ROOT}/srv/sid does not exist`,
});

test('a relative directory', refuses, {
  files: { 'warden.conf': lines('[sid]', 'directory=srv/sid') },
  file: 'warden.conf',
  line: 2,
  reason: 'directory= must be an absolute path, got "srv/sid"',
});

test('an empty directory=', refuses, {
  files: { 'warden.conf': lines('[sid]', 'directory=') },
  file: 'warden.conf',
  line: 2,
  reason: 'directory= must be an absolute path, got ""',
});

test('a directory that is a file', refuses, {
  files: { 'warden.conf': lines('[sid]', 'type=plain', `directory=${ROOT}/warden.conf`) },
  file: 'warden.conf',
  line: 3,
  reason: `directory=${ROOT}/warden.conf is not a directory`,
});

test('an unknown union-type', refuses, {
  files: { 'warden.conf': lines(...chroot('sid', 'union-type=btrfs')) },
  file: 'warden.conf',
  line: 4,
  reason: 'union-type "btrfs" is not one of overlay, copy, none (schroot\'s overlayfs, aufs and unionfs mean overlay)',
});

test('a union-type that names an Object.prototype member', refuses, {
  files: { 'warden.conf': lines(...chroot('sid', 'union-type=constructor')) },
  file: 'warden.conf',
  line: 4,
  reason: 'union-type "constructor" is not one of overlay, copy, none (schroot\'s overlayfs, aufs and unionfs mean overlay)',
});

test('an unknown chroot type', refuses, {
  files: { 'warden.conf': lines('[sid]', 'type=directroy', `directory=${ROOT}`) },
  file: 'warden.conf',
  line: 2,
  reason: 'unknown chroot type "directroy" for [sid]: expected directory or plain',
});

for (const value of ['soon', '0', '-5', '1e3', '0x10', '', '5s', 'Infinity']) {
  test(`hook-timeout=${value}`, refuses, {
    files: { 'warden.conf': lines(...chroot('sid', `hook-timeout=${value}`)) },
    file: 'warden.conf',
    line: 4,
    reason: `hook-timeout= must be a positive number of seconds, got ${JSON.stringify(value)}`,
  });
}

test('a relative hooks=', refuses, {
  files: { 'warden.conf': lines(...chroot('sid', 'hooks=hooks')) },
  file: 'warden.conf',
  line: 4,
  reason: 'hooks= must be an absolute path, got "hooks"',
});

test('a relative [warden] state-dir=', refuses, {
  files: { 'warden.conf': lines('[warden]', 'state-dir=sessions') },
  file: 'warden.conf',
  line: 2,
  reason: 'state-dir= must be an absolute path, got "sessions"',
});

test('a non-number [warden] hook-timeout=', refuses, {
  files: { 'warden.conf': lines('[warden]', 'hook-timeout=never') },
  file: 'warden.conf',
  line: 2,
  reason: 'hook-timeout= must be a positive number of seconds, got "never"',
});

// The supervisor's limits: invalid values exit 3 with file:line, as every other key.
for (const [key, value, reason] of [
  ['max-connections-per-user', '0', 'a positive whole number'],
  ['max-connections-per-user', '-1', 'a positive whole number'],
  ['max-connections', '1e3', 'a positive whole number'],
  ['max-connections', 'lots', 'a positive whole number'],
  ['max-queued-requests', '2.5', 'a positive whole number'],
  ['idle-timeout', '0', 'a positive number of seconds'],
  ['idle-timeout', '1m', 'a positive number of seconds'],
  ['max-reply-buffer', '1T', 'a positive number of bytes (a suffix K, M or G allowed)'],
  ['max-reply-buffer', '0K', 'a positive number of bytes (a suffix K, M or G allowed)'],
] as const) {
  test(`a bad [warden] ${key}=${value}`, refuses, {
    files: { 'warden.conf': lines('[warden]', `${key}=${value}`) },
    file: 'warden.conf',
    line: 2,
    reason: `${key}= must be ${reason}, got "${value}"`,
  });
}

test('the supervisor\'s limits in [warden]; unset ones stay undefined for the supervisor\'s defaults', (t) => {
  const root = tree(t, { 'warden.conf': lines('[warden]', 'max-connections-per-user=8', 'max-connections=100', 'idle-timeout=2.5', 'max-reply-buffer=64K', 'max-queued-requests=4') });
  t.deepEqual(load(root).supervisorLimits, { connectionsPerUser: 8, connections: 100, idleTimeout: 2.5, replyBuffer: 65536, queuedRequests: 4 });
  t.deepEqual(load(tree(t, { 'warden.conf': lines('[warden]', 'max-reply-buffer=2m') })).supervisorLimits, { replyBuffer: 2 * 1024 * 1024 });
  t.deepEqual(load(tree(t, { 'warden.conf': lines('[warden]') })).supervisorLimits, {});
});

test('[warden] twice', refuses, {
  files: { 'warden.conf': lines('[warden]', 'hook-timeout=5', '[warden]') },
  file: 'warden.conf',
  line: 3,
  reason: `[warden] is already defined at ${ROOT}/warden.conf:1`,
});

test('[warden] in chroot.d', refuses, {
  files: { 'warden.conf': lines('[warden]'), 'chroot.d/local.conf': lines('[warden]', 'state-dir=/tmp') },
  file: 'chroot.d/local.conf',
  line: 1,
  reason: `[warden] belongs in the main file ${ROOT}/warden.conf, not in chroot.d/`,
});

test('the first error wins, in file order', refuses, {
  files: {
    'warden.conf': lines(...chroot('sid', 'union-type=zfs')),
    'chroot.d/00-early.conf': lines('no equals sign here'),
  },
  file: 'warden.conf',
  line: 4,
  reason: 'union-type "zfs" is not one of overlay, copy, none (schroot\'s overlayfs, aufs and unionfs mean overlay)',
});

test('a full chroot definition', (t) => {
  const root = tree(t, {
    'srv/sid/': '',
    'warden.conf': lines(
      '[warden]',
      `state-dir=${ROOT}/state/`,
      `hooks-dir=${ROOT}/hooks`,
      'hook-timeout=12.5',
      '',
      '[sid]',
      'type=directory',
      `directory=${ROOT}//srv/sid/`,
      'description=Debian sid',
      'aliases=unstable, default,',
      'union-type=overlay',
      'users=alice,bob',
      'groups=sbuild',
      'root-users=alice',
      'root-groups=root, sudo',
      'source-users=carol',
      'source-groups=admin',
      'source-root-users=dave',
      'source-root-groups=wheel',
      'hook-timeout=90',
      `hooks=${ROOT}/hooks-sid`,
    ),
  });
  const config = load(root);
  t.is(config.file, join(root, 'warden.conf'));
  t.is(config.stateDir, `${root}/state`);
  t.is(config.hooksDir, `${root}/hooks`);
  t.is(config.hookTimeout, 12.5);
  const want: ChrootDef = {
    name: 'sid',
    file: join(root, 'warden.conf'),
    line: 6,
    type: 'directory',
    directory: `${root}/srv/sid`,
    description: 'Debian sid',
    aliases: ['unstable', 'default'],
    unionType: 'overlay',
    users: ['alice', 'bob'],
    groups: ['sbuild'],
    rootUsers: ['alice'],
    rootGroups: ['root', 'sudo'],
    sourceUsers: ['carol'],
    sourceGroups: ['admin'],
    sourceRootUsers: ['dave'],
    sourceRootGroups: ['wheel'],
    hookTimeout: 90,
    hooks: `${root}/hooks-sid`,
    profile: undefined,
    profileFiles: undefined,
  };
  t.deepEqual([...config.chroots.values()], [want]);
  t.deepEqual(config.warnings, []);
  t.deepEqual(config.unsupported, []);
});

test('profile= and setup.*= name files beside the main file; a profile that is not a name is refused', (t) => {
  const root = tree(t, {
    'warden.conf': lines('[a]', `directory=${ROOT}`, 'profile=sbuild', 'setup.copyfiles=', '[b]', `directory=${ROOT}`, 'setup.fstab=/mine/fstab', '[c]', `directory=${ROOT}`, 'profile=../x'),
  });
  t.throws(() => load(root), { instanceOf: ConfigError, message: /warden\.conf:10: profile "\.\.\/x" of \[c\] must be a name/ });
  writeFileSync(join(root, 'warden.conf'), lines('[a]', `directory=${root}`, 'profile=sbuild', 'setup.copyfiles=', '[b]', `directory=${root}`, 'setup.fstab=/mine/fstab'));
  const config = load(root);
  t.deepEqual(config.lookup('a')?.profileFiles, { fstab: `${root}/sbuild/fstab`, copyfiles: undefined, nssdatabases: `${root}/sbuild/nssdatabases` });
  // As schroot's common-config: "${SYSCONF_DIR}/${SETUP_FSTAB}", a leading '/' included.
  t.deepEqual(config.lookup('b')?.profileFiles, { fstab: `${root}/mine/fstab`, copyfiles: undefined, nssdatabases: undefined });
  // Applied to sessions (src/hooks/profile.ts): nothing to warn about.
  t.deepEqual(config.warnings, []);
});

test('a profile file root may not trust is exit 3 naming it', (t) => {
  const root = tree(t, { 'warden.conf': lines('[a]', `directory=${ROOT}`, 'profile=p'), 'p/fstab': '' });
  chmodSync(join(root, 'p/fstab'), 0o666);
  t.throws(() => load(root), { instanceOf: ConfigError, message: new RegExp(`refusing profile file ${root}/p/fstab of \\[a\\]: it is world-writable \\(mode 0666\\)`) });
});

test('defaults of a minimal chroot', (t) => {
  const root = tree(t, { 'warden.conf': lines('[sid]', `directory=${ROOT}`) });
  const config = load(root);
  t.like(config.lookup('sid'), {
    type: 'directory',
    description: undefined,
    aliases: [],
    unionType: 'none',
    users: [],
    hookTimeout: undefined,
    hooks: undefined,
  });
  t.is(config.stateDir, undefined);
  t.is(config.hooksDir, undefined);
  t.is(config.hookTimeout, undefined);
});

const unionTypes: [string, ChrootDef['unionType']][] = [
  ['overlay', 'overlay'],
  ['overlayfs', 'overlay'],
  ['aufs', 'overlay'],
  ['unionfs', 'overlay'],
  ['copy', 'copy'],
  ['none', 'none'],
];
for (const [value, want] of unionTypes) {
  test(`union-type=${value} is ${want}`, (t) => {
    const root = tree(t, { 'warden.conf': lines(...chroot('sid', `union-type=${value}`)) });
    t.is(load(root).lookup('sid')?.unionType, want);
  });
}

test('a directory reached through a symlink is a directory', (t) => {
  const root = tree(t, { 'srv/real/': '', 'warden.conf': lines('[sid]', `directory=${ROOT}/srv/link`) });
  symlinkSync(join(root, 'srv/real'), join(root, 'srv/link'));
  t.is(load(root).lookup('sid')?.directory, `${root}/srv/link`);
});

test('checkDirectories: false accepts a directory that does not exist yet', (t) => {
  const root = tree(t, { 'warden.conf': lines('[sid]', 'directory=/nonexistent/warden/sid') });
  t.throws(() => load(root), { instanceOf: ConfigError });
  t.is(load(root, false).lookup('sid')?.directory, '/nonexistent/warden/sid');
});

test('unknown and schroot-only keys are warnings with file:line', (t) => {
  const root = tree(t, {
    'warden.conf': lines(
      '[warden]',
      'colour=blue',
      '[sid]',
      `directory=${ROOT}`,
      'profile=desktop',
      'frobnicate=1',
      'setup.fstab=desktop/fstab',
      'description[de_DE]=Debian unstable',
    ),
    'chroot.d/extra.conf': lines(...chroot('extra', 'personality=linux32')),
  });
  const main = join(root, 'warden.conf');
  const extra = join(root, 'chroot.d/extra.conf');
  t.deepEqual(load(root).warnings, [
    { file: main, line: 2, message: `${main}:2: unknown key "colour" in [warden]; ignored` },
    { file: main, line: 6, message: `${main}:6: unknown key "frobnicate" in [sid]; ignored` },
    { file: main, line: 8, message: `${main}:8: key "description[de_DE]" in [sid] is a schroot key that warden does not use; ignored` },
    { file: extra, line: 4, message: `${extra}:4: key "personality" in [extra] is a schroot key that warden does not use; ignored` },
  ]);
});

test('lookup by name or alias', (t) => {
  const root = tree(t, {
    'warden.conf': lines(...chroot('bookworm', 'aliases=stable,default'), '[sid-snap]', 'type=lvm-snapshot', 'aliases=unstable-snap'),
  });
  const config = load(root);
  const bookworm = config.chroots.get('bookworm');
  t.truthy(bookworm);
  t.is(config.lookup('bookworm'), bookworm);
  t.is(config.lookup('stable'), bookworm);
  t.is(config.lookup('default'), bookworm);
  t.is(config.lookup('Stable'), undefined); // names are case-sensitive, as in schroot
  t.is(config.lookup('trixie'), undefined);
  t.is(config.lookup('sid-snap'), undefined); // unsupported: listed, never runnable
  t.is(config.lookup('unstable-snap'), undefined);
  t.deepEqual([...config.chroots.keys()], ['bookworm']);
});

test('an unsupported type is reported and does not stop the other chroots', (t) => {
  const root = tree(t, {
    'warden.conf': lines(
      ...chroot('a'),
      '[img]',
      'description=image file',
      'type=file',
      'file=/srv/img.tar.gz',
      '[snap]',
      'type=btrfs-snapshot',
      'btrfs-source-subvolume=/srv/btrfs/sid',
      '# keys of types warden does not run are not even looked at',
      'union-type=nonsense',
      ...chroot('b'),
    ),
  });
  const main = join(root, 'warden.conf');
  const config = load(root);
  t.deepEqual([...config.chroots.keys()], ['a', 'b']);
  t.deepEqual(config.unsupported, [
    { name: 'img', file: main, line: 6, reason: 'type=file is not supported by warden (only directory and plain are)' },
    { name: 'snap', file: main, line: 9, reason: 'type=btrfs-snapshot is not supported by warden (only directory and plain are)' },
  ]);
  t.deepEqual(config.warnings, []);
});

test('chroot.d: *.conf and run-parts names in lexical order; backups, hidden files and directories skipped', (t) => {
  const junk = 'this is not a keyfile\n';
  const root = tree(t, {
    'warden.conf': lines(...chroot('main')),
    'chroot.d/20-b.conf': lines(...chroot('b')),
    'chroot.d/10_a': lines(...chroot('a')),
    'chroot.d/sid-amd64-sbuild-Xf3k9a': lines(...chroot('sid-amd64-sbuild')),
    'chroot.d/Z.conf': lines(...chroot('z')),
    'chroot.d/30-c.conf~': junk,
    'chroot.d/.hidden.conf': junk,
    'chroot.d/.#40-d.conf': junk,
    'chroot.d/40-d.conf.dpkg-old': junk,
    'chroot.d/50-e.bak': junk,
    'chroot.d/README.txt': junk,
    'chroot.d/sub.conf/x.conf': junk,
  });
  t.deepEqual([...load(root).chroots.keys()], ['main', 'a', 'b', 'z', 'sid-amd64-sbuild']);
});

test('chroot.d is optional, and a file named chroot.d is not a directory of drop-ins', (t) => {
  const root = tree(t, { 'warden.conf': lines(...chroot('sid')), 'chroot.d': '[x]\n' });
  t.deepEqual([...load(root).chroots.keys()], ['sid']);
});
