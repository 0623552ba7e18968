// A second real client of warden-schroot (STYLE 12): Debian's autopkgtest
// with its schroot backend (autopkgtest-virt-schroot), unchanged, run by an
// ordinary user whose group is in the chroot's root-groups= (as a Debian
// developer runs it against schroot). It reads `schroot --config`, needs
// a union-type, begins a session, runs everything with `--run-session -q
// --directory=/ --user=root`, asks `--location` of the session, checks
// /proc is mounted there, installs the package it built through apt
// inside, and ends the session. Here the package is a tiny native one
// with two tests: one prints what the testbed is (Debian 12, uid 0, a
// /proc), the other leaves an artifact that autopkgtest copies out.
//
// autopkgtest runs `schroot` from PATH (unlike sbuild), so warden-schroot
// comes first in the user's PATH. `-U` (apt-get update and dist-upgrade
// in the testbed) is needed: mmdebstrap left apt's lists empty, and
// autopkgtest installs apt-utils and its own binaries with apt.
//
// Root only (users, mounts); skipped, saying why, without autopkgtest, the
// cached bookworm tarball, or Debian's mirror. ~25 s.
import anyTest, { type TestFn } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, fchownSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shutdownWaitPool } from '../../src/locks/index.js';
import { mountsUnder } from '../../src/union/index.js';
import { destroyFixture, isRoot, processesUnder, REPO, stateEntries } from '../helpers/chroots.js';
import { untilOutput, warden, wardenAsync, writeConfig } from '../helpers/cli.js';
import { ensureBookwormTarball, reachableMirror, unpackChroot } from '../helpers/debian.js';
import { makeUser } from '../helpers/users.js';

const test = anyTest as TestFn;
const CHROOT = 'bookworm';

async function cannotRun(): Promise<{ skip: string } | { tarball: string }> {
  if (!existsSync('/etc/schroot/default/fstab')) return { skip: "schroot's default profile is not installed (apt-get install schroot)" };
  if (!isRoot) return { skip: `needs root (uid ${process.getuid?.()}) to unpack a chroot, create a user and mount sessions` };
  if (!existsSync('/usr/bin/autopkgtest') || !existsSync('/usr/bin/autopkgtest-virt-schroot')) return { skip: 'autopkgtest is not installed (apt-get install autopkgtest)' };
  const t = await ensureBookwormTarball();
  if ('skip' in t) return t;
  const m = await reachableMirror();
  if ('skip' in m) return { skip: `autopkgtest -U needs ${m.skip}` };
  return { tarball: t.path };
}

const ready = await cannotRun();
const skip = 'skip' in ready ? ready.skip : undefined;

/** A native source package `wtest` in `dir` whose debian/rules needs nothing beyond dpkg-dev, with two tests. */
function writePackage(dir: string): void {
  const file = (rel: string, text: string, mode = 0o644) => {
    mkdirSync(join(dir, rel, '..'), { recursive: true });
    writeFileSync(join(dir, rel), text, { mode });
  };
  file('debian/control', 'Source: wtest\nSection: misc\nPriority: optional\nMaintainer: warden tests <root@localhost>\nStandards-Version: 4.6.2\n\nPackage: wtest\nArchitecture: all\nDescription: warden test package\n autopkgtest through warden-schroot.\n');
  file('debian/changelog', 'wtest (1.0) unstable; urgency=medium\n\n  * Test.\n\n -- warden tests <root@localhost>  Sun, 06 Dec 2026 10:00:00 +0000\n');
  file('debian/source/format', '3.0 (native)\n');
  file(
    'debian/rules',
    '#!/usr/bin/make -f\nclean:\n\trm -rf debian/wtest debian/files\nbuild build-arch build-indep:\n\t@true\nbinary binary-arch binary-indep:\n\tmkdir -p debian/wtest/DEBIAN\n\tdpkg-gencontrol -pwtest -Pdebian/wtest\n\tdpkg-deb --build debian/wtest ..\n',
    0o755,
  );
  file(
    'debian/tests/control',
    'Test-Command: echo "testbed: debian $(cat /etc/debian_version) uid $(id -u) proc $(test -r /proc/self/stat && echo yes)"\nDepends: wtest\n\nTest-Command: echo made-in-the-testbed > "$AUTOPKGTEST_ARTIFACTS/out"\nDepends: wtest\n',
  );
}

const run = skip ? test.serial.skip : test.serial;

