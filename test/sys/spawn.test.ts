// startCommand: the posix_spawn path that `run` starts its command with.
// Real processes; the child reports what it got (fds, signal dispositions)
// through files, and every test checks that nothing of it is left.
import anyTest, { type TestFn } from 'ava';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readlinkSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RunError, fromChildProcess } from '../../src/sessions/index.js';
import { startCommand } from '../../src/sys/spawn.js';
import { Pty } from '../../src/sys/pty.js';
import { childrenOf, fileFds } from '../helpers/leaks.js';

const test = anyTest as TestFn<{ dir: string; fds: string[]; sigchld: number }>;

test.beforeEach((t) => {
  t.context = { dir: mkdtempSync(join(tmpdir(), 'warden-spawn-')), fds: fileFds(), sigchld: process.listenerCount('SIGCHLD') };
});

test.afterEach.always((t) => {
  rmSync(t.context.dir, { recursive: true, force: true });
});

test.afterEach((t) => {
  t.deepEqual(childrenOf(), [], 'no child process is left');
  t.deepEqual(fileFds(), t.context.fds, 'no fd is left open');
  t.is(process.listenerCount('SIGCHLD'), t.context.sigchld, 'the SIGCHLD listener is gone');
});

const sh = (script: string, fds: number[] = []) => startCommand('/bin/sh', ['-c', script, 'sh'], { PATH: process.env.PATH }, fds);

/** /proc/self/status fields of the child, e.g. SigIgn. */
const statusField = (text: string, field: string) => text.split('\n').find((l) => l.startsWith(`${field}:`))?.split(/\s+/)[1];

test.serial('exit codes and deaths by signal come back as the shell reports them', async (t) => {
  t.is(await sh('exit 0').exited, 0);
  t.is(await sh('exit 7').exited, 7);
  t.is(await sh('kill -TERM $$').exited, 128 + 15);
  const c = sh('exec sleep 1000');
  t.true(typeof c.pid === 'number' && c.pid > 0);
  c.kill('SIGKILL');
  t.is(await c.exited, 128 + 9);
  c.kill('SIGTERM'); // reaped already: nothing happens, nothing throws
});

test.serial('many commands at once share one SIGCHLD listener, and each gets its own status', async (t) => {
  const cs = Array.from({ length: 30 }, (_, i) => sh(`sleep 0.0${i % 10}; exit ${i}`));
  t.is(process.listenerCount('SIGCHLD'), t.context.sigchld + 1);
  t.deepEqual(await Promise.all(cs.map((c) => c.exited)), cs.map((_, i) => i));
});

test.serial('the child starts with every signal at its default and none blocked (Node ignores SIGPIPE)', async (t) => {
  const out = join(t.context.dir, 'status');
  t.is(await sh(`cat /proc/self/status > ${out}`).exited, 0);
  const text = readFileSync(out, 'utf8');
  t.is(statusField(text, 'SigIgn'), '0000000000000000');
  t.is(statusField(text, 'SigBlk'), '0000000000000000');
});

test.serial('stdio is inherited and the given fds are 3, 4, ... in the child, without close-on-exec', async (t) => {
  const a = openSync(join(t.context.dir, 'a'), 'w');
  const b = openSync(join(t.context.dir, 'b'), 'w');
  try {
    const out = join(t.context.dir, 'fds');
    t.is(await sh(`readlink /proc/self/fd/3 /proc/self/fd/4 > ${out}; test -e /proc/self/fd/5 && echo extra >> ${out}; true`, [a, b]).exited, 0);
    t.deepEqual(readFileSync(out, 'utf8').trim().split('\n'), [join(t.context.dir, 'a'), join(t.context.dir, 'b')]);
  } finally {
    closeSync(a);
    closeSync(b);
  }
});

test.serial('fds that sit where others must go are moved first: [4, 3] arrive swapped', async (t) => {
  const open = readdirSync('/proc/self/fd').map(Number);
  if (!open.includes(3) || !open.includes(4)) return t.pass('fds 3 and 4 are not both open in this worker; nothing to swap');
  const want = [readlinkSync('/proc/self/fd/4'), readlinkSync('/proc/self/fd/3')];
  const out = join(t.context.dir, 'fds');
  t.is(await sh(`readlink /proc/self/fd/3 /proc/self/fd/4 > ${out}`, [4, 3]).exited, 0);
  t.deepEqual(readFileSync(out, 'utf8').trim().split('\n'), want);
});

