// A bootstrap chroot entered for real with chroot(8): the tools run, every
// library they need is inside, the layout is the host's, and a rebuild over a
// previous bootstrap works. Timings go to the test log.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MARKER, SOURCE_LOCK, bootstrapChroot, type BootstrapResult } from '../../src/bootstrap/index.js';
import { findBusybox } from '../../src/bootstrap/tools.js';
import { fileFds, ourLocks } from '../helpers/leaks.js';
import { inChroot, isRoot, newTemp, rootSerial, rootTest, test, type Run } from './support.js';

// One chroot for the read-only checks of this file.
let shared: { tmp: string; root: string; result: BootstrapResult } | undefined;
const built = () => {
  if (!shared) throw new Error('the shared chroot was not built');
  return shared;
};

test.before(async () => {
  const { tmp, root } = newTemp();
  shared = { tmp, root, result: await bootstrapChroot(root, { busybox: false }) };
});

test.after.always(() => {
  if (shared) rmSync(shared.tmp, { recursive: true, force: true });
});

const runs = test.macro({
  exec(t, script: string, want: { status?: number; stdout?: string | RegExp }) {
    const r: Run = inChroot(built().root, script);
    t.is(r.status, want.status ?? 0, `stderr: ${r.stderr}`);
    if (typeof want.stdout === 'string') t.is(r.stdout, want.stdout);
    else if (want.stdout) t.regex(r.stdout, want.stdout);
  },
  title: (_provided, script: string) => `chroot /bin/sh -c '${script}' (needs root)`,
});

rootTest(runs, 'id -u', { stdout: '0\n' });
rootTest(runs, 'id -un && whoami', { stdout: 'root\nroot\n' });
rootTest(runs, 'ls /', { stdout: /^bin\ndev\netc\nhome\n(lib\n)?(lib64\n)?proc\nroot\nrun\n(sbin\n)?sys\ntmp\nusr\nvar\n$/ });
rootTest(runs, 'cat /etc/os-release', { stdout: /^PRETTY_NAME="warden demo chroot"$/m });
rootTest(runs, 'cat /etc/hostname', { stdout: 'warden-demo\n' });
rootTest(runs, 'echo hi > /tmp/x && cat /tmp/x', { stdout: 'hi\n' });
rootTest(runs, 'sleep 0', { stdout: '' });
rootTest(runs, 'true', { status: 0 });
rootTest(runs, 'false', { status: 1 });
rootTest(runs, 'exit 3', { status: 3 });
rootTest(runs, 'test -d /proc && test -d /sys && test -d /dev/pts && test -d /var/tmp && test -f /etc/resolv.conf && test -f /etc/hosts', {});

rootTest('sha256sum /etc/passwd inside matches the file (needs root)', (t) => {
  const { root } = built();
  const want = createHash('sha256').update(readFileSync(join(root, 'etc/passwd'))).digest('hex');
  t.is(inChroot(root, 'sha256sum /etc/passwd').stdout, `${want}  /etc/passwd\n`);
});

rootTest('every installed tool starts: its loader and libraries are all inside (needs root)', (t) => {
  const { root } = built();
  const marker = JSON.parse(readFileSync(join(root, MARKER), 'utf8')) as { hostTools: Record<string, string> };
  t.true(Object.keys(marker.hostTools).length >= 9);
  for (const [name, path] of Object.entries(marker.hostTools)) {
    // Executed directly, without a shell: a missing library makes the loader exit 127.
    const r = spawnSync('chroot', [root, path, '--version'], { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LC_ALL: 'C' } });
    t.not(r.status, 127, `${name} (${path}): ${r.stderr}`);
    t.notRegex(r.stderr, /error while loading shared libraries/, name);
  }
});

