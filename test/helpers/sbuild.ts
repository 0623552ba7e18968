// Debian's sbuild against warden-schroot and against the real schroot, set
// up as test/sbuild/README.md recorded it: a bookworm buildd chroot as
// sbuild-createchroot leaves one, schroot's `sbuild` profile (profile=sbuild
// for both, warden reading a copy of it), a member of group sbuild with
// its ~/.sbuildrc, and the build of hello run as that user. Shared by
// test/sbuild/sbuild.test.ts and bench/sbuild.ts.
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, chmodSync, chownSync, copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { REPO } from './chroots.js';

/** The name sbuild looks for first for `-d bookworm --arch=amd64`. */
export const CHROOT = 'bookworm-amd64-sbuild';
export const DSC = 'hello_2.10-3.dsc';
export const DEB = 'hello_2.10-3_amd64.deb';
/** schroot's sbuild profile binds this on /build; sbuild chowns and chmods it through the bind. */
export const SBUILD_BUILD = '/var/lib/sbuild/build';

export interface SbuildUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export function passwdIds(user: string): { uid: number; gid: number } {
  const f = spawnSync('getent', ['passwd', user], { encoding: 'utf8' }).stdout.split(':');
  if (f.length < 4) throw new Error(`no user ${user}`);
  return { uid: Number(f[2]), gid: Number(f[3]) };
}

export function inGroupSbuild(name: string): boolean {
  const members = spawnSync('getent', ['group', 'sbuild'], { encoding: 'utf8' }).stdout.trim().split(':')[3] ?? '';
  return members.split(',').includes(name);
}

/** README step 3: what sbuild-createchroot does to a fresh chroot, less what needs the network. */
export function setUpLikeSbuildCreatechroot(chroot: string): void {
  appendFileSync(join(chroot, 'etc', 'passwd'), spawnSync('getent', ['passwd', 'sbuild'], { encoding: 'utf8' }).stdout);
  appendFileSync(join(chroot, 'etc', 'group'), spawnSync('getent', ['group', 'sbuild'], { encoding: 'utf8' }).stdout);
  if (!existsSync(join(chroot, 'etc', 'hosts'))) {
    writeFileSync(join(chroot, 'etc', 'hosts'), '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n', { mode: 0o644 });
  }
  const policy = join(chroot, 'usr', 'sbin', 'policy-rc.d');
  writeFileSync(policy, '#!/bin/sh\necho "All runlevel operations denied by policy" >&2\nexit 101\n');
  chmodSync(policy, 0o775);
  appendFileSync(join(chroot, 'etc', 'apt', 'sources.list'), 'deb-src http://deb.debian.org/debian bookworm main\n');
}

/**
 * schroot's sbuild profile for warden, beside the config `<tmp>/etc/warden.conf`
 * (warden resolves `profile=NAME` in the config's directory, as schroot does
 * in /etc/schroot): `<tmp>/etc/sbuild/` with the host profile's copyfiles and
 * nssdatabases as they are, and its fstab with `buildDir` (owned by sbuild)
 * on /build instead of the host's /var/lib/sbuild/build. /dev is the
 * chroot's own (mmdebstrap made its nodes), as with schroot. Root-owned,
 * 0755/0644: warden reads no profile another user could write. Also an empty
 * hooks dir (the profile takes the place of the default hooks anyway).
 * Returns the hooks dir.
 */
export function writeSbuildProfile(tmp: string, buildDir: string): string {
  const profile = join(tmp, 'etc', 'sbuild');
  mkdirSync(profile, { recursive: true, mode: 0o755 });
  chmodSync(join(tmp, 'etc'), 0o755);
  chmodSync(profile, 0o755);
  const host = '/etc/schroot/sbuild';
  const fstab = readFileSync(join(host, 'fstab'), 'utf8').replace(/^\/var\/lib\/sbuild\/build(\s)/m, `${buildDir}$1`);
  if (!fstab.includes(buildDir)) throw new Error(`${host}/fstab binds no /var/lib/sbuild/build on /build: the sbuild package changed`);
  for (const [name, text] of [
    ['fstab', fstab],
    ['copyfiles', readFileSync(join(host, 'copyfiles'), 'utf8')],
    ['nssdatabases', readFileSync(join(host, 'nssdatabases'), 'utf8')],
  ] as const) {
    writeFileSync(join(profile, name), text, { mode: 0o644 });
    chmodSync(join(profile, name), 0o644);
  }
  const hooks = join(tmp, 'hooks');
  mkdirSync(hooks, { mode: 0o755 });
  chmodSync(hooks, 0o755);
  return hooks;
}

