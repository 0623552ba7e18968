// Build farms through the broker (issues 16 and 20): an ordinary user on
// host B, in source-users=, enters the shared chroot fx through B's
// supervisor and the compiled relay, as sbuild-update would, while host A
// has sessions of it. The supervisor holds the entry's locks on the
// volume for the user's command, so everything farm-cli.test.ts checks of
// a root entry must hold here too: refused with --no-wait naming A's
// session; waiting for it, saying so, and running once it ended; the
// manage lock named by host to A for as long as the command runs; a
// session of A whose holders died blocks the entry with exit 7 naming A,
// until A recovers.
//
// Root only (users are made and removed, mounts), OFD mode only,
// glusterfs-server installed; otherwise skipped with the reason in the
// titles.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO, processesUnder } from '../helpers/chroots.js';
import { untilOutput, warden, wardenAsync, writeConfig, type CliEnv, type Result, type Running } from '../helpers/cli.js';
import { farmHosts, killAll, killRunning, tearDownFarm } from '../helpers/farm-hosts.js';
import { farmOrSkip, type Host } from '../helpers/gluster.js';
import { supervise } from '../helpers/supervised.js';
import { makeUser, type TestUser } from '../helpers/users.js';
import { until } from '../helpers/wait.js';

const test = anyTest as TestFn;

const { farm, skip, title } = await farmOrSkip({ needsRoot: true });
const serial = skip ? test.serial.skip : test.serial;

const RELAY = join(REPO, 'dist', 'bin', 'warden');

let local: string;
const env = {} as Record<Host, CliEnv>;
const running = new Set<Running>();

test.before(async () => {
  if (!farm) return;
  local = mkdtempSync(join(tmpdir(), 'warden-farm-broker-'));
  // The users reach B's socket in its state dir under it (mkdtemp made it 0700).
  chmodSync(local, 0o755);
  Object.assign(env, await farmHosts(farm, local));
});

test.afterEach.always(async () => {
  if (!farm) return;
  await killRunning(running, local);
  for (const h of ['A', 'B'] as const) warden(env[h], ['recover', '--all', '--end']);
});

test.after.always((t) => tearDownFarm(t, farm, local));

/** B's configuration with `user` in fx's source-users= and the socket open to the user's group. */
function admit(user: TestUser): void {
  writeConfig(
    env.B.top,
    [
      '[warden]',
      'host=host-b',
      `hooks-dir=${join(local, 'no-hooks')}`,
      'hook-timeout=10',
      `socket-group=${user.name}`,
      '',
      '[fx]',
      'type=directory',
      `directory=${join(farm!.mounts.B, 'src')}`,
      'union-type=overlay',
      `shared-dir=${join(farm!.mounts.B, 'shared')}`,
      `source-users=${user.name}`,
      '',
    ].join('\n'),
  );
}

const userEnv = () => ({ PATH: '/usr/bin:/bin', WARDEN_STATE_DIR: env.B.stateDir });

