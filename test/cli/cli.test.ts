// The CLI as users and outside tests drive it: exit codes, stdio and
// status pass-through, signals, waiting for locks, hostile input. Every
// test runs the real bundle (dist/cli/warden.js) as a separate process.
import anyTest, { type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beginSession, endSession, listSessions, manageLockPath } from '../../src/sessions/index.js';

import { Holder, killAllHolders } from '../helpers/holder.js';
import { untilBlocked } from '../helpers/leaks.js';
import { until } from '../helpers/wait.js';
import { REPO, chrootDef, destroyFixture, isRoot, makeFixture, processesUnder, stateEntries, treeDigest, writeHooks, type Fixture, assertNothingLeftUnder } from '../helpers/chroots.js';
import { untilOutput, warden, wardenAsync, writeConfig, type CliEnv } from '../helpers/cli.js';

const test = anyTest as TestFn;

function commOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

const rootSerial = isRoot ? test.serial : test.serial.skip;
let fx: Fixture;
let env: CliEnv;

test.before(async () => {
  fx = await makeFixture('warden-cli-');
  // fx-slow: the same source with a pre-mount hook that says it started, then hangs.
  const slow = writeHooks(fx.tmp, { 'pre-mount.d/10-slow': `echo started > ${join(fx.tmp, 'slow-hook-started')}; exec sleep 1000` });
  env = writeConfig(
    fx.tmp,
    `[warden]\nhooks-dir=${fx.noHooks}\nhook-timeout=10\n\n[fx]\ntype=directory\ndirectory=${fx.source}\nunion-type=overlay\naliases=fx-alias\n\n` +
      `[fx-slow]\ntype=directory\ndirectory=${fx.source}\nunion-type=overlay\nhooks=${slow}\n`,
  );
});
test.after.always(() => {
  if (fx) destroyFixture(fx.tmp);
});
test.afterEach.always(async (t) => {
  await killAllHolders();
  if (!fx) return;
  assertNothingLeftUnder(t, fx.tmp);
});

const usage = test.macro({
  exec(t, args: string[], message: RegExp) {
    const r = warden(env, args);
    t.is(r.status, 2, r.stderr);
    t.regex(r.stderr, message);
    t.regex(r.stderr, /^warden: /);
    t.deepEqual(stateEntries(env.stateDir), [], 'nothing touched');
  },
  title: (_p, args: string[]) => `usage error (exit 2): warden ${args.join(' ')}`,
});

test(usage, [], /no verb given/);
test(usage, ['frobnicate'], /unknown verb "frobnicate"/);
test(usage, ['list', '--bogus'], /unknown option --bogus/);
test(usage, ['run', '--', 'true'], /exactly one of -c CHROOT or -s ID/);
test(usage, ['run', '-c', 'fx'], /no command given/);
test(usage, ['run', '-c'], /needs a value/);
test(usage, ['run', '-c', 'fx', '--timeout', 'soon', '--', 'true'], /non-negative number/);
test(usage, ['info'], /missing NAME/);
test(usage, ['end'], /which session\? \(-s ID, or --all\)/);
test(usage, ['end', '-s', 'x', '--all'], /-s ID or --all, not both/);
test(usage, ['end', '-s', 'x', '-c', 'fx'], /-c picks the sessions of --all/);
test(usage, ['end', '--all', '--wait', '--force'], /exclude each other/);
for (const id of ['..', 'a/b', '../../etc', '', 'x'.repeat(200), '.hidden', '.manage', '.gone-x', 'supervisor.log', 'supervisor.sock']) {
  test(`hostile id ${JSON.stringify(id.slice(0, 20))} is refused with exit 2 before any file is touched`, (t) => {
    const verbs = [['run', '-c', 'fx', '--id', id, '--', 'true'], ['begin', '-c', 'fx', '--id', id], ['end', '-s', id], ['run', '-s', id, '--', 'true'], ['recover', '-s', id]];
    for (const args of verbs) {
      const r = warden(env, args);
      t.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
      t.regex(r.stderr, id === '' ? /needs a value|invalid session id/ : /invalid session id/);
    }
    t.deepEqual(stateEntries(env.stateDir), []);
  });
}

