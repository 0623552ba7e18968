// Recovering stale sessions through the library, as root: real overlay
// mounts, real hooks, a real second process holding locks. A session goes
// stale here the way it does in life: its holder lets go without ending it
// (Session.release(), as a killed warden's locks vanish), and a reboot is
// simulated by unmounting everything under its root by hand. After each
// test: nothing mounted, no lock or fd of ours, no process left.
import anyTest, { type TestFn } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  beginSession,
  endSession,
  listSessions,
  openSession,
  recoverAll,
  recoverSession,
  spawnInSession,
  SessionActiveError,
  type Session,
} from '../../src/sessions/index.js';
import { HookFailedError } from '../../src/hooks/index.js';
import { lockHolders } from '../../src/locks/index.js';
import { mountsUnder, unmountAll } from '../../src/union/index.js';
import { Holder, killAllHolders } from '../helpers/holder.js';
import { fileFds, ourLocks } from '../helpers/leaks.js';
import { chrootDef, destroyFixture, isRoot, makeFixture, processesUnder, stateEntries, treeDigest, writeHooks, type Fixture } from '../helpers/chroots.js';

const test = anyTest as TestFn<{ fds: string[] }>;
const rootSerial = isRoot ? test.serial : test.serial.skip;
let fx: Fixture;
let hooks: string;
let record: string;
let digest: string[];

test.before(async () => {
  if (!isRoot) return;
  fx = await makeFixture('warden-recover-');
  record = join(fx.tmp, 'record');
  // Each phase records itself and WARDEN_RECOVER; post-mount binds /proc
  // unless it is still bound (as the default 10-mounts.fstab skips what is
  // mounted already), and fails while the flag file exists.
  hooks = writeHooks(fx.tmp, {
    'pre-mount.d/10-record': `echo "$SESSION_ID pre-mount $WARDEN_RECOVER" >> ${record}`,
    'post-mount.d/10-record': [
      `echo "$SESSION_ID post-mount $WARDEN_RECOVER" >> ${record}`,
      `[ ! -e ${fx.tmp}/fail-post-mount ] || exit 9`,
      'mkdir -p "$CHROOT_PATH/proc"',
      'mountpoint -q "$CHROOT_PATH/proc" || mount --bind /proc "$CHROOT_PATH/proc"',
    ].join('\n'),
    'pre-unmount.d/10-record': `echo "$SESSION_ID pre-unmount $WARDEN_RECOVER" >> ${record}`,
    'post-unmount.d/10-record': `echo "$SESSION_ID post-unmount $WARDEN_RECOVER" >> ${record}`,
  });
  digest = treeDigest(fx.source);
});
test.after.always(() => {
  if (fx) destroyFixture(fx.tmp);
});
test.beforeEach((t) => {
  t.context.fds = fileFds();
  if (fx) rmSync(record, { force: true });
});
test.afterEach.always(async (t) => {
  await killAllHolders();
  if (!fx) return;
  t.deepEqual(mountsUnder(fx.tmp).map((m) => m.mountPoint), [], 'nothing left mounted');
  t.deepEqual(ourLocks([join(fx.source, '.ref')]), [], 'no lock of ours left');
  t.deepEqual(fileFds(), t.context.fds, 'no fd left open');
  t.deepEqual(processesUnder(fx.tmp), [], 'no process left in a session');
  t.deepEqual(stateEntries(fx.stateDir), [], 'no session left');
  t.deepEqual(treeDigest(fx.source), digest, 'the source never changed');
  // A failed test must not spoil the next ones.
  rmSync(join(fx.tmp, 'fail-post-mount'), { force: true });
  await recoverAll({ stateDir: fx.stateDir, end: true });
});

const begin = (id: string) => beginSession({ stateDir: fx.stateDir, chroot: chrootDef(fx.source), id, hooksDir: hooks, hookTimeoutMs: 10_000 });

/** Hook phases recorded for `id` since the test began, as "phase RECOVER". */
function ran(id: string): string[] {
  if (!existsSync(record)) return [];
  return readFileSync(record, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l.startsWith(`${id} `))
    .map((l) => l.slice(id.length + 1));
}

async function runIn(session: Session, command: string[]): Promise<number | null> {
  const locks = await session.commandLocks();
  const child = spawnInSession(session, locks, { command, directory: '/' });
  const code = await child.exited;
  locks.close();
  return code;
}

