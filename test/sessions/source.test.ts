// Source entry through the library, as root: real sessions over a real
// chroot, real kernel locks, real processes. Every wait is observed in
// /proc/locks (untilBlocked), never slept for. After each test: no mount
// under the fixture, no lock of ours, no fd, no process left in it.
import anyTest, { type TestFn, type Implementation } from 'ava';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  beginSession,
  endSession,
  enterSource,
  listSessions,
  manageLockPath,
  sourceLockPath,
  spawnInSource,
  takeManageLock,
  SourceBusyError,
  StaleSessionsError,
  type SourceEntry,
  type WaitInfo,
} from '../../src/sessions/index.js';
import { LockAbortedError, LockBusyError, lockHolders } from '../../src/locks/index.js';
import { mountsUnder } from '../../src/union/index.js';
import { fileFds, ourLocks, untilBlocked } from '../helpers/leaks.js';
import { chrootDef, destroyFixture, isRoot, makeFixture, processesUnder, REPO, stateEntries, treeDigest, type Fixture } from '../helpers/chroots.js';
import { WARDEN, untilOutput, writeConfig, type CliEnv, type Running } from '../helpers/cli.js';

const test = anyTest as TestFn<{ fds: string[] }>;
// These tests hold sessions and enter the source from this one process. In
// POSIX mode a process never conflicts with itself in the kernel, so such
// waits are arbitrated inside the process and never show in /proc/locks,
// which is what the tests synchronise on: they are OFD-mode tests, and the
// CLI source tests (separate processes) cover POSIX mode.
const posixMode = process.env.WARDEN_LOCK_MODE === 'posix';
const rootSerial = ((title: string, fn: Implementation<[], { fds: string[] }>) =>
  !isRoot
    ? test.serial.skip(title, fn)
    : posixMode
      ? test.serial.skip(`${title} [skipped in POSIX mode: one process on both sides never blocks in the kernel]`, fn)
      : test.serial(title, fn)) as typeof test.serial;
const CRASH = join(REPO, 'dist', 'crash', 'warden.cjs');
let fx: Fixture;
let cli: CliEnv;

test.before(async () => {
  if (!isRoot) return;
  fx = await makeFixture('warden-source-');
  cli = writeConfig(fx.tmp, `[warden]\nhooks-dir=${fx.noHooks}\nhook-timeout=10\n\n[fx]\ntype=directory\ndirectory=${fx.source}\nunion-type=overlay\n`);
  cli.stateDir = fx.stateDir;
});
test.after.always(() => {
  if (fx) destroyFixture(fx.tmp);
});
test.beforeEach((t) => {
  t.context.fds = fileFds();
});
test.afterEach((t) => {
  if (!fx) return;
  t.deepEqual(mountsUnder(fx.tmp).map((m) => m.mountPoint), [], 'nothing left mounted');
  t.deepEqual(ourLocks([ref(), manage()]), [], 'no lock of ours left');
  t.deepEqual(fileFds(), t.context.fds, 'no fd left open');
  t.deepEqual(processesUnder(fx.tmp), [], 'no process left in the chroot');
  t.deepEqual(stateEntries(fx.stateDir), [], 'no session left');
});

const ref = () => sourceLockPath(fx.source);
const manage = () => manageLockPath(fx.stateDir, 'fx');
const base = () => ({ stateDir: fx.stateDir, chroot: chrootDef(fx.source), hooksDir: fx.noHooks, hookTimeoutMs: 10_000 });
const entryOpts = (over: Partial<Parameters<typeof enterSource>[0]> = {}) => ({ stateDir: fx.stateDir, chroot: chrootDef(fx.source), ...over });

/** Runs a command in the entered source the way `warden source` does; resolves to its exit status. */
function runInSource(entry: SourceEntry, command: string[]): Promise<number | null> {
  return spawnInSource(entry, { command, directory: '/' }).exited;
}

