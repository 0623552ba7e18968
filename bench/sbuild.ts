// What the real client sees (issue 17, "bench/sbuild"): Debian's sbuild
// building hello in a bookworm buildd chroot, as a member of group sbuild,
// through warden-schroot and a running `warden supervise` against the real
// schroot 1.6 with sbuild-createchroot's configuration and profile=sbuild.
// The setup is test/sbuild/sbuild.test.ts's (test/helpers/sbuild.ts): one
// unpacked chroot serves both tools; schroot's sbuild profile is done by
// warden hooks for warden. Builds alternate between the tools, the first of
// each round alternating too; BENCH_BUILDS (default 3) builds each.
//
// Rows:
//   wall time of `sbuild` (start to exit), median: warden / schroot  <= 1.0x
//   sbuild's own Package-Time, Install-Time, Build-Time, medians       info
//   per schroot call (begin, run-session, end, info), medians, and the
//   time a build spends inside schroot calls: warden / schroot          info
//   (each tool wrapped by the same logging script: +~2 ms a call to both)
//
// Needs root, sbuild and schroot, and the cached bookworm tarball and hello
// source (fetched on first use, see test/helpers/debian.ts). Makes a
// throwaway user, a chroot.d file of its own name and a temp dir, all
// removed at the end; restores /var/lib/sbuild/build, which sbuild chmods
// through schroot's profile. Not part of `npm test`. Each build takes about
// a minute of one core: `npm run bench:sbuild`.
import { spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { shutdownWaitPool } from '../src/locks/index.js';
import { mountsUnder } from '../src/union/index.js';
import { ensureBookwormTarball, ensureHelloSource, unpackChroot } from '../test/helpers/debian.js';
import {
  CHROOT,
  SBUILD_BUILD,
  chrootOf,
  summaryTime,
  passwdIds,
  prepareWork,
  runSbuild,
  schrootCalls,
  schrootConfig,
  setUpLikeSbuildCreatechroot,
  wardenConfig,
  whyFailed,
  writeSbuildProfile,
  wardenSchrootExec,
  writeLoggingSchrootScript,
  type Build,
  type SchrootCall,
  type SbuildUser,
} from '../test/helpers/sbuild.js';
import { evaluate, machine, printTable, summarize, writeResults, type Row } from './lib.js';
import { WARDEN, startSupervisor, stopSupervisor } from './procs.js';

const BUILDS = Number(process.env.BENCH_BUILDS ?? 3);
type Tool = 'warden' | 'schroot';
const FIELDS = ['Package-Time', 'Install-Time', 'Build-Time'] as const;
type Field = (typeof FIELDS)[number];

function makeUser(): SbuildUser {
  const name = `wdsb${process.pid % 100000}`;
  const home = `/home/${name}`;
  const r = spawnSync('useradd', ['--create-home', '--home-dir', home, '--shell', '/bin/sh', '--user-group', name], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`useradd ${name}: ${r.stderr.trim()}`);
  const added = spawnSync('sbuild-adduser', [name], { encoding: 'utf8' });
  if (added.status !== 0) {
    removeUser(name);
    throw new Error(`sbuild-adduser ${name}: ${added.stderr.trim()}`);
  }
  return { name, home, ...passwdIds(name) };
}

function removeUser(name: string): void {
  spawnSync('pkill', ['-KILL', '-u', name]);
  spawnSync('userdel', ['--remove', name]);
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/sbuild unpacks a chroot, mounts sessions, configures schroot and makes a user: run it as root');
  for (const tool of ['/usr/bin/sbuild', '/usr/bin/schroot']) if (!existsSync(tool)) throw new Error(`${tool} is not installed`);
  const tarball = await ensureBookwormTarball();
  if ('skip' in tarball) throw new Error(tarball.skip);
  const hello = await ensureHelloSource();
  if ('skip' in hello) throw new Error(hello.skip);

  const st = statSync(SBUILD_BUILD);
  const tmp = mkdtempSync(join(tmpdir(), 'warden-bench-sbuild-'));
  chmodSync(tmp, 0o755);
  const name = `wdn${process.pid}-${CHROOT}`;
  const conf = join('/etc/schroot/chroot.d', `${name}-${basename(tmp)}`);
  const stateDir = join(tmp, 'sessions');
  let user: SbuildUser | undefined;
  let sup: ChildProcess | undefined;
  const builds: Record<Tool, Build[]> = { warden: [], schroot: [] };
  const calls: Record<Tool, SchrootCall[][]> = { warden: [], schroot: [] };
  try {
    const chroot = join(tmp, CHROOT);
    await unpackChroot(tarball.path, chroot);
    setUpLikeSbuildCreatechroot(chroot);
    // The unpack's 446 MB of writeback would otherwise land on the first build (warden's).
    spawnSync('sync', ['--file-system', chroot]);
    const buildDir = join(tmp, 'build');
    mkdirSync(buildDir, { mode: 0o755 });
    const sb = passwdIds('sbuild');
    chownSync(buildDir, sb.uid, sb.gid);
    const config = join(tmp, 'etc', 'warden.conf');
    // The profile goes to <tmp>/etc/sbuild, beside the config: warden resolves profile= there.
    const hooksDir = writeSbuildProfile(tmp, buildDir);
    writeFileSync(config, wardenConfig(hooksDir, chroot));
    // The real schroot, bound here in the builds' own mount namespace, for its logging wrapper.
    const realAt = join(tmp, 'real-schroot');
    writeFileSync(realAt, '', { mode: 0o755 });
    // Under a name of our own: a second [bookworm-amd64-sbuild] would break schroot for everyone.
    writeFileSync(conf, schrootConfig(name, chroot), { mode: 0o644 });
    user = makeUser();
    sup = await startSupervisor({ PATH: process.env.PATH, WARDEN_CONFIG: config, WARDEN_STATE_DIR: stateDir }, join(tmp, 'supervisor.log'));
    const started = Date.now();

    for (let i = 0; i < BUILDS; i++) {
      const order: Tool[] = i % 2 === 0 ? ['warden', 'schroot'] : ['schroot', 'warden'];
      for (const tool of order) {
        const work = join(tmp, `work-${tool}-${i}`);
        prepareWork(user, work, hello.dsc);
        // Each build logs its schroot calls (writeLoggingSchrootScript) to a file of the user's.
        const log = join(tmp, `calls-${tool}-${i}.log`);
        writeFileSync(log, '', { mode: 0o644 });
        chownSync(log, user.uid, user.gid);
        const bin = join(tmp, `bin-${tool}-${i}`);
        const b =
          tool === 'warden'
            ? await runSbuild(user, work, writeLoggingSchrootScript(bin, 'schroot', wardenSchrootExec(stateDir), log))
            : await runSbuild(user, work, writeLoggingSchrootScript(bin, 'schroot', realAt, log), [`--chroot=${name}`], undefined, realAt);
        calls[tool].push(schrootCalls(log));
        if (b.problems.length > 0) throw new Error(`${tool} build ${i + 1} failed: ${whyFailed(b)}`);
        const where = chrootOf(b.log) ?? '';
        if (tool === 'warden' ? !where.startsWith(`${stateDir}/`) : !/^\/(var\/)?run\/schroot\/mount\//.test(where)) throw new Error(`${tool} build ${i + 1} ran in ${where}`);
        builds[tool].push(b);
        console.log(`${tool.padEnd(7)} build ${i + 1}/${BUILDS}: ${(b.ms / 1000).toFixed(1)} s wall; ${FIELDS.map((f) => `${f} ${summaryTime(b.log, f)} s`).join(', ')}`);
      }
    }

    const wall = (tool: Tool) => summarize(builds[tool].map((b) => b.ms / 1000));
    const times = (tool: Tool, field: Field) => builds[tool].map((b) => summaryTime(b.log, field) ?? NaN);
    const info = (field: Field, what: string): Row => ({ section, metric: `sbuild's ${field} (${what})`, unit: 's', measured: summarize(times('warden', field)).p50, baseline: summarize(times('schroot', field)).p50, baselineNote: 'schroot', ratio: true });
    const section = `sbuild of hello 2.10-3, bookworm amd64 (median of ${BUILDS} builds each, alternating)`;
    const rows: Row[] = [
      { section, metric: 'wall time of sbuild: warden-schroot / schroot', unit: 's', measured: wall('warden').p50, baseline: wall('schroot').p50, baselineNote: 'schroot', target: { kind: 'ratio', max: 1.0 } },
      info('Package-Time', 'the whole job'),
      info('Install-Time', 'build dependencies'),
      info('Build-Time', 'dpkg-buildpackage'),
    ];
    const callSection = 'schroot calls of one build, as sbuild makes them (medians over all builds)';
    const kindMs = (tool: Tool, kind: SchrootCall['kind']) => calls[tool].flat().filter((c) => c.kind === kind && c.end !== undefined).map((c) => c.end! - c.start);
    const perBuild = (tool: Tool) => calls[tool].map((cs) => cs.reduce((sum, c) => sum + (c.end ?? c.start) - c.start, 0) / 1000);
    const callRow = (kind: SchrootCall['kind'], what: string): Row => ({ section: callSection, metric: `${what} (${kindMs('warden', kind).length / BUILDS} a build)`, unit: 'ms', measured: summarize(kindMs('warden', kind)).p50, baseline: summarize(kindMs('schroot', kind)).p50, baselineNote: 'schroot', ratio: true });
    rows.push(
      callRow('begin', '--begin-session'),
      callRow('run', '--run-session'),
      callRow('end', '--end-session'),
      callRow('info', '--info'),
      { section: callSection, metric: 'time inside schroot calls, per build', unit: 's', measured: summarize(perBuild('warden')).p50, baseline: summarize(perBuild('schroot')).p50, baselineNote: 'schroot', ratio: true },
    );
    const evaluated = rows.map(evaluate);
    const load = spawnSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).stdout.trim();
    printTable(`sbuild through warden vs schroot (${((Date.now() - started) / 1000).toFixed(0)} s, ${machine().cpus} CPUs, load ${load})`, evaluated);
    const spread = (['warden', 'schroot'] as const).map((tool) => `${tool.padEnd(8)} ${builds[tool].map((b) => (b.ms / 1000).toFixed(1)).join(', ')} s`);
    console.log(['', 'each build, in order', ...spread].join('\n'));
    const file = writeResults('sbuild', {
      bench: 'sbuild',
      date: new Date().toISOString(),
      machine: machine(),
      loadavg: load,
      builds: BUILDS,
      rows: evaluated,
      wallSeconds: { warden: builds.warden.map((b) => b.ms / 1000), schroot: builds.schroot.map((b) => b.ms / 1000) },
      sbuildTimes: Object.fromEntries(FIELDS.map((f) => [f, { warden: times('warden', f), schroot: times('schroot', f) }])),
      callMs: Object.fromEntries((['begin', 'run', 'end', 'info'] as const).map((k) => [k, { warden: kindMs('warden', k), schroot: kindMs('schroot', k) }])),
    });
    console.log(`results: ${file}`);
  } finally {
    if (sup) await stopSupervisor(sup);
    await shutdownWaitPool();
    // After a failed build: the sessions it left, warden's and schroot's.
    if (existsSync(stateDir) && readdirSync(stateDir).some((n) => n.startsWith(`${CHROOT}-`))) {
      spawnSync(process.execPath, [WARDEN, 'recover', '--all', '--end'], { env: { ...process.env, WARDEN_CONFIG: join(tmp, 'warden.conf'), WARDEN_STATE_DIR: stateDir }, stdio: 'inherit' });
    }
    const sessions = spawnSync('schroot', ['-l', '--all-sessions'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(`session:${name}-`));
    for (const id of sessions) spawnSync('schroot', ['-e', '-c', id], { stdio: 'inherit' });
    rmSync(conf, { force: true });
    for (const m of mountsUnder(tmp).reverse()) spawnSync('umount', ['-l', m.mountPoint]);
    rmSync(tmp, { recursive: true, force: true });
    if (user) removeUser(user.name);
    chownSync(SBUILD_BUILD, st.uid, st.gid);
    chmodSync(SBUILD_BUILD, st.mode & 0o7777);
  }
}

main().catch((e) => {
  console.error(`bench/sbuild: ${(e as Error).stack ?? (e as Error).message}`);
  process.exit(1);
});