/** The warden configuration: what sbuild-createchroot writes, profile=sbuild included (see writeSbuildProfile). */
export function wardenConfig(hooks: string, chroot: string): string {
  return ['[warden]', 'socket-group=sbuild', `hooks-dir=${hooks}`, '', `[${CHROOT}]`, ...createchrootLines(chroot), 'profile=sbuild', ''].join('\n');
}

/** schroot's chroot.d file as sbuild-createchroot writes it, under another name (see the test). */
export function schrootConfig(name: string, chroot: string): string {
  return [`[${name}]`, ...createchrootLines(chroot), 'profile=sbuild', ''].join('\n');
}

function createchrootLines(chroot: string): string[] {
  return ['description=Debian bookworm/amd64 autobuilder', 'groups=root,sbuild', 'root-groups=root,sbuild', 'type=directory', `directory=${chroot}`, 'union-type=overlay'];
}

/**
 * `<dir>/schroot`, root's 0755 script that runs warden-schroot on our state
 * dir (sbuild strips the environment of its calls, so the state dir rides in
 * the script). Returns its path.
 */
export function writeSchrootScript(dir: string, stateDir: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, 'schroot');
  writeFileSync(path, `#!/bin/sh\nWARDEN_STATE_DIR=${stateDir} exec ${join(REPO, 'dist', 'bin', 'warden-schroot')} "$@"\n`, { mode: 0o755 });
  chmodSync(path, 0o755);
  return path;
}

/** A build dir `work` for `user` holding the hello source files (from `dsc`'s dir), and its ~/.sbuildrc as in the README. */
export function prepareWork(user: SbuildUser, work: string, dsc: string): void {
  const rc = join(user.home, '.sbuildrc');
  writeFileSync(rc, "$chroot_mode = 'schroot';\n$distribution = 'bookworm';\n$run_lintian = 0;\n$run_autopkgtest = 0;\n$run_piuparts = 0;\n1;\n");
  chownSync(rc, user.uid, user.gid);
  mkdirSync(work, { mode: 0o755 });
  for (const name of readdirSync(dirname(dsc))) {
    copyFileSync(join(dirname(dsc), name), join(work, name));
    chownSync(join(work, name), user.uid, user.gid);
  }
  chownSync(work, user.uid, user.gid);
}

export interface Build {
  status: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  /** sbuild's stdout and stderr. */
  output: string;
  /** The build log (the `.build` file), or why there is none. */
  log: string;
  /** Whether exit 0, "Status: successful" and the .deb; else what was missing. */
  problems: string[];
}

/**
 * Runs sbuild on hello as `user` (its groups as initgroups gives them:
 * sbuild needs group sbuild) with a clean login-like environment, in
 * `work`, stdin /dev/null, no terminal, as the README's recording did.
 *
 * `schroot`: the program to be /usr/bin/schroot for this sbuild only, or
 * undefined for the real one. sbuild lists the chroots with `local %ENV`
 * (Sbuild/ChrootInfoSchroot.pm): no PATH, so execvp(3) looks in /bin:/usr/bin
 * only and a directory in front of the user's PATH is never asked. The
 * host's /usr/bin/schroot is not ours to divert (others on this machine run
 * schroot): sbuild runs in a mount namespace of its own (unshare(1), private
 * propagation) where `schroot` is bound over /usr/bin/schroot. The sessions'
 * mounts, which warden's supervisor makes on the host, are not seen there,
 * which sbuild does not need: of a session's Location it only checks that it
 * is a directory; files cross through schroot's stdio.
 */