/** A session with data in its upper layer, left stale (its holder let go); optionally "rebooted" (everything under root unmounted). */
async function staleSession(id: string, reboot: boolean): Promise<Session> {
  const s = await begin(id);
  const code = await runIn(s, ['/bin/sh', '-c', 'echo kept > /etc/written-before']);
  if (code !== 0) throw new Error(`writing into session ${id} exited ${code}`);
  s.release();
  if (reboot) unmountAll(s.paths.root);
  rmSync(record, { force: true });
  return s;
}

rootSerial('after a reboot: recover re-mounts over the kept upper layer, hooks see WARDEN_RECOVER=1, the session is held and usable (needs root)', async (t) => {
  const s = await staleSession('reboot', true);
  t.deepEqual(mountsUnder(s.paths.root), []);
  t.deepEqual(listSessions(fx.stateDir).map((e) => [e.id, e.status]), [['reboot', 'stale']]);
  const r = await recoverSession({ stateDir: fx.stateDir, id: 'reboot' });
  t.is(r.action, 'readopted');
  if (r.action !== 'readopted') return;
  t.true(r.remounted);
  t.deepEqual(r.phases, ['pre-mount', 'post-mount']);
  t.deepEqual(ran('reboot'), ['pre-mount 1', 'post-mount 1']);
  t.deepEqual(mountsUnder(s.paths.root).map((m) => m.fsType).sort(), ['overlay', 'proc']);
  // Held through this process: liveness SH (downgraded from EX) and source SH.
  t.true(r.session.held);
  t.deepEqual(lockHolders(join(s.paths.dir, 'lock'), { start: 0, len: 1 }).map((h) => [h.pid, h.kind]), [[process.pid, 'shared']]);
  t.is(listSessions(fx.stateDir)[0]!.status, 'active');
  t.is(await runIn(r.session, ['/bin/sh', '-c', 'test "$(cat /etc/written-before)" = kept && test -e /proc/self']), 0);
  await endSession(r.session);
  t.deepEqual(ran('reboot'), ['pre-mount 1', 'post-mount 1', 'pre-unmount 0', 'post-unmount 0']);
});

rootSerial('a mount that survived is kept: only post-mount runs again, and its binds are not doubled (needs root)', async (t) => {
  const s = await staleSession('survived', false);
  const before = mountsUnder(s.paths.root).map((m) => m.mountPoint);
  const r = await recoverSession({ stateDir: fx.stateDir, id: 'survived' });
  if (r.action !== 'readopted') return t.fail();
  t.false(r.remounted);
  t.deepEqual(ran('survived'), ['post-mount 1']);
  t.deepEqual(mountsUnder(s.paths.root).map((m) => m.mountPoint), before);
  // Without a command the caller lets it go: stale, but consistent and usable.
  r.session.release();
  const again = openSession(fx.stateDir, 'survived');
  t.is(again.state.status, 'active');
  t.is(await runIn(again, ['/bin/sh', '-c', 'test "$(cat /etc/written-before)" = kept']), 0);
  await endSession(again);
});

rootSerial('recovering an active session is refused with its holders, and nothing is stacked on it (needs root)', async (t) => {
  const s = await begin('busy');
  const holder = await Holder.start(join(s.paths.dir, 'lock'));
  t.is(await holder.lock('ofd', 'r', 0, 1), 'ok');
  s.release();
  // Our fixture's mounts only: other tests mount and unmount elsewhere meanwhile.
  const mounts = mountsUnder(fx.tmp);
  for (const end of [false, true]) {
    const err = await t.throwsAsync(recoverSession({ stateDir: fx.stateDir, id: 'busy', end }), { instanceOf: SessionActiveError });
    t.true(err!.holders.some((h) => h.pid === holder.pid));
    t.regex(err!.message, /session busy: it is active, not stale/);
  }
  t.deepEqual(mountsUnder(fx.tmp), mounts, 'no second overlay over the same upper and work');
  t.deepEqual(ran('busy'), ['pre-mount 0', 'post-mount 0']);
  await holder.kill();
  await endSession(openSession(fx.stateDir, 'busy'));
});