/** Tracks whether a promise has settled, without awaiting it. */
function settled<T>(p: Promise<T>): { readonly done: boolean; p: Promise<T> } {
  const s = { done: false, p };
  p.then(
    () => (s.done = true),
    () => (s.done = true),
  );
  return s;
}

/** A session that no process holds any more: begun by the crash bundle, which SIGKILLs itself at `at`. */
function makeStale(id: string, at = 'begin:active'): void {
  const r = spawnSync(process.execPath, [CRASH, 'run', '-c', 'fx', '--id', id, '--', 'true'], {
    env: { ...process.env, WARDEN_CONFIG: cli.config, WARDEN_STATE_DIR: fx.stateDir, WARDEN_CRASH_AT: at },
    encoding: 'utf8',
  });
  if (r.signal !== 'SIGKILL') throw new Error(`crash bundle did not die at ${at}: ${r.status} ${r.stderr}`);
}

/** `warden run -c fx` in its own process group, printing "started" once its command runs. */
function runDetached(id: string, command: string): Running {
  const child = spawn(process.execPath, [WARDEN, 'run', '-c', 'fx', '--id', id, '--', '/bin/sh', '-c', command], {
    env: { ...process.env, WARDEN_CONFIG: cli.config, WARDEN_STATE_DIR: fx.stateDir },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  const output = { stdout: '', stderr: '' };
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output.stdout += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output.stderr += d));
  const result = new Promise<never>(() => {});
  return Object.assign(child, { result, output }) as unknown as Running;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((r) => (child.exitCode !== null || child.signalCode !== null ? r() : child.once('exit', () => r())));
}

rootSerial('source entry waits for an active session; a begin that comes meanwhile queues behind it (needs root)', async (t) => {
  const before = treeDigest(fx.source);
  const a = await beginSession(base());
  const reports: WaitInfo[] = [];
  const entering = settled(enterSource(entryOpts({ onWait: (i) => reports.push(i) })));
  await untilBlocked([ref()], 1);
  t.false(entering.done, 'the session still holds the source');
  // The entry holds the manage lock now: a new session queues behind it.
  const beginning = settled(beginSession(base()));
  await untilBlocked([manage()], 1);
  t.is(reports[0]!.lock, 'source');
  t.deepEqual(reports[0]!.sessions!.map((s) => [s.id, s.pids]), [[a.id, [process.pid]]]);
  await endSession(a);
  const entry = await entering.p;
  t.true(entry.held);
  t.deepEqual(entry.recovered, []);
  // Both locks are ours, exclusively; the begin still waits in the kernel for manage.
  t.true(lockHolders(ref()).some((h) => h.pid === process.pid && h.kind === 'exclusive' && !h.waiting));
  t.true(lockHolders(manage()).some((h) => h.pid === process.pid && h.kind === 'exclusive' && !h.waiting));
  await untilBlocked([manage()], 1);
  t.false(beginning.done);
  // The command writes into the source itself; no session is mounted to see it change.
  t.is(await runInSource(entry, ['/bin/sh', '-c', 'echo from-source > /etc/entered && test "$WARDEN_LOCK_FDS" = 3,4']), 0);
  t.is(readFileSync(join(fx.source, 'etc/entered'), 'utf8'), 'from-source\n');
  t.deepEqual(mountsUnder(fx.stateDir), []);
  t.false(beginning.done);
  entry.close();
  entry.close(); // idempotent
  const b = await beginning.p;
  // The session began over the changed source.
  t.is(readFileSync(join(b.paths.root, 'etc/entered'), 'utf8'), 'from-source\n');
  await endSession(b);
  rmSync(join(fx.source, 'etc/entered'));
  t.deepEqual(treeDigest(fx.source), before);
});