export async function runSbuild(user: SbuildUser, work: string, schroot: string | undefined, extra: readonly string[] = [], timeoutMs = 8 * 60_000, realAt?: string): Promise<Build> {
  const run = ['setpriv', '--reuid', String(user.uid), '--regid', String(user.gid), '--init-groups', '--', 'sbuild', '-d', 'bookworm', '--arch=amd64', ...extra, '--no-run-lintian', '--no-run-autopkgtest', DSC];
  const env = { HOME: user.home, USER: user.name, LOGNAME: user.name, SHELL: '/bin/sh', PATH: '/usr/local/bin:/usr/bin:/bin' };
  const { status, signal, ms, output } = await runWithSchroot(run, schroot, { cwd: work, env, realAt }, timeoutMs);
  // sbuild writes hello_2.10-3_amd64-<date>.build and a symlink hello_2.10-3_amd64.build to it.
  const logFile = join(work, 'hello_2.10-3_amd64.build');
  const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : `(no ${logFile}; files: ${readdirSync(work).join(' ')})`;
  const problems = [
    status === 0 ? '' : `sbuild: exit ${status}${signal ? ` (${signal})` : ''}`,
    /^Status: successful$/m.test(log) ? '' : 'no "Status: successful" in the build log',
    existsSync(join(work, DEB)) ? '' : `no ${DEB} in ${work}`,
  ].filter(Boolean);
  return { status, signal, ms, output, log, problems };
}

export interface Ran {
  status: number | null;
  signal: NodeJS.Signals | null;
  ms: number;
  /** stdout and stderr, interleaved as they came. */
  output: string;
}

/**
 * Runs `argv` with `schroot` bound over /usr/bin/schroot in a mount
 * namespace of its own (see runSbuild), or with the real one when
 * `schroot` is undefined; stdin /dev/null, SIGTERM after `timeoutMs`.
 * `realAt`: an existing file on which the real /usr/bin/schroot is bound
 * first, in that namespace only, for a `schroot` that wraps the real one
 * (see writeLoggingSchrootScript).
 */
