// runHooks and listHooks against real hook scripts and real process groups.
import anyTest, { type TestFn } from 'ava';
import { chmodSync, chownSync, existsSync, lchownSync, mkdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  HookFailedError,
  HookPermissionError,
  listHooks,
  runHooks,
  START_PHASES,
  STOP_PHASES,
  type HookPhase,
  type RunHooksOptions,
} from '../../src/hooks/index.js';
import { addHook, isRoot, liveInGroup, liveOf, lines, makeFixture, mountsUnder, openFds, recorder, untilExists, type Fixture } from './fixture.js';

const test = anyTest as TestFn<Fixture>;

function opts(f: Fixture, phase: HookPhase, more: Partial<RunHooksOptions> = {}): RunHooksOptions {
  return { hooksDir: f.hooksDir, phase, vars: f.vars, logPath: f.logPath, timeoutMs: 10_000, ...more };
}

/** Kills a stray process when the test ends, passed or not. */
function reap(t: { teardown: (fn: () => void) => void }, pid: number): void {
  t.teardown(() => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  });
}

// Node opens its SIGCHLD pipe and the like on the first spawn: do that before any fd baseline.
test.before(async () => {
  const f = makeFixture();
  addHook(f, 'pre-mount', '00-warm', 'true');
  await runHooks(opts(f, 'pre-mount'));
  rmSync(f.dir, { recursive: true, force: true });
});

test.beforeEach((t) => {
  t.context = makeFixture();
});

// Nothing of a test may survive it: hook processes, fds, mounts.
test.afterEach.always((t) => {
  const f = t.context;
  const live = liveOf(f);
  const fds = openFds();
  const mounts = mountsUnder(f.dir);
  rmSync(f.dir, { recursive: true, force: true });
  t.deepEqual(live, [], 'no process of the test is left');
  t.deepEqual(fds, f.fds, 'no extra fd is left open');
  t.deepEqual(mounts, [], 'nothing is mounted under the test dir');
});

test.serial('START_PHASES and STOP_PHASES', (t) => {
  t.deepEqual(START_PHASES, ['pre-mount', 'post-mount']);
  t.deepEqual(STOP_PHASES, ['pre-unmount', 'post-unmount']);
});

// Byte order: digits < upper case < '_' < lower case; '10-a' < '2'.
const names = ['a-1', '2', '_z', '10-b', 'A', '10-a'];
const byteOrder = ['10-a', '10-b', '2', 'A', '_z', 'a-1'];
for (const phase of [...START_PHASES, ...STOP_PHASES]) {
  const reverse = STOP_PHASES.includes(phase);
  test.serial(`${phase} runs its hooks in ${reverse ? 'reverse ' : ''}byte order of names, with $1 = phase`, async (t) => {
    const f = t.context;
    for (const n of names) recorder(f, phase, n);
    const want = reverse ? [...byteOrder].reverse() : byteOrder;
    const dir = join(f.hooksDir, `${phase}.d`);
    t.deepEqual(listHooks(f.hooksDir, phase), want.map((n) => ({ name: n, path: join(dir, n), kind: 'exec' })));
    const runs = await runHooks(opts(f, phase));
    t.deepEqual(lines(f.out), want.map((n) => `${n} ${phase}`));
    t.deepEqual(runs.map((r) => r.hook), want.map((n) => `${phase}.d/${n}`));
    t.true(runs.every((r) => r.ms > 0));
  });
}

