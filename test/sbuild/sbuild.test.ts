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
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileKeyOfPath, readProcLocks, shutdownWaitPool } from '../../src/locks/index.js';
import { mountsUnder } from '../../src/union/index.js';
import { destroyFixture, isRoot, processesUnder, stateEntries } from '../helpers/chroots.js';
import { untilOutput, warden, wardenAsync, writeConfig, type CliEnv } from '../helpers/cli.js';
import { ensureBookwormTarball, ensureHelloSource, reachableMirror, unpackChroot } from '../helpers/debian.js';
import {
  CHROOT,
  SBUILD_BUILD,
  chrootOf,
  inGroupSbuild,
  packageTime,
  passwdIds,
  prepareWork,
  runSbuild,
  runSbuildUpdate,
  schrootCalls,
  setUpLikeSbuildCreatechroot,
  tail,
  wardenConfig,
  whyFailed,
  writeSbuildProfile,
  wardenSchrootExec,
  writeLoggingSchrootScript,
  writeSchrootScript,
  type SchrootCall,
} from '../helpers/sbuild.js';
import { until } from '../helpers/wait.js';
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
// The sbuild-update test needs Debian's mirror (apt-get update in the source), not only the cache.
const mirror = skip ? undefined : await reachableMirror();
const updateSkip = skip ?? (mirror && 'skip' in mirror ? `sbuild-update needs ${mirror.skip}` : undefined);
const updateSerial = updateSkip ? test.serial.skip : test.serial;

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

/** `warden supervise` on the test's state dir; its stop (idempotent, a teardown too) ends what it left with recover --all --end. */
async function startSupervisor(t: ExecutionContext, s: Setup) {
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
  return { sup, stopSupervisor };
}

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
  const { sup, stopSupervisor } = await startSupervisor(t, s);
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

/**
 * What the test sees of the source every 100 ms: the overlays mounted under
 * the state dir (from /proc/self/mountinfo, as `id:mount point`) and a
 * fingerprint of the source (inode, size, mtime and ctime in ns of the
 * files and directories an upgrade writes: apt's lists and caches, dpkg's
 * status, /etc and what the sbuild profile copies there, sbuild's own dir).
 */
interface Sample {
  at: number;
  overlays: string[];
  fingerprint: string;
}

const WATCHED = ['.', 'etc', 'etc/passwd', 'etc/group', 'etc/resolv.conf', 'etc/apt', 'var/lib/apt/lists', 'var/lib/apt/lists/partial', 'var/cache/apt', 'var/lib/dpkg', 'var/lib/dpkg/status', 'var/lib/sbuild', 'var/lock', 'run/lock'];

