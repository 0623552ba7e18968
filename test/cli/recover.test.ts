// Stale sessions through the real CLI. They are made the deterministic way:
// the crash bundle (dist/crash/warden.cjs, the same CLI with crash points
// live) SIGKILLs itself at a named step of begin or end (WARDEN_CRASH_AT),
// leaving exactly what a crash there leaves. Then recover, run -s, end -s
// and list --sessions must cope with each.
import anyTest, { type TestFn } from 'ava';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { lockHolders } from '../../src/locks/index.js';
import { mountsUnder, unmountAll } from '../../src/union/index.js';
import { destroyFixture, isRoot, makeFixture, stateEntries, treeDigest, writeHooks, type Fixture, assertNothingLeftUnder } from '../helpers/chroots.js';
import { untilOutput, warden, wardenAsync, writeConfig, type CliEnv, crashAt } from '../helpers/cli.js';

const test = anyTest as TestFn;
const rootSerial = isRoot ? test.serial : test.serial.skip;
let fx: Fixture;
let env: CliEnv;
let record: string;
let digest: string[];

test.before(async () => {
  fx = await makeFixture('warden-cli-recover-');
  record = join(fx.tmp, 'record');
  const hooks = writeHooks(fx.tmp, {
    'pre-mount.d/10-record': `echo "$SESSION_ID pre-mount $WARDEN_RECOVER" >> ${record}`,
    'post-mount.d/10-record': `echo "$SESSION_ID post-mount $WARDEN_RECOVER" >> ${record}`,
  });
  env = writeConfig(fx.tmp, `[warden]\nhooks-dir=${hooks}\nhook-timeout=10\n\n[fx]\ntype=directory\ndirectory=${fx.source}\nunion-type=overlay\n`);
  if (isRoot) digest = treeDigest(fx.source);
});
test.after.always(() => {
  if (fx) destroyFixture(fx.tmp);
});
test.afterEach.always((t) => {
  if (!fx) return;
  assertNothingLeftUnder(t, fx.tmp, env.stateDir);
  if (isRoot) t.deepEqual(treeDigest(fx.source), digest, 'the source never changed');
  // A failed test must not spoil the next ones.
  if (isRoot) warden(env, ['recover', '--all', '--end']);
});

interface Listed {
  id: string;
  status: string;
  phase?: string;
  mounted?: boolean | null;
}
const listed = (): Listed[] => JSON.parse(warden(env, ['list', '--sessions', '--json']).stdout) as Listed[];
const row = (id: string) => listed().find((s) => s.id === id);
const ran = (id: string) =>
  existsSync(record)
    ? readFileSync(record, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith(`${id} `))
        .map((l) => l.slice(id.length + 1))
    : [];

const usage = test.macro({
  exec(t, args: string[], message: RegExp) {
    const r = warden(env, args);
    t.is(r.status, 2, r.stderr);
    t.regex(r.stderr, message);
    t.deepEqual(stateEntries(env.stateDir), [], 'nothing touched');
  },
  title: (_p, args: string[]) => `usage error (exit 2): warden ${args.map((a) => (a.length > 20 ? `${a.slice(0, 12)}...` : a)).join(' ')}`,
});
test(usage, ['recover'], /exactly one of -s ID or --all/);
test(usage, ['recover', '-s', 'x', '--all'], /exactly one of -s ID or --all/);
test(usage, ['recover', '--all', '--', 'true'], /use it with -s ID, without --end/);
test(usage, ['recover', '-s', 'x', '--end', '--', 'true'], /use it with -s ID, without --end/);
test(usage, ['recover', '-s', 'x', '-u', 'nobody'], /-u, -d and -p apply to a command/);
test(usage, ['recover', '-s', 'x', '-p'], /-u, -d and -p apply to a command/);
for (const id of ['..', 'a/b', '../../etc', 'x'.repeat(200), '.hidden', '.new-x.abc']) test(usage, ['recover', '-s', id], /invalid session id/);

