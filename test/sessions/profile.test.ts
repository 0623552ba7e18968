// A chroot with a schroot profile (profile=), end to end as root: the
// configuration is loaded from a real file, sessions are real overlays. The
// profile is sbuild's shape: a tmpfs on /dev/shm, a host dir bound on
// /build, a copied file, and the host's passwd and group. After each test:
// nothing mounted, no lock, fd or session of ours left, the source unchanged.
import anyTest, { type TestFn } from 'ava';
import { chmodSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, ConfigError, type ChrootDef } from '../../src/config/index.js';
import { HookPermissionError } from '../../src/hooks/index.js';
import { beginSession, endSession, openSession, recoverAll, recoverSession, spawnInSession, type Session } from '../../src/sessions/index.js';
import { profileHookOptions, sessionProfile } from '../../src/sessions/profile.js';
import { mountsUnder, shutdownRemovalPool, unmountAll } from '../../src/union/index.js';
import { fileFds, ourLocks } from '../helpers/leaks.js';
import { makeUser } from '../helpers/users.js';
import { chrootDef, DEFAULT_HOOKS, destroyFixture, isRoot, makeFixture, processesUnder, stateEntries, treeDigest, type Fixture } from '../helpers/chroots.js';

const test = anyTest as TestFn<{ fds: string[] }>;
// Overlay and bind mounts, and a user made with useradd: root only, skipped visibly otherwise.
const rootSerial = isRoot ? test.serial : test.serial.skip;
let fx: Fixture;
let etc: string;
let build: string;
let hostFile: string;
let digest: string[];

test.before(async () => {
  if (!isRoot) return;
  fx = await makeFixture('warden-profile-');
  etc = join(fx.tmp, 'etc');
  build = join(fx.tmp, 'build');
  hostFile = join(fx.tmp, 'host-file');
  mkdirSync(build, { mode: 0o755 });
  writeFileSync(join(build, 'marker'), 'the host build dir\n');
  writeFileSync(hostFile, 'copied from the host\n');
  mkdirSync(join(etc, 'test'), { recursive: true, mode: 0o755 });
  writeFileSync(join(etc, 'warden.conf'), `[fx]\ndirectory=${fx.source}\nunion-type=overlay\nprofile=test\n`, { mode: 0o644 });
  // As /etc/schroot/sbuild/fstab, with a temp dir for /var/lib/sbuild/build.
  writeFileSync(join(etc, 'test', 'fstab'), `tmpfs /dev/shm tmpfs defaults 0 0\n${build} /build none rw,bind 0 0\n`, { mode: 0o644 });
  writeFileSync(join(etc, 'test', 'copyfiles'), `${hostFile}\n`, { mode: 0o644 });
  writeFileSync(join(etc, 'test', 'nssdatabases'), '# <database name>\npasswd\ngroup\n', { mode: 0o644 });
  digest = treeDigest(fx.source);
});
test.after.always(async () => {
  await shutdownRemovalPool();
  if (fx) destroyFixture(fx.tmp);
});
test.beforeEach((t) => {
  t.context.fds = fileFds();
});
test.afterEach.always(async (t) => {
  if (!fx) return;
  t.deepEqual(mountsUnder(fx.tmp).map((m) => m.mountPoint), [], 'nothing left mounted');
  t.deepEqual(ourLocks([join(fx.source, '.ref')]), [], 'no lock of ours left');
  t.deepEqual(fileFds(), t.context.fds, 'no fd left open');
  t.deepEqual(processesUnder(fx.tmp), [], 'no process left in a session');
  t.deepEqual(stateEntries(fx.stateDir), [], 'no session left');
  t.deepEqual(treeDigest(fx.source), digest, 'the source never changed');
  t.deepEqual(readdirSync(build), ['marker'], 'nothing was written into the bound host dir');
  // A failed test must not spoil the next ones.
  await recoverAll({ stateDir: fx.stateDir, end: true });
});

