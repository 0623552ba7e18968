// The attacks of issue 15 on the command line, as root would meet them:
// configuration planted in a directory another user owns, or named by
// --config; a reserved name as a session id; a timeout past Node's timer
// limit. The real CLI bundle, real files owned by a real throwaway user.
import anyTest, { type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sourceLockPath } from '../../src/sessions/index.js';
import { Holder, killAllHolders } from '../helpers/holder.js';
import { untilBlocked } from '../helpers/leaks.js';
import { destroyFixture, isRoot, makeFixture, stateEntries, type Fixture } from '../helpers/chroots.js';
import { WARDEN, warden, wardenAsync, writeConfig, type CliEnv } from '../helpers/cli.js';
import { makeUser } from '../helpers/users.js';
import { until } from '../helpers/wait.js';
import { connectSupervisor } from '../../src/supervisor/index.js';

const test = anyTest as TestFn;
const asRoot = isRoot ? test.serial : test.serial.skip;
const NEEDS_ROOT = isRoot ? '' : ' (skipped: needs root, which these attacks are aimed at)';
let fx: Fixture;
let env: CliEnv;

test.before(async () => {
  if (!isRoot) return;
  fx = await makeFixture('warden-security-cli-');
  env = writeConfig(fx.tmp, `[warden]\nhooks-dir=${fx.noHooks}\nhook-timeout=10\n\n[fx]\ntype=directory\ndirectory=${fx.source}\nunion-type=overlay\n`);
});
test.after.always(async () => {
  await killAllHolders();
  if (fx) destroyFixture(fx.tmp);
});

/** The CLI as root would type it in `cwd`, with no WARDEN_CONFIG or WARDEN_STATE_DIR of the tests'. */
function bare(args: string[], cwd: string) {
  const e = { ...process.env };
  delete e.WARDEN_CONFIG;
  delete e.WARDEN_STATE_DIR;
  const r = spawnSync(process.execPath, [WARDEN, ...args], { env: e, encoding: 'utf8', cwd, timeout: 60_000 });
  if (r.error) throw r.error;
  return r;
}

asRoot(`root in a directory another user owns never uses the etc/warden.conf planted there, nor makes its sessions/${NEEDS_ROOT}`, (t) => {
  const user = makeUser(t);
  const home = join(fx.tmp, 'home-of-user');
  mkdirSync(join(home, 'etc'), { recursive: true });
  // The planted file is even root's: the directory above decides.
  writeFileSync(join(home, 'etc/warden.conf'), `[planted]\ntype=directory\ndirectory=/\nunion-type=none\n`);
  chownSync(home, user.uid, user.gid);
  for (const args of [['list'], ['run', '-c', 'planted', '--', 'true'], ['begin', '-c', 'planted']]) {
    const r = bare(args, home);
    t.is(r.status, 3, `${args.join(' ')}: ${r.stderr}`);
    t.regex(r.stderr, new RegExp(`${home}/etc/warden.conf: refusing the configuration in the current directory: ${home} is owned by uid ${user.uid}, not root`));
  }
  t.false(existsSync(join(home, 'sessions')), 'no state dir made there');
});

asRoot(`--config naming a file another user owns or may write is exit 3, naming owner or mode${NEEDS_ROOT}`, (t) => {
  const user = makeUser(t);
  const theirs = join(fx.tmp, 'theirs.conf');
  writeFileSync(theirs, `[theirs]\ntype=directory\ndirectory=/\n`);
  chownSync(theirs, user.uid, user.gid);
  let r = bare(['--config', theirs, 'run', '-c', 'theirs', '--', 'true'], fx.tmp);
  t.is(r.status, 3, r.stderr);
  t.regex(r.stderr, new RegExp(`${theirs}: refusing to read the config file: it is owned by uid ${user.uid}, not root`));
  chownSync(theirs, 0, 0);
  spawnSync('chmod', ['0666', theirs]);
  r = bare(['--config', theirs, 'list'], fx.tmp);
  t.is(r.status, 3, r.stderr);
  t.regex(r.stderr, /world-writable \(mode 0666\)/);
});

