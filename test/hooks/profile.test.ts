// A chroot's schroot profile in the post-mount phase: its fstab, copyfiles
// and nssdatabases applied before the hooks dir's hooks (and instead of its
// declarative ones when told), the nssdatabases writes that never follow a
// link planted in the session, and the checks on the profile's files.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HookFailedError, HookPermissionError, NSS_DATABASES, runHooks, type ProfileSetup, type RunHooksOptions } from '../../src/hooks/index.js';
import { applyNssDatabases, parseNssDatabases, type Getent } from '../../src/hooks/nssdatabases.js';
import { DeclarativeError } from '../../src/hooks/errors.js';
import { addDeclared, addHook, isRoot, lines, makeFixture, mountsBelow, nothingLeft, openFds, privateRoot, unmountAllUnder, type Fixture } from './fixture.js';

type Context = Fixture & { root: string };
const test = anyTest as TestFn<Context>;
const rootSerial = isRoot ? test.serial : test.serial.skip; // mounts need root: skipped visibly otherwise

test.before(async () => {
  // Warm up Node's first spawn (its SIGCHLD pipe) and koffi before any fd baseline.
  spawnSync('true');
  const f = makeFixture();
  addDeclared(f, 'post-mount', '10-x.fstab', '# nothing\n');
  await runHooks({ hooksDir: f.hooksDir, phase: 'post-mount', vars: f.vars, logPath: f.logPath, timeoutMs: 10_000 });
  rmSync(f.dir, { recursive: true, force: true });
});

test.beforeEach((t) => {
  const f = makeFixture('warden-profile-');
  t.context = { ...f, root: f.vars.chrootPath, fds: openFds() };
});

test.afterEach.always((t) => nothingLeft(t, t.context));

function opts(f: Context, more: Partial<RunHooksOptions> = {}): RunHooksOptions {
  return { hooksDir: f.hooksDir, phase: 'post-mount', vars: f.vars, logPath: f.logPath, timeoutMs: 10_000, ...more };
}

/** Writes the profile's files (0644) into `<dir>/profile/`; returns their paths. */
function profile(f: Context, files: { fstab?: string; copyfiles?: string; nssdatabases?: string }, mode = 0o644): ProfileSetup {
  const d = join(f.dir, 'profile');
  mkdirSync(d, { recursive: true, mode: 0o755 });
  const out: ProfileSetup = {};
  for (const [k, text] of Object.entries(files) as [keyof ProfileSetup, string][]) {
    const path = join(d, k);
    writeFileSync(path, text);
    chmodSync(path, mode);
    out[k] = path;
  }
  return out;
}

// --- nssdatabases: the file's format (pure) ---

const nssParses = test.macro({
  exec(t, text: string, expected: { line: number; db: string }[]) {
    t.deepEqual(parseNssDatabases(text), expected);
  },
  title: (provided) => `nssdatabases parses ${provided}`,
});
test('schroot sbuild profile', nssParses, '# System databases\n#\n# <database name>\npasswd\nshadow\ngroup\ngshadow\n', [
  { line: 4, db: 'passwd' },
  { line: 5, db: 'shadow' },
  { line: 6, db: 'group' },
  { line: 7, db: 'gshadow' },
]);
test('blank lines and surrounding blanks', nssParses, '\n  services \n\n\thosts\n', [
  { line: 2, db: 'services' },
  { line: 4, db: 'hosts' },
]);
test('nothing', nssParses, '# none\n', []);

const nssRefuses = test.macro({
  exec(t, text: string, line: number, name: string) {
    const e = t.throws(() => parseNssDatabases(text), { instanceOf: DeclarativeError });
    t.is(e.line, line);
    t.is(e.reason, `${JSON.stringify(name)} is not a database warden copies (known: ${NSS_DATABASES.join(', ')})`);
  },
  title: (provided) => `nssdatabases refuses ${provided}`,
});
test('an unknown database', nssRefuses, 'passwd\nshells\n', 2, 'shells');
test('a path (it would name another /etc file)', nssRefuses, '../shadow\n', 1, '../shadow');
test('two names on a line', nssRefuses, 'passwd group\n', 1, 'passwd group');

// --- nssdatabases: writing into the session (a fake getent; no mounts, so no root needed) ---

const HOST = (db: string) => Buffer.from(`${db} of the host\n`);
const fakeGetent: Getent = async (db) => (db === 'ethers' ? 'unlistable' : HOST(db));

async function applyNss(f: Context, text: string, getent: Getent = fakeGetent): Promise<string[]> {
  const log: string[] = [];
  await applyNssDatabases(text, { root: f.root, none: f.vars.unionType === 'none', log: (l) => log.push(l.trimEnd()), getent });
  return log;
}

