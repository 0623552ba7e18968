// users=, groups=, root-users=, root-groups=, source-users=,
// source-groups=, source-root-users= and source-root-groups= as the CLI
// enforces them on its own caller: the real bundle run as nobody through
// setpriv(1). A refused call exits 8 naming the user, the chroot, the rule
// and where the chroot is defined, before it touches anything; an admitted
// one (a run or a source entry) gets past the check: its command is then
// the supervisor's to start (the CLI becomes the relay; none runs here,
// which it says, exit 125). Root is always let in.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { beginSession, endSession, sourceLockPath, type Session } from '../../src/sessions/index.js';
import { lockHolders } from '../../src/locks/index.js';

import { chrootDef, destroyFixture, isRoot, makeFixture, type Fixture, assertNothingLeftUnder } from '../helpers/chroots.js';
import { WARDEN, warden, writeConfig, type CliEnv, type Result } from '../helpers/cli.js';

const test = anyTest as TestFn;
// Running as another user needs root; so does everything the admitted calls go on to try.
const NEEDS_ROOT = isRoot ? '' : ' (skipped: setpriv to another user needs root)';
const rootSerial = isRoot ? test.serial : test.serial.skip;
const NOBODY = 65534;
const GROUP = 4321;

let fx: Fixture;
let env: CliEnv;

test.before(async () => {
  if (!isRoot) return;
  fx = await makeFixture('warden-cli-access-');
  const chroot = (name: string, ...keys: string[]) =>
    [`[${name}]`, 'type=directory', `directory=${fx.source}`, 'union-type=overlay', ...keys, ''].join('\n');
  env = writeConfig(
    fx.tmp,
    [
      `[warden]\nhooks-dir=${fx.noHooks}\nhook-timeout=10\n`,
      chroot('closed'),
      chroot('others', 'users=daemon, 1', 'groups=root', 'source-users=daemon'),
      chroot('open', 'users=nobody'),
      chroot('bygroup', `groups=${GROUP}`),
      chroot('rooted', `root-users=${NOBODY}`),
      chroot('src', `source-groups=${GROUP}`),
      chroot('srcroot', `source-root-users=${NOBODY}`),
    ].join('\n'),
  );
  // Present and root's, as on a real host: what an admitted call trips over
  // next is the manage lock it may not create, not a state dir it may not make.
  mkdirSync(env.stateDir, { mode: 0o755 });
});
test.after.always(() => {
  if (fx) destroyFixture(fx.tmp);
});
test.afterEach.always((t) => {
  if (!fx) return;
  assertNothingLeftUnder(t, fx.tmp, env.stateDir);
  t.deepEqual(lockHolders(sourceLockPath(fx.source)), [], 'nobody holds the source lock');
});