/** The chroot as the configuration file defines it. */
function chroot(): ChrootDef {
  const def = loadConfig({ config: join(etc, 'warden.conf'), env: {}, cwd: fx.tmp }).lookup('fx');
  if (def === undefined) throw new Error('no [fx] in the test config');
  return def;
}

/** Begun with warden's shipped hooks dir: the profile replaces its declarative binds and copies. */
const begin = (id: string) => beginSession({ stateDir: fx.stateDir, chroot: chroot(), id, hooksDir: DEFAULT_HOOKS, hookTimeoutMs: 10_000 });

/** Mount points below the session root, relative, sorted, with their types. */
function mountsBelow(s: Session): string[] {
  return mountsUnder(s.paths.root)
    .filter((m) => m.mountPoint !== s.paths.root)
    .map((m) => `${m.mountPoint.slice(s.paths.root.length)} ${m.fsType}`)
    .sort();
}

async function runIn(session: Session, command: string[]): Promise<number | null> {
  const locks = await session.commandLocks();
  const child = spawnInSession(session, locks, { command, directory: '/' });
  const code = await child.exited;
  locks.close();
  return code;
}

const profiled = test.macro({
  exec(t, over: Partial<ChrootDef>, expected: { profile: unknown; options: unknown }) {
    const profile = sessionProfile({ ...chrootDef('/srv/x'), ...over });
    t.deepEqual(profile, expected.profile);
    t.deepEqual(profileHookOptions({ profile } as Parameters<typeof profileHookOptions>[0]), expected.options);
  },
  title: (provided) => `what a session gets: ${provided}`,
});
const FILES = { fstab: '/etc/schroot/sbuild/fstab', copyfiles: '/etc/schroot/sbuild/copyfiles', nssdatabases: '/etc/schroot/sbuild/nssdatabases' };
test('no profile: the hooks dir as it is', profiled, {}, { profile: undefined, options: {} });
test('profile=, no hooks=: the profile instead of the declarative hooks', profiled, { profile: 'sbuild', profileFiles: FILES }, {
  profile: { ...FILES, replacesDeclarativeHooks: true },
  options: { profile: FILES, declarative: false },
});
test('profile= and hooks=: the profile, then all of that dir', profiled, { profile: 'sbuild', profileFiles: FILES, hooks: '/srv/hooks' }, {
  profile: { ...FILES, replacesDeclarativeHooks: false },
  options: { profile: FILES, declarative: true },
});
test('setup.fstab= alone (setup.copyfiles= empty): only that file', profiled, { profileFiles: { fstab: '/etc/mine', copyfiles: undefined, nssdatabases: undefined } }, {
  profile: { fstab: '/etc/mine', replacesDeclarativeHooks: true },
  options: { profile: { fstab: '/etc/mine', copyfiles: undefined, nssdatabases: undefined }, declarative: false },
});

rootSerial("a profile= chroot's session gets the profile's mounts, copies and databases instead of the default hooks; end takes them away (needs root)", async (t) => {
  const user = makeUser(t);
  const s = await begin('prof-1');
  try {
    t.like(s.state.profile, { fstab: join(etc, 'test', 'fstab'), copyfiles: join(etc, 'test', 'copyfiles'), nssdatabases: join(etc, 'test', 'nssdatabases'), replacesDeclarativeHooks: true });
    const bind = mountsUnder(s.paths.root).find((m) => m.mountPoint === join(s.paths.root, 'build'));
    t.deepEqual(mountsBelow(s), [`/build ${bind?.fsType}`, '/dev/shm tmpfs'], "the profile's mounts; none of the default hooks' /proc, /sys, /dev");
    t.is(readFileSync(join(s.paths.root, 'build', 'marker'), 'utf8'), 'the host build dir\n');
    t.is(readFileSync(join(s.paths.root, hostFile), 'utf8'), 'copied from the host\n');
    const log = readFileSync(s.paths.hooksLog, 'utf8');
    t.notRegex(log, /10-mounts\.fstab|20-files\.copyfiles/, "the shipped hooks dir's declarative hooks did not run");
    // The user made on the host exists in the session, as the session's own programs see it.
    t.is(await runIn(s, ['/bin/sh', '-c', `grep -q '^${user.name}:x:${user.uid}:${user.gid}:' /etc/passwd && grep -q '^${user.name}:' /etc/group`]), 0);
    t.is(await runIn(s, ['/bin/sh', '-c', 'echo in-the-build-dir > /build/from-session && test -d /dev/shm']), 0);
    t.is(readFileSync(join(build, 'from-session'), 'utf8'), 'in-the-build-dir\n', '/build is the host dir itself');
    unlinkSync(join(build, 'from-session'));
  } finally {
    await endSession(s);
  }
  t.deepEqual(mountsUnder(s.paths.root), []);
});

