// The supervisor as a broker (issue 16): real throwaway users (useradd)
// call the compiled relay (dist/bin/warden), which passes its stdin,
// stdout and stderr to a real root `warden supervise`; the supervisor
// starts their commands in real overlay sessions, as them. Checked: stdio
// and the exit status pass through; the command runs as the caller, in its
// cwd, with a clean environment; refusals (not admitted, -u root, another
// user's session) exit 8 before anything is touched; SIGINT and SIGTERM
// reach the command; an interactive shell gets a pty of its own; SIGKILL of
// the client hangs its command up and ends its automatic session; 20
// automatic sessions of one user at once; the supervisor killed while a
// command runs; malformed requests; source entries (source-users=,
// source-root-users=, --recover-stale; busy, timed out, interrupted while
// waiting). Nothing is left behind.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { lockHolders } from '../../src/locks/index.js';
import { manageLockPath, sourceLockPath } from '../../src/sessions/index.js';
import { SUPERVISOR_SOCKET } from '../../src/supervisor/index.js';
import { DEFAULT_HOOKS, isRoot, REPO, stateEntries, type Fixture } from '../helpers/chroots.js';
import { untilOutput, warden, writeConfig, type CliEnv, type Result, type Running } from '../helpers/cli.js';
import { untilBlocked } from '../helpers/leaks.js';
import { TestTerminal } from '../helpers/terminal.js';
import { makeGroup, makeUser, type TestUser } from '../helpers/users.js';
import { supervise as superviseEnv, supervisedFixture } from '../helpers/supervised.js';
import { until } from '../helpers/wait.js';

const test = anyTest as TestFn;
const asRoot = isRoot ? test.serial : test.serial.skip;
const NEEDS_ROOT = isRoot ? '' : ' (skipped: needs root to create users and mount sessions)';
const RELAY = join(REPO, 'dist', 'bin', 'warden');

let fx: Fixture;
let env: CliEnv;

supervisedFixture(test, 'warden-security-broker-', (f, e) => {
  fx = f;
  env = e;
});

/** chroot fx open to `users` (root-users: `rootUsers`), the socket to `group`. */
function configure(group: string, users: TestUser[], rootUsers: TestUser[] = [], extra: string[] = []): void {
  writeConfig(
    fx.tmp,
    [
      '[warden]',
      `socket-group=${group}`,
      `hooks-dir=${fx.noHooks}`,
      '',
      '[fx]',
      'type=directory',
      `directory=${fx.source}`,
      'union-type=overlay',
      `users=${users.map((u) => u.name).join(',')}`,
      `root-users=${rootUsers.map((u) => u.name).join(',')}`,
      ...extra,
      '',
    ].join('\n'),
  );
}

const supervise = (t: ExecutionContext, lockMode?: 'posix') => superviseEnv(t, env, lockMode ? { WARDEN_LOCK_MODE: lockMode } : {});

function running(child: ChildProcess): Running {
  const output = { stdout: '', stderr: '' };
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (output.stdout += d));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => (output.stderr += d));
  const result = new Promise<Result>((resolve) => child.once('close', (status, signal) => resolve({ status, signal, ...output })));
  return Object.assign(child, { result, output });
}

const userEnv = (extra: NodeJS.ProcessEnv = {}) => ({ PATH: '/usr/bin:/bin', WARDEN_STATE_DIR: env.stateDir, ...extra });