test.serial('a hook gets a clean environment, cwd /, stdin /dev/null and its own process group', async (t) => {
  const f = t.context;
  const saved = { TERM: process.env.TERM, LANG: process.env.LANG, LC_ALL: process.env.LC_ALL, SECRET: process.env.WARDEN_TEST_SECRET };
  t.teardown(() => {
    for (const [k, v] of Object.entries({ TERM: saved.TERM, LANG: saved.LANG, LC_ALL: saved.LC_ALL, WARDEN_TEST_SECRET: saved.SECRET })) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
  process.env.TERM = 'vt100';
  process.env.LANG = 'C.UTF-8';
  delete process.env.LC_ALL;
  process.env.WARDEN_TEST_SECRET = 'leak';
  f.vars.recover = true;
  f.vars.unionType = 'copy';
  addHook(
    f,
    'post-mount',
    '10-env',
    `tr '\\0' '\\n' < /proc/$$/environ | sort > '${f.out}.env'
{ echo "arg=$1 argc=$#"; echo "cwd=$(pwd -P)"; echo "stdin=$(readlink /proc/$$/fd/0)"
  set -- $(sed 's/^.*) //' /proc/$$/stat); echo "pgrp=$3 sid=$4"; echo "pid=$$"; } > '${f.out}'`,
  );
  await runHooks(opts(f, 'post-mount'));
  t.deepEqual(lines(`${f.out}.env`), [
    `CHROOT_DIRECTORY=${f.vars.chrootDirectory}`,
    'CHROOT_NAME=bookworm',
    `CHROOT_PATH=${f.vars.chrootPath}`,
    `CHROOT_UNION_OVERLAY_DIRECTORY=${f.dir}`,
    'CHROOT_UNION_TYPE=copy',
    'LANG=C.UTF-8',
    'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    'SESSION_ID=bookworm-1',
    'TERM=vt100',
    'WARDEN_PHASE=post-mount',
    'WARDEN_RECOVER=1',
    `WARDEN_STATE_DIR=${f.dir}`,
  ]);
  const [arg, cwd, stdin, group, pid] = lines(f.out);
  t.is(arg, 'arg=post-mount argc=1');
  t.is(cwd, 'cwd=/');
  t.is(stdin, 'stdin=/dev/null');
  const me = pid!.slice('pid='.length);
  t.is(group, `pgrp=${me} sid=${me}`, 'the hook leads its own process group (and session)');
});

test.serial('only run-parts names are run; non-executable files and directories are skipped', async (t) => {
  const f = t.context;
  for (const n of ['.hidden', 'foo~', 'bar.dpkg-old', 'README.md', 'x.sh', 'with space', '10-ok', '20_ok', 'Z9']) recorder(f, 'post-mount', n);
  recorder(f, 'post-mount', '15-noexec').valueOf();
  chmodSync(join(f.hooksDir, 'post-mount.d', '15-noexec'), 0o644);
  mkdirSync(join(f.hooksDir, 'post-mount.d', '17-dir'), { mode: 0o755 });
  symlinkSync(join(f.dir, 'nowhere'), join(f.hooksDir, 'post-mount.d', '18-dangling'));
  const dir = join(f.hooksDir, 'post-mount.d');
  t.deepEqual(listHooks(f.hooksDir, 'post-mount').map((h) => h.path), ['10-ok', '20_ok', 'Z9'].map((n) => join(dir, n)));
  await runHooks(opts(f, 'post-mount'));
  t.deepEqual(lines(f.out), ['10-ok post-mount', '20_ok post-mount', 'Z9 post-mount']);
});

test.serial('a missing hooks dir or phase dir means no hooks, and no hooks.log', async (t) => {
  const f = t.context;
  t.deepEqual(await runHooks(opts(f, 'pre-mount', { hooksDir: join(f.dir, 'absent') })), []);
  t.deepEqual(await runHooks(opts(f, 'pre-mount')), []);
  addHook(f, 'pre-mount', '.keep', '');
  t.deepEqual(await runHooks(opts(f, 'pre-mount')), [], 'only skipped names');
  t.false(existsSync(f.logPath));
});

test.serial('a failing hook stops the phase with its status and last stderr lines', async (t) => {
  const f = t.context;
  recorder(f, 'post-mount', '10-ok');
  recorder(f, 'post-mount', '20-foo', `for i in 1 2 3 4 5 6 7; do echo "line $i" >&2; done; echo >&2; echo "  " >&2; exit 3`);
  recorder(f, 'post-mount', '30-later');
  const e = await t.throwsAsync(runHooks(opts(f, 'post-mount')), { instanceOf: HookFailedError });
  t.is(e.name, 'HookFailedError');
  t.is(e.message, 'hook post-mount.d/20-foo failed with exit status 3: line 7');
  t.like(e, { hook: 'post-mount.d/20-foo', phase: 'post-mount', status: 3, signal: null, timedOut: false });
  t.deepEqual(e.stderrTail, ['line 3', 'line 4', 'line 5', 'line 6', 'line 7']);
  t.deepEqual(e.others, []);
  t.deepEqual(lines(f.out), ['10-ok post-mount', '20-foo post-mount'], 'later hooks did not run');
});

test.serial('a hook that dies of a signal fails the phase', async (t) => {
  const f = t.context;
  addHook(f, 'pre-mount', '10-segv', 'echo dying >&2; kill -USR1 $$');
  const e = await t.throwsAsync(runHooks(opts(f, 'pre-mount')), { instanceOf: HookFailedError });
  t.like(e, { status: null, signal: 'SIGUSR1', timedOut: false });
  t.is(e.message, 'hook pre-mount.d/10-segv was killed by SIGUSR1: dying');
});

test.serial('a hook that cannot be started fails the phase', async (t) => {
  const f = t.context;
  addHook(f, 'pre-mount', '10-bad', '').valueOf();
  writeFileSync(join(f.hooksDir, 'pre-mount.d', '10-bad'), '#!/nonexistent/interpreter\n');
  const e = await t.throwsAsync(runHooks(opts(f, 'pre-mount')), { instanceOf: HookFailedError });
  t.regex(e.message, /^hook pre-mount\.d\/10-bad could not be started: .*ENOENT/);
  t.true(e.cause instanceof Error);
});

test.serial('keepGoing runs every hook and throws the first failure, the others attached', async (t) => {
  const f = t.context;
  recorder(f, 'pre-unmount', '10-a', 'echo a-failed >&2; exit 1');
  recorder(f, 'pre-unmount', '20-b');
  recorder(f, 'pre-unmount', '30-c', 'echo c-failed >&2; exit 2');
  const e = await t.throwsAsync(runHooks(opts(f, 'pre-unmount', { keepGoing: true })), { instanceOf: HookFailedError });
  t.deepEqual(lines(f.out), ['30-c pre-unmount', '20-b pre-unmount', '10-a pre-unmount'], 'all ran, in reverse order');
  t.is(e.message, 'hook pre-unmount.d/30-c failed with exit status 2: c-failed');
  t.is(e.others.length, 1);
  t.is(e.others[0]!.message, 'hook pre-unmount.d/10-a failed with exit status 1: a-failed');
  t.deepEqual(e.others[0]!.others, []);
});

test.serial('a timeout SIGTERMs the whole process group, background children included', async (t) => {
  const f = t.context;
  recorder(f, 'pre-mount', '10-slow', `sleep 1000 & echo $$ > '${f.dir}/pgid.tmp'; mv '${f.dir}/pgid.tmp' '${f.dir}/pgid'; echo slow >&2; sleep 1000`);
  recorder(f, 'pre-mount', '20-later');
  const t0 = Date.now();
  const e = await t.throwsAsync(runHooks(opts(f, 'pre-mount', { timeoutMs: 300, killGraceMs: 5000 })), { instanceOf: HookFailedError });
  const elapsed = Date.now() - t0;
  t.is(e.message, 'hook pre-mount.d/10-slow timed out after 0.3 s and was killed: slow');
  t.like(e, { timedOut: true, signal: 'SIGTERM', status: null });
  const pgid = Number(readFileSync(join(f.dir, 'pgid'), 'utf8'));
  t.deepEqual(liveInGroup(pgid), [], 'no process of the group is alive');
  t.true(elapsed >= 300 && elapsed < 3000, `settled after ${elapsed} ms, without waiting for the grace`);
  t.deepEqual(lines(f.out), ['10-slow pre-mount']);
});

test.serial('a hook that ignores SIGTERM gets SIGKILL after the grace', async (t) => {
  const f = t.context;
  addHook(f, 'pre-mount', '10-stubborn', `trap '' TERM; echo $$ > '${f.dir}/pgid.tmp'; mv '${f.dir}/pgid.tmp' '${f.dir}/pgid'; sleep 1000`);
  const t0 = Date.now();
  const e = await t.throwsAsync(runHooks(opts(f, 'pre-mount', { timeoutMs: 200, killGraceMs: 300 })), { instanceOf: HookFailedError });
  const elapsed = Date.now() - t0;
  t.like(e, { timedOut: true, signal: 'SIGKILL', status: null });
  t.true(elapsed >= 500, `settled after ${elapsed} ms`);
  t.deepEqual(liveInGroup(Number(readFileSync(join(f.dir, 'pgid'), 'utf8'))), []);
});

test.serial('after a timeout, a background child that ignores SIGTERM is SIGKILLed though the hook itself is gone', async (t) => {
  const f = t.context;
  addHook(f, 'pre-mount', '10-orphan', `trap '' TERM; sleep 1000 & trap - TERM; echo $$ > '${f.dir}/pgid.tmp'; mv '${f.dir}/pgid.tmp' '${f.dir}/pgid'; sleep 1000`);
  const t0 = Date.now();
  const e = await t.throwsAsync(runHooks(opts(f, 'pre-mount', { timeoutMs: 200, killGraceMs: 300 })), { instanceOf: HookFailedError });
  const elapsed = Date.now() - t0;
  t.like(e, { timedOut: true, signal: 'SIGTERM' });
  t.true(elapsed >= 500, `settled after ${elapsed} ms, after the SIGKILL`);
  t.deepEqual(liveInGroup(Number(readFileSync(join(f.dir, 'pgid'), 'utf8'))), []);
});

test.serial('aborting the signal kills the running hook, rejects with "interrupted" and runs no further hook', async (t) => {
  const f = t.context;
  addHook(f, 'post-mount', '10-wait', `echo $$ > '${f.dir}/pgid.tmp'; mv '${f.dir}/pgid.tmp' '${f.dir}/pgid'; sleep 1000`);
  recorder(f, 'post-mount', '20-later');
  const ac = new AbortController();
  const running = runHooks(opts(f, 'post-mount', { signal: ac.signal, keepGoing: true }));
  await untilExists(join(f.dir, 'pgid'));
  const reason = new Error('Ctrl-C');
  ac.abort(reason);
  const e = await t.throwsAsync(running, { instanceOf: HookFailedError });
  t.is(e.message, 'hook post-mount.d/10-wait was interrupted and killed');
  t.like(e, { timedOut: false, signal: 'SIGTERM' });
  t.is(e.cause, reason);
  t.deepEqual(liveInGroup(Number(readFileSync(join(f.dir, 'pgid'), 'utf8'))), []);
  t.deepEqual(lines(f.out), [], 'no later hook ran, even with keepGoing');
});

test.serial('an already-aborted signal rejects at once: nothing runs, no hooks.log', async (t) => {
  const f = t.context;
  recorder(f, 'pre-mount', '10-a');
  const e = await t.throwsAsync(runHooks(opts(f, 'pre-mount', { signal: AbortSignal.abort() })), { instanceOf: HookFailedError });
  t.regex(e.message, /interrupted before it started/);
  t.false(existsSync(f.out));
  t.false(existsSync(f.logPath));
});

test.serial('hooks.log gets a header, stdout, stderr and a trailer per hook, appended', async (t) => {
  const f = t.context;
  writeFileSync(f.logPath, 'earlier\n');
  addHook(f, 'post-mount', '10-talk', 'echo to-stdout; echo to-stderr >&2');
  addHook(f, 'post-mount', '20-fail', 'echo failing >&2; exit 4');
  await t.throwsAsync(runHooks(opts(f, 'post-mount')), { instanceOf: HookFailedError });
  const log = lines(f.logPath);
  t.is(log[0], 'earlier');
  t.is(log[1], '== post-mount 10-talk ==');
  t.deepEqual(log.slice(2, 4).sort(), ['to-stderr', 'to-stdout']);
  t.regex(log[4]!, /^== post-mount 10-talk: exit status 0, \d+ ms ==$/);
  t.is(log[5], '== post-mount 20-fail ==');
  t.is(log[6], 'failing');
  t.regex(log[7]!, /^== post-mount 20-fail: exit status 4, \d+ ms ==$/);
  t.is(log.length, 8);
  t.is(statSync(f.logPath).mode & 0o777, 0o644);
});

test.serial('a hooks.log replaced by a symlink is refused and its target left untouched', async (t) => {
  const f = t.context;
  const target = join(f.dir, 'precious');
  writeFileSync(target, 'precious\n');
  symlinkSync(target, f.logPath);
  recorder(f, 'post-mount', '10-a', 'echo output');
  const e = await t.throwsAsync(runHooks(opts(f, 'post-mount')), { instanceOf: HookPermissionError });
  t.is(e.name, 'HookPermissionError');
  t.is(e.message, `hooks log ${f.logPath} refused: it is a symbolic link`);
  t.is(readFileSync(target, 'utf8'), 'precious\n');
  t.false(existsSync(f.out), 'no hook ran');
});

test.serial('a background child keeping stderr open does not hang runHooks', async (t) => {
  const f = t.context;
  addHook(f, 'post-mount', '10-daemon', `sleep 1000 & echo $! > '${f.dir}/child'; echo started >&2`);
  recorder(f, 'post-mount', '20-next');
  t.teardown(async () => {
    try {
      process.kill(Number(readFileSync(join(f.dir, 'child'), 'utf8')), 'SIGKILL');
    } catch {
      // never started
    }
    // SIGKILL is delivered asynchronously: wait until the child is really gone
    // (or a zombie) before afterEach looks for leftover processes.
    for (const deadline = Date.now() + 5000; liveOf(f).length > 0 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 5));
    }
  });
  const t0 = Date.now();
  await runHooks(opts(f, 'post-mount'));
  const elapsed = Date.now() - t0;
  t.true(elapsed < 1000, `took ${elapsed} ms`);
  t.deepEqual(lines(f.out), ['20-next post-mount']);
  t.true(lines(f.logPath).includes('started'));
});

