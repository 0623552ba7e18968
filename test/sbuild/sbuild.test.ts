// The proof with the real client (STYLE 12): Debian's own sbuild 0.85 builds
// `hello` from source in a real bookworm buildd chroot, as an ordinary member
// of group sbuild, with its `schroot` being warden-schroot in front of a
// real `warden supervise`. The chroot is set up as sbuild-createchroot sets
// one up (test/sbuild/README.md, step 3), with `profile=sbuild`: warden
// applies schroot's sbuild profile (a copy of /etc/schroot/sbuild whose
// fstab binds a build dir of the test's own on /build) as schroot does:
// its fstab, copyfiles and nssdatabases. The same build through the real
// schroot, alternating, is bench/sbuild.ts.
//
// Root only; slow (a real package build, ~1 min each); skipped, saying why,
// without root, sbuild, schroot, or a cached (or fetchable) bookworm
// tarball and hello source.
import anyTest, { type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shutdownWaitPool } from '../../src/locks/index.js';
import { mountsUnder } from '../../src/union/index.js';
import { destroyFixture, isRoot, processesUnder, stateEntries } from '../helpers/chroots.js';
import { untilOutput, warden, wardenAsync, writeConfig, type CliEnv } from '../helpers/cli.js';
import { ensureBookwormTarball, ensureHelloSource, unpackChroot } from '../helpers/debian.js';
import {
  CHROOT,
  SBUILD_BUILD,
  chrootOf,
  inGroupSbuild,
  packageTime,
  passwdIds,
  prepareWork,
  runSbuild,
  setUpLikeSbuildCreatechroot,
  tail,
  wardenConfig,
  whyFailed,
  writeSbuildProfile,
  writeSchrootScript,
} from '../helpers/sbuild.js';
import { makeUser, type TestUser } from '../helpers/users.js';

const test = anyTest as TestFn;

let tarball = '';
let dsc = '';

/** Why this file cannot run here, or undefined. The downloads (first run only) happen here, before any test. */
async function cannotRun(): Promise<string | undefined> {
  if (!isRoot) return `needs root (uid ${process.getuid?.()}) to unpack a chroot, create a user and mount sessions`;
  if (!existsSync('/usr/bin/sbuild')) return 'sbuild is not installed (apt-get install sbuild)';
  if (!existsSync('/usr/bin/schroot')) return 'schroot is not installed (apt-get install schroot)';
  if (spawnSync('getent', ['group', 'sbuild']).status !== 0) return 'no group sbuild (the sbuild package makes it)';
  const t = await ensureBookwormTarball();
  if ('skip' in t) return t.skip;
  const d = await ensureHelloSource();
  if ('skip' in d) return d.skip;
  tarball = t.path;
  dsc = d.dsc;
  return undefined;
}

const skip = await cannotRun();

interface Setup {
  tmp: string;
  chroot: string;
  env: CliEnv;
  /** Root's script running warden-schroot on env.stateDir: /usr/bin/schroot for sbuild (see runSbuild). */
  schroot: string;
}

let setup: Setup | undefined;
/** Users the tests made (removed by their teardowns); after.always checks they are gone. */
const madeUsers: string[] = [];
/** How /var/lib/sbuild/build was before: sbuild chowns and chmods /build through schroot's profile. */
let sbuildBuildBefore: { mode: number; uid: number; gid: number } | undefined;

test.before(async () => {
  if (skip) return;
  const st = statSync(SBUILD_BUILD);
  sbuildBuildBefore = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid };
  const tmp = mkdtempSync(join(tmpdir(), 'warden-sbuild-'));
  chmodSync(tmp, 0o755);
  setup = { tmp, chroot: join(tmp, CHROOT), env: writeConfig(tmp, ''), schroot: '' };
  await unpackChroot(tarball, setup.chroot);
  setUpLikeSbuildCreatechroot(setup.chroot);
  // The unpack's 446 MB of writeback would otherwise land on the first build (warden's).
  spawnSync('sync', ['--file-system', setup.chroot]);
  // warden's /build: a dir of our own, not the host's /var/lib/sbuild/build, which real schroot's profile uses.
  const buildDir = join(tmp, 'build');
  mkdirSync(buildDir, { mode: 0o755 });
  const sb = passwdIds('sbuild');
  chownSync(buildDir, sb.uid, sb.gid);
  setup.env = writeConfig(tmp, wardenConfig(writeSbuildProfile(tmp, buildDir), setup.chroot));
  setup.schroot = writeSchrootScript(join(tmp, 'bin'), setup.env.stateDir);
});

