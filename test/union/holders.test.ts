// Who keeps a session root busy, as UnmountBusyError reports it: a cwd in
// the overlay itself, a file held open by another program (also once
// deleted), an executable run from inside. The overlay stays mounted
// until they are gone, then unmountAll succeeds.
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { UnmountBusyError, isMountPoint, mountHolders, mountUnion, mountsUnder, unmountAll } from '../../src/union/index.js';
import { checkAllFds } from './fds.js';
import { makeLayout, makeSource, rootTest, scratch, startChild, type Ctx } from './support.js';
import type { ExecutionContext } from 'ava';

checkAllFds();

const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

async function overlay(t: ExecutionContext<Ctx>) {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  await mountUnion(l);
  return { tmp, l };
}

/** Kills the child and waits for 'close': exited, and its stdio pipes closed on our side. */
async function killAndClose(child: ChildProcess): Promise<void> {
  const closed = new Promise((resolve) => child.once('close', resolve));
  child.kill('SIGKILL');
  await closed;
}

/** Resolves once the child has printed the line `want`; rejects if it exits first. */
function untilLine(child: ChildProcess, want: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const onData = (d: Buffer) => {
      seen += d.toString();
      if (seen.split('\n').includes(want)) {
        child.off('exit', onExit);
        child.stdout!.off('data', onData);
        resolve();
      }
    };
    const onExit = () => reject(new Error(`exited before printing ${want}: ${seen}`));
    child.stdout!.on('data', onData);
    child.once('exit', onExit);
  });
}

rootTest('busy: a process with its cwd in the overlay root', async (t) => {
  const { tmp, l } = await overlay(t);
  const child = await startChild(t, 'sleep', ['1000'], { cwd: l.root, stdio: 'ignore' });
  const pid = child.pid!;

  const e = t.throws(() => unmountAll(l.root), { instanceOf: UnmountBusyError });
  t.is(e!.path, l.root);
  t.deepEqual(
    e!.holders.filter((h) => h.pid === pid),
    [{ pid, comm: 'sleep', how: 'cwd' }],
  );
  t.true(e!.message.includes(`pid ${pid} (sleep, cwd)`), e!.message);
  t.true(isMountPoint(l.root), 'the overlay stays mounted');
  t.is(readFileSync(join(l.root, 'etc', 'hostname'), 'utf8'), 'source\n', 'and usable');

  await killAndClose(child);
  unmountAll(l.root);
  t.deepEqual(mountsUnder(tmp), []);
});

rootTest('busy: a python3 process holding a file under root open, then deleted', async (t) => {
  const { tmp, l } = await overlay(t);
  const file = join(l.root, 'etc', 'hostname');
  const child = await startChild(t, PYTHON, ['-c', "import sys,time; f=open(sys.argv[1]); print('ok', flush=True); time.sleep(1000)", file], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await untilLine(child, 'ok');
  const pid = child.pid!;

  const e = t.throws(() => unmountAll(l.root), { instanceOf: UnmountBusyError });
  const fds = e!.holders.filter((h) => h.pid === pid);
  t.is(fds.length, 1, JSON.stringify(e!.holders));
  t.regex(fds[0]!.how, /^fd \d+$/);
  t.is(fds[0]!.comm, 'python3');
  t.is(readlinkSync(`/proc/${pid}/fd/${fds[0]!.how.slice(3)}`), file, 'the fd named is the one holding the file');
  t.true(e!.message.includes(`pid ${pid} (python3, ${fds[0]!.how})`), e!.message);
  t.true(isMountPoint(l.root), 'the overlay stays mounted');

  // readlink(2) of an fd of a deleted file ends in " (deleted)": still a holder.
  unlinkSync(file);
  t.deepEqual(
    mountHolders(l.root).filter((h) => h.pid === pid),
    fds,
  );
  t.throws(() => unmountAll(l.root), { instanceOf: UnmountBusyError });

  await killAndClose(child);
  unmountAll(l.root);
  t.deepEqual(mountsUnder(tmp), []);
  t.is(readFileSync(join(l.source, 'etc', 'hostname'), 'utf8'), 'source\n', 'the deletion stayed in upper');
});

rootTest('busy: a program run from inside root holds it by its executable and maps', async (t) => {
  const { tmp, l } = await overlay(t);
  const exe = join(l.root, 'sleep-copy');
  copyFileSync('/bin/sleep', exe);
  const child = await startChild(t, exe, ['1000'], { cwd: '/', stdio: 'ignore' });
  const pid = child.pid!;

  const hows = mountHolders(l.root)
    .filter((h) => h.pid === pid)
    .map((h) => h.how);
  t.deepEqual(hows, ['exe', 'map']);
  const e = t.throws(() => unmountAll(l.root), { instanceOf: UnmountBusyError });
  t.true(e!.message.includes(`pid ${pid} (sleep-copy, exe, map)`), e!.message);

  await killAndClose(child);
  unmountAll(l.root);
  t.deepEqual(mountsUnder(tmp), []);
});

rootTest('mountHolders: a process beside the mount (a sibling sharing its prefix) is not a holder', async (t) => {
  const { tmp, l } = await overlay(t);
  const beside = `${l.root}-beside`;
  mkdirSync(beside);
  const child = await startChild(t, 'sleep', ['1000'], { cwd: beside, stdio: 'ignore' });
  t.deepEqual(mountHolders(l.root).filter((h) => h.pid === child.pid), []);
  unmountAll(l.root);
  t.deepEqual(mountsUnder(tmp), []);
  await killAndClose(child);
});