rootSerial('while it waits, the entry re-reports the sessions that still hold the source as they end (needs root)', async (t) => {
  const a = await beginSession(base());
  const b = await beginSession(base());
  let onlyB: () => void;
  const sawOnlyB = new Promise<void>((r) => (onlyB = r));
  const reports: string[][] = [];
  const entering = enterSource(
    entryOpts({
      refreshMs: 20,
      onWait: (i) => {
        const ids = (i.sessions ?? []).map((s) => s.id).sort();
        reports.push(ids);
        if (ids.length === 1 && ids[0] === b.id) onlyB();
      },
    }),
  );
  await untilBlocked([ref()], 1);
  t.deepEqual(reports[0], [a.id, b.id].sort());
  await endSession(a);
  await sawOnlyB;
  await endSession(b);
  const entry = await entering;
  entry.close();
  // Sessions only ever leave the report while the entry waits.
  t.true(reports.every((ids, i) => i === 0 || ids.every((id) => reports[i - 1]!.includes(id))));
});

rootSerial('--no-wait, timeout and abort fail with the holding sessions and leave no lock (needs root)', async (t) => {
  const a = await beginSession(base());
  t.teardown(() => endSession(a).catch(() => {}));
  const busy = await t.throwsAsync(enterSource(entryOpts({ wait: false })), { instanceOf: SourceBusyError });
  t.false(busy!.timedOut);
  t.deepEqual(busy!.sessions.map((s) => s.id), [a.id]);
  t.regex(busy!.message, new RegExp(`source of chroot fx is in use: held by session ${a.id} \\(pid ${process.pid}, \\d+ s\\)`));
  t.true(busy!.cause instanceof LockBusyError);
  const started = Date.now();
  const late = await t.throwsAsync(enterSource(entryOpts({ timeout: 200 })), { instanceOf: SourceBusyError });
  t.true(late!.timedOut);
  t.true(Date.now() - started >= 200);
  t.regex(late!.message, /stayed in use for 200 ms \(timed out\)/);
  const abort = new AbortController();
  const aborted = enterSource(entryOpts({ signal: abort.signal }));
  await untilBlocked([ref()], 1);
  abort.abort(new Error('test'));
  await t.throwsAsync(aborted, { instanceOf: LockAbortedError });
  // Nothing of the entries remains: the manage lock is free for a begin.
  t.deepEqual(ourLocks([manage()]), []);
  const m = await takeManageLock(fx.stateDir, 'fx', { wait: false });
  m.close();
  await endSession(a);
});

rootSerial('stale sessions block the entry with their ids; recoverStale ends them first (needs root)', async (t) => {
  const before = treeDigest(fx.source);
  makeStale('stale-mounted', 'begin:active');
  makeStale('stale-early', 'begin:liveness');
  t.deepEqual(listSessions(fx.stateDir).map((s) => [s.id, s.status]), [['stale-early', 'stale'], ['stale-mounted', 'stale']]);
  t.true(mountsUnder(fx.stateDir).length > 0, 'the stale session is still mounted over the source');
  const err = await t.throwsAsync(enterSource(entryOpts()), { instanceOf: StaleSessionsError });
  t.deepEqual(err!.ids, ['stale-early', 'stale-mounted']);
  t.is(err!.chroot, 'fx');
  t.regex(err!.message, /warden recover -s ID/);
  t.is(listSessions(fx.stateDir).length, 2, 'refusing touched nothing');
  const entry = await enterSource(entryOpts({ recoverStale: true }));
  t.deepEqual([...entry.recovered].sort(), ['stale-early', 'stale-mounted']);
  t.deepEqual(mountsUnder(fx.stateDir), []);
  t.deepEqual(stateEntries(fx.stateDir), []);
  t.is(await runInSource(entry, ['/bin/true']), 0);
  entry.close();
  t.deepEqual(treeDigest(fx.source), before);
});

