// The facts build farms rest on (issue 20), measured on a real GlusterFS
// volume mounted twice on this machine (test/helpers/gluster.ts): mount A
// and mount B stand for two hosts. Real kernel locks through koffi
// (FileLock) and through a second real process (test/c/holder.c); no
// mocks. Each test logs what it measured.
//
// Root only, and glusterfs-server installed (.ci/run does); otherwise every
// test is skipped with the reason in its title.
import anyTest, { type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { arch } from 'node:process';
import { join } from 'node:path';
import { FileLock, LockBusyError, fileKeyOfPath, lockLocality, readProcLocks, shutdownWaitPool } from '../../src/locks/index.js';
import { mountsUnder } from '../../src/union/index.js';
import { hostOf } from '../../src/config/index.js';
import { chrootOf, loadContext } from '../../src/config/context.js';
import { F_GETLK, F_RDLCK, F_WRLCK, decodeFlock, encodeFlock, FLOCK_SIZE, native } from '../../src/locks/native.js';
import { startGlusterFarm, type GlusterFarm, type Host } from '../helpers/gluster.js';
import { Holder, killAllHolders, liveHolders, type Family } from '../helpers/holder.js';
import { fileFds } from '../helpers/leaks.js';

const test = anyTest as TestFn<{ fds: string[]; files: string[] }>;

const started = await startGlusterFarm();
const skip = 'skip' in started ? started.skip : undefined;
const farm = 'skip' in started ? undefined : (started as GlusterFarm);
const title = (s: string) => (skip ? `${s} (skipped: ${skip})` : s);
// Serial: one test kills a mount's client, which every other test needs.
const serial = skip ? test.serial.skip : test.serial;

test.before((t) => {
  if (skip) t.log(`skipped: ${skip}`);
  else t.log(`gluster farm up in ${ms(farm!.timings.setupMs)} (glusterd ${ms(farm!.timings.glusterdMs)}, volume create+start ${ms(farm!.timings.volumeMs)}, two mounts ${ms(farm!.timings.mountsMs)})`);
});

test.after.always(async (t) => {
  if (farm) {
    const { teardownMs } = await farm.close();
    t.log(`gluster farm torn down in ${ms(teardownMs)}`);
  }
  await shutdownWaitPool();
});

test.beforeEach((t) => {
  t.context.fds = fileFds();
  t.context.files = [];
});

test.afterEach.always(async (t) => {
  await killAllHolders();
  for (const f of t.context.files) rmSync(f, { force: true });
  t.is(liveHolders(), 0);
  t.deepEqual(fileFds(), t.context.fds, 'no fd left open');
});

function ms(n: number): string {
  return n >= 10 ? `${Math.round(n)} ms` : `${n.toFixed(2)} ms`;
}

/** A new file on the volume, and its path as each host sees it. */
function shared(t: { context: { files: string[] } }, name: string): Record<Host, string> {
  writeFileSync(join(farm!.mounts.A, name), '');
  t.context.files.push(join(farm!.mounts.A, name));
  return { A: join(farm!.mounts.A, name), B: join(farm!.mounts.B, name) };
}

// fcntl's syscall number, for /proc/PID/syscall (the first field while a
// process is blocked in a system call).
const SYS_FCNTL = arch === 'arm64' ? 25 : 72;

/**
 * Resolves once `pid` sleeps in fcntl(2). Through a FUSE mount a blocked
 * request shows nowhere in /proc/locks (the filesystem, not the kernel,
 * keeps it), so the process's own state is the event to wait for.
 */
async function untilInFcntl(pid: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (readFileSync(`/proc/${pid}/syscall`, 'utf8').split(' ')[0] === String(SYS_FCNTL)) return;
    } catch {
      // not yet readable
    }
    if (Date.now() > deadline) throw new Error(`pid ${pid} not blocked in fcntl after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

for (const family of ['ofd', 'posix'] as Family[]) {
  serial(title(`${family} locks conflict across the two mounts as on one filesystem`), async (t) => {
    const f = shared(t, `conflict-${family}`);
    const a = await Holder.start(f.A);
    const b = await Holder.start(f.B);
    t.is(await a.lock(family, 'w'), 'ok');
    t.is(await b.lock(family, 'r'), 'busy', 'exclusive on A blocks shared on B');
    t.is(await b.lock(family, 'w'), 'busy', 'exclusive on A blocks exclusive on B');
    t.is(await a.lock(family, 'r'), 'ok', 'A downgrades');
    t.is(await b.lock(family, 'r'), 'ok', 'shared on A and shared on B');
    t.is(await b.lock(family, 'w'), 'busy', 'no upgrade on B while A shares');
    t.is(await a.unlock(family), 'ok');
    t.is(await b.lock(family, 'w'), 'ok', 'B upgrades once A is gone');
    t.is(await a.lock(family, 'r'), 'busy', 'and now B blocks A');
    // Byte ranges are kept apart, as warden's liveness (byte 0) and metadata (byte 1) locks need.
    t.is(await a.lock(family, 'w', 5, 1), 'busy', 'B holds the whole file');
    t.is(await b.unlock(family), 'ok');
    t.is(await b.lock(family, 'w', 0, 1), 'ok');
    t.is(await a.lock(family, 'w', 1, 1), 'ok', 'byte 1 on A beside byte 0 on B');
    t.is(await a.lock(family, 'w', 0, 1), 'busy');
  });
}

serial(title('FileLock (koffi) on B is refused while a process on A holds, and takes it after'), async (t) => {
  const f = shared(t, 'filelock');
  const a = await Holder.start(f.A);
  t.is(await a.lock('ofd', 'r'), 'ok');
  const lock = FileLock.open(f.B);
  try {
    t.true(lock.tryAcquire('shared'), 'shared beside shared');
    lock.release();
    const busy = await t.throwsAsync(lock.acquire('exclusive', { wait: false }), { instanceOf: LockBusyError });
    t.log(`LockBusyError on B names: ${busy?.message}`);
    t.is(await a.unlock('ofd'), 'ok');
    t.true(lock.tryAcquire('exclusive'));
    t.is(await a.lock('ofd', 'r'), 'busy');
    lock.release();
    t.is(await a.lock('ofd', 'r'), 'ok', 'an explicit unlock is seen on A at once');
  } finally {
    lock.close();
  }
});

// close(2) of a FUSE file sends FUSE_RELEASE without waiting for it (only
// fuseblk waits), and glusterfs drops an OFD's locks when that release
// arrives: for a moment after close() returns (or a holder dies) the lock
// is still held for everyone. POSIX locks go with FUSE_FLUSH, which close()
// waits for. A blocked waiter is woken either way; only a non-blocking try
// right after can be refused.
serial(title('after close() of an OFD lock on A, B can take it only once the release arrives'), async (t) => {
  const f = shared(t, 'close-ofd');
  const b = await Holder.start(f.B);
  const probe = FileLock.open(f.A);
  const mode = probe.mode;
  probe.close();
  if (mode !== 'ofd') return t.pass('this process uses POSIX locks (WARDEN_LOCK_MODE=posix)');
  const trials = 30;
  let busyAtOnce = 0;
  const freedAfter: number[] = [];
  for (let i = 0; i < trials; i++) {
    // Our own process holds on A (koffi), so that nothing but close(2) comes between.
    const lock = FileLock.open(f.A);
    t.true(lock.tryAcquire('exclusive'));
    lock.close();
    const t0 = performance.now();
    let r = await b.lock('ofd', 'w');
    if (r !== 'ok') busyAtOnce++;
    while (r !== 'ok' && performance.now() - t0 < 5_000) r = await b.lock('ofd', 'w');
    t.is(r, 'ok');
    freedAfter.push(performance.now() - t0);
    t.is(await b.unlock('ofd'), 'ok');
  }
  freedAfter.sort((x, y) => x - y);
  t.log(`B's first try right after A's close() was refused in ${busyAtOnce}/${trials} trials; free after p50 ${ms(freedAfter[trials >> 1]!)}, max ${ms(freedAfter[trials - 1]!)}`);
});

serial(title('after close() of a POSIX lock on A, B can take it at once'), async (t) => {
  const f = shared(t, 'close-posix');
  const a = await Holder.start(f.A);
  const b = await Holder.start(f.B);
  for (let i = 0; i < 30; i++) {
    t.is(await a.lock('posix', 'w'), 'ok');
    t.is(await a.send('reopen'), 'ok'); // close(fd), then open the file again
    t.is(await b.lock('posix', 'w'), 'ok');
    t.is(await b.unlock('posix'), 'ok');
  }
});

for (const family of ['ofd', 'posix'] as Family[]) {
  serial(title(`a ${family} waiter on B wakes when A unlocks`), async (t) => {
    const f = shared(t, `wake-${family}`);
    const a = await Holder.start(f.A);
    const b = await Holder.start(f.B);
    const rounds = 20;
    const wakes: number[] = [];
    for (let i = 0; i < rounds; i++) {
      t.is(await a.lock(family, 'w'), 'ok');
      const granted = b.wait(family, 'w');
      await untilInFcntl(b.pid);
      const t0 = performance.now();
      t.is(await a.unlock(family), 'ok');
      t.is(await granted, 'ok');
      wakes.push(performance.now() - t0);
      t.is(await b.unlock(family), 'ok');
    }
    wakes.sort((x, y) => x - y);
    // Both replies come over pipes from two processes: an upper bound on the wake-up itself.
    t.log(`unlock on A -> grant on B (${rounds} rounds, incl. two pipe round trips): p50 ${ms(wakes[rounds >> 1]!)}, max ${ms(wakes[rounds - 1]!)}`);
  });
}

serial(title('a FileLock wait (worker thread) on B wakes when A unlocks'), async (t) => {
  const f = shared(t, 'wake-filelock');
  const a = await Holder.start(f.A);
  t.is(await a.lock('ofd', 'w'), 'ok');
  const lock = FileLock.open(f.B);
  try {
    let reported: unknown;
    const acquired = lock.acquire('exclusive', { timeout: 10_000, onWait: (h) => (reported = h) });
    // Our own wait thread is the one in fcntl: find it among our tasks.
    await untilTaskInFcntl();
    const t0 = performance.now();
    t.is(await a.unlock('ofd'), 'ok');
    await acquired;
    t.log(`unlock on A -> FileLock on B granted: ${ms(performance.now() - t0)}; holders reported while waiting: ${JSON.stringify(reported)}`);
    t.deepEqual(reported, [], 'the remote holder is invisible to /proc/locks: warden must record who holds (registrations)');
  } finally {
    lock.close();
  }
});

async function untilTaskInFcntl(timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const tid of readdirSync('/proc/self/task')) {
      try {
        if (readFileSync(`/proc/self/task/${tid}/syscall`, 'utf8').split(' ')[0] === String(SYS_FCNTL)) return;
      } catch {
        // gone
      }
    }
    if (Date.now() > deadline) throw new Error(`no thread of ours blocked in fcntl after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

for (const family of ['ofd', 'posix'] as Family[]) {
  serial(title(`SIGKILL of a ${family} holder on A frees its lock for B`), async (t) => {
    const f = shared(t, `kill-${family}`);
    const b = await Holder.start(f.B);
    const trials = 10;
    let refusedAtOnce = 0;
    const freedAfter: number[] = [];
    for (let i = 0; i < trials; i++) {
      const a = await Holder.start(f.A);
      t.is(await a.lock(family, 'w'), 'ok');
      t.is(await b.lock(family, 'w'), 'busy');
      await a.kill(); // resolves once the process is gone
      const t0 = performance.now();
      let r = await b.lock(family, 'w');
      if (r !== 'ok') refusedAtOnce++;
      while (r !== 'ok' && performance.now() - t0 < 5_000) r = await b.lock(family, 'w');
      t.is(r, 'ok');
      freedAfter.push(performance.now() - t0);
      t.is(await b.unlock(family), 'ok');
    }
    freedAfter.sort((x, y) => x - y);
    t.log(`B's first try after A's holder was reaped refused in ${refusedAtOnce}/${trials}; free after p50 ${ms(freedAfter[trials >> 1]!)}, max ${ms(freedAfter[trials - 1]!)}`);
    // POSIX locks go with the dying process's FUSE_FLUSH, before it is reaped.
    if (family === 'posix') t.is(refusedAtOnce, 0);
  });
}

serial(title('a blocked waiter on B is granted when the holder on A is SIGKILLed'), async (t) => {
  const f = shared(t, 'kill-wake');
  const a = await Holder.start(f.A);
  const b = await Holder.start(f.B);
  t.is(await a.lock('ofd', 'r'), 'ok');
  const granted = b.wait('ofd', 'w');
  await untilInFcntl(b.pid);
  const t0 = performance.now();
  await a.kill();
  t.is(await granted, 'ok');
  t.log(`SIGKILL on A -> grant on B: ${ms(performance.now() - t0)}`);
});

serial(title('F_OFD_GETLK on B reports a lock held on A with pid -1; F_GETLK with the pid on A'), async (t) => {
  const f = shared(t, 'getlk');
  const a = await Holder.start(f.A);
  const results: Record<string, unknown> = {};
  for (const family of ['ofd', 'posix'] as Family[]) {
    t.is(await a.lock(family, 'r', 0, 1), 'ok');
    const lock = FileLock.open(f.B, { range: { start: 0, len: 1 } });
    try {
      // F_OFD_GETLK (conflict() in OFD mode; POSIX mode asks F_GETLK)
      const c = lock.conflict('exclusive');
      results[`${lock.mode === 'ofd' ? 'F_OFD_GETLK' : 'F_GETLK'}, ${family} holder`] = c;
      t.is(c?.kind, 'shared');
      t.deepEqual(c?.range, { start: 0, len: 1 });
      if (lock.mode === 'ofd') t.is(c?.pid, -1, 'F_OFD_GETLK never names a process');
      // process-associated F_GETLK on the same fd, by hand
      const buf = Buffer.alloc(FLOCK_SIZE);
      encodeFlock(buf, F_WRLCK, 0, 1);
      t.is(native().fcntl(lock.fd, F_GETLK, buf), 0);
      const view = decodeFlock(buf);
      results[`F_GETLK, ${family} holder`] = view;
      t.is(view.type, F_RDLCK);
      // glusterfs carries the client's pid to the brick and back: this is a
      // pid on the holder's host, which on a real farm is another machine.
      t.is(view.pid, a.pid, 'F_GETLK gives the pid as the holder\'s host knows it');
    } finally {
      lock.close();
    }
    t.is(await a.unlock(family, 0, 1), 'ok');
  }
  t.log(`holder pid ${a.pid}: ${JSON.stringify(results)}`);
});

serial(title('a lock through a glusterfs mount is not kept by this kernel (/proc/locks, fdinfo)'), async (t) => {
  const f = shared(t, 'proc-locks');
  const lock = FileLock.open(f.A);
  try {
    t.true(lock.tryAcquire('exclusive'));
    const key = fileKeyOfPath(f.A);
    t.deepEqual(
      readProcLocks().filter((e) => e.key === key),
      [],
      'nothing in /proc/locks',
    );
    t.notRegex(readFileSync(`/proc/self/fdinfo/${lock.fd}`, 'utf8'), /^lock:/m, 'no lock: line in fdinfo');
  } finally {
    lock.close();
  }
});

serial(title('lockLocality: cluster on either mount, found by a probe'), (t) => {
  for (const host of ['A', 'B'] as Host[]) {
    const times: number[] = [];
    let l;
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      l = lockLocality(farm!.mounts[host]);
      times.push(performance.now() - t0);
    }
    times.sort((x, y) => x - y);
    t.like(l, { scope: 'cluster', how: 'probe', fsType: 'fuse.glusterfs', mountPoint: farm!.mounts[host] });
    t.log(`${host}: ${JSON.stringify(l)}; probe p50 ${ms(times[5]!)}, max ${ms(times[9]!)}`);
  }
  t.deepEqual(readdirSync(farm!.mounts.A).filter((n) => n.startsWith('.warden-lock-probe')), [], 'no probe file left');
});

serial(title('a lock taken through an overlay over the volume is local: it does not exclude B, and lockLocality says local-fs'), async (t) => {
  const f = shared(t, 'under-overlay');
  const local = mkdtempSync(join(tmpdir(), 'warden-farm-overlay-'));
  const [upper, work, merged] = ['upper', 'work', 'merged'].map((d) => join(local, d));
  for (const d of [upper, work, merged]) mkdirSync(d!);
  try {
    const r = spawnSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${farm!.mounts.A},upperdir=${upper},workdir=${work},index=off,metacopy=off,xino=off,redirect_dir=off`, merged!], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
    const viaOverlay = await Holder.start(join(merged!, 'under-overlay'));
    const b = await Holder.start(f.B);
    t.is(await viaOverlay.lock('ofd', 'w'), 'ok');
    t.is(await b.lock('ofd', 'w'), 'ok', 'B is not excluded by a lock taken through the overlay');
    const l = lockLocality(merged!);
    t.log(JSON.stringify(l));
    t.like(l, { scope: 'local-fs', fsType: 'overlay' });
    await viaOverlay.kill();
    await b.kill();
  } finally {
    spawnSync('umount', [merged!]);
    t.deepEqual(mountsUnder(local), []);
    rmSync(local, { recursive: true, force: true });
  }
});

serial(title('a chroot with its source and shared-dir= on the volume passes the shared-storage check'), (t) => {
  const top = join(farm!.mounts.A, 'config-check');
  mkdirSync(join(top, 'source'), { recursive: true });
  mkdirSync(join(top, 'farm'));
  const etc = mkdtempSync(join(tmpdir(), 'warden-farm-etc-'));
  try {
    writeFileSync(join(etc, 'warden.conf'), ['[warden]', 'host=host-a', '[sid]', 'type=directory', `directory=${top}/source`, `shared-dir=${top}/farm`, ''].join('\n'));
    const ctx = loadContext({ config: join(etc, 'warden.conf') }, {});
    const t0 = performance.now();
    t.is(chrootOf(ctx, 'sid').sharedDir?.path, `${top}/farm`);
    t.log(`first use of the shared chroot (probe included): ${ms(performance.now() - t0)}`);
    t.is(hostOf(ctx.config), 'host-a');
    t.deepEqual(readdirSync(join(top, 'farm')), [], 'no probe file left');
  } finally {
    rmSync(etc, { recursive: true, force: true });
    rmSync(top, { recursive: true, force: true });
  }
});

// Last: it takes a mount down (and brings it back).
serial(title("killing A's glusterfs client frees every lock taken through it; A must be remounted"), async (t) => {
  const f = shared(t, 'client-kill');
  const a = await Holder.start(f.A);
  const b = await Holder.start(f.B);
  // (An OFD and a POSIX lock of one process conflict like any two owners: keep them apart.)
  t.is(await a.lock('ofd', 'w', 0, 1), 'ok');
  t.is(await a.lock('posix', 'w', 10, 1), 'ok');
  t.is(await b.lock('ofd', 'r', 0, 1), 'busy');
  const client = farm!.clientPid('A');
  t.truthy(client, "A's client process found");
  process.kill(client!, 'SIGKILL');
  const t0 = performance.now();
  let freed: string;
  // The brick notices the disconnect and drops the client's locks; ask until it has.
  for (;;) {
    freed = await b.lock('ofd', 'r', 0, 1);
    if (freed === 'ok' || performance.now() - t0 > 10_000) break;
    await new Promise((r) => setTimeout(r, 1));
  }
  t.is(freed, 'ok');
  t.is(await b.lock('posix', 'w', 10, 1), 'ok', "the POSIX lock went with A's client too");
  t.log(`A's client SIGKILLed -> B got the lock after ${ms(performance.now() - t0)}`);
  const afterward = await a.unlock('ofd', 0, 1);
  t.log(`A's old holder, unlocking afterwards: ${afterward}`);
  t.not(afterward, 'ok', 'the old holder gets an error, not a lock');
  await a.kill();
  await b.kill();
  await farm!.remount('A');
  const again = await Holder.start(f.A);
  t.is(await again.lock('ofd', 'r'), 'ok', 'remounted A works again');
  t.is(await again.lock('ofd', 'w'), 'ok');
});