test.after.always(async (t) => {
  for (const name of madeUsers) {
    t.not(spawnSync('getent', ['passwd', name]).status, 0, `user ${name} removed`);
    t.false(inGroupSbuild(name), `${name} no longer in group sbuild`);
    t.false(existsSync(`/home/${name}`), `${name}'s home removed`);
  }
  if (setup) destroyFixture(setup.tmp);
  if (sbuildBuildBefore) {
    chownSync(SBUILD_BUILD, sbuildBuildBefore.uid, sbuildBuildBefore.gid);
    chmodSync(SBUILD_BUILD, sbuildBuildBefore.mode);
  }
  await shutdownWaitPool();
});

function userProcesses(user: TestUser): string[] {
  return spawnSync('pgrep', ['-a', '-u', String(user.uid)], { encoding: 'utf8' }).stdout.split('\n').filter(Boolean);
}

const title = (s: string) => (skip ? `${s} (skipped: ${skip})` : s);
const serial = skip ? test.serial.skip : test.serial;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

serial(title(`sbuild builds hello in ${CHROOT} through warden-schroot`), async (t) => {
  const s = setup!;
  const user = makeUser(t, { home: true });
  madeUsers.push(user.name);
  const added = spawnSync('sbuild-adduser', [user.name], { encoding: 'utf8' });
  t.is(added.status, 0, added.stderr);
  t.true(inGroupSbuild(user.name));

  // warden: the supervisor serves the state dir; sbuild's schroot is warden-schroot.
  const sup = wardenAsync(s.env, ['supervise']);
  let stopped: Promise<void> | undefined;
  const stopSupervisor = () =>
    (stopped ??= (async () => {
      if (sup.exitCode === null && sup.signalCode === null) sup.kill('SIGTERM');
      await sup.result;
      if (stateEntries(s.env.stateDir).some((n) => !n.startsWith('supervisor.'))) warden(s.env, ['recover', '--all', '--end']);
    })());
  t.teardown(stopSupervisor);
  await untilOutput(sup, /supervising \//, 'stderr');
  const work = join(s.tmp, 'work-warden');
  prepareWork(user, work, dsc);
  const viaWarden = await runSbuild(user, work, s.schroot);
  const built = viaWarden.problems.length === 0;
  // sbuild makes /build its own (chmod 02770): through the profile's bind, that is the test's build dir.
  t.is(statSync(join(s.tmp, 'build')).mode & 0o7777, 0o2770, "the profile's fstab bound the build dir on /build");
  t.true(built, `${whyFailed(viaWarden)}\n--- supervisor stderr ---\n${tail(sup.output.stderr, 80)}`);
  const where = chrootOf(viaWarden.log);
  t.true(where?.startsWith(`${s.env.stateDir}/${CHROOT}-`), `built in a warden session (${where})`);
  t.log(`warden-schroot: sbuild ${built ? 'built' : 'FAILED'} in ${seconds(viaWarden.ms)} wall (sbuild's Package-Time ${packageTime(viaWarden.log)} s)`);
  await stopSupervisor();
  t.deepEqual(stateEntries(s.env.stateDir).filter((n) => !n.startsWith('supervisor.')), [], 'no session left in the state dir');
  t.deepEqual(mountsUnder(s.tmp).map((m) => m.mountPoint), [], 'nothing left mounted');
  t.deepEqual(processesUnder(s.tmp), [], 'no process left in a session');
  t.deepEqual(userProcesses(user), [], 'no process of the user left');
  // The same build through real schroot, alternating, is bench/sbuild.ts (npm run bench:sbuild).
});
