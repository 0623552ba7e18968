// Declarative post-mount hooks, NAME.fstab and NAME.copyfiles: their syntax,
// what they mount and copy (real mounts into a private scratch session
// root), where they run among executables, and the checks they pass.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  statfsSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { HookFailedError, HookPermissionError, listHooks, runHooks, STOP_PHASES, type HookPhase, type RunHooksOptions } from '../../src/hooks/index.js';
import { readMountInfo } from '../../src/union/index.js';
import {
  addDeclared,
  isRoot,
  liveOf,
  lines,
  makeFixture,
  mountsBelow,
  mountsUnder,
  nothingLeft,
  openFds,
  privateRoot,
  recorder,
  sh,
  unmountAllUnder,
  type Fixture,
} from './fixture.js';

type Context = Fixture & { root: string };
const test = anyTest as TestFn<Context>;
const rootSerial = isRoot ? test.serial : test.skip; // mounts need root: skipped visibly otherwise

function opts(f: Fixture, phase: HookPhase = 'post-mount', more: Partial<RunHooksOptions> = {}): RunHooksOptions {
  return { hooksDir: f.hooksDir, phase, vars: f.vars, logPath: f.logPath, timeoutMs: 10_000, ...more };
}

/** A host directory under the test dir, with files (name -> content). */
function hostDir(f: Fixture, name: string, files: Record<string, string> = {}): string {
  const d = join(f.dir, name);
  mkdirSync(d, { recursive: true, mode: 0o755 });
  for (const [n, content] of Object.entries(files)) writeFileSync(join(d, n), content);
  return d;
}

/** The session root: a private mount of itself when root (so that nothing a test mounts propagates), else a plain dir. */
function sessionRoot(t: ExecutionContext<Context>): string {
  const { root } = t.context;
  if (isRoot) privateRoot(t, root);
  else mkdirSync(root, { recursive: true, mode: 0o755 });
  return root;
}

/** The top mount at `point`, from mountinfo. */
function topMount(point: string) {
  return readMountInfo()
    .filter((m) => m.mountPoint === point)
    .at(-1);
}

test.before(async () => {
  // Warm up Node's first spawn (its SIGCHLD pipe) and koffi before any fd baseline.
  spawnSync('true');
  const f = makeFixture();
  addDeclared(f, 'post-mount', '10-x.fstab', '# nothing\n');
  await runHooks(opts(f));
  rmSync(f.dir, { recursive: true, force: true });
});

test.beforeEach((t) => {
  const f = makeFixture('warden-declared-');
  t.context = { ...f, root: f.vars.chrootPath, fds: openFds() };
});

// Nothing of a test may survive it: mounts, hook processes, fds.
test.afterEach.always((t) => nothingLeft(t, t.context));

/** Runs the phase, expecting `hook` to fail at `line` for `reason`; checks the error, the log and that nothing was mounted. */
async function failsWith(t: ExecutionContext<Context>, hook: string, line: number, reason: string): Promise<HookFailedError> {
  const e = await t.throwsAsync(runHooks(opts(t.context)), { instanceOf: HookFailedError });
  t.is(e.message, `hook post-mount.d/${hook} failed: line ${line}: ${reason}`);
  t.like(e, { hook: `post-mount.d/${hook}`, phase: 'post-mount', line, reason, status: null, signal: null, timedOut: false, interrupted: false });
  t.deepEqual(e.stderrTail, []);
  const log = lines(t.context.logPath);
  t.true(log.includes(`failed: line ${line}: ${reason}`), 'the reason is in hooks.log');
  t.regex(log.at(-1)!, new RegExp(`^== post-mount ${hook.replace('.', '\\.')}: failed, \\d+ ms ==$`));
  return e;
}

// Malformed files: refused as a whole before anything is touched (so these run without root too).
const malformed = test.macro({
  async exec(t, hook: string, text: string, line: number, reason: string) {
    const root = sessionRoot(t);
    addDeclared(t.context, 'post-mount', hook, text);
    await failsWith(t, hook, line, reason);
    t.deepEqual(readdirSync(root), [], 'nothing was created in the session');
    t.deepEqual(mountsBelow(root), []);
  },
  title: (provided, hook) => `${hook}: ${provided} is refused with its line number`,
});