rootSerial('a session begun by an older version (upper layer at upper/, no layout in state.json) recovers over its own layer (needs root)', async (t) => {
  const s = await staleSession('old-layout', true);
  // Turn it into what versions before layout 2 left after a reboot.
  const dir = s.paths.dir;
  renameSync(s.paths.upper, join(dir, 'layer'));
  rmdirSync(join(dir, 'upper'));
  renameSync(join(dir, 'layer'), join(dir, 'upper'));
  const state = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as Record<string, unknown>;
  delete state.layout;
  writeFileSync(join(dir, 'state.json'), JSON.stringify(state));
  const r = await recoverSession({ stateDir: fx.stateDir, id: 'old-layout' });
  if (r.action !== 'readopted') return t.fail();
  t.is(r.session.state.layout, 1);
  t.is(r.session.paths.upper, join(dir, 'upper'));
  t.is(readFileSync(join(r.session.paths.root, 'etc/written-before'), 'utf8'), 'kept\n', 'what was written before is in the view again');
  await endSession(r.session);
});

rootSerial('recover --end ends a stale session, mounted or not, with WARDEN_RECOVER=1 (needs root)', async (t) => {
  await staleSession('end-mounted', false);
  await staleSession('end-rebooted', true);
  for (const id of ['end-mounted', 'end-rebooted']) {
    const r = await recoverSession({ stateDir: fx.stateDir, id, end: true });
    t.is(r.action, 'ended');
    t.deepEqual(ran(id), ['pre-unmount 1', 'post-unmount 1']);
  }
});

rootSerial('a failing post-mount hook undoes the re-mount; the session stays stale, its data kept, and recovers later (needs root)', async (t) => {
  const s = await staleSession('flaky', true);
  writeFileSync(join(fx.tmp, 'fail-post-mount'), '');
  const err = await t.throwsAsync(recoverSession({ stateDir: fx.stateDir, id: 'flaky' }), { instanceOf: HookFailedError });
  t.is(err!.status, 9);
  t.deepEqual(ran('flaky'), ['pre-mount 1', 'post-mount 1', 'pre-unmount 1', 'post-unmount 1']);
  t.deepEqual(mountsUnder(s.paths.root), []);
  t.deepEqual(listSessions(fx.stateDir).map((e) => [e.id, e.status, e.state?.status]), [['flaky', 'stale', 'active']]);
  t.is(readFileSync(join(s.paths.upper, 'etc/written-before'), 'utf8'), 'kept\n');
  rmSync(join(fx.tmp, 'fail-post-mount'));
  const r = await recoverSession({ stateDir: fx.stateDir, id: 'flaky' });
  if (r.action !== 'readopted') return t.fail();
  await endSession(r.session);
});

rootSerial('a hook left running by a dead warden is killed before recover redoes the phase (needs root)', async (t) => {
  const s = await staleSession('orphan', true);
  // What a SIGKILLed warden leaves: its hook, leading its own process group, still at work.
  const hook = join(fx.tmp, 'slow-hook');
  writeFileSync(hook, '#!/bin/sh\nsleep 1000 & wait\n', { mode: 0o755 });
  const env = { PATH: '/usr/bin:/bin', SESSION_ID: 'orphan', WARDEN_PHASE: 'pre-mount', WARDEN_STATE_DIR: fx.stateDir, CHROOT_PATH: s.paths.root };
  const orphan: ChildProcess = spawn(hook, ['pre-mount'], { detached: true, stdio: 'ignore', env });
  const gone = new Promise((r) => orphan.once('exit', r));
  await new Promise((r) => orphan.once('spawn', r));
  // A process of the session's own with another command line is not a hook and is left alone.
  const bystander = spawn('sleep', ['1000'], { detached: true, stdio: 'ignore', env });
  await new Promise((r) => bystander.once('spawn', r));
  t.teardown(() => bystander.kill('SIGKILL'));
  const r = await recoverSession({ stateDir: fx.stateDir, id: 'orphan' });
  if (r.action !== 'readopted') return t.fail();
  t.deepEqual(r.killedHooks.map((h) => [h.pid, h.phase]), [[orphan.pid, 'pre-mount']]);
  await gone;
  t.is(bystander.exitCode, null);
  await endSession(r.session);
  bystander.kill('SIGKILL');
  await new Promise((res) => bystander.once('exit', res));
});