/** The real CLI as nobody, with `privs` for setpriv (default: no supplementary groups). */
function asNobody(args: string[], privs: string[] = ['--clear-groups']): Result {
  const r = spawnSync('setpriv', ['--reuid', `${NOBODY}`, '--regid', `${NOBODY}`, ...privs, process.execPath, WARDEN, ...args], {
    env: { ...process.env, WARDEN_CONFIG: env.config, WARDEN_STATE_DIR: env.stateDir, WARDEN_DEBUG: '' },
    encoding: 'utf8',
    timeout: 60_000,
    cwd: env.top,
  });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** `FILE:LINE` of a chroot's header in the test config. */
function placeOf(chroot: string): string {
  const line = readFileSync(env.config, 'utf8').split('\n').indexOf(`[${chroot}]`) + 1;
  return `${env.config}:${line}`;
}

const ACTIONS = {
  session: 'begin or run in sessions of',
  root: 'run commands as root or as another user in sessions of',
  source: 'enter the source of',
  'source-root': 'run commands as root or as another user in the source of',
  'recover-stale': 'end the stale sessions (--recover-stale) of',
};

interface Refusal {
  args: string[];
  privs?: string[];
  chroot: string;
  access: keyof typeof ACTIONS;
  rule: string;
}

const refused = test.macro({
  exec(t: ExecutionContext, c: Refusal) {
    const r = asNobody(c.args, c.privs);
    t.is(r.status, 8, r.stderr);
    const verb = `${c.args[0]} ${c.args[1]} ${c.args[2]}`;
    t.is(
      r.stderr,
      `warden: ${verb}: user "nobody" (uid ${NOBODY}) may not ${ACTIONS[c.access]} chroot "${c.chroot}": ${c.rule} (${placeOf(c.chroot)})\n`,
    );
    t.is(r.stdout, '');
  },
  title: (provided = '') => `refuses ${provided}${NEEDS_ROOT}`,
});

const admitted = test.macro({
  exec(t: ExecutionContext, args: string[], privs?: string[]) {
    const r = asNobody(args, privs);
    t.notRegex(r.stderr, /may not/);
    // Past the check, the command is for the supervisor to start (the CLI becomes the relay), and none runs here.
    t.is(r.status, 125, r.stderr);
    t.regex(r.stderr, new RegExp(`^warden: no supervisor runs for ${env.stateDir} .*systemctl start warden.socket`));
  },
  title: (provided = '') => `admits ${provided}${NEEDS_ROOT}`,
});

const NO_SESSION = 'users=, groups=, root-users= and root-groups= are empty, so only root may';
const NOT_SESSION = 'not in users=, groups=, root-users= or root-groups=';
const NO_ROOT = 'root-users= and root-groups= are empty, so only root may';
const NO_SOURCE = 'source-users=, source-groups=, source-root-users= and source-root-groups= are empty, so only root may';
const NOT_SOURCE = 'not in source-users=, source-groups=, source-root-users= or source-root-groups=';
const NO_SOURCE_ROOT = 'source-root-users= and source-root-groups= are empty, so only root may';

rootSerial('an automatic session of a chroot with no lists', refused, { args: ['run', '-c', 'closed', '--', 'true'], chroot: 'closed', access: 'session', rule: NO_SESSION });
rootSerial('an automatic session of a chroot whose lists name others', refused, { args: ['run', '-c', 'others', '--', 'true'], chroot: 'others', access: 'session', rule: NOT_SESSION });
rootSerial('a session by a group the caller has not got', refused, { args: ['run', '-c', 'bygroup', '--', 'true'], chroot: 'bygroup', access: 'session', rule: NOT_SESSION });
rootSerial('-u root to a user only in users=', refused, { args: ['run', '-c', 'open', '-u', 'root', '--', 'true'], chroot: 'open', access: 'root', rule: NO_ROOT });
rootSerial('-u 0 to a user only in users=', refused, { args: ['run', '-c', 'open', '-u', '0', '--', 'true'], chroot: 'open', access: 'root', rule: NO_ROOT });
rootSerial('-u another user to a user only in users=', refused, { args: ['run', '-c', 'open', '-u', 'daemon', '--', 'true'], chroot: 'open', access: 'root', rule: NO_ROOT });
rootSerial('a source entry to a user only in users=', refused, { args: ['source', '-c', 'open', '--', 'true'], chroot: 'open', access: 'source', rule: NO_SOURCE });
rootSerial('a source entry when source-users= names others', refused, { args: ['source', '-c', 'others', '--', 'true'], chroot: 'others', access: 'source', rule: NOT_SOURCE });
rootSerial('a source entry as root to a member of source-groups=', refused, {
  args: ['source', '-c', 'src', '-u', 'root', '--', 'true'],
  privs: ['--groups', `${GROUP}`],
  chroot: 'src',
  access: 'source-root',
  rule: NO_SOURCE_ROOT,
});
rootSerial('a source entry as another user to a member of source-groups=', refused, {
  args: ['source', '-c', 'src', '-u', 'daemon', '--', 'true'],
  privs: ['--groups', `${GROUP}`],
  chroot: 'src',
  access: 'source-root',
  rule: NO_SOURCE_ROOT,
});

rootSerial('a source entry with --recover-stale to a member of source-groups=', refused, {
  args: ['source', '-c', 'src', '--recover-stale', '--', 'true'],
  privs: ['--groups', `${GROUP}`],
  chroot: 'src',
  access: 'recover-stale',
  rule: NO_SOURCE_ROOT,
});

rootSerial('an automatic session to a user in users=', admitted, ['run', '-c', 'open', '--', 'true']);
rootSerial('-u nobody to nobody in users=', admitted, ['run', '-c', 'open', '-u', 'nobody', '--', 'true']);
rootSerial('an automatic session by a supplementary group in groups=', admitted, ['run', '-c', 'bygroup', '--', 'true'], ['--groups', `${GROUP}`]);
rootSerial('sessions and root to a user in root-users=', admitted, ['run', '-c', 'rooted', '-u', 'root', '--', 'true']);
rootSerial('a source entry by a group in source-groups=', admitted, ['source', '-c', 'src', '--', 'true'], ['--groups', `${GROUP}`]);
rootSerial('-u nobody in the source to a member of source-groups=', admitted, ['source', '-c', 'src', '-u', 'nobody', '--', 'true'], ['--groups', `${GROUP}`]);
rootSerial('a source entry to a user only in source-root-users=', admitted, ['source', '-c', 'srcroot', '--', 'true']);
rootSerial('a source entry as root to a user in source-root-users=', admitted, ['source', '-c', 'srcroot', '-u', 'root', '--', 'true']);
rootSerial('a source entry with --recover-stale to a user in source-root-users=', admitted, ['source', '-c', 'srcroot', '--recover-stale', '--', 'true']);

/** A session begun by this process (as root), ended when the test is done. */
async function session(t: ExecutionContext, chroot: string, owner?: { uid: number; gid: number }): Promise<Session> {
  const s = await beginSession({ stateDir: env.stateDir, chroot: chrootDef(fx.source, chroot), hooksDir: fx.noHooks, hookTimeoutMs: 10_000, owner });
  // For a test that failed before its own endSession.
  t.teardown(async () => {
    if (existsSync(s.paths.dir)) await endSession(s);
    s.release();
  });
  return s;
}

rootSerial(`run -s in a session of a chroot that does not admit the caller${NEEDS_ROOT}`, async (t) => {
  const s = await session(t, 'closed');
  const r = asNobody(['run', '-s', s.id, '--', 'true']);
  t.is(r.status, 8, r.stderr);
  t.is(
    r.stderr,
    `warden: run -s ${s.id}: user "nobody" (uid ${NOBODY}) may not begin or run in sessions of chroot "closed": ${NO_SESSION} (${placeOf('closed')})\n`,
  );
  // Refused before any lock: the session has its one holder, us.
  t.deepEqual(
    lockHolders(`${s.paths.dir}/lock`).map((h) => h.pid),
    [process.pid],
  );
  // Root is let in whatever the lists say.
  const root = warden(env, ['run', '-s', s.id, '--', 'true']);
  t.is(root.status, 0, root.stderr);
  await endSession(s);
});

rootSerial(`run -s in a session of a chroot that admits the caller: another's session is refused, their own goes to the supervisor${NEEDS_ROOT}`, async (t) => {
  const roots = await session(t, 'open');
  let r = asNobody(['run', '-s', roots.id, '--', 'true']);
  t.is(r.status, 8, r.stderr);
  t.is(r.stderr, `warden: run -s ${roots.id}: uid ${NOBODY} may not run in session ${roots.id}: it belongs to uid 0; only its owner and root may\n`);
  await endSession(roots);
  const theirs = await session(t, 'open', { uid: NOBODY, gid: NOBODY });
  r = asNobody(['run', '-s', theirs.id, '--', 'true']);
  t.is(r.status, 125, r.stderr);
  t.regex(r.stderr, /no supervisor runs for /);
  await endSession(theirs);
});

rootSerial(`root runs where no list names anyone${NEEDS_ROOT}`, (t) => {
  const r = warden(env, ['run', '-c', 'closed', '-u', 'root', '--', 'true']);
  t.is(r.status, 0, r.stderr);
  const s = warden(env, ['source', '-c', 'closed', '--', 'true']);
  t.is(s.status, 0, s.stderr);
});