const SYNTAX = 'expected SPEC FILE VFSTYPE OPTIONS [FREQ [PASSNO]]';
const KNOWN = '(known: defaults, rw, ro, nosuid, nodev, noexec, bind, rbind, nofail)';
test.serial('too few fields', malformed, '10-x.fstab', '# comment\n\n/proc /proc none\n', 3, `${SYNTAX}, found 3 fields`);
test.serial('too many fields', malformed, '10-x.fstab', '/proc /proc none bind 0 0 0\n', 1, `${SYNTAX}, found 7 fields`);
test.serial('a FREQ that is not a number', malformed, '10-x.fstab', '/proc\t/proc\tnone\tbind\tx\n', 1, 'FREQ "x" is not a number');
test.serial('a PASSNO that is not a number', malformed, '10-x.fstab', '/proc /proc none bind 0 -1\n', 1, 'PASSNO "-1" is not a number');
test.serial('a relative FILE', malformed, '10-x.fstab', '/proc proc none bind\n', 1, 'FILE "proc" is not an absolute path (a path inside the session, such as /proc)');
test.serial("a FILE with '..'", malformed, '10-x.fstab', '/proc /x/../../etc none bind\n', 1, "FILE /x/../../etc has a '..' component");
test.serial('FILE /', malformed, '10-x.fstab', '/tmp / none bind\n', 1, 'FILE / is the session root itself; mount below it');
test.serial('a FILE given twice', malformed, '10-x.fstab', '/proc /p none bind\n/sys /p/ none bind\n', 2, 'FILE /p is already the mount point of line 1');
test.serial('an unknown bind option', malformed, '10-x.fstab', '/proc /proc none bind,size=1m\n', 1, `unknown option "size=1m" for a bind ${KNOWN}`);
test.serial('an empty option', malformed, '10-x.fstab', '/proc /proc none bind,,ro\n', 1, 'empty option in "bind,,ro"');
test.serial('a relative bind source', malformed, '10-x.fstab', 'proc /proc none bind\n', 1, 'bind source "proc" is not an absolute host path');
test.serial('rbind with ro', malformed, '10-x.fstab', '/dev /dev none rbind,ro,nosuid\n', 1, 'rbind cannot be combined with ro,nosuid: mount(2) would apply it to the top mount only, not to the submounts rbind brings along');
test.serial('a NUL in a field (\\000)', malformed, '10-x.fstab', '/proc /pr\\000oc none bind\n', 1, 'FILE contains a NUL character');
test.serial('filesystem options over a page', malformed, '10-x.fstab', `tmpfs /t tmpfs size=${'1'.repeat(4096)}\n`, 1, 'filesystem options longer than 4095 bytes');
test.serial('a bad line after good ones', malformed, '10-x.fstab', '/proc /proc none bind\n/sys /sys none bind,bogus\n', 2, `unknown option "bogus" for a bind ${KNOWN}`);
test.serial('a relative path', malformed, '20-y.copyfiles', '# files\n/etc/hostname\netc/hosts\n', 3, '"etc/hosts" is not an absolute path');
test.serial("a path with '..'", malformed, '20-y.copyfiles', '/etc/../etc/hosts\n', 1, "path /etc/../etc/hosts has a '..' component");
test.serial('the path /', malformed, '20-y.copyfiles', '  /  \n', 1, '/ is not a file');