rootSerial('recoverAll: stale sessions re-adopted, held and corrupt ones untouched, dead begins\' build dirs removed, live ones kept (needs root)', async (t) => {
  await staleSession('all-1', true);
  await staleSession('all-2', false);
  const held = await begin('all-held');
  const holder = await Holder.start(join(held.paths.dir, 'lock'));
  t.is(await holder.lock('ofd', 'r', 0, 1), 'ok');
  held.release();
  const corrupt = join(fx.stateDir, 'all-corrupt');
  mkdirSync(corrupt);
  writeFileSync(join(corrupt, 'lock'), '');
  writeFileSync(join(corrupt, 'state.json'), '{"version":1,"id":"all-co');
  // A begin that died before publishing, and one still building (holds its lock).
  const dead = join(fx.stateDir, '.new-dead.AbC123');
  const building = join(fx.stateDir, '.new-building.XyZ789');
  for (const d of [dead, building]) {
    mkdirSync(d);
    writeFileSync(join(d, 'lock'), '');
  }
  const builder = await Holder.start(join(building, 'lock'));
  t.is(await builder.lock('ofd', 'r', 0, 1), 'ok');
  rmSync(record, { force: true });

  const report = await recoverAll({ stateDir: fx.stateDir });
  t.deepEqual(
    report.map((r) => [r.id, r.outcome]),
    [
      ['all-1', 'readopted'],
      ['all-2', 'readopted'],
      ['all-corrupt', 'corrupt'],
      ['.new-dead.AbC123', 'removed-unpublished'],
    ],
  );
  t.deepEqual(ran('all-1'), ['pre-mount 1', 'post-mount 1']);
  t.deepEqual(ran('all-2'), ['post-mount 1']);
  t.deepEqual(ran('all-held'), []);
  t.is(readFileSync(join(corrupt, 'state.json'), 'utf8'), '{"version":1,"id":"all-co', 'corrupt entry untouched');
  t.false(existsSync(dead));
  t.true(existsSync(building));
  // Afterwards only consistent sessions: stale ones active and mounted (let go), the held one as it was.
  t.deepEqual(
    listSessions(fx.stateDir).map((e) => [e.id, e.status, e.state?.status]),
    [
      ['all-1', 'stale', 'active'],
      ['all-2', 'stale', 'active'],
      ['all-corrupt', 'corrupt', undefined],
      ['all-held', 'active', 'active'],
    ],
  );
  for (const id of ['all-1', 'all-2']) t.true(mountsUnder(join(fx.stateDir, id, 'root')).some((m) => m.fsType === 'overlay'));

  await builder.kill();
  await holder.kill();
  rmSync(corrupt, { recursive: true });
  const ended = await recoverAll({ stateDir: fx.stateDir, end: true });
  t.deepEqual(
    ended.map((r) => [r.id, r.outcome]),
    [
      ['all-1', 'ended'],
      ['all-2', 'ended'],
      ['all-held', 'ended'],
      ['.new-building.XyZ789', 'removed-unpublished'],
    ],
  );
});

rootSerial('recoverAll sweeps the leftovers of dead processes only: old unlocked build dirs and .gone-* dirs of cut-short ends, not what a live process works on (needs root)', async (t) => {
  const dir = (name: string, files: Record<string, string> = {}) => {
    const d = join(fx.stateDir, name);
    mkdirSync(d, { recursive: true });
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(join(d, f, '..'), { recursive: true });
      writeFileSync(join(d, f), text);
    }
    return d;
  };
  mkdirSync(fx.stateDir, { recursive: true });
  // A begin between creating its build dir and locking it: young, no lock file.
  const young = dir('.init-young.AAA111');
  // The same, abandoned long ago.
  const old = dir('.init-old.BBB222');
  const past = new Date(Date.now() - 5 * 60_000);
  utimesSync(old, past, past);
  // An end killed while deleting: the lock file already gone, data left.
  const cut = dir('.gone-cut.1-1', { 'upper/data/f': 'x' });
  // An end still deleting: it holds the liveness byte.
  const deleting = dir('.gone-deleting.1-2', { lock: '', 'upper/f': 'y' });
  const ender = await Holder.start(join(deleting, 'lock'));
  t.is(await ender.lock('ofd', 'w', 0, 1), 'ok');

  const report = await recoverAll({ stateDir: fx.stateDir });
  t.deepEqual(
    report.map((r) => [r.id, r.outcome]),
    [
      ['.gone-cut.1-1', 'removed-ended'],
      ['.init-old.BBB222', 'removed-unpublished'],
    ],
  );
  t.false(existsSync(old));
  t.false(existsSync(cut));
  t.true(existsSync(join(deleting, 'upper', 'f')), 'a live end is left to finish');
  t.deepEqual(readdirSync(young), [], 'no lock file made in a young build dir: its begin would find it taken');

  await ender.kill();
  t.deepEqual(
    (await recoverAll({ stateDir: fx.stateDir })).map((r) => [r.id, r.outcome]),
    [['.gone-deleting.1-2', 'removed-ended']],
  );
  rmSync(young, { recursive: true });
});

