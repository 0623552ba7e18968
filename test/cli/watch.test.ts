// warden watch through the real CLI: real sessions (automatic ones, one
// left stale by the crash bundle, recovered and ended), a corrupt entry,
// and Ctrl-C. The tests synchronise on the watcher's own output: the
// "watching DIR" line on stderr, then the events on stdout.
import anyTest, { type TestFn } from 'ava';
import { mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { destroyFixture, isRoot, makeFixture, type Fixture, assertNothingLeftUnder } from '../helpers/chroots.js';
import { untilOutput, warden, wardenAsync, writeConfig, type CliEnv, type Running, crashAt } from '../helpers/cli.js';
import type { WatchLine } from '../../src/cli/verbs/watch.js';

const test = anyTest as TestFn;
const rootSerial = isRoot ? test.serial : test.serial.skip;
let fx: Fixture;
let env: CliEnv;

test.before(async () => {
  fx = await makeFixture('warden-cli-watch-');
  env = writeConfig(fx.tmp, `[fx]\ntype=directory\ndirectory=${fx.source}\nunion-type=overlay\n`);
});
test.after.always(() => {
  if (fx) destroyFixture(fx.tmp);
});
test.afterEach.always((t) => {
  if (!fx) return;
  assertNothingLeftUnder(t, fx.tmp, env.stateDir);
  if (isRoot) warden(env, ['recover', '--all', '--end']);
});

type Ev = WatchLine;

/** Starts `warden watch` and resolves once it reports changes; killed at the end of the test if still running. */
async function startWatch(t: { teardown(fn: () => Promise<void>): void }, args: string[] = ['--json']): Promise<Running> {
  const w = wardenAsync(env, ['watch', ...args]);
  t.teardown(async () => {
    if (w.exitCode === null && w.signalCode === null) {
      w.kill('SIGKILL');
      await w.result;
    }
  });
  await untilOutput(w, /^watching \//m, 'stderr');
  return w;
}

const events = (w: Running, id?: string): Ev[] =>
  w.output.stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Ev)
    .filter((e) => id === undefined || e.id === id);

/** Resolves once the watcher has printed `n` events `name` for `id`. */
const untilEvent = (w: Running, name: string, id: string, n = 1) =>
  untilOutput(w, new RegExp(`(?:"event":"${name}","id":"${id}"[^\\n]*\\n[^]*){${n}}`));

/** SIGINT, as Ctrl-C sends it: the watch must close and exit 0 with nothing on stderr but its ready line. */
async function interrupt(t: { is(a: unknown, b: unknown, m?: string): void }, w: Running, signal: NodeJS.Signals = 'SIGINT') {
  w.kill(signal);
  const r = await w.result;
  t.is(r.status, 0, r.stderr);
  t.is(r.stderr.replace(/^watching \/.*\n/, ''), '', 'no error');
}

test('watch --help; watch is in the verb list', (t) => {
  const h = warden(env, ['watch', '--help']);
  t.is(h.status, 0, h.stderr);
  t.regex(h.stdout, /warden watch \[--json\]/);
  t.regex(warden(env, ['--help']).stdout, /warden watch/);
  t.regex(warden(env, []).stderr, /recover, watch, supervise, bootstrap/);
});

rootSerial('an automatic session: begun then ended, as NDJSON and as human lines; SIGINT and SIGTERM exit 0 (needs root)', async (t) => {
  const json = await startWatch(t);
  const human = await startWatch(t, []);
  const r = warden(env, ['run', '-c', 'fx', '--id', 'w-auto', '--', 'true']);
  t.is(r.status, 0, r.stderr);
  await untilEvent(json, 'ended', 'w-auto');
  await untilOutput(human, /ended w-auto/);
  const got = events(json);
  t.deepEqual(got.map((e) => [e.event, e.id, e.chroot]), [
    ['begun', 'w-auto', 'fx'],
    ['ended', 'w-auto', 'fx'],
  ]);
  t.true(got.every((e) => !Number.isNaN(Date.parse(e.at))));
  // The watch reports the state it reads when it first sees the dir: an
  // automatic session of `true` can already be ending by then.
  t.regex(human.output.stdout, /^\d\d:\d\d:\d\d begun w-auto \(chroot fx(, state (setting-up|ending))?\)\n\d\d:\d\d:\d\d ended w-auto \(chroot fx\)\n$/);
  await interrupt(t, json);
  await interrupt(t, human, 'SIGTERM');
});

rootSerial('a session killed after begin goes stale; recover re-adopts it (then lets go: stale again); end ends it (needs root)', async (t) => {
  const w = await startWatch(t);
  crashAt(env, 'begin:active', ['run', '-c', 'fx', '--id', 'w-crash', '--', 'true']);
  await untilEvent(w, 'stale', 'w-crash');
  const rec = warden(env, ['recover', '-s', 'w-crash']);
  t.is(rec.status, 0, rec.stderr);
  await untilEvent(w, 'recovered', 'w-crash');
  // recover without a command does not hold it: nothing does, so it is stale (but consistent).
  await untilEvent(w, 'stale', 'w-crash', 2);
  const end = warden(env, ['end', '-s', 'w-crash']);
  t.is(end.status, 0, end.stderr);
  await untilEvent(w, 'ended', 'w-crash');
  t.deepEqual(
    events(w, 'w-crash').map((e) => [e.event, e.chroot, e.event === 'begun' ? '(setting-up or active)' : e.status]),
    [
      ['begun', 'fx', '(setting-up or active)'],
      ['stale', 'fx', 'active'],
      ['recovered', 'fx', 'active'],
      ['stale', 'fx', 'active'],
      ['ended', 'fx', undefined],
    ],
  );
  await interrupt(t, w);
});

rootSerial('a session held again by run -s is recovered, and stale once the command is done (needs root)', async (t) => {
  crashAt(env, 'begin:active', ['run', '-c', 'fx', '--id', 'w-held', '--', 'true']);
  const w = await startWatch(t);
  // Already stale when the watch started: no event for that.
  const run = wardenAsync(env, ['run', '-s', 'w-held', '--', '/bin/sh', '-c', 'echo started; read line']);
  t.teardown(async () => {
    if (run.exitCode === null && run.signalCode === null) run.kill('SIGKILL');
    await run.result;
    warden(env, ['end', '-s', 'w-held', '--force']);
  });
  await untilOutput(run, /started/);
  await untilEvent(w, 'recovered', 'w-held');
  run.stdin!.end('\n');
  t.is((await run.result).status, 0);
  await untilEvent(w, 'stale', 'w-held');
  const ended = warden(env, ['end', '-s', 'w-held']);
  t.is(ended.status, 0, ended.stderr);
  await untilEvent(w, 'ended', 'w-held');
  t.deepEqual(events(w, 'w-held').map((e) => e.event), ['recovered', 'stale', 'ended']);
  await interrupt(t, w);
});

test.serial('a corrupt entry is reported once, with the reason; removing it is ended', async (t) => {
  const w = await startWatch(t);
  // Built beside the state dir and renamed in, as begin publishes a session.
  const build = join(fx.tmp, 'w-corrupt.build');
  const entry = join(env.stateDir, 'w-corrupt');
  t.teardown(() => rmSync(entry, { recursive: true, force: true }));
  mkdirSync(build);
  writeFileSync(join(build, 'lock'), '');
  writeFileSync(join(build, 'state.json'), '{"version":1,"id":"w-corr');
  renameSync(build, entry);
  await untilEvent(w, 'corrupt', 'w-corrupt');
  rmSync(entry, { recursive: true });
  await untilEvent(w, 'ended', 'w-corrupt');
  const got = events(w, 'w-corrupt');
  t.deepEqual(got.map((e) => e.event), ['corrupt', 'ended']);
  t.regex(got[0]!.reason ?? '', /state\.json/);
  await interrupt(t, w);
});