// Paths refused when settling, before the first mount or copy (no mount is made: these run without root too).
interface Refused {
  title: string;
  hook: string;
  /** Prepares the session and the host; returns the file's text, the failing line and the reason. */
  set(c: Context): { text: string; line: number; reason: string };
}
const refusedPaths: Refused[] = [
  {
    title: 'a symlink as the mount point',
    hook: '10-x.fstab',
    set: (c) => {
      symlinkSync(hostDir(c, 'elsewhere'), join(c.root, 'sys'));
      return { text: `${hostDir(c, 'h')} /a none bind\n/sys /sys none bind\n`, line: 2, reason: `${c.root}/sys is a symbolic link; refusing to mount on it` };
    },
  },
  {
    title: 'a symlink above the mount point',
    hook: '10-x.fstab',
    set: (c) => {
      symlinkSync(hostDir(c, 'elsewhere'), join(c.root, 'a'));
      return { text: '/sys /a/b none bind\n', line: 1, reason: `${c.root}/a is a symbolic link; refusing to mount under it` };
    },
  },
  {
    title: 'a file above the mount point',
    hook: '10-x.fstab',
    set: (c) => {
      writeFileSync(join(c.root, 'a'), '');
      return { text: '/sys /a/b none bind\n', line: 1, reason: `${c.root}/a is not a directory` };
    },
  },
  {
    title: 'a directory bound on a file',
    hook: '10-x.fstab',
    set: (c) => {
      writeFileSync(join(c.root, 'f'), '');
      return { text: `${hostDir(c, 'h')} /f none bind\n`, line: 1, reason: `${c.root}/f is not a directory, but ${c.dir}/h is` };
    },
  },
  {
    title: 'a file bound on a directory',
    hook: '10-x.fstab',
    set: (c) => {
      mkdirSync(join(c.root, 'd'));
      return { text: `${hostDir(c, 'h', { file: 'x' })}/file /d none bind\n`, line: 1, reason: `${c.root}/d is a directory, but ${c.dir}/h/file is not (a file is bound on a file)` };
    },
  },
  {
    title: 'a missing bind source without nofail',
    hook: '10-x.fstab',
    set: (c) => ({ text: `${hostDir(c, 'h')} /a none bind\n${c.dir}/missing /b none bind\n`, line: 2, reason: `${c.dir}/missing does not exist on the host (add nofail to skip it then)` }),
  },
  {
    title: 'a mount point inside another line’s bind that the host lacks',
    hook: '10-x.fstab',
    set: (c) => {
      const h = hostDir(c, 'h');
      return {
        text: `${h} /h none bind\n${hostDir(c, 'h2')} /h/absent none bind\n`,
        line: 2,
        reason: `${h}/absent is missing on the host, and line 1 binds ${h} on /h above it; refusing to create it on the host`,
      };
    },
  },
  {
    title: 'a symlink among the parents of a copy',
    hook: '20-y.copyfiles',
    set: (c) => {
      hostDir(c, 'h', { file: 'x' });
      symlinkSync(hostDir(c, 'elsewhere'), join(c.root, 'tmp'));
      return { text: `${c.dir}/h/file\n`, line: 1, reason: `${c.root}/tmp is a symbolic link; refusing to write through it` };
    },
  },
  {
    title: 'a directory where a copy goes',
    hook: '20-y.copyfiles',
    set: (c) => {
      hostDir(c, 'h', { file: 'x' });
      mkdirSync(join(c.root, c.dir, 'h', 'file'), { recursive: true });
      return { text: `${c.dir}/h/file\n`, line: 1, reason: `${c.root}${c.dir}/h/file is not a regular file; refusing to replace it` };
    },
  },
  {
    title: 'a host path that is a directory',
    hook: '20-y.copyfiles',
    set: (c) => ({ text: `${hostDir(c, 'h')}\n`, line: 1, reason: `${c.dir}/h on the host is not a regular file` }),
  },
];
for (const r of refusedPaths) {
  test.serial(`${r.hook}: ${r.title} is refused, nothing mounted`, async (t) => {
    const root = sessionRoot(t);
    const { text, line, reason } = r.set(t.context);
    addDeclared(t.context, 'post-mount', r.hook, text);
    await failsWith(t, r.hook, line, reason);
    t.deepEqual(mountsBelow(root), [], 'every mount point is settled before the first mount');
    if (existsSync(join(t.context.dir, 'elsewhere'))) t.deepEqual(readdirSync(join(t.context.dir, 'elsewhere')), [], 'nothing went through the symlink');
  });
}