// Refusals: each case spoils one thing; no hook of the phase may run, not even the good 05-first.
interface Refusal {
  title: string;
  rootOnly?: boolean;
  spoil(f: Fixture): string; // returns the path that must be named
  reason: RegExp;
}
const refusals: Refusal[] = [
  {
    title: 'a hook not owned by root',
    rootOnly: true,
    spoil: (f) => {
      const p = recorder(f, 'pre-mount', '10-bad');
      chownSync(p, 65534, 65534);
      return p;
    },
    reason: /^file is owned by uid 65534/,
  },
  { title: 'a group-writable hook', spoil: (f) => chmodded(recorder(f, 'pre-mount', '10-bad'), 0o775), reason: /^file is group-writable \(mode 0775\)$/ },
  { title: 'a world-writable hook', spoil: (f) => chmodded(recorder(f, 'pre-mount', '10-bad'), 0o757), reason: /^file is world-writable \(mode 0757\)$/ },
  { title: 'a group-writable phase dir', spoil: (f) => chmodded(join(f.hooksDir, 'pre-mount.d'), 0o775), reason: /^directory is group-writable/ },
  { title: 'a world-writable phase dir', spoil: (f) => chmodded(join(f.hooksDir, 'pre-mount.d'), 0o1777), reason: /^directory is world-writable \(mode 1777\)$/ },
  { title: 'a group-writable hooks dir', spoil: (f) => chmodded(f.hooksDir, 0o775), reason: /^directory is group-writable/ },
  { title: 'a world-writable hooks dir', spoil: (f) => chmodded(f.hooksDir, 0o757), reason: /^directory is world-writable/ },
  {
    title: 'a symlinked hook whose target is world-writable',
    spoil: (f) => link(f, chmodded(writeScript(join(f.dir, 'target')), 0o777)),
    reason: /^its target is world-writable/,
  },
  {
    title: 'a symlinked hook whose target is not owned by root',
    rootOnly: true,
    spoil: (f) => {
      const target = writeScript(join(f.dir, 'target'));
      chownSync(target, 65534, 65534);
      return link(f, target);
    },
    reason: /^its target is owned by uid 65534/,
  },
  {
    title: 'a symlinked hook, the link not owned by root',
    rootOnly: true,
    spoil: (f) => {
      const p = link(f, writeScript(join(f.dir, 'target')));
      lchownSync(p, 65534, 65534);
      return p;
    },
    reason: /^symlink is owned by uid 65534/,
  },
];