test.serial('a session without /etc gets one (0755), passwd 0644 and shadow 0640, whatever the umask', async (t) => {
  const { root } = t.context;
  mkdirSync(root, { recursive: true, mode: 0o755 });
  const old = process.umask(0o077);
  try {
    await applyNss(t.context, 'passwd\nshadow\n');
  } finally {
    process.umask(old);
  }
  t.is(statSync(join(root, 'etc')).mode & 0o7777, 0o755);
  t.is(statSync(join(root, 'etc', 'passwd')).mode & 0o7777, 0o644);
  t.is(statSync(join(root, 'etc', 'shadow')).mode & 0o7777, 0o640);
  t.is(readFileSync(join(root, 'etc', 'passwd'), 'utf8'), 'passwd of the host\n');
});

test.serial("an existing database is rewritten in place: its inode, mode and owner stay (schroot's `>`)", async (t) => {
  const etc = join(t.context.root, 'etc');
  mkdirSync(etc, { recursive: true, mode: 0o755 });
  writeFileSync(join(etc, 'gshadow'), 'the chroot gshadow, longer than the host one\n', { mode: 0o600 });
  chmodSync(join(etc, 'gshadow'), 0o600);
  const before = statSync(join(etc, 'gshadow'));
  const log = await applyNss(t.context, 'gshadow\n');
  const after = statSync(join(etc, 'gshadow'));
  t.is(readFileSync(join(etc, 'gshadow'), 'utf8'), 'gshadow of the host\n');
  t.like(after, { ino: before.ino, mode: before.mode, uid: before.uid, gid: before.gid });
  t.deepEqual(log, [`written: the host's gshadow database (getent gshadow) to ${etc}/gshadow`]);
  // Again: the same bytes are left alone (no write, so no copy-up in an overlay).
  const again = await applyNss(t.context, 'gshadow\n');
  t.is(statSync(join(etc, 'gshadow')).mtimeMs, after.mtimeMs);
  t.deepEqual(again, [`skipped: line 1: ${etc}/gshadow already holds the host's gshadow database`]);
});

test.serial('a symlink planted at etc/passwd is replaced, never written through', async (t) => {
  const etc = join(t.context.root, 'etc');
  mkdirSync(etc, { recursive: true, mode: 0o755 });
  const target = join(t.context.dir, 'host-file');
  writeFileSync(target, 'not yours\n');
  symlinkSync(target, join(etc, 'passwd'));
  const log = await applyNss(t.context, 'passwd\n');
  t.is(readFileSync(target, 'utf8'), 'not yours\n', 'the link target is untouched');
  t.true(lstatSync(join(etc, 'passwd')).isFile());
  t.is(statSync(join(etc, 'passwd')).mode & 0o7777, 0o644);
  t.is(readFileSync(join(etc, 'passwd'), 'utf8'), 'passwd of the host\n');
  t.deepEqual(log, [`written: the host's passwd database (getent passwd) to ${etc}/passwd, replacing a symbolic link`]);
});

test.serial('a symlinked etc/ is refused; nothing is written where it points', async (t) => {
  const { root, dir } = t.context;
  mkdirSync(root, { recursive: true, mode: 0o755 });
  const elsewhere = join(dir, 'elsewhere');
  mkdirSync(elsewhere);
  symlinkSync(elsewhere, join(root, 'etc'));
  const e = await t.throwsAsync(applyNss(t.context, '\npasswd\n'), { instanceOf: DeclarativeError });
  t.is(e.line, 2);
  t.is(e.reason, `${root}/etc is a symbolic link; refusing to write through it`);
  t.deepEqual(readdirSync(elsewhere), []);
});

test.serial('a FIFO at etc/group is refused without blocking; a later line is not written', async (t) => {
  const etc = join(t.context.root, 'etc');
  mkdirSync(etc, { recursive: true, mode: 0o755 });
  spawnSync('mkfifo', [join(etc, 'group')]);
  const e = await t.throwsAsync(applyNss(t.context, 'group\npasswd\n'), { instanceOf: DeclarativeError });
  t.is(e.line, 1);
  t.is(e.reason, `${etc}/group is not a regular file; refusing to replace it`);
  t.false(existsSync(join(etc, 'passwd')));
});