asRoot(`--id supervisor.log is exit 2 and touches nothing; a supervisor still starts afterwards${NEEDS_ROOT}`, async (t) => {
  for (const args of [['begin', '-c', 'fx', '--id', 'supervisor.log'], ['run', '-c', 'fx', '--id', 'supervisor.sock', '--', 'true']]) {
    const r = warden(env, args);
    t.is(r.status, 2, r.stderr);
    t.regex(r.stderr, /invalid session id "supervisor\.(log|sock)": the state dir reserves supervisor\.\* for the supervisor's files/);
  }
  t.deepEqual(stateEntries(env.stateDir), []);
  const id = warden(env, ['begin', '-c', 'fx', '--id', 'after']);
  t.is(id.status, 0, id.stderr);
  t.is(warden(env, ['end', '-s', 'after']).status, 0);
  // The begin started a supervisor: stop it and wait until it is gone.
  const c = await connectSupervisor(env.stateDir);
  if (!c) return t.fail("no supervisor runs after the begin");
  const { pid } = (await c.request({ op: 'hello' })) as { pid: number };
  c.close();
  process.kill(pid, 'SIGTERM');
  await until(() => !existsSync(`/proc/${pid}`) || /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8')), `supervisor ${pid} to exit`, 30_000);
});

asRoot(`source --timeout 3000000 (35 days) waits instead of giving up at once; a short one still gives up${NEEDS_ROOT}`, async (t) => {
  const ref = sourceLockPath(fx.source);
  const holder = await Holder.start(ref);
  t.is(await holder.lock('ofd', 'r'), 'ok');
  const short = warden(env, ['source', '-c', 'fx', '--timeout', '0.3', '--', 'true']);
  t.is(short.status, 5, short.stderr);
  const long = wardenAsync(env, ['source', '-c', 'fx', '--timeout', '3000000', '--', 'true']);
  await untilBlocked([ref], 1);
  await new Promise((r) => setTimeout(r, 1000));
  t.is(long.exitCode, null, `still waiting after 1 s: ${long.output.stderr}`);
  t.is(await holder.unlock('ofd'), 'ok');
  const r = await long.result;
  t.is(r.status, 0, r.stderr);
});

asRoot(`an admitted user at the command line is told why it cannot go on, never an EACCES from a lock file${NEEDS_ROOT}`, (t) => {
  const user = makeUser(t);
  const mine = writeConfig(join(fx.tmp, `as-${user.name}`), `[warden]\nhooks-dir=${fx.noHooks}\nstate-dir=${env.stateDir}\n\n[fx]\ntype=directory\ndirectory=${fx.source}\nusers=${user.name}\n`);
  const asUser = (args: string[]) => {
    const r = spawnSync(process.execPath, [WARDEN, ...args], {
      env: { PATH: process.env.PATH, WARDEN_CONFIG: mine.config },
      uid: user.uid,
      gid: user.gid,
      encoding: 'utf8',
      cwd: '/',
      timeout: 60_000,
    });
    if (r.error) throw r.error;
    return r;
  };
  const rootSession = warden(env, ['run', '-c', 'fx', '--id', 'roots', '--', '/bin/sh', '-c', 'sleep 1000 </dev/null >/dev/null 2>&1 & echo started']);
  t.is(rootSession.status, 0, rootSession.stderr);
  try {
    // Admitted: the supervisor is to start the command, and none runs (no EACCES from a lock file either way).
    let r = asUser(['run', '-c', 'fx', '--', 'true']);
    t.is(r.status, 125, r.stderr);
    t.regex(r.stderr, /no supervisor runs for /);
    r = asUser(['run', '-s', 'roots', '--', 'true']);
    t.is(r.status, 8, r.stderr);
    t.regex(r.stderr, new RegExp(`uid ${user.uid} may not run in session roots: it belongs to uid 0`));
    r = asUser(['list', '--sessions']);
    t.is(r.status, 8, r.stderr);
    t.regex(r.stderr, /may not list it: the state dir is root's \(mode 0711\)/);
    r = asUser(['end', '-s', 'roots']);
    t.is(r.status, 8, r.stderr);
  } finally {
    t.is(warden(env, ['end', '-s', 'roots', '--force']).status, 0);
  }
  // (supervisor.lock and .log stay from the test that started one)
  t.deepEqual(stateEntries(env.stateDir).filter((n) => !n.startsWith('supervisor.')), []);
});