test('help and --version exit 0; every verb has --help', (t) => {
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string };
  t.is(warden(env, ['--version']).stdout, `warden ${pkg.version}\n`);
  t.regex(warden(env, ['--version']).stdout, /^warden \d+\.\d+\.\d+\n$/);
  const top = warden(env, ['--help']);
  t.is(top.status, 0);
  t.is(top.stderr, '', 'help prints no warnings');
  for (const verb of ['run', 'end', 'list', 'info', 'locks', 'bootstrap', 'source', 'recover']) {
    t.regex(top.stdout, new RegExp(`warden ${verb}`));
    const r = warden(env, [verb, '--help']);
    t.is(r.status, 0, r.stderr);
    t.is(r.stderr, '', `${verb} --help prints no warnings`);
    t.regex(r.stdout, new RegExp(`warden ${verb}`));
  }
});

test('a broken config is exit 3 with file:line; an unknown chroot or session is exit 4', (t) => {
  const bad = writeConfig(join(fx.tmp, 'bad'), `[fx]\ndirectory=relative/path\n`);
  bad.stateDir = env.stateDir;
  const r = warden(bad, ['list']);
  t.is(r.status, 3);
  t.regex(r.stderr, new RegExp(`^warden: list: ${bad.config}:2: `));
  const r2 = warden(env, ['run', '-c', 'nope', '--', 'true']);
  t.is(r2.status, 4);
  t.regex(r2.stderr, /no such chroot "nope" \(configured: fx, fx-slow\)/);
  t.is(warden(env, ['end', '-s', 'nope']).status, 4);
  t.is(warden(env, ['info', 'nope']).status, 4);
});

test('list shows chroots and aliases, as a table and as JSON', (t) => {
  const r = warden(env, ['list']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /^CHROOT\s+UNION\s+DIRECTORY/);
  t.regex(r.stdout, /fx \(fx-alias\)\s+overlay/);
  const j = JSON.parse(warden(env, ['list', '--json']).stdout);
  t.deepEqual(j.chroots.map((c: { name: string }) => c.name), ['fx', 'fx-slow']);
});

rootSerial('run -c: stdin, stdout, stderr and the exit status pass through; the source never changes (needs root)', (t) => {
  const before = treeDigest(fx.source);
  const r = warden(env, ['run', '-c', 'fx', '--', '/bin/sh', '-c', 'cat; echo out; echo err >&2; echo x > /etc/written; exit 3'], 'from stdin\n');
  t.is(r.status, 3, r.stderr);
  t.is(r.stdout, 'from stdin\nout\n');
  t.is(r.stderr, 'err\n');
  t.is(warden(env, ['run', '-c', 'fx-alias', '--', '/bin/sh', '-c', 'kill -TERM $$']).status, 128 + 15);
  t.is(warden(env, ['run', '-c', 'fx', '--', '/no/such']).status, 127);
  t.is(warden(env, ['run', '-c', 'fx', '-d', '/tmp', '--', '/bin/sh', '-c', 'test "$(pwd)" = /tmp']).status, 0);
  t.is(warden(env, ['run', '-c', 'fx', '-u', 'nobody', '--', '/bin/sh', '-c', 'test "$(id -u)" = 65534']).status, 0);
  t.is(warden(env, ['run', '-c', 'fx', '-d', '/no/such/dir', '--', 'true']).status, 125);
  t.deepEqual(stateEntries(env.stateDir), []);
  t.deepEqual(treeDigest(fx.source), before);
});

rootSerial('Ctrl-C while the command runs reaches the command, and the session still ends cleanly (needs root)', async (t) => {
  const w = wardenAsync(env, ['run', '-c', 'fx', '--', '/bin/sh', '-c', 'echo started; sleep 1000'], { detached: true });
  await untilOutput(w, /started/);
  // Only once sleep runs: a SIGINT between the echo and the fork would
  // kill the shell and orphan the sleep, as it would in any terminal.
  await until(() => processesUnder(fx.tmp).some((pid) => commOf(pid) === 'sleep'));
  // What the terminal does: SIGINT to the whole foreground process group.
  process.kill(-w.pid!, 'SIGINT');
  const r = await w.result;
  t.is(r.status, 130, r.stderr);
  t.deepEqual(stateEntries(env.stateDir), []);
});