test.serial('a database getent cannot list (exit 3) is left as it is; union type none writes nothing and runs no getent', async (t) => {
  const etc = join(t.context.root, 'etc');
  mkdirSync(etc, { recursive: true, mode: 0o755 });
  writeFileSync(join(etc, 'ethers'), 'the chroot ethers\n');
  t.deepEqual(await applyNss(t.context, 'ethers\n'), [
    `skipped: line 1: getent cannot list the ethers database on this host (exit status 3); ${etc}/ethers left as it is`,
  ]);
  t.is(readFileSync(join(etc, 'ethers'), 'utf8'), 'the chroot ethers\n');
  t.context.vars.unionType = 'none';
  const asked: string[] = [];
  const log = await applyNss(t.context, 'passwd\n', async (db) => (asked.push(db), HOST(db)));
  t.deepEqual(log, ['skipped: union type none: the source chroot is not modified; no database written']);
  t.deepEqual(asked, []);
  t.deepEqual(readdirSync(etc), ['ethers']);
});

test.serial("a failing getent leaves the session's file as it was", async (t) => {
  const etc = join(t.context.root, 'etc');
  mkdirSync(etc, { recursive: true, mode: 0o755 });
  writeFileSync(join(etc, 'passwd'), 'the chroot passwd\n');
  const boom: Getent = async () => {
    throw new DeclarativeError('getent passwd failed with exit status 1');
  };
  const e = await t.throwsAsync(applyNss(t.context, 'passwd\n', boom), { instanceOf: DeclarativeError });
  t.is(e.line, 1);
  t.is(readFileSync(join(etc, 'passwd'), 'utf8'), 'the chroot passwd\n');
});

// --- the phase: profile first, the hooks dir after (or only its executables) ---

rootSerial('post-mount applies the profile (fstab, copyfiles, nssdatabases, in that order) before the hooks dir; its executables see the mounts (needs root)', async (t) => {
  const f = t.context;
  privateRoot(t, f.root);
  const build = join(f.dir, 'build');
  mkdirSync(build);
  writeFileSync(join(build, 'marker'), 'host build dir\n');
  const hostFile = join(f.dir, 'copied');
  writeFileSync(hostFile, 'a host file\n');
  const p = profile(f, {
    fstab: `tmpfs /dev/shm tmpfs defaults 0 0\n${build} /build none rw,bind 0 0\n`,
    copyfiles: `${hostFile}\n`,
    nssdatabases: 'passwd\ngroup\n',
  });
  // The hooks dir: a declarative fstab (skipped: the profile replaces it) and an executable (kept).
  addDeclared(f, 'post-mount', '10-mounts.fstab', '/proc /proc none bind 0 0\n');
  addHook(f, 'post-mount', '50-check', `mountpoint -q "$CHROOT_PATH/build" && grep -q '^root:' "$CHROOT_PATH/etc/passwd" && echo "saw build and passwd" > '${f.out}'`);

  const runs = await runHooks(opts(f, { profile: p, declarative: false }));
  t.deepEqual(
    runs.map((r) => r.hook),
    [p.fstab, p.copyfiles, p.nssdatabases, 'post-mount.d/50-check'],
  );
  t.deepEqual(mountsBelow(f.root), ['/build', '/dev/shm'], 'the profile mounts, and not the hooks dir .fstab');
  t.is(readFileSync(join(f.root, 'build', 'marker'), 'utf8'), 'host build dir\n');
  t.is(readFileSync(join(f.root, hostFile), 'utf8'), 'a host file\n');
  t.is(readFileSync(join(f.root, 'etc', 'passwd'), 'utf8'), spawnSync('getent', ['passwd'], { encoding: 'utf8' }).stdout);
  t.is(readFileSync(join(f.root, 'etc', 'group'), 'utf8'), spawnSync('getent', ['group'], { encoding: 'utf8' }).stdout);
  t.deepEqual(lines(f.out), ['saw build and passwd']);
  const log = lines(f.logPath);
  t.is(log[0], `== post-mount ${p.fstab} ==`);
  t.true(log.includes(`written: the host's passwd database (getent passwd) to ${f.root}/etc/passwd`));

  // Run again (a recover): nothing stacked, nothing rewritten.
  f.vars.recover = true;
  await runHooks(opts(f, { profile: p, declarative: false }));
  t.deepEqual(mountsBelow(f.root), ['/build', '/dev/shm']);
  t.true(lines(f.logPath).includes(`skipped: line 2: ${f.root}/build is already a mount point (a mount that survived, when recovering)`));
  t.true(lines(f.logPath).includes(`skipped: line 1: ${f.root}/etc/passwd already holds the host's passwd database`));
  unmountAllUnder(f.root);
  t.deepEqual(readdirSync(build), ['marker'], 'nothing was written into the host dir');
});