rootSerial('mount points are made 0755 whatever the umask; \\040 in a field is a space; every new mount is private', async (t) => {
  const root = sessionRoot(t);
  const h = hostDir(t.context, 'h', { marker: 'm' });
  addDeclared(t.context, 'post-mount', '10-x.fstab', `${h} /a/b\\040c none bind 0 0\n`);
  const old = process.umask(0o077);
  try {
    await runHooks(opts(t.context));
  } finally {
    process.umask(old);
  }
  t.deepEqual(mountsBelow(root), ['/a/b c']);
  t.is(readFileSync(join(root, 'a', 'b c', 'marker'), 'utf8'), 'm');
  t.deepEqual(topMount(join(root, 'a', 'b c'))!.propagation, [], 'private: in no peer group of the host');
  t.true(lines(t.context.logPath).includes(`mounted: bind ${h} on ${root}/a/b c`));
  unmountAllUnder(root);
  for (const d of ['a', 'a/b c']) t.is(statSync(join(root, d)).mode & 0o777, 0o755, d);
});

rootSerial('a filesystem mount gets its flags and, as data, its other options', async (t) => {
  const root = sessionRoot(t);
  addDeclared(t.context, 'post-mount', '10-x.fstab', 'tmpfs /t tmpfs defaults,nosuid,nodev,size=1m,mode=1777 0 0\n');
  await runHooks(opts(t.context));
  const t0 = topMount(join(root, 't'))!;
  t.is(t0.fsType, 'tmpfs');
  t.true(t0.options.includes('nosuid') && t0.options.includes('nodev'), t0.options.join(','));
  t.deepEqual(t0.propagation, []);
  t.is(statSync(join(root, 't')).mode & 0o7777, 0o1777, 'mode=1777 reached the kernel');
  const fs = statfsSync(join(root, 't'));
  t.is(fs.blocks * fs.bsize, 1 << 20, 'size=1m reached the kernel');
  t.true(lines(t.context.logPath).includes(`mounted: tmpfs tmpfs on ${root}/t (nosuid,nodev) with size=1m,mode=1777`));
  unmountAllUnder(root);
});

rootSerial('a ro bind is really read-only and keeps the flags its source has; rw after ro cancels it', async (t) => {
  const root = sessionRoot(t);
  const f = t.context;
  // A host filesystem that is nosuid,nodev: a remount that forgot them would clear them.
  const h = hostDir(f, 'hostfs');
  t.teardown(() => unmountAllUnder(h));
  sh(['mount', '-t', 'tmpfs', '-o', 'nosuid,nodev,size=1m', 'tmpfs', h]);
  sh(['mount', '--make-private', h]);
  addDeclared(f, 'post-mount', '10-x.fstab', `${h} /ro none bind,ro\n${h} /rw none bind,ro,rw\n`);
  await runHooks(opts(f));
  const err = t.throws(() => writeFileSync(join(root, 'ro', 'x'), 'x'));
  t.is((err as NodeJS.ErrnoException).code, 'EROFS');
  writeFileSync(join(h, 'y'), 'y'); // the host's side stays writable
  writeFileSync(join(root, 'rw', 'z'), 'z');
  const ro = topMount(join(root, 'ro'))!;
  for (const o of ['ro', 'nosuid', 'nodev']) t.true(ro.options.includes(o), `${o} in ${ro.options.join(',')}`);
  t.deepEqual(ro.propagation, []);
  t.true(topMount(join(root, 'rw'))!.options.includes('rw'));
  t.true(lines(f.logPath).includes(`mounted: bind ${h} on ${root}/ro (ro)`));
  unmountAllUnder(root);
});

rootSerial('nofail: a missing source is skipped and logged, its mount point not made', async (t) => {
  const root = sessionRoot(t);
  const f = t.context;
  const h = hostDir(f, 'h');
  addDeclared(f, 'post-mount', '10-x.fstab', `${h} /a none bind\n${f.dir}/missing /b none bind,nofail\n`);
  await runHooks(opts(f));
  t.deepEqual(mountsBelow(root), ['/a']);
  t.false(existsSync(join(root, 'b')));
  t.true(lines(f.logPath).includes(`skipped: line 2: ${f.dir}/missing does not exist on the host (nofail); /b not mounted`));
  unmountAllUnder(root);
});