/** The relay as `user` (with group `gid`: default theirs), to the end. */
function relay(user: TestUser, args: string[], o: { input?: string; cwd?: string; env?: NodeJS.ProcessEnv; gid?: number } = {}): Result {
  const r = spawnSync(RELAY, args, { uid: user.uid, gid: o.gid ?? user.gid, env: userEnv(o.env), cwd: o.cwd ?? '/', input: o.input ?? '', encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** The relay as `user`, running. */
function relayAsync(user: TestUser, args: string[]): Running {
  return running(spawn(RELAY, args, { uid: user.uid, gid: user.gid, env: userEnv(), cwd: '/', stdio: ['pipe', 'pipe', 'pipe'] }));
}

/** Resolves once no process of `user` is left (a command just reaped may still be exiting); fails after 5 s. */
async function nothingOf(user: TestUser): Promise<void> {
  await until(() => spawnSync('pgrep', ['-u', String(user.uid)]).status === 1, `no process of ${user.name} left`, 5000);
}

/** Session dirs in the state dir now. */
const sessions = () => stateEntries(env.stateDir).filter((n) => !n.startsWith('supervisor.') && !n.startsWith('.'));

asRoot(`stdio, the exit status, the caller's uid, groups, cwd and a clean environment pass through the broker${NEEDS_ROOT}`, async (t) => {
  const extra = makeGroup(t);
  const user = makeUser(t, { groups: [extra.name] });
  configure(user.name, [user]);
  await supervise(t);
  const r = relay(user, ['run', '-c', 'fx', '--', '/bin/sh', '-c', 'cat; echo "uid=$(id -u) pwd=$(pwd) home=$HOME secret=${SECRET-unset}" ; echo to-stderr >&2; exit 3'], {
    input: 'from stdin\n',
    cwd: '/tmp',
    env: { SECRET: 'hunter2' },
  });
  t.is(r.status, 3, r.stderr);
  t.is(r.stdout, `from stdin\nuid=${user.uid} pwd=/tmp home=/nonexistent secret=unset\n`);
  t.is(r.stderr, 'to-stderr\n');
  // Its primary group and its groups in the host's /etc/group, as initgroups(3) gives them.
  const groups = relay(user, ['run', '-c', 'fx', '--', '/bin/sh', '-c', 'id -g; id -G']);
  t.is(groups.stdout, `${user.gid}\n${user.gid} ${extra.gid}\n`, groups.stderr);
  // -p keeps the caller's environment.
  const p = relay(user, ['run', '-c', 'fx', '-p', '--', '/bin/sh', '-c', 'echo "$SECRET"'], { env: { SECRET: 'hunter2' } });
  t.is(p.stdout, 'hunter2\n', p.stderr);
  // 126 and 127 as from the CLI.
  t.is(relay(user, ['run', '-c', 'fx', '--', '/no/such/command']).status, 127);
  t.is(sessions().length, 0, 'the automatic sessions are ended');
});

asRoot(`the command gets the client's umask, nice value and resource limits, as schroot's commands get their caller's${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  // The default hooks: /proc in the session, for the command to read its nice value.
  configure(user.name, [user], [], [`hooks=${DEFAULT_HOOKS}`]);
  await supervise(t);
  // Field 19 of /proc/self/stat (sh's comm has no space), the umask and the open-files limits.
  const probe = 'umask; ulimit -S -n; ulimit -H -n; ulimit -S -c; read -r s < /proc/self/stat; set -- $s; shift 18; echo "nice $1"';
  const asClient = (setup: string) =>
    spawnSync('/bin/sh', ['-c', `${setup}; exec "$@"`, 'sh', RELAY, 'run', '-c', 'fx', '--', '/bin/sh', '-c', probe], { uid: user.uid, gid: user.gid, env: userEnv(), cwd: '/', encoding: 'utf8', timeout: 60_000 });
  const r = asClient('umask 0027; ulimit -S -n 512; ulimit -H -n 1024; ulimit -S -c 0; renice -n 6 -p $$ >/dev/null');
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, '0027\n512\n1024\n0\nnice 6\n');
  const other = asClient('umask 0002; ulimit -S -n 300; ulimit -S -c 1000');
  t.is(other.stdout, `0002\n300\n${spawnSync('/bin/sh', ['-c', 'ulimit -H -n'], { encoding: 'utf8' }).stdout.trim()}\n1000\nnice 0\n`, other.stderr);
  t.is(sessions().length, 0);
});

asRoot(`begin, run -s and end as a user; another user's session, -u root and a user not admitted are refused with exit 8 before anything is touched${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  const other = makeUser(t);
  const outsider = makeUser(t);
  configure(user.name, [user, other]);
  await supervise(t);
  const b = relay(user, ['begin', '-c', 'fx']);
  t.is(b.status, 0, b.stderr);
  const id = b.stdout.trim();
  t.regex(id, /^fx-/);
  t.is(JSON.parse(readFileSync(join(env.stateDir, id, 'state.json'), 'utf8')).owner.uid, user.uid);
  const w = relay(user, ['run', '-s', id, '--', '/bin/sh', '-c', 'echo kept > /tmp/mine; id -u']);
  t.is(w.status, 0, w.stderr);
  t.is(w.stdout, `${user.uid}\n`);
  t.is(relay(user, ['run', '-s', id, '--', '/bin/cat', '/tmp/mine']).stdout, 'kept\n');
  const root = relay(user, ['run', '-s', id, '-u', 'root', '--', '/bin/true']);
  t.is(root.status, 8, root.stderr);
  t.regex(root.stderr, /may not run commands as root or as another user in sessions of chroot "fx": root-users= and root-groups= are empty/);
  // The others reach the socket (mode 0660) as members of its group, here as their primary group.
  const theirs = spawnSync(RELAY, ['run', '-s', id, '--', '/bin/true'], { uid: other.uid, gid: user.gid, env: userEnv(), encoding: 'utf8' });
  t.is(theirs.status, 8, theirs.stderr);
  t.regex(theirs.stderr, new RegExp(`uid ${other.uid} may not run in session ${id}: it belongs to uid ${user.uid}`));
  const stranger = spawnSync(RELAY, ['run', '-c', 'fx', '--', '/bin/true'], { uid: outsider.uid, gid: user.gid, env: userEnv(), encoding: 'utf8' });
  t.is(stranger.status, 8, stranger.stderr);
  t.regex(stranger.stderr, new RegExp(`user "${outsider.name}" \\(uid ${outsider.uid}\\) may not begin or run in sessions of chroot "fx"`));
  const endOther = spawnSync(RELAY, ['end', '-s', id], { uid: other.uid, gid: user.gid, env: userEnv(), encoding: 'utf8' });
  t.is(endOther.status, 8, endOther.stderr);
  t.deepEqual(sessions(), [id], 'nothing was begun or ended by the refused calls');
  // recover goes through the supervisor too: its owner only, and a session it holds is not stale (exit 5, as from the CLI).
  const rec = relay(user, ['recover', '-s', id, '--', '/bin/true']);
  t.is(rec.status, 5, rec.stderr);
  t.regex(rec.stderr, new RegExp(`session ${id}: it is active, not stale`));
  const recOther = spawnSync(RELAY, ['recover', '-s', id, '--end'], { uid: other.uid, gid: user.gid, env: userEnv(), encoding: 'utf8' });
  t.is(recOther.status, 8, recOther.stderr);
  t.regex(recOther.stderr, new RegExp(`uid ${other.uid} may not recover session ${id}`));
  const e = relay(user, ['end', '-s', id]);
  t.is(e.status, 0, e.stderr);
  t.deepEqual(sessions(), []);
});

asRoot(`SIGINT and SIGTERM sent to the client reach the command; SIGKILL of the client hangs up its command and ends its automatic session${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  configure(user.name, [user]);
  await supervise(t);
  for (const [sig, status] of [['SIGINT', 7], ['SIGTERM', 8]] as const) {
    const r = relayAsync(user, ['run', '-c', 'fx', '--', '/bin/sh', '-c', 'trap "echo got INT; exit 7" INT; trap "echo got TERM; exit 8" TERM; echo ready; while :; do sleep 0.05; done']);
    await untilOutput(r, /ready/);
    r.kill(sig);
    const res = await r.result;
    t.is(res.status, status, res.stderr);
    t.regex(res.stdout, sig === 'SIGINT' ? /got INT/ : /got TERM/);
  }
  const k = relayAsync(user, ['run', '-c', 'fx', '--', '/bin/sh', '-c', 'echo ready; exec sleep 1000']);
  await untilOutput(k, /ready/);
  t.is(sessions().length, 1);
  const started = Date.now();
  k.kill('SIGKILL');
  await k.result;
  await until(() => sessions().length === 0, 'the automatic session ended', 10_000);
  t.true(Date.now() - started < 5000, `ended within 5 s (${Date.now() - started} ms)`);
  await nothingOf(user);
});

asRoot(`an interactive shell gets a pty of its own; Ctrl-C in it interrupts the foreground command, not the shell${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  configure(user.name, [user]);
  await supervise(t);
  const term = new TestTerminal();
  t.teardown(() => term.close());
  const before = term.modes();
  const shell = term.start(['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', RELAY, 'run', '-c', 'fx', '--', '/bin/sh', '-i'], {
    env: userEnv({ TERM: 'dumb', PS1: '$ ' }),
  });
  await term.until(/\$ $/);
  term.type('test -t 0 && echo interactive\n');
  await term.until(/interactive/);
  term.type('sleep 1000\n');
  let sleeper = '';
  await until(() => (sleeper = spawnSync('pgrep', ['-u', String(user.uid), '-x', 'sleep'], { encoding: 'utf8' }).stdout.trim()) !== '', 'sleep running');
  // The session's view has no /proc: look from the host.
  const tty = readlinkSync(`/proc/${sleeper}/fd/0`);
  t.regex(tty, /^\/dev\/pts\/\d+$/);
  t.not(tty, term.path, 'a pty of its own, not the caller terminal');
  term.type('\x03');
  // The shell is still there, and its foreground command died of the SIGINT.
  await term.until(/\^C\r\n\$ $/);
  term.type('echo after-sleep $?\n');
  await term.until(/after-sleep 130/);
  term.type('exit 4\n');
  t.is(await shell.status, 4);
  t.is(term.modes(), before, 'the terminal is restored');
});

asRoot(`20 automatic sessions of one user at once${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  configure(user.name, [user]);
  await supervise(t);
  const runs = Array.from({ length: 20 }, (_, i) => relayAsync(user, ['run', '-c', 'fx', '--', '/bin/sh', '-c', `echo ${i} > /tmp/n; cat /tmp/n`]));
  const results = await Promise.all(runs.map((r) => r.result));
  results.forEach((r, i) => {
    t.is(r.status, 0, r.stderr);
    t.is(r.stdout, `${i}\n`);
  });
  t.deepEqual(sessions(), []);
});

asRoot(`the supervisor killed while a command runs: the client exits 125 saying so, the command keeps its session, the next supervisor re-adopts it${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  configure(user.name, [user]);
  const s = await supervise(t);
  const id = relay(user, ['begin', '-c', 'fx']).stdout.trim();
  const r = relayAsync(user, ['run', '-s', id, '--', '/bin/sh', '-c', 'echo started; while [ ! -e /tmp/now ]; do sleep 0.05; done; echo done > /tmp/after']);
  await untilOutput(r, /started/);
  const exited = new Promise<number | null>((resolve) => r.once('exit', (code) => resolve(code)));
  s.kill('SIGKILL');
  // 'exit', not the result: the command still holds the client's stdout and stderr.
  t.is(await exited, 125);
  await untilOutput(r, /the supervisor went away/, 'stderr');
  // Written into the session's view, where the command looks.
  writeFileSync(join(env.stateDir, id, 'root', 'tmp', 'now'), '');
  await r.result;
  const again = await supervise(t);
  await until(() => readdirSync(join(env.stateDir, id, 'upper', 'fs', 'tmp')).includes('after'), 'the command finished in its session');
  await untilOutput(again, new RegExp(`re-adopted stale session ${id}|supervising`), 'stderr');
  const e = relay(user, ['end', '-s', id]);
  t.is(e.status, 0, e.stderr);
});

asRoot(`malformed requests get an error, the supervisor goes on; a client that never reads its output stalls nobody${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  configure(user.name, [user]);
  await supervise(t);
  for (const bytes of [Buffer.from('WRLY garbage\n'), Buffer.from('WRLX'), Buffer.alloc(20, 0x57)]) {
    const reply = await new Promise<Buffer>((resolve) => {
      const c = connect(join(env.stateDir, SUPERVISOR_SOCKET));
      const parts: Buffer[] = [];
      c.on('data', (d) => parts.push(d));
      c.on('error', () => {});
      c.on('close', () => resolve(Buffer.concat(parts)));
      c.end(bytes);
    });
    t.true(reply.length === 0 || reply.includes(Buffer.from('refused')), `refused or closed: ${reply.toString('latin1')}`);
  }
  // A directory for stdin is what the command gets (reading it fails), and nothing else minds.
  const dir = openSync('/', 'r');
  try {
    const d = spawnSync(RELAY, ['run', '-c', 'fx', '--', '/bin/cat'], { uid: user.uid, gid: user.gid, env: userEnv(), stdio: [dir, 'pipe', 'pipe'], encoding: 'utf8' });
    t.is(d.status, 1, d.stderr);
    t.regex(d.stderr, /Is a directory/);
  } finally {
    closeSync(dir);
  }
  // Its stdout is a pipe nobody reads: the command blocks on it, nobody else waits.
  const stuck = spawn(RELAY, ['run', '-c', 'fx', '--', '/bin/sh', '-c', 'while :; do echo xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx; done'], {
    uid: user.uid,
    gid: user.gid,
    env: userEnv(),
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  stuck.stdout!.pause();
  await until(() => sessions().length === 1, 'its session begun');
  const started = Date.now();
  const ok = relay(user, ['run', '-c', 'fx', '--', '/bin/echo', 'served']);
  t.is(ok.stdout, 'served\n', ok.stderr);
  t.true(Date.now() - started < 5000);
  stuck.kill('SIGKILL');
  await new Promise((resolve) => stuck.once('close', resolve));
  await until(() => sessions().length === 0, 'its session ended once it was gone');
});

asRoot(`POSIX lock mode: run -c and run -s through the broker, and SIGKILL of the client${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  configure(user.name, [user]);
  await supervise(t, 'posix');
  const r = relay(user, ['run', '-c', 'fx', '--', '/bin/sh', '-c', 'echo $WARDEN_LOCK_FDS']);
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, '3,4\n');
  const id = relay(user, ['begin', '-c', 'fx']).stdout.trim();
  t.is(relay(user, ['run', '-s', id, '--', '/bin/true']).status, 0);
  const k = relayAsync(user, ['run', '-c', 'fx', '--', '/bin/sh', '-c', 'echo ready; exec sleep 1000']);
  await untilOutput(k, /ready/);
  k.kill('SIGKILL');
  await until(() => sessions().length === 1, 'the automatic session ended', 10_000);
  t.is(relay(user, ['end', '-s', id]).status, 0);
});

/** A file the test writes into the source (through a command in it), removed when the test ends. */
function inSource(t: ExecutionContext, path: string): string {
  const file = join(fx.source, path);
  t.teardown(() => rmSync(file, { force: true }));
  return file;
}

/** Nobody holds or waits for the manage lock of fx, and nobody but `holders` (pids) holds its source lock. */
function nothingHeld(t: ExecutionContext, holders: number[] = []): void {
  t.deepEqual(lockHolders(manageLockPath(env.stateDir, 'fx')), [], 'nobody holds or waits for the manage lock');
  const ref = lockHolders(sourceLockPath(fx.source));
  t.deepEqual(ref.filter((h) => h.waiting || h.kind !== 'shared' || !holders.includes(h.pid)), [], 'nobody else holds or waits for the source lock');
}

asRoot(`source through the broker: a user in source-users= enters as themselves; stdio and the exit status pass through; -u root needs source-root-users=, which alone admits; others are refused with exit 8${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  const rooter = makeUser(t);
  const outsider = makeUser(t);
  configure(user.name, [], [], [`source-users=${user.name}`]);
  await supervise(t);
  const written = inSource(t, 'tmp/from-user');
  const r = relay(user, ['source', '-c', 'fx', '--', '/bin/sh', '-c', 'cat; echo "uid=$(id -u) pwd=$(pwd) session=${WARDEN_SESSION_ID-none}"; echo mine > /tmp/from-user; echo to-stderr >&2; exit 3'], {
    input: 'from stdin\n',
    cwd: '/tmp',
  });
  t.is(r.status, 3, r.stderr);
  t.is(r.stdout, `from stdin\nuid=${user.uid} pwd=/tmp session=none\n`);
  t.is(r.stderr, 'to-stderr\n');
  // Written into the source directory itself, as the user.
  t.is(readFileSync(written, 'utf8'), 'mine\n');
  t.is(statSync(written).uid, user.uid);
  t.is(relay(user, ['source', '-c', 'fx', '--', '/no/such/command']).status, 127);
  // The CLI's own checks, as from the CLI.
  const usage = relay(user, ['source', '-c', 'fx']);
  t.is(usage.status, 2, usage.stderr);
  t.regex(usage.stderr, /no command given/);
  // Root in the source is root in every later session: source-root-users= only.
  const root = relay(user, ['source', '-c', 'fx', '-u', 'root', '--', '/bin/sh', '-c', 'echo owned > /etc/owned']);
  t.is(root.status, 8, root.stderr);
  t.is(
    root.stderr,
    `warden: source -c fx: user "${user.name}" (uid ${user.uid}) may not run commands as root or as another user in the source of chroot "fx": source-root-users= and source-root-groups= are empty, so only root may (${env.config}:5)\n`,
  );
  const other = relay(user, ['source', '-c', 'fx', '-u', outsider.name, '--', '/bin/true']);
  t.is(other.status, 8, other.stderr);
  t.regex(other.stderr, /may not run commands as root or as another user in the source of chroot "fx"/);
  const stranger = relay(outsider, ['source', '-c', 'fx', '--', '/bin/true'], { gid: user.gid });
  t.is(stranger.status, 8, stranger.stderr);
  t.regex(stranger.stderr, new RegExp(`user "${outsider.name}" \\(uid ${outsider.uid}\\) may not enter the source of chroot "fx": not in source-users=, source-groups=, source-root-users= or source-root-groups=`));
  t.false(existsSync(join(fx.source, 'etc', 'owned')), 'nothing ran for the refused calls');
  // A user in source-root-users= alone enters, as themselves or as root.
  configure(user.name, [], [], [`source-users=${user.name}`, `source-root-users=${rooter.name}`]);
  const owned = inSource(t, 'etc/owned');
  const rooted = relay(rooter, ['source', '-c', 'fx', '-u', 'root', '--', '/bin/sh', '-c', 'id -u; echo owned > /etc/owned'], { gid: user.gid });
  t.is(rooted.status, 0, rooted.stderr);
  t.is(rooted.stdout, '0\n');
  t.is(statSync(owned).uid, 0);
  const self = relay(rooter, ['source', '-c', 'fx', '--', '/bin/sh', '-c', 'id -u'], { gid: user.gid });
  t.is(self.stdout, `${rooter.uid}\n`, self.stderr);
  // The user of source-users= still may not.
  t.is(relay(user, ['source', '-c', 'fx', '-u', 'root', '--', '/bin/true']).status, 8);
  nothingHeld(t);
  await nothingOf(user);
});

asRoot(`source --recover-stale through the broker: refused (exit 8, naming it) unless the caller is in source-root-users=${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  const rooter = makeUser(t);
  configure(user.name, [], [], [`source-users=${user.name}`, `source-root-users=${rooter.name}`]);
  await supervise(t);
  const r = relay(user, ['source', '-c', 'fx', '--recover-stale', '--', '/bin/echo', 'in']);
  t.is(r.status, 8, r.stderr);
  t.is(
    r.stderr,
    `warden: source -c fx: user "${user.name}" (uid ${user.uid}) may not end the stale sessions (--recover-stale) of chroot "fx": not in source-root-users= or source-root-groups= (${env.config}:5)\n`,
  );
  t.is(r.stdout, '');
  const ok = relay(rooter, ['source', '-c', 'fx', '--recover-stale', '--', '/bin/echo', 'in'], { gid: user.gid });
  t.is(ok.status, 0, ok.stderr);
  t.is(ok.stdout, 'in\n');
  nothingHeld(t);
});

asRoot(`source through the broker while root holds a session: --no-wait and --timeout exit 5, SIGINT while waiting exits 130; nothing is left held or waiting${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  configure(user.name, [], [], [`source-users=${user.name}`]);
  const sup = await supervise(t);
  const b = warden(env, ['begin', '-c', 'fx']);
  t.is(b.status, 0, b.stderr);
  const id = b.stdout.trim();
  const written = inSource(t, 'tmp/entered');
  const busy = relay(user, ['source', '-c', 'fx', '--no-wait', '--', '/bin/sh', '-c', 'echo > /tmp/entered']);
  t.is(busy.status, 5, busy.stderr);
  t.regex(busy.stderr, new RegExp(`^warden: source -c fx: source of chroot fx is in use: held by .*${id}`));
  nothingHeld(t, [sup.pid!]);
  const started = Date.now();
  const late = relay(user, ['source', '-c', 'fx', '--timeout', '1', '--', '/bin/sh', '-c', 'echo > /tmp/entered']);
  t.is(late.status, 5, late.stderr);
  t.regex(late.stderr, /stayed in use for 1000 ms \(timed out\)/);
  t.true(Date.now() - started < 10_000, `gave up after about a second (${Date.now() - started} ms)`);
  nothingHeld(t, [sup.pid!]);
  // Interrupted while it waits for the source lock: the entry is cancelled, its command never runs.
  const waiting = relayAsync(user, ['source', '-c', 'fx', '--', '/bin/sh', '-c', 'echo > /tmp/entered']);
  await untilBlocked([sourceLockPath(fx.source)], 1);
  waiting.kill('SIGINT');
  const res = await waiting.result;
  t.is(res.status, 130, res.stderr);
  t.is(res.stdout, '');
  t.false(existsSync(written), 'the command never ran');
  nothingHeld(t, [sup.pid!]);
  // The manage lock is free at once: a begin does not wait.
  const again = warden(env, ['begin', '-c', 'fx', '--no-wait']);
  t.is(again.status, 0, again.stderr);
  for (const s of [id, again.stdout.trim()]) t.is(warden(env, ['end', '-s', s]).status, 0);
  // With the sessions gone, the user gets in.
  const entered = relay(user, ['source', '-c', 'fx', '--no-wait', '--', '/bin/sh', '-c', 'echo in > /tmp/entered']);
  t.is(entered.status, 0, entered.stderr);
  t.is(readFileSync(written, 'utf8'), 'in\n');
  await nothingOf(user);
});

asRoot(`source through the broker from a terminal: the command gets a pty of its own once the entry is made${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  configure(user.name, [], [], [`source-users=${user.name}`]);
  await supervise(t);
  const term = new TestTerminal();
  t.teardown(() => term.close());
  const before = term.modes();
  const shell = term.start(['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', RELAY, 'source', '-c', 'fx', '--', '/bin/sh', '-c', 'test -t 0 && echo on-a-tty; read line; echo "read $line"; exit 4'], {
    env: userEnv({ TERM: 'dumb' }),
  });
  await term.until(/on-a-tty/);
  // The source has no /proc: look from the host.
  let sh = '';
  await until(() => (sh = spawnSync('pgrep', ['-u', String(user.uid), '-x', 'sh'], { encoding: 'utf8' }).stdout.trim()) !== '', 'the command running');
  const tty = readlinkSync(`/proc/${sh}/fd/0`);
  t.regex(tty, /^\/dev\/pts\/\d+$/);
  t.not(tty, term.path, 'a pty of its own, not the caller terminal');
  term.type('typed\n');
  await term.until(/read typed/);
  t.is(await shell.status, 4);
  t.is(term.modes(), before, 'the terminal is restored');
  nothingHeld(t);
});