test('recover --help; an unknown session is exit 4; nothing stale is exit 0', (t) => {
  const h = warden(env, ['recover', '--help']);
  t.is(h.status, 0, h.stderr);
  t.regex(h.stdout, /warden recover \(-s ID \| --all\) \[--end\]/);
  t.regex(warden(env, ['--help']).stdout, /warden recover/);
  const r = warden(env, ['recover', '-s', 'nope']);
  t.is(r.status, 4);
  t.regex(r.stderr, /^warden: recover -s nope: session nope: no such session/);
  const all = warden(env, ['recover', '--all']);
  t.is(all.status, 0, all.stderr);
  t.is(all.stdout, 'no stale sessions\n');
});

rootSerial('recover --all after crashes at every step of begin and end: only consistent sessions remain, the corrupt one untouched (needs root)', (t) => {
  // begin:unpublished leaves a .new-* build dir; begin:published a setting-up
  // dir with no mount; begin:mounted a setting-up session mounted;
  // begin:active a finished one; state:written@3 (the first write of end) a
  // .state.json.tmp beside the old state; end:ending an ending session still
  // mounted; end:unmounted an ending one unmounted.
  const points = ['begin:unpublished', 'begin:published', 'begin:mounted', 'begin:active', 'state:written@3', 'end:ending', 'end:unmounted'];
  const ids = points.map((p) => `c-${p.replace(/[:@]/g, '-')}`);
  points.forEach((p, i) => crashAt(env, p, ['run', '-c', 'fx', '--id', ids[i]!, '--', '/bin/sh', '-c', `echo ${ids[i]} > /data`]));
  const corrupt = join(env.stateDir, 'c-corrupt');
  mkdirSync(corrupt);
  writeFileSync(join(corrupt, 'lock'), '');
  writeFileSync(join(corrupt, 'state.json'), '{"version":1,"id":"c-corr');
  t.teardown(() => rmSync(corrupt, { recursive: true, force: true }));

  const before = listed();
  t.deepEqual(
    before.map((s) => [s.id, s.status, s.phase, s.mounted]),
    [
      ['c-begin-active', 'stale', 'active', true],
      ['c-begin-mounted', 'stale', 'setting-up', true],
      ['c-begin-published', 'stale', 'setting-up', false],
      ['c-corrupt', 'corrupt', undefined, null],
      ['c-end-ending', 'stale', 'ending', true],
      ['c-end-unmounted', 'stale', 'ending', false],
      ['c-state-written-3', 'stale', 'active', true],
    ],
  );
  t.true(readdirSync(env.stateDir).some((n) => n.startsWith('.new-c-begin-unpublished.')));
  t.true(existsSync(join(env.stateDir, 'c-state-written-3', '.state.json.tmp')));
  const table = warden(env, ['list', '--sessions']).stdout;
  t.regex(table, /c-begin-published\s+stale\s+fx\s+\S+ s\s+setting-up; not mounted; warden recover -s c-begin-published/);
  t.regex(table, /c-begin-active\s+stale\s+fx\s+\S+ s\s+mounted\n/);
  rmSync(record, { force: true });

  const r = warden(env, ['recover', '--all']);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /^recovered c-begin-active: mount kept; hooks run: post-mount$/m);
  t.regex(r.stdout, /^recovered c-begin-mounted: mount kept; hooks run: post-mount$/m);
  t.regex(r.stdout, /^recovered c-begin-published: re-mounted; hooks run: pre-mount, post-mount$/m);
  t.regex(r.stdout, /^ended c-end-ending$/m);
  t.regex(r.stdout, /^ended c-end-unmounted$/m);
  t.regex(r.stdout, /^recovered c-state-written-3: mount kept; hooks run: post-mount$/m);
  t.regex(r.stdout, /^removed \.new-c-begin-unpublished\.\S+: the build dir of a begin that died/m);
  t.regex(r.stderr, /^warden: session c-corrupt is corrupt, left untouched: state.json is not valid JSON/m);
  t.deepEqual(ran('c-begin-published'), ['pre-mount 1', 'post-mount 1']);
  t.deepEqual(ran('c-begin-active'), ['post-mount 1']);

  // Only consistent sessions: active and mounted (stale: recover without a
  // command lets them go), plus the corrupt entry exactly as it was.
  t.deepEqual(
    listed().map((s) => [s.id, s.status, s.phase, s.mounted]),
    [
      ['c-begin-active', 'stale', 'active', true],
      ['c-begin-mounted', 'stale', 'active', true],
      ['c-begin-published', 'stale', 'active', true],
      ['c-corrupt', 'corrupt', undefined, null],
      ['c-state-written-3', 'stale', 'active', true],
    ],
  );
  t.is(readFileSync(join(corrupt, 'state.json'), 'utf8'), '{"version":1,"id":"c-corr');
  t.false(readdirSync(env.stateDir).some((n) => n.startsWith('.new-')));
  t.false(existsSync(join(env.stateDir, 'c-state-written-3', '.state.json.tmp')));
  // Upper data written before the kill is still there; every session is usable.
  const data = warden(env, ['run', '-s', 'c-state-written-3', '--', 'cat', '/data']);
  t.is(data.stdout, 'c-state-written-3\n', data.stderr);
  for (const id of ['c-begin-active', 'c-begin-mounted', 'c-begin-published']) t.is(warden(env, ['run', '-s', id, '--', 'true']).status, 0);

  const end = warden(env, ['recover', '--all', '--end']);
  t.is(end.status, 0, end.stderr);
  t.deepEqual(listed().map((s) => s.id), ['c-corrupt']);
});