rootSerial('a bind of a single file goes on an empty 0644 file made for it', async (t) => {
  const root = sessionRoot(t);
  const f = t.context;
  const h = hostDir(f, 'h', { motd: 'hello\n' });
  addDeclared(f, 'post-mount', '10-x.fstab', `${h}/motd /etc/motd none bind,ro\n`);
  const old = process.umask(0o077);
  try {
    await runHooks(opts(f));
  } finally {
    process.umask(old);
  }
  t.deepEqual(mountsBelow(root), ['/etc/motd']);
  t.is(readFileSync(join(root, 'etc', 'motd'), 'utf8'), 'hello\n');
  t.throws(() => writeFileSync(join(root, 'etc', 'motd'), 'x'), { code: 'EROFS' });
  unmountAllUnder(root);
  const st = lstatSync(join(root, 'etc', 'motd'));
  t.true(st.isFile());
  t.is(st.size, 0);
  t.is(st.mode & 0o777, 0o644);
  t.is(statSync(join(root, 'etc')).mode & 0o777, 0o755);
});

rootSerial('a mount point inside an earlier bind is the host’s directory there: checked on the host, nothing created', async (t) => {
  const root = sessionRoot(t);
  const f = t.context;
  const h = hostDir(f, 'h');
  mkdirSync(join(h, 'sub'));
  const h2 = hostDir(f, 'h2', { marker: 'm' });
  addDeclared(f, 'post-mount', '10-x.fstab', `${h} /h none bind\n${h2} /h/sub none bind\n`);
  await runHooks(opts(f));
  t.deepEqual(mountsBelow(root), ['/h', '/h/sub']);
  t.is(readFileSync(join(root, 'h', 'sub', 'marker'), 'utf8'), 'm');
  unmountAllUnder(root);
  t.deepEqual(readdirSync(join(root, 'h')), [], 'h/sub was not made in the session');
});