rootSerial('a session whose holders die while the entry waits is caught after the source lock (needs root)', async (t) => {
  for (const recoverStale of [false, true]) {
    const id = recoverStale ? 'dying-2' : 'dying-1';
    const w = runDetached(id, 'echo started; exec sleep 1000');
    await untilOutput(w, /started/).catch((e) => {
      throw new Error(`${e.message} ${w.output.stderr}`);
    });
    // With a command started ahead: the round that finds the stale session must not let it run.
    const command = { command: ['/bin/sh', '-c', 'echo ran >> /tmp/dying'], directory: '/' };
    const entering = settled(enterSource(entryOpts({ recoverStale, command })));
    await untilBlocked([ref()], 1);
    // warden and its command die together: the source lock is released, the overlay stays mounted.
    // The command leads a session of its own, so it is not in warden's process group: kill it by name.
    const commands = processesUnder(fx.stateDir);
    process.kill(-w.pid!, 'SIGKILL');
    for (const pid of commands) process.kill(pid, 'SIGKILL');
    await exited(w);
    if (!recoverStale) {
      const err = await t.throwsAsync(entering.p, { instanceOf: StaleSessionsError });
      t.deepEqual(err!.ids, ['dying-1']);
      t.deepEqual(ourLocks([ref(), manage()]), [], 'refused: nothing held');
      t.true(existsSync(join(fx.stateDir, 'dying-1')), 'left for recover');
      t.false(existsSync(join(fx.source, 'tmp/dying')), 'the command did not run');
    } else {
      const entry = await entering.p;
      // dying-1 before the wait, dying-2 after the source lock.
      t.deepEqual(entry.recovered, ['dying-1', 'dying-2']);
      t.deepEqual(mountsUnder(fx.stateDir), []);
      await exited(entry.child!);
      entry.close();
      t.is(readFileSync(join(fx.source, 'tmp/dying'), 'utf8'), 'ran\n', 'the command ran once, after the entry');
      rmSync(join(fx.source, 'tmp/dying'));
    }
  }
});

rootSerial('OFD: the command keeps both locks after warden closes its copies (needs root)', async (t) => {
  const entry = await enterSource(entryOpts());
  const child = spawnInSource(entry, { command: ['/bin/sleep', '1000'], directory: '/' });
  await child.spawned;
  t.true(entry.inherited);
  entry.close();
  t.deepEqual(ourLocks([ref(), manage()]), []);
  t.true(lockHolders(ref()).some((h) => h.pid === child.pid && h.kind === 'exclusive'));
  await t.throwsAsync(takeManageLock(fx.stateDir, 'fx', { wait: false }), { instanceOf: LockBusyError });
  const beginning = settled(beginSession(base()));
  await untilBlocked([manage()], 1);
  child.kill('SIGKILL');
  t.is(await child.exited, 128 + 9);
  const s = await beginning.p;
  await endSession(s);
});

rootSerial('with a command, the entry starts it ahead and lets it go only once entered; a failed entry never runs it (needs root)', async (t) => {
  const a = await beginSession(base());
  const command = { command: ['/bin/sh', '-c', 'echo ran >> /tmp/gated'], directory: '/' };
  await t.throwsAsync(enterSource(entryOpts({ wait: false, command })), { instanceOf: SourceBusyError });
  await t.throwsAsync(enterSource(entryOpts({ timeout: 100, command })), { instanceOf: SourceBusyError });
  t.false(existsSync(join(fx.source, 'tmp/gated')), 'a failed entry never runs its command');
  const entering = enterSource(entryOpts({ command }));
  await untilBlocked([ref()], 1);
  t.false(existsSync(join(fx.source, 'tmp/gated')));
  await endSession(a);
  const entry = await entering;
  t.truthy(entry.child);
  await exited(entry.child!);
  t.is(entry.child!.exitCode, 0);
  entry.close();
  t.is(readFileSync(join(fx.source, 'tmp/gated'), 'utf8'), 'ran\n');
  rmSync(join(fx.source, 'tmp/gated'));
});