/** The relay on B as `user`, to the end. */
function relay(user: TestUser, args: string[]): Result {
  const r = spawnSync(RELAY, args, { uid: user.uid, gid: user.gid, env: userEnv(), cwd: '/', input: '', encoding: 'utf8', timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** The relay on B as `user`, running. */
function relayAsync(user: TestUser, args: string[]): Running {
  const child = spawn(RELAY, args, { uid: user.uid, gid: user.gid, env: userEnv(), cwd: '/', stdio: ['pipe', 'pipe', 'pipe'] });
  const output = { stdout: '', stderr: '' };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (output.stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (output.stderr += d));
  const result = new Promise<Result>((resolve) => child.once('close', (status, signal) => resolve({ status, signal, ...output })));
  const r = Object.assign(child, { result, output });
  running.add(r);
  return r;
}

/** A user admitted to fx's source on B (made for the test, removed after it), and B's supervisor serving. */
async function userOnB(t: ExecutionContext): Promise<TestUser> {
  const user = makeUser(t);
  admit(user);
  await supervise(t, env.B);
  return user;
}

/** An automatic session on A that runs until killed, once inside it; and its id. */
async function sessionOnA(): Promise<{ a: Running; id: string }> {
  const a = wardenAsync(env.A, ['run', '-c', 'fx', '--', 'sh', '-c', 'echo "in $WARDEN_SESSION_ID"; exec sleep 1000'], { detached: true });
  running.add(a);
  await untilOutput(a, /in \S+/);
  return { a, id: /in (\S+)/.exec(a.output.stdout)![1]! };
}
const registrations = () => readdirSync(join(farm!.mounts.B, 'shared', 'sessions')).filter((n) => !n.startsWith('.'));

serial(title("a user's entry through B's broker: refused with --no-wait naming A's session, then waits for it, saying so, and runs once it ended"), async (t) => {
  const user = await userOnB(t);
  const { a, id } = await sessionOnA();
  const refused = relay(user, ['source', '-c', 'fx', '--no-wait', '--', 'true']);
  t.is(refused.status, 5, refused.stderr);
  t.regex(refused.stderr, new RegExp(`host-a@${id} \\(pid \\d+ on host-a`), 'the refusal names the session of the other host');
  const entry = relayAsync(user, ['source', '-c', 'fx', '--', '/bin/sh', '-c', 'echo "entered as $(id -u)"']);
  // The wait line (after a second of waiting) names what is waited for.
  await untilOutput(entry, new RegExp(`host-a@${id}`), 'stderr');
  t.false(entry.output.stdout.includes('entered'), 'the command does not run while A has the session');
  process.kill(-a.pid!, 'SIGTERM');
  await a.result;
  const r = await entry.result;
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, `entered as ${user.uid}\n`);
  t.deepEqual(registrations(), []);
});

serial(title("while a user's entry command runs through B's broker, A's --no-wait entry names it by host, past the entry's 1 s hold, until the command ends"), async (t) => {
  const user = await userOnB(t);
  const entry = relayAsync(user, ['source', '-c', 'fx', '--', '/bin/sh', '-c', 'echo entered; read line']);
  await untilOutput(entry, /entered/);
  const entered = Date.now();
  await until(() => Date.now() - entered > 1_500, 'past the 1 s hold');
  // The supervisor holds the manage lock (and its owner record) for the user's command.
  const r = warden(env.A, ['source', '-c', 'fx', '--no-wait', '--', 'true']);
  t.is(r.status, 5, r.stderr);
  t.regex(r.stderr, /is busy: held by a source entry on host-b \(pid \d+, since /);
  // So is a begin on A, whatever its host: it queues behind the entry.
  const begin = warden(env.A, ['run', '-c', 'fx', '--no-wait', '--', 'true']);
  t.is(begin.status, 5, begin.stderr);
  entry.stdin!.end('\n');
  const done = await entry.result;
  t.is(done.status, 0, done.stderr);
  t.is(warden(env.A, ['source', '-c', 'fx', '--no-wait', '--', 'true']).status, 0);
});

serial(title("a session of A whose holders died blocks a user's entry through B's broker with exit 7 naming A, until A recovers"), async (t) => {
  const user = await userOnB(t);
  const { a, id } = await sessionOnA();
  // Its warden and everything in the session (its command has a session of its own).
  killAll([a.pid!, ...processesUnder(env.A.stateDir)]);
  await a.result;
  const r = relay(user, ['source', '-c', 'fx', '--', 'true']);
  t.is(r.status, 7, r.stderr);
  t.regex(r.stderr, new RegExp(`host-a@${id}`));
  t.regex(r.stderr, /warden recover --all --end/);
  t.deepEqual(registrations(), [`host-a@${id}`], 'the stale registration is left for A to recover');
  const recovered = warden(env.A, ['recover', '--all', '--end']);
  t.is(recovered.status, 0, recovered.stderr);
  const after = relay(user, ['source', '-c', 'fx', '--', 'true']);
  t.is(after.status, 0, after.stderr);
});
