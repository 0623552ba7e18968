// warden-schroot (dist/bin/warden-schroot, the relay by another name) in
// front of a real `warden supervise`, called as a real throwaway user the
// way sbuild calls schroot (the shapes of test/sbuild/calls-sbuild.jsonl):
// --info of everything, -b of a chroot, --info of the session (sbuild reads
// its Path and checks it is a directory), -r runs with -d, -u, -p, -q and the
// status passed through, stdin and binary stdout intact, -e; an automatic
// session; schroot's own errors (E: ..., exit 1); and nothing left behind.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { isRoot, REPO, stateEntries, type Fixture } from '../helpers/chroots.js';
import { writeConfig, type CliEnv, type Result } from '../helpers/cli.js';
import { supervise as superviseEnv, supervisedFixture } from '../helpers/supervised.js';
import { makeUser, type TestUser } from '../helpers/users.js';
import { untilBlocked } from '../helpers/leaks.js';
import { manageLockPath, sourceLockPath } from '../../src/sessions/index.js';

const test = anyTest as TestFn;
const asRoot = isRoot ? test.serial : test.serial.skip;
const NEEDS_ROOT = isRoot ? '' : ' (skipped: needs root to create users and mount sessions)';
const SCHROOT = join(REPO, 'dist', 'bin', 'warden-schroot');

let fx: Fixture;
let env: CliEnv;
supervisedFixture(test, 'warden-schroot-dropin-', (f, e) => {
  fx = f;
  env = e;
});

function configure(user: TestUser): void {
  writeConfig(
    fx.tmp,
    [
      '[warden]',
      `socket-group=${user.name}`,
      `hooks-dir=${fx.noHooks}`,
      '',
      '[bookworm-amd64-sbuild]',
      'description=Debian bookworm/amd64 autobuilder',
      'type=directory',
      `directory=${fx.source}`,
      'union-type=overlay',
      `groups=${user.name}`,
      `root-groups=${user.name}`,
      `source-root-groups=${user.name}`,
      'aliases=bookworm-sbuild',
      '',
    ].join('\n'),
  );
}

const supervise = (t: ExecutionContext) => superviseEnv(t, env);

/** warden-schroot as `user`, with sbuild's stripped environment (no PATH) plus where the state dir is. */
function schroot(user: TestUser, args: string[], input: string | Buffer = ''): Result & { stdoutBytes: Buffer } {
  const r = spawnSync(SCHROOT, args, { uid: user.uid, gid: user.gid, env: { WARDEN_STATE_DIR: env.stateDir }, cwd: '/', input, timeout: 60_000 });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout.toString('utf8'), stderr: r.stderr.toString('utf8'), stdoutBytes: r.stdout };
}