function chmodded(path: string, mode: number): string {
  chmodSync(path, mode);
  return path;
}
function writeScript(path: string): string {
  writeFileSync(path, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
  chmodSync(path, 0o755);
  return path;
}
function link(f: Fixture, target: string): string {
  const p = join(f.hooksDir, 'pre-mount.d', '10-link');
  symlinkSync(target, p);
  return p;
}

for (const r of refusals) {
  const run = r.rootOnly && !isRoot ? test.skip : test.serial;
  run(`refuses ${r.title}`, async (t) => {
    const f = t.context;
    recorder(f, 'pre-mount', '05-first');
    const path = r.spoil(f);
    const e = await t.throwsAsync(runHooks(opts(f, 'pre-mount')), { instanceOf: HookPermissionError });
    t.is(e.name, 'HookPermissionError');
    t.is(e.path, path);
    t.regex(e.reason, r.reason);
    t.is(e.message, `hook ${path} refused: ${e.reason}`);
    t.throws(() => listHooks(f.hooksDir, 'pre-mount'), { instanceOf: HookPermissionError });
    t.false(existsSync(f.out), 'no hook of the phase ran');
    t.false(existsSync(f.logPath));
  });
}

test.serial('a sound symlinked hook runs', async (t) => {
  const f = t.context;
  const target = join(f.dir, 'target');
  writeFileSync(target, `#!/bin/sh\necho "linked $1" >> '${f.out}'\n`);
  chmodSync(target, 0o755);
  recorder(f, 'pre-mount', '05-first');
  link(f, target);
  await runHooks(opts(f, 'pre-mount'));
  t.deepEqual(lines(f.out), ['05-first pre-mount', 'linked pre-mount']);
});

test.serial('a timeout that is not a positive number is a RangeError', async (t) => {
  const f = t.context;
  recorder(f, 'pre-mount', '10-a');
  for (const timeoutMs of [0, -1, Number.NaN]) await t.throwsAsync(runHooks(opts(f, 'pre-mount', { timeoutMs })), { instanceOf: RangeError });
  t.deepEqual(await runHooks(opts(f, 'pre-mount', { timeoutMs: Number.POSITIVE_INFINITY })).then((r) => r.length), 1, 'Infinity: no timeout');
});