test('the layout is the host\'s: top-level symlinks, modes, .ref, marker', (t) => {
  const { root, result } = built();
  for (const top of ['bin', 'sbin', 'lib', 'lib64']) {
    const host = lstatSync(`/${top}`, { throwIfNoEntry: false });
    if (host?.isSymbolicLink()) t.is(readlinkSync(join(root, top)), readlinkSync(`/${top}`), top);
  }
  t.is(statSync(join(root, 'tmp')).mode & 0o7777, 0o1777);
  t.is(statSync(join(root, 'var/tmp')).mode & 0o7777, 0o1777);
  t.is(statSync(join(root, 'root')).mode & 0o7777, 0o700);
  const ref = lstatSync(join(root, SOURCE_LOCK));
  t.true(ref.isFile());
  t.is(ref.size, 0);
  t.is(ref.mode & 0o7777, 0o644);
  t.true(existsSync(join(root, result.shell)), 'the shell is copied at its host path');
  for (const lib of result.libraries) t.true(existsSync(join(root, lib)), lib);

  const marker = JSON.parse(readFileSync(join(root, MARKER), 'utf8')) as Record<string, unknown>;
  t.like(marker, { format: 'warden-bootstrap', version: 1, complete: true, busybox: null, shell: result.shell });
  t.deepEqual(marker.tools, result.tools);
  t.false(result.busybox);
  for (const tool of ['sh', 'cat', 'ls', 'touch', 'sleep', 'true', 'false', 'id', 'sha256sum']) t.true(result.tools.includes(tool), tool);
});

test.serial('rebuilding over a previous bootstrap starts afresh, fast, and leaks nothing', async (t) => {
  const { tmp, root } = newTemp();
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const fds = fileFds();
  const first = await bootstrapChroot(root, { busybox: false });
  writeFileSync(join(root, 'root/left-behind'), 'x');
  const times: number[] = [];
  for (let i = 0; i < 5; i++) times.push((await bootstrapChroot(root, { busybox: false })).ms);
  t.false(existsSync(join(root, 'root/left-behind')));
  t.like(JSON.parse(readFileSync(join(root, MARKER), 'utf8')), { complete: true });
  t.deepEqual(ourLocks([join(root, SOURCE_LOCK)]), [], 'the source lock is released');
  t.deepEqual(fileFds(), fds, 'no fd is left open');
  const sorted = [...times].sort((a, b) => a - b);
  t.log(
    `bootstrap: first build ${first.ms.toFixed(1)} ms; rebuilds ${times.map((m) => m.toFixed(1)).join(', ')} ms ` +
      `(median ${sorted[2].toFixed(1)}); ${first.tools.length} tools, ${first.libraries.length} libraries`,
  );
});

// Busybox hosts take the other path; WARDEN_TEST_BUSYBOX names a busybox binary to test it elsewhere.
const busybox = process.env.WARDEN_TEST_BUSYBOX || findBusybox();
const busyboxTest = busybox && isRoot ? test.serial : test.serial.skip;
busyboxTest('with busybox: its applets are the tools (needs root and busybox on the host)', async (t) => {
  const { tmp, root } = newTemp();
  t.teardown(() => rmSync(tmp, { recursive: true, force: true }));
  const r = await bootstrapChroot(root, { busybox: busybox as string });
  t.true(r.busybox);
  const run = inChroot(root, 'id -u; ls / | grep -c etc; echo hi > /tmp/x && cat /tmp/x; false || echo $?');
  t.is(run.stdout, '0\n1\nhi\n1\n', run.stderr);
  t.is(inChroot(root, 'sha256sum /etc/hostname').status, 0);
  t.log(`bootstrap with busybox: ${r.ms.toFixed(1)} ms, ${r.tools.length} tools, ${r.libraries.length} libraries`);
});

rootSerial('a file written inside is in the tree, not on the host (needs root)', (t) => {
  const { root } = built();
  const name = `warden-bootstrap-probe-${process.pid}`;
  t.is(inChroot(root, `echo probe > /tmp/${name}`).status, 0);
  t.is(readFileSync(join(root, 'tmp', name), 'utf8'), 'probe\n');
  t.false(existsSync(join('/tmp', name)));
});