rootSerial('declarative left on (a chroot with hooks= of its own): the profile, then the hooks dir .fstab (needs root)', async (t) => {
  const f = t.context;
  privateRoot(t, f.root);
  const p = profile(f, { fstab: 'tmpfs /dev/shm tmpfs defaults 0 0\n' });
  addDeclared(f, 'post-mount', '10-mounts.fstab', 'tmpfs /tmp tmpfs defaults 0 0\n');
  const runs = await runHooks(opts(f, { profile: p }));
  t.deepEqual(runs.map((r) => r.hook), [p.fstab, 'post-mount.d/10-mounts.fstab']);
  t.deepEqual(mountsBelow(f.root), ['/dev/shm', '/tmp']);
  unmountAllUnder(f.root);
});

test.serial('the profile runs in post-mount only', async (t) => {
  const f = t.context;
  const p = profile(f, { nssdatabases: 'passwd\n' });
  for (const phase of ['pre-mount', 'pre-unmount', 'post-unmount'] as const) t.deepEqual(await runHooks(opts(f, { phase, profile: p })), []);
  t.false(existsSync(f.logPath));
});

const refusedProfile = test.macro({
  async exec(t, mode: number, reason: string) {
    const f = t.context;
    const p = profile(f, { fstab: 'tmpfs /dev/shm tmpfs defaults 0 0\n', nssdatabases: 'passwd\n' }, mode);
    recorder(f);
    const e = await t.throwsAsync(runHooks(opts(f, { profile: p })), { instanceOf: HookPermissionError });
    t.is(e.message, `profile file ${p.fstab} refused: ${reason}`);
    t.false(existsSync(f.out), 'nothing of the phase ran');
    t.false(existsSync(f.vars.chrootPath), 'nothing was made in the session');
  },
  title: (provided) => `a ${provided} profile file is refused before anything runs`,
});
test.serial('group-writable', refusedProfile, 0o664, 'file is group-writable (mode 0664)');
test.serial('world-writable', refusedProfile, 0o646, 'file is world-writable (mode 0646)');

function recorder(f: Context): void {
  addHook(f, 'post-mount', '50-record', `echo ran > '${f.out}'`);
}

async function failsAt(t: ExecutionContext<Context>, p: ProfileSetup, hook: string, message: string): Promise<void> {
  const f = t.context;
  recorder(f);
  const e = await t.throwsAsync(runHooks(opts(f, { profile: p })), { instanceOf: HookFailedError });
  t.is(e.message, message);
  t.is(e.hook, hook);
  t.false(existsSync(f.out), 'the hooks after it did not run');
}

test.serial('a missing profile file fails the phase at its turn, naming it (schroot: "does not exist")', async (t) => {
  const f = t.context;
  const p = { ...profile(f, {}), nssdatabases: join(f.dir, 'profile', 'nssdatabases') };
  await failsAt(t, p, p.nssdatabases, `hook ${p.nssdatabases} failed: profile file ${p.nssdatabases} does not exist`);
});

test.serial('an unknown database fails the phase with its line, before getent runs', async (t) => {
  const f = t.context;
  const p = profile(f, { nssdatabases: '# x\npasswd\nshells\n' });
  await failsAt(t, p, p.nssdatabases!, `hook ${p.nssdatabases} failed: line 3: "shells" is not a database warden copies (known: ${NSS_DATABASES.join(', ')})`);
  t.false(existsSync(join(f.root, 'etc')), 'nothing was written');
});

test.serial("a real getent: its listing is written, a database it cannot list (exit 3) is skipped, its stderr goes to hooks.log", async (t) => {
  const f = t.context;
  mkdirSync(join(f.root, 'etc'), { recursive: true });
  // netgroup cannot be listed from files (exit 3): skipped. A real run of getent, as root or not.
  const p = profile(f, { nssdatabases: 'netgroup\nservices\n' });
  const runs = await runHooks(opts(f, { profile: p }));
  t.deepEqual(runs.map((r) => r.hook), [p.nssdatabases]);
  t.false(existsSync(join(f.root, 'etc', 'netgroup')));
  t.is(readFileSync(join(f.root, 'etc', 'services'), 'utf8'), spawnSync('getent', ['services'], { encoding: 'utf8' }).stdout);
  const log = lines(f.logPath);
  t.true(log.some((l) => /enumeration not supported/i.test(l)), "getent's stderr is in hooks.log");
  t.true(log.includes(`skipped: line 1: getent cannot list the netgroup database on this host (exit status 3); ${f.root}/etc/netgroup left as it is`));
});