asRoot(`sbuild's calls, as sbuild makes them: --info, -b, --info of the session, -r with -d -u -p -q, -e${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  configure(user);
  await supervise(t);
  const list = schroot(user, ['-l']);
  t.is(list.status, 0, list.stderr);
  // As schroot 1.6 lists them, with its compatibility name ALIAS-source for an alias of a chroot with a source.
  t.is(list.stdout, 'chroot:bookworm-amd64-sbuild\nchroot:bookworm-sbuild\nchroot:bookworm-sbuild-source\nsource:bookworm-amd64-sbuild\nsource:bookworm-sbuild\n');
  const info = schroot(user, ['--info']);
  t.is(info.status, 0, info.stderr);
  t.regex(info.stdout, /^ {2}─── Chroot ───\n {2}Name +bookworm-amd64-sbuild\n/);
  t.regex(info.stdout, / {2}Aliases +bookworm-sbuild\n/);
  const begun = schroot(user, ['-c', 'chroot:bookworm-amd64-sbuild', '--begin-session']);
  t.is(begun.status, 0, begun.stderr);
  const id = begun.stdout.trim();
  t.regex(id, /^bookworm-amd64-sbuild-/);
  const sinfo = schroot(user, ['--info', '--chroot', `session:${id}`]);
  t.is(sinfo.status, 0, sinfo.stderr);
  t.regex(sinfo.stdout, / {2}─── Session ───\n/);
  const path = / {2}Path {2,}(\S+)\n/.exec(sinfo.stdout)?.[1];
  t.is(path, join(env.stateDir, id, 'root'));
  t.true(statSync(path!).isDirectory(), 'the Path sbuild checks is a directory on the host');
  t.regex(sinfo.stdout, / {2}Session Purged {2,}true\n/);
  // 119 of these per build: exit status, -d, -u, -p, stdin in, binary stdout out.
  const run = (u: string, cmd: string[], input?: string | Buffer) => schroot(user, ['-d', '/tmp', '-c', id, '--run-session', '-q', '-u', u, '-p', '--', ...cmd], input);
  t.is(run('root', ['test', '-d', '/nonexistent']).status, 1);
  const who = run(user.name, ['/bin/sh', '-c', 'echo "$(id -u) $(pwd) ${WARDEN_STATE_DIR-}"']);
  t.is(who.status, 0, who.stderr);
  t.is(who.stdout, `${user.uid} /tmp ${env.stateDir}\n`, '-p: the caller environment');
  const bytes = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
  t.is(run('root', ['/bin/sh', '-c', 'cat > /tmp/blob']).status, 0);
  t.is(run('root', ['/bin/sh', '-c', 'cat > /tmp/blob'], bytes).status, 0);
  t.deepEqual(run('root', ['/bin/cat', '/tmp/blob']).stdoutBytes, bytes, 'binary output through unchanged');
  const ended = schroot(user, ['-c', id, '--end-session']);
  t.is(ended.status, 0, ended.stderr);
  t.deepEqual(stateEntries(env.stateDir).filter((n) => !n.startsWith('supervisor.')), []);
});

asRoot(`an automatic session, an alias, schroot's errors (E: ..., exit 1)${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  configure(user);
  await supervise(t);
  const auto = schroot(user, ['-c', 'bookworm-sbuild', '--', '/bin/sh', '-c', 'echo in; exit 4']);
  t.is(auto.status, 4, auto.stderr);
  t.is(auto.stdout, 'in\n');
  const bad = schroot(user, ['--bogus']);
  t.is(bad.status, 1);
  t.is(bad.stderr, "E: unrecognised option '--bogus'\n");
  const none = schroot(user, ['-c', 'nosuch', '--', 'true']);
  t.is(none.status, 1);
  t.regex(none.stderr, /^E: .*nosuch/);
  const noSession = schroot(user, ['-r', '-c', 'nosuch-session', '--', 'true']);
  t.is(noSession.status, 1);
  t.regex(noSession.stderr, /^E: .*nosuch-session/);
  const v = schroot(user, ['--version']);
  t.is(v.status, 0);
  t.regex(v.stdout, /^warden-schroot \(warden\) \d+\.\d+\.\d+\n$/);
});

/** warden-schroot as `user`, running. */
function schrootAsync(user: TestUser, args: string[]): Promise<Result> {
  const c = spawn(SCHROOT, args, { uid: user.uid, gid: user.gid, env: { WARDEN_STATE_DIR: env.stateDir }, cwd: '/', stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve) => c.once('close', (status, signal) => resolve({ status, signal, stdout, stderr })));
}

asRoot(`sbuild-update's calls: -b of source:NAME waits for the running session, holds the source (new sessions wait), -r runs in the source itself, -e lets go${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  configure(user);
  await supervise(t);
  const marker = join(fx.source, 'etc', 'upgraded');
  t.teardown(() => rmSync(marker, { force: true }));
  const running = schroot(user, ['-c', 'bookworm-amd64-sbuild', '-b']).stdout.trim();
  // The upgrade waits for the running session (kernel lock queue of .ref), as a source entry does.
  const ref = sourceLockPath(fx.source);
  const upgrade = schrootAsync(user, ['-c', 'source:bookworm-amd64-sbuild', '--begin-session']);
  await untilBlocked([ref], 1);
  t.is(schroot(user, ['-c', running, '-e']).status, 0);
  const begun = await upgrade;
  t.is(begun.status, 0, begun.stderr);
  const src = begun.stdout.trim();
  t.regex(src, /^bookworm-amd64-sbuild-/);
  // New sessions queue behind it (the manage lock).
  const queued = schrootAsync(user, ['-c', 'bookworm-amd64-sbuild', '-b']);
  await untilBlocked([manageLockPath(env.stateDir, 'bookworm-amd64-sbuild')], 1);
  // Its Path is the source directory; commands run there, as root with source-root-groups=.
  const info = schroot(user, ['--info', '--chroot', `session:${src}`]);
  t.is(/ {2}Path {2,}(\S+)\n/.exec(info.stdout)?.[1], fx.source, info.stdout);
  const r = schroot(user, ['-d', '/', '-c', src, '--run-session', '-q', '-u', 'root', '-p', '--', '/bin/sh', '-c', 'echo upgraded > /etc/upgraded; id -u']);
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, '0\n');
  t.is(readFileSync(marker, 'utf8'), 'upgraded\n', 'written in the source itself');
  t.is(schroot(user, ['-c', src, '--end-session']).status, 0);
  const after = await queued;
  t.is(after.status, 0, after.stderr);
  t.is(schroot(user, ['-c', after.stdout.trim(), '-e']).status, 0);
  t.false(existsSync(join(env.stateDir, src)), 'a source session has no session dir');
});
