// Registrations of a shared chroot (src/sessions/registry.ts) on a real
// GlusterFS volume mounted twice (test/helpers/gluster.ts): host A
// registers through its mount, host B sees, probes and forgets through its
// own. Holders are real child processes that inherit the registration's
// fd, as a session's commands will. OFD mode only: in POSIX mode two
// "hosts" in one test process would be one lock owner.
//
// Root only, and glusterfs-server installed (.ci/run does); otherwise every
// test is skipped with the reason in its title.
import anyTest, { type TestFn } from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { FileLock, shutdownWaitPool } from '../../src/locks/index.js';
import {
  Registry,
  RegistrationExistsError,
  RegistrationHeldError,
  RegistryError,
  describeRegistration,
  type RegistryEntry,
} from '../../src/sessions/registry.js';
import { farmOrSkip } from '../helpers/gluster.js';
import { fileFds } from '../helpers/leaks.js';
import { until } from '../helpers/wait.js';

const test = anyTest as TestFn<{ fds: string[]; a: Registry; b: Registry; dirs: string[] }>;

const { farm, skip, title } = await farmOrSkip({ needsRoot: false });
const serial = skip ? test.serial.skip : test.serial;

let n = 0;
test.beforeEach((t) => {
  t.context.fds = fileFds();
  if (!farm) return;
  // A fresh shared-dir per test, the same directory through each host's mount.
  const name = `shared-${++n}`;
  mkdirSync(join(farm.mounts.A, name), { mode: 0o755 });
  t.context.dirs = [join(farm.mounts.A, name)];
  t.context.a = Registry.open(join(farm.mounts.A, name), 'host-a');
  t.context.b = Registry.open(join(farm.mounts.B, name), 'host-b');
});

const children = new Set<ChildProcess>();

test.afterEach.always(async (t) => {
  await Promise.all([...children].map(kill));
  for (const d of t.context.dirs ?? []) rmSync(d, { recursive: true, force: true });
  t.deepEqual(fileFds(), t.context.fds, 'no fd left open');
});

test.after.always(async (t) => {
  if (farm) t.log(`gluster farm torn down in ${Math.round((await farm.close()).teardownMs)} ms`);
  await shutdownWaitPool();
});

/** A holder process on "host A": sleeps with the lock's fd as its fd 3. */
function holder(lock: FileLock): ChildProcess {
  const child = spawn('sleep', ['1000'], { stdio: ['ignore', 'ignore', 'inherit', lock.fd] });
  children.add(child);
  return child;
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) {
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  }
  children.delete(child);
}

const brief = (l: RegistryEntry[]) => l.map((e) => `${e.host}@${e.session} ${e.status}`);

serial(title('a session registered on A is listed as active on B, with what A recorded'), async (t) => {
  const h = await t.context.a.registerLocked({ session: 'sid-1', chroot: 'sid', pids: [process.pid] });
  try {
    const seen = t.context.b.list();
    t.deepEqual(brief(seen), ['host-a@sid-1 active']);
    t.like(seen[0]!.record, { host: 'host-a', session: 'sid-1', chroot: 'sid', pids: [process.pid] });
    t.deepEqual(brief(t.context.a.list()), ['host-a@sid-1 active'], 'and on A itself (its own probe does not take it)');
    t.log(describeRegistration(seen[0]!));
    t.deepEqual(readdirSync(t.context.a.dir), ['host-a@sid-1'], 'no temporary file left');
    await t.throwsAsync(() => t.context.a.registerLocked({ session: 'sid-1', chroot: 'sid', pids: [] }), { instanceOf: RegistrationExistsError });
    t.deepEqual(readdirSync(t.context.a.dir), ['host-a@sid-1'], 'a refused registration leaves nothing');
    h.unregister();
    t.deepEqual(t.context.b.list(), [], 'unregistered: gone for B');
  } finally {
    h.close();
  }
});