function fingerprint(source: string): string {
  return WATCHED.map((rel) => {
    try {
      const st = lstatSync(join(source, rel), { bigint: true });
      return `${rel}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    } catch {
      return `${rel}:-`;
    }
  }).join(' ');
}

function sampleSource(stateDir: string, source: string): Sample {
  const overlays = mountsUnder(stateDir)
    .filter((m) => m.fsType === 'overlay')
    .map((m) => `${m.id}:${m.mountPoint}`);
  return { at: Date.now(), overlays, fingerprint: fingerprint(source) };
}

/**
 * The source changed between two samples that both saw one same overlay
 * mounted (same mount id and mount point), i.e. while an overlay of it was
 * mounted: the corruption schroot allows. Also how many times it changed
 * at all (an upgrade that changed nothing would prove nothing).
 */
function changesUnderOverlays(samples: readonly Sample[]): { violations: string[]; changes: number } {
  const violations: string[] = [];
  let changes = 0;
  for (let i = 1; i < samples.length; i++) {
    const [a, b] = [samples[i - 1]!, samples[i]!];
    if (a.fingerprint === b.fingerprint) continue;
    changes++;
    const both = a.overlays.filter((o) => b.overlays.includes(o));
    if (both.length > 0) {
      const before = a.fingerprint.split(' ');
      const moved = b.fingerprint.split(' ').filter((f, k) => f !== before[k]).map((f) => f.split(':')[0]);
      violations.push(`${new Date(a.at).toISOString()}..${new Date(b.at).toISOString()}: ${moved.join(', ')} changed under ${both.join(', ')}`);
    }
  }
  return { violations, changes };
}

/** The one begin, and the one end, a client made (its log from writeLoggingSchrootScript). */
function beginAndEnd(calls: SchrootCall[], who: string): { begin: SchrootCall; end: SchrootCall } {
  const begins = calls.filter((c) => c.kind === 'begin');
  const ends = calls.filter((c) => c.kind === 'end');
  if (begins.length !== 1 || ends.length !== 1) throw new Error(`${who}: ${begins.length} begins and ${ends.length} ends through schroot (expected one each)`);
  return { begin: begins[0]!, end: ends[0]! };
}

// Proof item 3 of issue 17, the promise schroot breaks: Debian's
// sbuild-update upgrades the source while sbuild builds in a session of it.
// Through warden-schroot, `sbuild-update -ud` (root, as its manual has it)
// waits for the build's session to end; a second build begun meanwhile
// waits for the upgrade; and the source, watched every 100 ms, never
// changes while an overlay of it is mounted. The upgrade must change it
// (mmdebstrap left apt's lists empty: `apt-get update` fills them), or the
// check would prove nothing; so it needs Debian's mirror.

updateSerial(
  updateSkip
    ? `sbuild-update -ud waits for a running build, and a new build for it (skipped: ${updateSkip})`
    : 'sbuild-update -ud waits for a running build, a new build waits for it, and the source never changes under a mounted overlay',
  async (t) => {
    t.timeout(20 * 60_000);
    const s = setup!;
    const user = makeUser(t, { home: true });
    madeUsers.push(user.name);
    const added = spawnSync('sbuild-adduser', [user.name], { encoding: 'utf8' });
    t.is(added.status, 0, added.stderr);
    const { sup, stopSupervisor } = await startSupervisor(t, s);
    const supTail = () => `\n--- supervisor stderr ---\n${tail(sup.output.stderr, 60)}`;

    // One schroot per client, each logging its calls; the builds' logs are the user's to write.
    const bin = join(s.tmp, 'bin-update');
    const logs = { a: join(s.tmp, 'calls-a.log'), b: join(s.tmp, 'calls-b.log'), update: join(s.tmp, 'calls-update.log') };
    for (const [who, log] of Object.entries(logs)) {
      writeFileSync(log, '', { mode: 0o644 });
      if (who !== 'update') chownSync(log, user.uid, user.gid);
    }
    const schroot = {
      a: writeLoggingSchrootScript(bin, 'schroot-a', wardenSchrootExec(s.env.stateDir), logs.a),
      b: writeLoggingSchrootScript(bin, 'schroot-b', wardenSchrootExec(s.env.stateDir), logs.b),
      update: writeLoggingSchrootScript(bin, 'schroot-update', wardenSchrootExec(s.env.stateDir), logs.update),
    };
    const workA = join(s.tmp, 'work-a');
    const workB = join(s.tmp, 'work-b');
    prepareWork(user, workA, dsc);
    prepareWork(user, workB, dsc);
    t.deepEqual(readdirSync(join(s.chroot, 'var/lib/apt/lists')).filter((n) => n !== 'lock' && n !== 'partial'), [], "the source has no apt lists yet (mmdebstrap's cleanup)");

    const samples: Sample[] = [sampleSource(s.env.stateDir, s.chroot)];
    const sampler = setInterval(() => samples.push(sampleSource(s.env.stateDir, s.chroot)), 100);
    t.teardown(() => clearInterval(sampler));

    // Build A begins its session; then the upgrade asks for the source.
    const buildA = runSbuild(user, workA, schroot.a);
    await until(() => schrootCalls(logs.a).some((c) => c.kind === 'begin' && c.end !== undefined), "build A's session", 120_000);
    const update = runSbuildUpdate(schroot.update, s.tmp);
    // The upgrade holds the manage lock while it waits for build A: begins now queue.
    const manage = join(s.env.stateDir, '.manage', `${CHROOT}.lock`);
    await until(() => schrootCalls(logs.update).some((c) => c.kind === 'begin') && manageHeld(manage), "the upgrade's source session to take the manage lock", 60_000);
    // Build B starts while the upgrade is pending.
    const buildB = runSbuild(user, workB, schroot.b);
    const [a, up, b] = await Promise.all([buildA, update, buildB]);
    clearInterval(sampler);
    samples.push(sampleSource(s.env.stateDir, s.chroot));

    t.true(a.problems.length === 0, `build A: ${whyFailed(a)}${supTail()}`);
    t.is(up.status, 0, `sbuild-update -ud: exit ${up.status} ${up.signal ?? ''}\n${tail(up.output, 60)}${supTail()}`);
    t.true(b.problems.length === 0, `build B: ${whyFailed(b)}${supTail()}`);

    const callsA = beginAndEnd(schrootCalls(logs.a), 'build A');
    const callsB = beginAndEnd(schrootCalls(logs.b), 'build B');
    const callsU = beginAndEnd(schrootCalls(logs.update), 'sbuild-update');
    t.is(callsU.begin.chroot, `source:${CHROOT}`, 'sbuild-update began a source session');
    // The upgrade asked while build A's session was there, and got the source only once it was gone.
    t.true(callsU.begin.start < callsA.end.start, "sbuild-update asked for the source before build A's session ended");
    const firstMount = samples.flatMap((x) => x.overlays)[0];
    t.truthy(firstMount, "build A's overlay was seen mounted");
    const lastSeenA = Math.max(...samples.filter((x) => x.overlays.includes(firstMount!)).map((x) => x.at));
    t.true(callsU.begin.end! > lastSeenA, `the upgrade's session began (${callsU.begin.end}) after build A's overlay was last seen mounted (${lastSeenA})`);
    // Build B asked while the upgrade was pending, and got its session only once the upgrade was ending.
    t.true(callsB.begin.start < callsU.begin.end!, "build B asked for a session while the upgrade was still waiting");
    t.true(callsB.begin.end! > callsU.end.start, `build B's session began (${callsB.begin.end}) after the upgrade's end began (${callsU.end.start})`);
    t.log(
      `build A ${seconds(a.ms)}; sbuild-update waited ${seconds(callsU.begin.end! - callsU.begin.start)} for it and ran ${seconds(up.ms)}; ` +
        `build B waited ${seconds(callsB.begin.end! - callsB.begin.start)} for its session and took ${seconds(b.ms)}`,
    );

    const { violations, changes } = changesUnderOverlays(samples);
    t.deepEqual(violations, [], 'the source never changed while an overlay of it was mounted');
    t.true(changes > 0, 'the upgrade changed the source (else the check above proved nothing)');
    t.not(readdirSync(join(s.chroot, 'var/lib/apt/lists')).filter((n) => n.endsWith('_InRelease')).length, 0, "apt-get update filled the source's lists");
    t.log(`${samples.length} samples of mountinfo and the source; ${changes} changes of the source, none under a mounted overlay`);

    await stopSupervisor();
    t.deepEqual(stateEntries(s.env.stateDir).filter((n) => !n.startsWith('supervisor.')), [], 'no session left in the state dir');
    t.deepEqual(mountsUnder(s.tmp).map((m) => m.mountPoint), [], 'nothing left mounted');
    t.deepEqual(processesUnder(s.tmp), [], 'no process left in a session');
    t.deepEqual(userProcesses(user), [], 'no process of the user left');
  },
);

/** Whether the manage lock file is write-locked now (/proc/locks, by its device and inode). */
function manageHeld(path: string): boolean {
  if (!existsSync(path)) return false;
  const key = fileKeyOfPath(path);
  return readProcLocks().some((l) => l.key === key && l.kind === 'exclusive' && !l.waiting);
}