rootSerial('rbind brings the submounts along, all private; a line for one of them is skipped', async (t) => {
  const root = sessionRoot(t);
  const f = t.context;
  const h = hostDir(f, 'h');
  const sub = join(h, 'sub');
  mkdirSync(sub);
  t.teardown(() => unmountAllUnder(h));
  sh(['mount', '--bind', h, h]);
  sh(['mount', '--make-private', h]);
  sh(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', sub]);
  addDeclared(f, 'post-mount', '10-x.fstab', `${h} /r none rbind\n${sub} /r/sub none bind\n`);
  await runHooks(opts(f));
  t.deepEqual(mountsBelow(root), ['/r', '/r/sub']);
  t.is(topMount(join(root, 'r', 'sub'))!.fsType, 'tmpfs');
  for (const m of readMountInfo().filter((e) => e.mountPoint.startsWith(`${root}/`))) t.deepEqual(m.propagation, [], `${m.mountPoint} is private`);
  t.true(lines(f.logPath).includes(`skipped: line 2: ${root}/r/sub comes with the rbind of line 1`));
  unmountAllUnder(root);
});

rootSerial('a mount point inside a filesystem an earlier line mounts is checked once that is there, and never created in it', async (t) => {
  const root = sessionRoot(t);
  const h = hostDir(t.context, 'h');
  addDeclared(t.context, 'post-mount', '10-x.fstab', `tmpfs /t tmpfs size=1m\n${h} /t/x none bind\n`);
  await failsWith(t, '10-x.fstab', 2, `${root}/t/x is missing, and ${root}/t above it is a mount point, not the session's own tree; refusing to create it there`);
  t.deepEqual(mountsBelow(root), ['/t'], 'the tmpfs stays for the rollback');
  unmountAllUnder(root);
});

rootSerial('a bind of a shared host mount is made private: what is mounted under it later does not reach the host', async (t) => {
  const root = sessionRoot(t);
  const f = t.context;
  const h = hostDir(f, 'h');
  mkdirSync(join(h, 'sub'));
  t.teardown(() => unmountAllUnder(h));
  sh(['mount', '--bind', h, h]);
  sh(['mount', '--make-shared', h]); // as systemd makes / shared
  addDeclared(f, 'post-mount', '10-x.fstab', `${h} /x none bind\ntmpfs /x/sub tmpfs size=1m\n`);
  await runHooks(opts(f));
  t.deepEqual(mountsBelow(root), ['/x', '/x/sub']);
  for (const m of ['x', 'x/sub']) t.deepEqual(topMount(join(root, m))!.propagation, [], `${m} is private`);
  t.deepEqual(mountsUnder(h), [h], 'the tmpfs did not propagate to the host');
  unmountAllUnder(root);
});

rootSerial('a shared mount found on a mount point is skipped but made private (a start killed before its MS_PRIVATE)', async (t) => {
  const root = sessionRoot(t);
  const f = t.context;
  const h = hostDir(f, 'h');
  const x = join(root, 'x');
  mkdirSync(x);
  sh(['mount', '--bind', h, x]);
  sh(['mount', '--make-shared', x]);
  addDeclared(f, 'post-mount', '10-x.fstab', `${h} /x none bind\n`);
  await runHooks(opts(f));
  t.deepEqual(mountsBelow(root), ['/x'], 'nothing stacked on it');
  t.deepEqual(topMount(x)!.propagation, []);
  t.deepEqual(lines(f.logPath).slice(1, -1), [
    `made private: line 1: ${x} was a shared mount (a start killed between mounting it and making it private)`,
    `skipped: line 1: ${x} is already a mount point (a mount that survived, when recovering)`,
  ]);
  unmountAllUnder(root);
});

rootSerial('a failing mount(2) names the line, the mount and the errno; the mounts made before it stay for the rollback', async (t) => {
  const root = sessionRoot(t);
  const h = hostDir(t.context, 'h');
  addDeclared(t.context, 'post-mount', '10-x.fstab', `${h} /a none bind\nnone /b nosuchfs defaults\n`);
  await failsWith(t, '10-x.fstab', 2, `nosuchfs none on ${root}/b: No such device (ENODEV)`);
  t.deepEqual(mountsBelow(root), ['/a'], 'begin’s rollback unmounts everything under the root');
  unmountAllUnder(root);
});

test.serial('copyfiles: copies bytes as they are, through the host’s symlinks; replaces a symlink; skips what the host lacks', async (t) => {
  const root = sessionRoot(t);
  const f = t.context;
  const h = hostDir(f, 'h', { a: 'no newline at the end', real: 'through a link\n' });
  symlinkSync(join(h, 'real'), join(h, 'link'));
  const decoy = join(f.dir, 'decoy');
  writeFileSync(decoy, 'decoy\n');
  const inside = join(root, h);
  mkdirSync(inside, { recursive: true });
  symlinkSync(decoy, join(inside, 'a'));
  writeFileSync(join(inside, 'link'), 'old', { mode: 0o600 });
  addDeclared(f, 'post-mount', '20-y.copyfiles', `# copies\n${h}/a\n${h}/missing\n\n${h}/link\n`);
  const old = process.umask(0o077);
  try {
    await runHooks(opts(f));
  } finally {
    process.umask(old);
  }
  t.is(readFileSync(join(inside, 'a'), 'utf8'), 'no newline at the end');
  t.true(lstatSync(join(inside, 'a')).isFile(), 'the symlink was replaced by a regular file');
  t.is(readFileSync(decoy, 'utf8'), 'decoy\n', 'and not written through');
  t.is(readFileSync(join(inside, 'link'), 'utf8'), 'through a link\n');
  for (const n of ['a', 'link']) t.is(statSync(join(inside, n)).mode & 0o777, 0o644, n);
  t.false(existsSync(join(inside, 'missing')));
  t.deepEqual(lines(f.logPath).slice(1, -1), [`copied: ${h}/a to ${inside}/a`, `skipped: line 3: ${h}/missing does not exist on the host`, `copied: ${h}/link to ${inside}/link`]);
});

rootSerial('declarative files run in byte order of names among the executables', async (t) => {
  const root = sessionRoot(t);
  const f = t.context;
  const h = hostDir(f, 'h', { marker: 'm', file: 'copied\n' });
  const seen = (name: string) => `[ -e "$CHROOT_PATH/a/marker" ] && m=mounted || m=unmounted; [ -e "$CHROOT_PATH${h}/file" ] && c=copied || c=uncopied; echo "${name} $m $c" >> '${f.out}'`;
  addDeclared(f, 'post-mount', '10-mounts.fstab', `${h} /a none bind\n`);
  addDeclared(f, 'post-mount', '20-files.copyfiles', `${h}/file\n`);
  for (const n of ['05-first', '10-mounts', '15-between', '30-last']) {
    addDeclared(f, 'post-mount', n, `#!/bin/sh\n${seen(n)}\n`, 0o755);
  }
  t.deepEqual(
    listHooks(f.hooksDir, 'post-mount').map((e) => `${e.name} ${e.kind}`),
    ['05-first exec', '10-mounts exec', '10-mounts.fstab fstab', '15-between exec', '20-files.copyfiles copyfiles', '30-last exec'],
  );
  const runs = await runHooks(opts(f));
  t.deepEqual(runs.map((r) => r.hook.slice('post-mount.d/'.length)), ['05-first', '10-mounts', '10-mounts.fstab', '15-between', '20-files.copyfiles', '30-last']);
  t.deepEqual(lines(f.out), ['05-first unmounted uncopied', '10-mounts unmounted uncopied', '15-between mounted uncopied', '30-last mounted copied']);
  unmountAllUnder(root);
});

rootSerial('copyfiles sees the mounts of the phase: an .fstab bind before it, and what an executable between them mounted', async (t) => {
  const root = sessionRoot(t);
  const f = t.context;
  const h = hostDir(f, 'h', { file: 'host\n' });
  const other = hostDir(f, 'o');
  const pd = join(f.hooksDir, 'post-mount.d');
  // A copy of ${h}/file goes to <root>${h}/file: with <root>${h} a bind of
  // `other`, writing it would write into the host's `other`.
  addDeclared(f, 'post-mount', '10-mounts.fstab', `${other} ${h} none bind\n`);
  addDeclared(f, 'post-mount', '20-files.copyfiles', `${h}/file\n`);
  const first = await t.throwsAsync(runHooks(opts(f)), { instanceOf: HookFailedError });
  t.is(first.hook, 'post-mount.d/20-files.copyfiles');
  t.regex(first.message, new RegExp(`line 1: .*${h}.* is a mount point`));
  t.deepEqual(readdirSync(other), [], 'nothing written through the .fstab bind');
  unmountAllUnder(root);
  // The mount made by an executable after the view was read (by 05-srv.fstab).
  rmSync(join(pd, '10-mounts.fstab'));
  addDeclared(f, 'post-mount', '05-srv.fstab', `${hostDir(f, 't')} /srv none bind\n`);
  addDeclared(f, 'post-mount', '10-bind', `#!/bin/sh\nset -e\nmkdir -p "$CHROOT_PATH${h}"\nmount --bind '${other}' "$CHROOT_PATH${h}"\nmount --make-private "$CHROOT_PATH${h}"\n`, 0o755);
  const second = await t.throwsAsync(runHooks(opts(f)), { instanceOf: HookFailedError });
  t.is(second.hook, 'post-mount.d/20-files.copyfiles');
  t.regex(second.message, new RegExp(`line 1: .*${h}.* is a mount point`));
  t.deepEqual(readdirSync(other), [], 'nothing written through the executable’s bind');
  unmountAllUnder(root);
});

test.serial('a session root that is not absolute, or is /, fails the hook without a line number', async (t) => {
  const f = t.context;
  addDeclared(f, 'post-mount', '10-x.fstab', '/proc /proc none bind\n');
  for (const chrootPath of ['relative/root', '/', '//']) {
    f.vars.chrootPath = chrootPath;
    const e = await t.throwsAsync(runHooks(opts(f)), { instanceOf: HookFailedError });
    t.is(e.message, `hook post-mount.d/10-x.fstab failed: CHROOT_PATH must be an absolute path below /, not ${JSON.stringify(chrootPath)}`);
    t.is(e.line, undefined);
  }
  t.false(existsSync(join(f.dir, 'relative')));
});

test.serial('declarative files in the other phases are ignored like any dotted name', async (t) => {
  const f = t.context;
  for (const phase of ['pre-mount', ...STOP_PHASES] as const) {
    addDeclared(f, phase, '10-x.fstab', 'not an fstab\n');
    addDeclared(f, phase, '20-y.copyfiles', 'not/absolute\n');
    recorder(f, phase, '30-z');
    t.deepEqual(listHooks(f.hooksDir, phase).map((e) => e.name), ['30-z'], phase);
    t.deepEqual((await runHooks(opts(f, phase))).map((r) => r.hook), [`${phase}.d/30-z`]);
  }
  t.deepEqual(lines(f.out), ['30-z pre-mount', '30-z pre-unmount', '30-z post-unmount']);
});

test.serial('only NAME.fstab and NAME.copyfiles are declarative; they need no x bit; a directory so named is skipped', (t) => {
  const f = t.context;
  for (const n of ['10-a.fstab', '20-b.copyfiles', '.fstab', 'x.y.fstab', 'a b.fstab', '30-c.fstab~', '40-d.FSTAB', '50-e.fstab.dpkg-old']) {
    addDeclared(f, 'post-mount', n, '', 0o600);
  }
  mkdirSync(join(f.hooksDir, 'post-mount.d', '60-f.fstab'), { mode: 0o755 });
  t.deepEqual(
    listHooks(f.hooksDir, 'post-mount').map((e) => `${e.name} ${e.kind}`),
    ['10-a.fstab fstab', '20-b.copyfiles copyfiles'],
  );
});

// Trust: a declarative file is applied as root, so it passes the checks an executable does; nothing of the phase runs otherwise.
interface Untrusted {
  title: string;
  rootOnly?: boolean;
  spoil(f: Fixture): string;
  reason: RegExp;
}
const untrusted: Untrusted[] = [
  { title: 'a group-writable .fstab', spoil: (f) => addDeclared(f, 'post-mount', '10-x.fstab', '', 0o664), reason: /^file is group-writable \(mode 0664\)$/ },
  { title: 'a world-writable .copyfiles', spoil: (f) => addDeclared(f, 'post-mount', '10-x.copyfiles', '', 0o646), reason: /^file is world-writable \(mode 0646\)$/ },
  {
    title: 'a symlinked .fstab whose target is group-writable',
    spoil: (f) => {
      const target = join(f.dir, 'target.fstab');
      writeFileSync(target, '');
      chmodSync(target, 0o664);
      const p = join(f.hooksDir, 'post-mount.d', '10-x.fstab');
      symlinkSync(target, p);
      return p;
    },
    reason: /^its target is group-writable \(mode 0664\)$/,
  },
  {
    title: 'a .fstab not owned by root',
    rootOnly: true,
    spoil: (f) => {
      const p = addDeclared(f, 'post-mount', '10-x.fstab', '');
      chownSync(p, 65534, 65534);
      return p;
    },
    reason: /^file is owned by uid 65534/,
  },
];
for (const u of untrusted) {
  (u.rootOnly && !isRoot ? test.skip : test.serial)(`refuses ${u.title}`, async (t) => {
    const f = t.context;
    recorder(f, 'post-mount', '05-first');
    const path = u.spoil(f);
    const e = await t.throwsAsync(runHooks(opts(f)), { instanceOf: HookPermissionError });
    t.is(e.path, path);
    t.regex(e.reason, u.reason);
    t.false(existsSync(f.out), 'no hook of the phase ran');
    t.false(existsSync(f.logPath));
  });
}