serial(title("a registration held by a holder process stays active after A's handle closes, and is stale for B once the holder dies"), async (t) => {
  const h = await t.context.a.registerLocked({ session: 'sid-2', chroot: 'sid', pids: [] });
  const lock = h.holderLock();
  const child = holder(lock);
  lock.close(); // the child keeps the open file description, and the lock with it
  h.update([child.pid!]);
  h.close();
  t.deepEqual(brief(t.context.b.list()), ['host-a@sid-2 active']);
  await kill(child);
  const t0 = performance.now();
  await until(() => t.context.b.list()[0]?.status === 'stale', 'the registration to go stale', 5_000);
  t.log(`holder SIGKILLed -> stale for B after ${(performance.now() - t0).toFixed(2)} ms`);
  const [e] = t.context.b.list();
  t.like(e!.record, { pids: [child.pid] });
  t.log(`B would refuse an entry naming: ${describeRegistration(e!)}`);
  t.is(e!.status, 'stale', 'probing does not change it');
});

serial(title('unregister is refused while another holder keeps the registration'), async (t) => {
  const h = await t.context.a.registerLocked({ session: 'sid-3', chroot: 'sid', pids: [] });
  try {
    const lock = h.holderLock();
    const child = holder(lock);
    lock.close();
    t.throws(() => h.unregister(), { instanceOf: RegistrationHeldError });
    t.deepEqual(brief(t.context.b.list()), ['host-a@sid-3 active'], 'still held, still there');
    await kill(child);
    // The dead holder's lock goes when its FUSE release arrives: retry until then.
    await until(() => {
      try {
        h.unregister();
        return true;
      } catch (e) {
        if (e instanceof RegistrationHeldError) return false;
        throw e;
      }
    }, 'unregister to succeed', 5_000);
    t.deepEqual(t.context.b.list(), []);
  } finally {
    h.close();
  }
});

serial(title('forgetting a host: refused while any of its registrations is held, all removed once none is, never this host'), async (t) => {
  const held = await t.context.a.registerLocked({ session: 'sid-4', chroot: 'sid', pids: [] });
  const dead = await t.context.a.registerLocked({ session: 'sid-5', chroot: 'sid', pids: [] });
  const other = await t.context.b.registerLocked({ session: 'sid-6', chroot: 'sid', pids: [] });
  try {
    dead.close();
    const e = t.throws(() => t.context.b.forgetHostLocked('host-a'), { instanceOf: RegistrationHeldError });
    t.deepEqual(e.held.map((x) => x.session), ['sid-4']);
    t.log(e.message);
    t.deepEqual(brief(t.context.b.list()), ['host-a@sid-4 active', 'host-a@sid-5 stale', 'host-b@sid-6 active'], 'nothing removed');
    held.close();
    const forgotten = t.context.b.forgetHostLocked('host-a');
    t.deepEqual(forgotten.map((x) => x.session), ['sid-4', 'sid-5']);
    t.deepEqual(brief(t.context.a.list()), ['host-b@sid-6 active'], "host-b's session untouched");
    t.throws(() => t.context.b.forgetHostLocked('host-b'), { instanceOf: RegistryError, message: /is this host/ });
  } finally {
    held.close();
    dead.close();
    other.close();
  }
});

serial(title("killing A's glusterfs client makes every registration of A stale for B"), async (t) => {
  const h1 = await t.context.a.registerLocked({ session: 'sid-7', chroot: 'sid', pids: [] });
  const h2 = await t.context.a.registerLocked({ session: 'sid-8', chroot: 'sid', pids: [] });
  try {
    t.deepEqual(brief(t.context.b.list()), ['host-a@sid-7 active', 'host-a@sid-8 active']);
    process.kill(farm!.clientPid('A')!, 'SIGKILL');
    const t0 = performance.now();
    await until(() => t.context.b.list().every((e) => e.status === 'stale'), "A's registrations to go stale", 10_000);
    t.log(`A's client SIGKILLed -> its registrations stale for B after ${(performance.now() - t0).toFixed(2)} ms`);
  } finally {
    h1.close(); // on a dead mount: the release fails quietly, the fd is closed
    h2.close();
  }
  await farm!.remount('A');
  t.deepEqual(brief(t.context.a.list()), ['host-a@sid-7 stale', 'host-a@sid-8 stale'], 'A sees them stale too once remounted');
});

serial(title('a bad host name or session id is refused before any file is touched'), async (t) => {
  t.throws(() => Registry.open(t.context.dirs[0]!, 'bad_host'), { instanceOf: RegistryError, message: /host name "bad_host"/ });
  await t.throwsAsync(() => t.context.a.registerLocked({ session: '../x', chroot: 'sid', pids: [] }), { instanceOf: RegistryError, message: /invalid session id/ });
  t.deepEqual(readdirSync(t.context.a.dir), []);
});