rootSerial('recover of a session whose mounts survived re-applies the profile without stacking a mount (needs root)', async (t) => {
  const s = await begin('prof-2');
  const before = mountsBelow(s);
  s.release();
  const r = await recoverSession({ stateDir: fx.stateDir, id: 'prof-2' });
  if (r.action !== 'readopted') throw new Error(`recover ${r.action}`);
  try {
    t.false(r.remounted);
    t.deepEqual(mountsBelow(r.session), before, 'the same mounts, none twice');
    const log = readFileSync(r.session.paths.hooksLog, 'utf8');
    t.regex(log, /skipped: line 2: \S+\/build is already a mount point/);
    t.regex(log, /skipped: line 2: \S+\/etc\/passwd already holds the host's passwd database/);
  } finally {
    await endSession(r.session);
  }
});

rootSerial('a symlink planted at etc/passwd in the upper layer is replaced on recover, never written through (needs root)', async (t) => {
  const user = makeUser(t);
  const s = await begin('prof-3');
  s.release();
  // A reboot: nothing mounted. Meanwhile the session's /etc/passwd became a link into the host.
  unmountAll(s.paths.root);
  const target = join(fx.tmp, 'x');
  writeFileSync(target, 'a host file\n');
  rmSync(join(s.paths.upper, 'etc', 'passwd'), { force: true });
  symlinkSync(target, join(s.paths.upper, 'etc', 'passwd'));
  const r = await recoverSession({ stateDir: fx.stateDir, id: 'prof-3' });
  if (r.action !== 'readopted') throw new Error(`recover ${r.action}`);
  try {
    t.true(r.remounted);
    t.is(readFileSync(target, 'utf8'), 'a host file\n', 'the host file the link pointed to is untouched');
    t.true(lstatSync(join(r.session.paths.upper, 'etc', 'passwd')).isFile(), 'the link was replaced by a regular file');
    t.true(readFileSync(join(r.session.paths.root, 'etc', 'passwd'), 'utf8').split('\n').some((l) => l.startsWith(`${user.name}:`)));
    t.deepEqual(mountsBelow(r.session).map((m) => m.split(' ')[0]), ['/build', '/dev/shm']);
  } finally {
    await endSession(r.session);
    rmSync(target, { force: true });
  }
});

rootSerial('a group-writable profile file: the config is refused (ConfigError, exit 3), and a begin with the def read before refuses it too, leaving nothing (needs root)', async (t) => {
  const def = chroot();
  const fstab = join(etc, 'test', 'fstab');
  chmodSync(fstab, 0o664);
  try {
    t.throws(() => chroot(), { instanceOf: ConfigError, message: new RegExp(`refusing profile file ${fstab} of \\[fx\\]: it is group-writable \\(mode 0664\\)`) });
    const e = await t.throwsAsync(beginSession({ stateDir: fx.stateDir, chroot: def, id: 'prof-4', hooksDir: DEFAULT_HOOKS, hookTimeoutMs: 10_000 }), {
      instanceOf: HookPermissionError,
    });
    t.is(e.message, `profile file ${fstab} refused: file is group-writable (mode 0664)`);
    t.throws(() => openSession(fx.stateDir, 'prof-4'));
  } finally {
    chmodSync(fstab, 0o644);
  }
});