rootSerial('run -s and end -s on stale sessions: a mounted one runs, one whose mount is gone says to recover (exit 7), end tears down what is left (needs root)', (t) => {
  crashAt(env, 'begin:active', ['run', '-c', 'fx', '--id', 'st-1', '--', 'true']);
  crashAt(env, 'begin:published', ['run', '-c', 'fx', '--id', 'st-2', '--', 'true']);
  const ok = warden(env, ['run', '-s', 'st-1', '--', '/bin/sh', '-c', 'echo hi > /tmp/x; exit 3']);
  t.is(ok.status, 3, ok.stderr);
  // A reboot, by hand.
  unmountAll(join(env.stateDir, 'st-1', 'root'));
  t.is(row('st-1')?.mounted, false);
  for (const [id, why] of [
    ['st-1', 'is not mounted \\(after a reboot\\?\\)'],
    ['st-2', 'is setting-up, not active'],
  ] as const) {
    const r = warden(env, ['run', '-s', id, '--', 'true']);
    t.is(r.status, 7, r.stderr);
    t.regex(r.stderr, new RegExp(`^warden: run -s ${id}: session ${id} ${why}: recover it first \\(warden recover -s ${id}\\)`));
  }
  const rec = warden(env, ['recover', '-s', 'st-1']);
  t.is(rec.status, 0, rec.stderr);
  t.is(rec.stdout, 'recovered st-1: re-mounted; hooks run: pre-mount, post-mount\n');
  const again = warden(env, ['run', '-s', 'st-1', '--', 'cat', '/tmp/x']);
  t.is(again.stdout, 'hi\n', again.stderr);
  for (const id of ['st-1', 'st-2']) {
    const e = warden(env, ['end', '-s', id]);
    t.is(e.status, 0, e.stderr);
  }
});