export async function runWithSchroot(argv: readonly string[], schroot: string | undefined, opts: { cwd: string; env: NodeJS.ProcessEnv; realAt?: string }, timeoutMs: number): Promise<Ran> {
  const bind = opts.realAt ? 'mount --bind /usr/bin/schroot "$2" && mount --bind "$1" /usr/bin/schroot && shift 2 && exec "$@"' : 'mount --bind "$1" /usr/bin/schroot && shift && exec "$@"';
  const [cmd, ...args] =
    schroot === undefined ? argv : ['unshare', '--mount', '--propagation', 'private', '--', '/bin/sh', '-c', bind, 'sh', schroot, ...(opts.realAt ? [opts.realAt] : []), ...argv];
  const start = performance.now();
  const child = spawn(cmd!, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
  const timer = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
  const [status, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('close', (c, s) => resolve([c, s])));
  clearTimeout(timer);
  return { status, signal, ms: performance.now() - start, output };
}

/**
 * `sbuild-update -ud CHROOT` as root (as its manual has it: `sudo
 * sbuild-update`; a member of group sbuild is refused by the chroot.d entry
 * sbuild-createchroot writes, which grants no source access), through
 * `schroot` as runSbuild does. It begins a session of `source:CHROOT`,
 * runs apt-get update and dist-upgrade in it, and ends it.
 */
export async function runSbuildUpdate(schroot: string | undefined, cwd: string, timeoutMs = 8 * 60_000): Promise<Ran> {
  return await runWithSchroot(['sbuild-update', '-ud', CHROOT], schroot, { cwd, env: { HOME: '/root', USER: 'root', LOGNAME: 'root', SHELL: '/bin/sh', PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } }, timeoutMs);
}

/**
 * `<dir>/<name>`, a 0755 script that runs `exec` (a shell command line,
 * e.g. warden-schroot with its state dir, or the real schroot bound
 * elsewhere: runWithSchroot's realAt) with its arguments, and logs each
 * call as two lines appended to `log` (which must be writable by the
 * caller): `S <pid> <epoch ms> <kind> <chroot>` before and `E <pid> <epoch
 * ms> <status>` after, where kind is begin, run, end, info, list or other
 * and chroot the -c argument. Not exec'd: the shell waits (signals to the
 * script are not forwarded); its two date(1)s cost ~2 ms a call.
 */
export function writeLoggingSchrootScript(dir: string, name: string, exec: string, log: string): string {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const path = join(dir, name);
  const script = `#!/bin/sh
kind=other c=- prev=
for a in "$@"; do
  case "$a" in
    -b|--begin-session) kind=begin ;; -e|--end-session) kind=end ;; -r|--run-session) kind=run ;;
    -i|--info) kind=info ;; -l|--list) kind=list ;; --) break ;;
  esac
  case "$prev" in -c|--chroot) c=$a ;; esac
  prev=$a
done
ms() { t=$(date +%s%N); echo "\${t%??????}"; }
echo "S $$ $(ms) $kind $c" >> '${log}'
${exec} "$@"
rc=$?
echo "E $$ $(ms) $rc" >> '${log}'
exit $rc
`;
  writeFileSync(path, script, { mode: 0o755 });
  chmodSync(path, 0o755);
  return path;
}

/** The exec for writeLoggingSchrootScript that runs warden-schroot on `stateDir`. */
export function wardenSchrootExec(stateDir: string): string {
  return `WARDEN_STATE_DIR=${stateDir} ${join(REPO, 'dist', 'bin', 'warden-schroot')}`;
}

export interface SchrootCall {
  pid: number;
  kind: 'begin' | 'run' | 'end' | 'info' | 'list' | 'other';
  chroot: string;
  start: number;
  /** Epoch ms it returned, undefined while it runs. */
  end?: number;
  status?: number;
}

/** The calls a writeLoggingSchrootScript log records, in the order they started. */
export function schrootCalls(log: string): SchrootCall[] {
  if (!existsSync(log)) return [];
  const calls: SchrootCall[] = [];
  const open = new Map<number, SchrootCall>();
  for (const line of readFileSync(log, 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[0] === 'S' && f.length === 5) {
      const call: SchrootCall = { pid: Number(f[1]), start: Number(f[2]), kind: f[3] as SchrootCall['kind'], chroot: f[4]! };
      calls.push(call);
      open.set(call.pid, call);
    } else if (f[0] === 'E' && f.length === 4) {
      const call = open.get(Number(f[1]));
      if (call) {
        call.end = Number(f[2]);
        call.status = Number(f[3]);
        open.delete(call.pid);
      }
    }
  }
  return calls;
}

/** The chroot sbuild built in, from its log: it filters the session's Location (less the leading /) out as <<CHROOT>>. */
export function chrootOf(log: string): string | undefined {
  const m = /^I: NOTICE: Log filtering will replace '(.+)' with '<<CHROOT>>'$/m.exec(log);
  return m ? `/${m[1]}` : undefined;
}

/** A time (s) of the log's summary: Package-Time (the whole job), Install-Time (the build dependencies), Build-Time (dpkg-buildpackage). */
export function summaryTime(log: string, field: 'Package-Time' | 'Install-Time' | 'Build-Time'): number | undefined {
  const m = new RegExp(`^${field}: (\\d+)$`, 'm').exec(log);
  return m ? Number(m[1]) : undefined;
}

export const packageTime = (log: string): number | undefined => summaryTime(log, 'Package-Time');

export function tail(text: string, lines = 150): string {
  return text.split('\n').slice(-lines).join('\n');
}

/** What a failed build says: its problems, the end of sbuild's output and of its log. */
export function whyFailed(b: Build): string {
  return `${b.problems.join('; ')}\n--- sbuild output (tail) ---\n${tail(b.output, 40)}\n--- build log (tail) ---\n${tail(b.log)}`;
}