run(skip ? `autopkgtest's schroot backend through warden-schroot (skipped: ${skip})` : "autopkgtest's schroot backend, run by a root-groups member, tests a package through warden-schroot", async (t) => {
  t.timeout(10 * 60_000);
  const tarball = (ready as { tarball: string }).tarball;
  const tmp = mkdtempSync(join(tmpdir(), 'warden-autopkgtest-'));
  t.teardown(() => destroyFixture(tmp));
  chmodSync(tmp, 0o755);
  const user = makeUser(t, { home: true });
  const source = join(tmp, CHROOT);
  await unpackChroot(tarball, source);
  // As a developer's chroot.d entry: their group may be root in sessions, and schroot's default
  // profile (a root-owned copy beside the config, where warden resolves profile=): its fstab binds
  // /proc, /sys, /dev, /dev/pts, /home and /tmp, its nssdatabases copy the host's users in
  // (autopkgtest runs its tests as the calling user with su), its copyfiles resolv.conf.
  const env = writeConfig(tmp, ['[warden]', `socket-group=${user.name}`, '', `[${CHROOT}]`, 'type=directory', `directory=${source}`, 'union-type=overlay', `groups=${user.name}`, `root-groups=${user.name}`, 'profile=default', ''].join('\n'));
  spawnSync('cp', ['-r', '/etc/schroot/default', join(tmp, 'etc', 'default')]);
  const bin = join(tmp, 'bin');
  mkdirSync(bin, { mode: 0o755 });
  writeFileSync(join(bin, 'schroot'), `#!/bin/sh\nWARDEN_STATE_DIR=${env.stateDir} exec ${join(REPO, 'dist', 'bin', 'warden-schroot')} "$@"\n`, { mode: 0o755 });
  const work = join(tmp, 'work');
  writePackage(join(work, 'wtest'));
  spawnSync('chown', ['-R', `${user.uid}:${user.gid}`, work]);
  chownSync(work, user.uid, user.gid);

  const sup = wardenAsync(env, ['supervise']);
  let stopped: Promise<void> | undefined;
  const stop = () =>
    (stopped ??= (async () => {
      if (sup.exitCode === null && sup.signalCode === null) sup.kill('SIGTERM');
      await sup.result;
      if (stateEntries(env.stateDir).some((n) => !n.startsWith('supervisor.'))) warden(env, ['recover', '--all', '--end']);
    })());
  t.teardown(stop);
  await untilOutput(sup, /supervising \//, 'stderr');

  const out = join(work, 'out');
  const argv = ['setpriv', '--reuid', String(user.uid), '--regid', String(user.gid), '--init-groups', '--', 'autopkgtest', '-U', '--output-dir', out, join(work, 'wtest') + '/', '--', 'schroot', CHROOT];
  // Its output to a file: autopkgtest tees its stderr to /dev/stderr, which cannot be opened on a
  // socket (ENXIO), and Node's stdio pipes are socketpairs.
  const logFile = join(tmp, 'autopkgtest.log');
  // The user's file: tee reopens /dev/stderr (/proc/self/fd/2) with the user's rights.
  const logFd = openSync(logFile, 'w', 0o600);
  fchownSync(logFd, user.uid, user.gid);
  const child = spawn(argv[0]!, argv.slice(1), {
    cwd: work,
    env: { HOME: user.home, USER: user.name, LOGNAME: user.name, SHELL: '/bin/sh', PATH: `${bin}:/usr/local/bin:/usr/bin:/bin` },
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  const timer = setTimeout(() => child.kill('SIGTERM'), 8 * 60_000);
  const status = await new Promise<number | null>((resolve) => child.once('close', resolve));
  clearTimeout(timer);
  const output = readFileSync(logFile, 'utf8');
  const why = `\n--- autopkgtest (head) ---\n${output.split('\n').slice(0, 60).join('\n')}\n--- autopkgtest (tail) ---\n${output.split('\n').slice(-40).join('\n')}\n--- supervisor stderr ---\n${sup.output.stderr.split('\n').slice(-30).join('\n')}`;

  t.is(status, 0, `autopkgtest exit ${status}${why}`);
  const summary = existsSync(join(out, 'summary')) ? readFileSync(join(out, 'summary'), 'utf8') : '';
  t.regex(summary, /^command1\s+PASS$/m, `summary: ${summary}${why}`);
  t.regex(summary, /^command2\s+PASS$/m, `summary: ${summary}`);
  // In the session: bookworm, /proc (autopkgtest also checks it), and the test run as the caller:
  // autopkgtest sets up as root (-u root, through root-groups=) and su's to the suggested normal user,
  // whom the profile's nssdatabases put in the session's passwd.
  t.regex(output, new RegExp(`^testbed: debian 12\\.\\d+ uid ${user.uid} proc yes$`, 'm'), 'the test ran as the caller in the bookworm session, with /proc');
  t.is(readFileSync(join(out, 'artifacts', 'out'), 'utf8'), 'made-in-the-testbed\n', "the test's artifact came out of the session");

  await stop();
  t.deepEqual(stateEntries(env.stateDir).filter((n) => !n.startsWith('supervisor.')), [], 'no session left in the state dir');
  t.deepEqual(mountsUnder(tmp).map((m) => m.mountPoint), [], 'nothing left mounted');
  t.deepEqual(processesUnder(tmp), [], 'no process left in a session');
  t.deepEqual(spawnSync('pgrep', ['-u', String(user.uid)], { encoding: 'utf8' }).stdout.trim(), '', 'no process of the user left');
});

test.after.always(async () => {
  await shutdownWaitPool();
});