test.serial('when startCommand returns, the child holds none of our other fds (its exec has closed them)', async (t) => {
  const path = join(t.context.dir, 'ours');
  const fd = openSync(path, 'w'); // close-on-exec, as every fd Node opens
  try {
    for (let i = 0; i < 20; i++) {
      const c = sh('exec sleep 5');
      const targets = readdirSync(`/proc/${c.pid}/fd`).map((n) => {
        try {
          return readlinkSync(`/proc/${c.pid}/fd/${n}`);
        } catch {
          return '';
        }
      });
      c.kill('SIGKILL');
      await c.exited;
      t.false(targets.includes(path), `child ${i} still had our fd`);
    }
  } finally {
    closeSync(fd);
  }
});

test.serial('a command that cannot be started is a RunError, and nothing is left listening', (t) => {
  const e = t.throws(() => startCommand('/nonexistent/warden-test', [], {}, []), { instanceOf: RunError });
  t.regex(e.message, /cannot start \/nonexistent\/warden-test: No such file or directory/);
});

test.serial('a ChildProcess seen as a Command reports the same statuses', async (t) => {
  const { spawn } = await import('node:child_process');
  const c = fromChildProcess(spawn('/bin/sh', ['-c', 'kill -HUP $$'], { stdio: 'ignore' }));
  await c.spawned;
  t.is(await c.exited, 128 + 1);
  const missing = fromChildProcess(spawn('/nonexistent/warden-test', [], { stdio: 'ignore' }));
  await t.throwsAsync(missing.exited, { code: 'ENOENT' });
});

/** Session id and controlling tty (0: none) of process `pid`, from /proc/PID/stat. */
function sessionOf(pid: number | string): { session: number; ttyNr: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { session: Number(f[3]), ttyNr: Number(f[4]) };
}

test.serial('the child leads a session of its own, without a controlling terminal', async (t) => {
  const out = join(t.context.dir, 'stat');
  const c = sh(`cat /proc/self/stat > ${out}`);
  t.is(await c.exited, 0);
  const text = readFileSync(out, 'utf8');
  const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
  t.is(Number(f[3]), c.pid!, 'session id: its own pid');
  t.not(Number(f[3]), sessionOf('self').session);
  t.is(Number(f[4]), 0, 'no controlling terminal');
});

test.serial('kill(signal, true) reaches the whole process group (what Ctrl-C does)', async (t) => {
  const c = sh('sleep 1000 & wait');
  // Until the background sleep is in the group, there is nothing to check.
  const group = () => readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== c.pid).filter((p) => {
    try {
      const s = readFileSync(`/proc/${p}/stat`, 'utf8');
      return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[2]) === c.pid;
    } catch {
      return false;
    }
  });
  while (group().length === 0) await new Promise((r) => setImmediate(r));
  const [sleeper] = group();
  c.kill('SIGTERM', true);
  t.is(await c.exited, 128 + 15);
  await t.notThrowsAsync(async () => {
    while (existsSync(`/proc/${sleeper}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${sleeper}/status`, 'utf8'))) await new Promise((r) => setImmediate(r));
  });
});

test.serial('with a terminal, the pty slave is its stdin, stdout, stderr and controlling terminal', async (t) => {
  const pty = Pty.open();
  try {
    const c = startCommand('sleep', ['1000'], { PATH: process.env.PATH }, [], { terminal: pty.slave });
    const fds = [0, 1, 2].map((fd) => readlinkSync(`/proc/${c.pid}/fd/${fd}`));
    const seen = sessionOf(c.pid!);
    c.kill('SIGKILL');
    await c.exited;
    t.deepEqual(fds, [pty.slave.path, pty.slave.path, pty.slave.path]);
    t.is(seen.session, c.pid!);
    t.is(seen.ttyNr, statSync(pty.slave.path).rdev, 'its controlling terminal is the slave');
  } finally {
    pty.close();
  }
});

test.serial('with a terminal for stdout only, the slave is still its controlling terminal, and stdin and stderr stay ours', async (t) => {
  const pty = Pty.open(undefined, { stdin: false, stdout: true, stderr: false });
  try {
    const c = startCommand('sleep', ['1000'], { PATH: process.env.PATH }, [], { terminal: pty.slave });
    const fds = [0, 1, 2].map((fd) => readlinkSync(`/proc/${c.pid}/fd/${fd}`));
    const seen = sessionOf(c.pid!);
    c.kill('SIGKILL');
    await c.exited;
    t.deepEqual(fds, [readlinkSync('/proc/self/fd/0'), pty.slave.path, readlinkSync('/proc/self/fd/2')]);
    t.is(seen.session, c.pid!);
    t.is(seen.ttyNr, statSync(pty.slave.path).rdev, 'its controlling terminal is the slave');
  } finally {
    pty.close();
  }
});