rootSerial('Ctrl-C during a start hook: the hook is killed, the session rolled back, exit 130 (needs root)', async (t) => {
  const started = join(fx.tmp, 'slow-hook-started');
  rmSync(started, { force: true });
  const w = wardenAsync(env, ['run', '-c', 'fx-slow', '--', 'true'], { detached: true });
  await until(() => existsSync(started));
  process.kill(-w.pid!, 'SIGINT');
  const r = await w.result;
  t.is(r.status, 130, r.stderr);
  t.regex(r.stderr, /hook pre-mount\.d\/10-slow was interrupted/);
  t.deepEqual(stateEntries(env.stateDir), []);
  rmSync(started, { force: true });
});

rootSerial('Ctrl-C while a union-type=copy session is copied: cp is stopped, the half-made copy deleted, exit 130 (needs root)', async (t) => {
  // A source of 5,000 files: cp is still at work when the test finds it.
  // +T spreads their inodes over ext4's block groups (see markTopDirectory):
  // in a /tmp that has seen much churn, creating them is 25x faster.
  const big = join(fx.tmp, 'big-source');
  mkdirSync(big);
  spawnSync('chattr', ['+T', big], { stdio: 'ignore' });
  for (let d = 0; d < 5; d++) {
    mkdirSync(join(big, `d${d}`), { recursive: true });
    for (let f = 0; f < 1000; f++) writeFileSync(join(big, `d${d}`, `f${f}`), '');
  }
  t.teardown(() => destroyFixture(big));
  const original = readFileSync(env.config, 'utf8');
  writeConfig(fx.tmp, `${original}\n[fx-copy]\ntype=directory\ndirectory=${big}\nunion-type=copy\n`);
  t.teardown(() => writeConfig(fx.tmp, original));
  const w = wardenAsync(env, ['run', '-c', 'fx-copy', '--', 'true'], { detached: true });
  const cp = () => readdirSync('/proc').find((p) => /^\d+$/.test(p) && commOf(Number(p)) === 'cp' && readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1]!.split(' ')[1] === String(w.pid));
  await until(() => cp() !== undefined || w.exitCode !== null, 'cp to start');
  t.truthy(cp(), `cp was not found running: ${w.output.stderr}`);
  // What the terminal does: SIGINT to the whole foreground group, cp included.
  process.kill(-w.pid!, 'SIGINT');
  const r = await w.result;
  t.is(r.status, 130, r.stderr);
  t.regex(r.stderr, /copy of .*big-source interrupted/);
  t.deepEqual(stateEntries(env.stateDir), [], 'the session and its half-made copy are gone');
});

rootSerial('Ctrl-C while waiting for a lock cancels the wait cleanly: exit 130, no session, no lock (needs root)', async (t) => {
  mkdirSync(join(env.stateDir, '.manage'), { recursive: true });
  const manage = manageLockPath(env.stateDir, 'fx');
  const h = await Holder.start(manage);
  t.is(await h.lock('ofd', 'w'), 'ok');
  const w = wardenAsync(env, ['run', '-c', 'fx', '--', 'true']);
  await untilBlocked([manage], 1);
  // A lock nobody's source entry holds (no .ref taken): other begins, by their pids.
  await untilOutput(w, /waiting for other begins of this chroot: .*held exclusive by pid \d+/, 'stderr');
  w.kill('SIGINT');
  const r = await w.result;
  t.is(r.status, 130, r.stderr);
  t.regex(r.stderr, new RegExp(`held exclusive by pid ${h.pid} \\(holder\\)`));
  t.deepEqual(stateEntries(env.stateDir), []);
  // --no-wait and --timeout: exit 5 naming the holder.
  const nw = warden(env, ['run', '-c', 'fx', '--no-wait', '--', 'true']);
  t.is(nw.status, 5);
  t.regex(nw.stderr, new RegExp(`pid ${h.pid}`));
  const started = Date.now();
  const to = warden(env, ['run', '-c', 'fx', '--timeout', '0.3', '--', 'true']);
  t.is(to.status, 5);
  t.true(Date.now() - started >= 300);
  t.regex(to.stderr, /timed out after 300 ms/);
  await h.kill();
  t.is(warden(env, ['run', '-c', 'fx', '--', 'true']).status, 0);
});