rootSerial('recover -s ID -- CMD holds the session while CMD runs; meanwhile recover and end are refused and nothing is stacked (needs root)', async (t) => {
  crashAt(env, 'begin:mounted', ['run', '-c', 'fx', '--id', 'held', '--', 'true']);
  const lock = join(env.stateDir, 'held', 'lock');
  const w = wardenAsync(env, ['recover', '-s', 'held', '--', '/bin/sh', '-c', 'echo started; read line; echo "got $line"; exit 4']);
  t.teardown(async () => {
    if (w.exitCode === null && w.signalCode === null) {
      w.kill('SIGKILL');
      await w.result;
    }
    warden(env, ['end', '-s', 'held', '--force']);
  });
  await untilOutput(w, /started/);
  // The command holds it through the inherited fds (OFD locks); in POSIX
  // mode locks are not inherited, and recover itself holds it meanwhile.
  const holders = lockHolders(lock, { start: 0, len: 1 }).filter((h) => !h.waiting);
  t.true(holders.some((h) => (process.env.WARDEN_LOCK_MODE === 'posix' ? h.pid === w.pid : h.pid !== w.pid)), 'the session is held');
  t.is(row('held')?.status, 'active');
  // Our fixture's mounts only: other tests mount and unmount elsewhere meanwhile.
  const mounts = mountsUnder(fx.tmp);
  const rec = warden(env, ['recover', '-s', 'held']);
  t.is(rec.status, 5, rec.stderr);
  t.regex(rec.stderr, /^warden: recover -s held: session held: it is active, not stale \(only stale sessions are recovered\): held shared by pid \d+/);
  t.deepEqual(mountsUnder(fx.tmp), mounts, 'no second overlay');
  t.is(warden(env, ['end', '-s', 'held']).status, 5);
  w.stdin!.end('line\n');
  const r = await w.result;
  t.is(r.status, 4, r.stderr);
  t.is(r.stdout, 'started\ngot line\n');
  t.regex(r.stderr, /^recovered held: mount kept; hooks run: post-mount$/m);
  // Let go: stale again, but consistent.
  t.like(row('held'), { status: 'stale', phase: 'active', mounted: true });
  t.is(warden(env, ['end', '-s', 'held']).status, 0);
});

rootSerial('recover --end of a session whose begin died before its mount (needs root)', (t) => {
  crashAt(env, 'begin:published', ['run', '-c', 'fx', '--id', 'early', '--', 'true']);
  const r = warden(env, ['recover', '-s', 'early', '--end']);
  t.is(r.status, 0, r.stderr);
  t.is(r.stdout, 'ended early\n');
});

// recover's own crash points: after a kill at any of them, another recover
// finishes the job. From a begin killed before its mount (the re-mount
// path) and from a finished one whose mount survived (the post-mount path).
const recoverPoints = [
  'recover:manage',
  'recover:exclusive',
  'recover:source',
  'recover:manage-released',
  'recover:dirs',
  'recover:pre-mount',
  'recover:mounted',
  'recover:post-mount',
  'state:written',
  'state:renamed',
  'recover:active',
  'recover:shared',
];
for (const [from, points] of [
  ['begin:published', recoverPoints],
  ['begin:active', recoverPoints.filter((p) => !['recover:dirs', 'recover:pre-mount', 'recover:mounted'].includes(p))],
] as const) {
  rootSerial(`recover killed at each of its steps, from a session killed at ${from}, is finished by the next recover (needs root)`, (t) => {
    for (const point of points) {
      const id = `rc-${point.replace(/[:@]/g, '-')}`;
      crashAt(env, from, ['run', '-c', 'fx', '--id', id, '--', 'true']);
      crashAt(env, point, ['recover', '-s', id]);
      const r = warden(env, ['recover', '-s', id]);
      t.is(r.status, 0, `${point}: ${r.stderr}`);
      t.like(row(id), { status: 'stale', phase: 'active', mounted: true }, point);
      t.is(warden(env, ['run', '-s', id, '--', 'true']).status, 0, point);
      t.false(existsSync(join(env.stateDir, id, '.state.json.tmp')), point);
    }
    t.is(warden(env, ['recover', '--all', '--end']).status, 0);
  });
}

rootSerial('recover --end killed at each step of the end is finished by recover --all --end (needs root)', (t) => {
  for (const point of ['recover:exclusive', 'end:exclusive', 'state:written', 'end:ending', 'end:pre-unmount', 'end:unmounted', 'end:post-unmount', 'end:removed']) {
    const id = `re-${point.replace(/[:@]/g, '-')}`;
    crashAt(env, 'begin:active', ['run', '-c', 'fx', '--id', id, '--', 'true']);
    crashAt(env, point, ['recover', '-s', id, '--end']);
    const r = warden(env, ['recover', '--all', '--end']);
    t.is(r.status, 0, `${point}: ${r.stderr}`);
    t.deepEqual(listed(), [], point);
  }
});