rootSerial('a background process keeps the automatic session alive; end --force ends it (needs root)', async (t) => {
  const r = warden(env, ['run', '-c', 'fx', '--id', 'bg', '--', '/bin/sh', '-c', 'sleep 1000 </etc/hostname >/tmp/bg.log 2>&1 & echo started']);
  if (process.env.WARDEN_LOCK_MODE === 'posix') {
    // The documented difference: without inherited locks the background
    // sleep does not hold the session, so warden ends it, and the kernel
    // refuses the unmount while sleep runs in it. Nothing is lost: the
    // session stays for `end` once sleep is gone.
    t.is(r.status, 125, r.stderr);
    const m = /target is busy: used by pid (\d+) \(sleep/.exec(r.stderr);
    t.truthy(m, r.stderr);
    t.is(warden(env, ['end', '-s', 'bg']).status, 1);
    process.kill(Number(m![1]), 'SIGKILL');
    await until(() => !processesUnder(fx.tmp).includes(Number(m![1])));
    const end = warden(env, ['end', '-s', 'bg']);
    t.is(end.status, 0, end.stderr);
    t.deepEqual(stateEntries(env.stateDir), []);
    return;
  }
  t.is(r.status, 0, r.stderr);
  t.regex(r.stderr, /session bg is still held \(shared by pid \d+ \(sleep\)\); it was left for `warden end -s bg`/);
  const listed = JSON.parse(warden(env, ['list', '--sessions', '--json']).stdout);
  t.deepEqual(listed.map((s: { id: string; status: string }) => [s.id, s.status]), [['bg', 'active']]);
  const info = warden(env, ['info', 'bg']);
  t.regex(info.stdout, /liveness\s+bg\s+shared\s+\d+\s+sleep/);
  const locks = JSON.parse(warden(env, ['locks', '--json']).stdout) as { lock: string; name: string }[];
  t.true(locks.some((l) => l.lock === 'source' && l.name === 'fx'));
  t.true(locks.some((l) => l.lock === 'liveness' && l.name === 'bg'));
  const busy = warden(env, ['end', '-s', 'bg']);
  t.is(busy.status, 5);
  t.regex(busy.stderr, /other processes still hold it/);
  t.is(warden(env, ['run', '-s', 'bg', '--', '/bin/sh', '-c', 'exit 4']).status, 4);
  const end = warden(env, ['end', '-s', 'bg', '--force']);
  t.is(end.status, 0, end.stderr);
  t.deepEqual(stateEntries(env.stateDir), []);
});

rootSerial('10 processes racing for one id: exactly one begins, the rest fail with "session already exists" (needs root)', async (t) => {
  const runs = Array.from({ length: 10 }, () => wardenAsync(env, ['run', '-c', 'fx', '--id', 'race', '--', '/bin/sh', '-c', 'echo won; read x']));
  // A failed assertion must not leave the winner waiting on its stdin (and its session mounted for the next tests).
  t.teardown(async () => {
    for (const w of runs) {
      w.stdin?.on('error', () => undefined); // EPIPE from one that has exited
      w.stdin?.end('\n');
    }
    await Promise.all(runs.map((w) => w.result));
  });
  const results: (Awaited<(typeof runs)[0]['result']> | undefined)[] = [];
  // Promise.any, not race: losers may exit (refused) before the winner prints.
  const winner = await Promise.any(runs.map((w) => untilOutput(w, /won/).then(() => w)));
  const losers = runs.filter((w) => w !== winner);
  for (const w of losers) results.push(await w.result);
  winner.stdin!.end('\n');
  const won = await winner.result;
  t.is(won.status, 0, won.stderr);
  for (const r of results) {
    t.is(r!.status, 125, r!.stderr);
    t.regex(r!.stderr, /^warden: run -c fx: session race: session already exists$/m);
  }
  t.deepEqual(stateEntries(env.stateDir), []);
});

rootSerial('20 concurrent automatic sessions through the CLI: all succeed, ids unique (needs root)', async (t) => {
  const runs = Array.from({ length: 20 }, () => wardenAsync(env, ['run', '-c', 'fx', '--', '/bin/sh', '-c', 'echo $WARDEN_SESSION_ID']));
  const results = await Promise.all(runs.map((w) => w.result));
  for (const r of results) t.is(r.status, 0, r.stderr);
  t.is(new Set(results.map((r) => r.stdout)).size, 20);
  t.deepEqual(stateEntries(env.stateDir), []);
});

rootSerial('one corrupt session entry does not break list, info or other sessions (needs root)', (t) => {
  mkdirSync(join(env.stateDir, 'broken'), { recursive: true });
  writeFileSync(join(env.stateDir, 'broken', 'lock'), '');
  writeFileSync(join(env.stateDir, 'broken', 'state.json'), '{"version":1,"id":"bro');
  writeFileSync(join(env.stateDir, 'stray'), 'x');
  t.teardown(() => {
    for (const n of ['broken', 'stray']) destroyFixture(join(env.stateDir, n));
  });
  const list = warden(env, ['list', '--sessions']);
  t.is(list.status, 0, list.stderr);
  t.regex(list.stdout, /broken\s+corrupt\s+-\s+-\s+state.json is not valid JSON/);
  t.regex(list.stdout, /stray\s+corrupt/);
  t.is(warden(env, ['info', 'broken']).status, 0);
  t.is(warden(env, ['run', '-c', 'fx', '--', 'true']).status, 0);
  const end = warden(env, ['end', '-s', 'broken']);
  t.is(end.status, 1);
  t.regex(end.stderr, /session broken is corrupt: state.json is not valid JSON/);
  t.true(existsSync(join(env.stateDir, 'broken', 'state.json')), 'nothing of it deleted');
  t.is(listSessions(env.stateDir).length, 2);
  t.deepEqual(readdirSync(env.stateDir).sort(), ['.manage', 'broken', 'stray']);
});

rootSerial('end --all without a supervisor: ends every session (of one chroot with -c, alias or name), goes on past a busy one (exit 5), reports a corrupt entry and leaves it (needs root)', async (t) => {
  const before = treeDigest(fx.source);
  const begin = (id: string, name = 'fx') => beginSession({ stateDir: env.stateDir, chroot: chrootDef(fx.source, name), id, hooksDir: fx.noHooks, hookTimeoutMs: 10_000 });
  // Stale but consistent (mounted, active): what a killed warden run leaves.
  for (const [id, name] of [['a1', 'fx'], ['a2', 'fx'], ['o1', 'other']] as const) (await begin(id, name)).release();
  const held = await begin('busy');
  t.teardown(() => endSession(held).catch(() => {}));
  mkdirSync(join(env.stateDir, 'junk'));
  t.teardown(() => destroyFixture(join(env.stateDir, 'junk')));
  const unknown = warden(env, ['end', '--all', '-c', 'nope']);
  t.is(unknown.status, 4, unknown.stderr);
  t.is(listSessions(env.stateDir).length, 5, 'nothing ended for an unknown chroot');
  // -c by alias: the sessions of fx, the busy one among them.
  const some = warden(env, ['end', '--all', '-c', 'fx-alias']);
  t.is(some.status, 5, some.stderr);
  t.is(some.stdout, 'ended a1\nended a2\n');
  t.regex(some.stderr, /^warden: junk is corrupt, left untouched: /m);
  t.regex(some.stderr, /^warden: end -s busy: .*busy.*other processes still hold it/m);
  t.deepEqual(listSessions(env.stateDir).map((e) => `${e.id}:${e.status}`), ['busy:active', 'junk:corrupt', 'o1:stale']);
  // Released, the rest end; the corrupt entry stays, and is no failure.
  await endSession(held);
  const rest = warden(env, ['end', '--all']);
  t.is(rest.status, 0, rest.stderr);
  t.is(rest.stdout, 'ended o1\n');
  t.deepEqual(readdirSync(env.stateDir).filter((n) => !n.startsWith('.')), ['junk']);
  const none = warden(env, ['end', '--all']);
  t.is(none.status, 0, none.stderr);
  t.is(none.stdout, '');
  t.deepEqual(treeDigest(fx.source), before);
});
