// peerCredentials() on a real unix-socket server in this process, with
// real clients: this process itself, and node started through setpriv(1)
// as another user with chosen groups. After each test no fd of any kind is
// left open and no child is alive.
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Credentials } from '../../src/config/index.js';
import { peerCredentials, PeerCredentialsError, peerHungUp, procGroups, selfCredentials } from '../../src/supervisor/peercred.js';
import { allFds, childrenOf } from '../helpers/leaks.js';

const test = anyTest as TestFn<{ fds: string[]; children: number[] }>;
const isRoot = process.getuid!() === 0;
// Switching to another user needs root; the reason shows in the skipped tests' titles.
const asRoot = isRoot ? test.serial : test.serial.skip;
const NEEDS_ROOT = isRoot ? '' : ' (skipped: switching users needs root)';
const NOBODY = 65534;

// A client that stays connected until the server has read its credentials and answered.
const CLIENT = `
const s = require('node:net').connect(process.argv[1]);
s.on('data', () => s.end());
s.on('error', (e) => { process.stderr.write(e.message + '\\n'); process.exit(2); });
`;

let dir: string;

test.before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'warden-peercred-'));
  // Clients running as nobody must reach the socket.
  chmodSync(dir, 0o755);
  // libuv opens its SIGCHLD plumbing on the first spawn: open it before any snapshot.
  const child = spawn('true', { stdio: 'ignore' });
  await new Promise((resolve) => child.once('close', resolve));
});
test.after.always(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});
test.beforeEach((t) => {
  t.context.fds = allFds();
  t.context.children = childrenOf();
});
test.afterEach.always((t) => {
  t.deepEqual(
    allFds().filter((f) => !t.context.fds.includes(f)),
    [],
    'no fd of any kind left open',
  );
  t.deepEqual(childrenOf(), t.context.children, 'no child left');
});

/**
 * Listens on a fresh socket, lets `client` connect, and resolves with what
 * `inspect` made of the server's end of the connection. Everything is
 * closed and every child has exited before it resolves.
 */
async function accept<T>(
  client: (path: string) => { done: Promise<unknown> },
  inspect: (s: Socket) => T | Promise<T>,
): Promise<T> {
  const path = join(dir, `sock-${Math.random().toString(36).slice(2)}`);
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(path, resolve));
  chmodSync(path, 0o777);
  try {
    const seen = new Promise<T>((resolve, reject) =>
      server.once('connection', async (s) => {
        try {
          resolve(await inspect(s));
        } catch (e) {
          reject(e as Error);
        } finally {
          s.end('ok');
        }
      }),
    );
    const c = client(path);
    // Both settle before anything is reported: a failed inspection still waits for the client to exit.
    const [result, done] = await Promise.allSettled([seen, c.done]);
    if (result.status === 'rejected') throw result.reason;
    if (done.status === 'rejected') throw done.reason;
    return result.value;
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

/** node, started through setpriv with `privs` (e.g. --reuid ...), connecting to the socket. */
function viaSetpriv(privs: string[], onPid: (pid: number) => void) {
  return (path: string) => {
    const child = spawn('setpriv', [...privs, process.execPath, '-e', CLIENT, path], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    onPid(child.pid!);
    const done = new Promise<void>((resolve, reject) =>
      child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`client exited ${code}: ${stderr}`)))),
    );
    return { done };
  };
}

/** A connection from this very process. */
function fromHere(path: string) {
  const s = connect(path);
  s.on('data', () => s.end());
  return { done: new Promise((resolve, reject) => s.once('close', resolve).once('error', reject)) };
}

test.serial('a client in this process: our own pid, ids and groups', async (t) => {
  const creds = await accept(fromHere, peerCredentials);
  t.deepEqual(creds, selfCredentials());
  t.is(creds.pid, process.pid);
});

// setpriv execs node in place, so the spawned pid is the client's.
const asUser = test.macro({
  async exec(t: ExecutionContext, privs: string[], expected: Omit<Credentials, 'pid'>) {
    let pid = 0;
    const creds = await accept(viaSetpriv(privs, (p) => (pid = p)), (s) => {
      const c = peerCredentials(s);
      // While the client is still connected and alive, the /proc fallback must agree.
      t.deepEqual(procGroups(c.pid, c.uid, c.gid), c.groups, '/proc/PID/status agrees with SO_PEERGROUPS');
      return c;
    });
    t.deepEqual(creds, { ...expected, pid });
  },
  title: (provided = '') => `${provided}${NEEDS_ROOT}`,
});

if (isRoot) {
  test.serial('nobody with no supplementary groups', asUser, ['--reuid', `${NOBODY}`, '--regid', `${NOBODY}`, '--clear-groups'], {
    uid: NOBODY,
    gid: NOBODY,
    groups: [],
  });
  test.serial('nobody with two supplementary groups', asUser, ['--reuid', `${NOBODY}`, '--regid', '100', '--groups', '2000,100'], {
    uid: NOBODY,
    gid: 100,
    groups: [100, 2000],
  });
  // More groups than the first buffer holds: the ERANGE retry.
  const many = Array.from({ length: 300 }, (_, i) => 10_000 + i);
  test.serial('a client with 300 groups', asUser, ['--reuid', '1234', '--regid', '4321', '--groups', many.join(',')], {
    uid: 1234,
    gid: 4321,
    groups: many,
  });
  test.serial('root with groups of its own', asUser, ['--groups', '5,7'], { uid: 0, gid: 0, groups: [5, 7] });
} else {
  asRoot('clients as other users', asUser, [], { uid: 0, gid: 0, groups: [] });
}

asRoot(`ids the client takes after connecting change nothing${NEEDS_ROOT}`, async (t) => {
  // Root connects, then drops to nobody; the server looks only after that.
  const script = `
const s = require('node:net').connect(process.argv[1], () => {
  process.setgroups([]); process.setgid(${NOBODY}); process.setuid(${NOBODY});
  s.write('dropped');
});
s.on('data', () => s.end());
`;
  let pid = 0;
  const creds = await accept(
    (path) => {
      const child = spawn(process.execPath, ['-e', script, path], { stdio: 'ignore' });
      pid = child.pid!;
      return { done: new Promise((resolve) => child.once('close', resolve)) };
    },
    async (s) => {
      await new Promise((resolve) => s.once('data', resolve));
      // The /proc fallback sees the new ids and refuses rather than report nobody's groups as root's.
      t.throws(() => procGroups(pid, 0, 0), { instanceOf: PeerCredentialsError, message: /no longer has uid 0 and gid 0/ });
      return peerCredentials(s);
    },
  );
  t.deepEqual(creds, { uid: 0, gid: 0, groups: [], pid });
});

test.serial('a TCP socket has no peer credentials', async (t) => {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const port = (server.address() as { port: number }).port;
    const seen = new Promise<unknown>((resolve) =>
      server.once('connection', (s) => {
        let outcome: unknown;
        try {
          outcome = peerCredentials(s);
        } catch (e) {
          outcome = e;
        }
        s.end();
        resolve(outcome);
      }),
    );
    const c = connect(port, '127.0.0.1');
    c.on('data', () => {});
    const closed = new Promise((resolve) => c.once('close', resolve));
    c.end();
    const outcome = await seen;
    await closed;
    t.true(outcome instanceof PeerCredentialsError, String(outcome));
    t.regex((outcome as Error).message, /is not a unix socket \(address family 2\)/);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test.serial('a closed socket is refused with a clear error', async (t) => {
  const socket = await accept(fromHere, (s) => s);
  await new Promise((resolve) => (socket.closed ? resolve(undefined) : socket.once('close', resolve)));
  t.throws(() => peerCredentials(socket), { instanceOf: PeerCredentialsError, message: /socket is closed/ });
});

/** A connected pair in this process: the server's end and the client's, both open. */
async function pair(): Promise<{ server: Socket; client: Socket; close: () => Promise<void> }> {
  const path = join(dir, `sock-${Math.random().toString(36).slice(2)}`);
  const listener: Server = createServer();
  await new Promise<void>((resolve) => listener.listen(path, resolve));
  const accepted = new Promise<Socket>((resolve) => listener.once('connection', resolve));
  const client = connect(path);
  client.on('error', () => {});
  await new Promise((resolve) => client.once('connect', resolve));
  const server = await accepted;
  server.on('error', () => {});
  const close = async () => {
    const closed = [server, client].map((s) => (s.closed ? undefined : new Promise((resolve) => s.once('close', resolve))));
    server.destroy();
    client.destroy();
    await Promise.all(closed);
    await new Promise((resolve) => listener.close(resolve));
  };
  return { server, client, close };
}

test.serial('peerHungUp: false while the client is connected; true as soon as it closes, before Node has read the end', async (t) => {
  const p = await pair();
  try {
    t.false(peerHungUp(p.server));
    p.client.write('a request that is never read\n');
    t.false(peerHungUp(p.server), 'unread data is not a hang-up');
    // destroy() closes the fd at once; no turn of the event loop lets the server's socket see the end.
    p.client.destroy();
    t.false(p.server.readableEnded);
    t.true(peerHungUp(p.server), 'the kernel already knows');
  } finally {
    await p.close();
  }
});

test.serial('peerHungUp: a client that shut down its writing side is gone too, and so is a socket closed on our side', async (t) => {
  const p = await pair();
  try {
    await new Promise<void>((resolve) => p.client.end(resolve));
    t.true(peerHungUp(p.server));
  } finally {
    await p.close();
  }
  t.true(peerHungUp(p.server), 'closed on our side');
});

test.serial('the /proc fallback refuses a pid whose ids are not the ones the socket recorded', (t) => {
  const me = selfCredentials();
  t.deepEqual(procGroups(process.pid, process.geteuid!(), process.getegid!()), me.groups);
  t.throws(() => procGroups(process.pid, me.uid + 1, me.gid), { instanceOf: PeerCredentialsError, message: /no longer has uid/ });
  t.throws(() => procGroups(undefined, me.uid, me.gid), { instanceOf: PeerCredentialsError, message: /pid is not visible/ });
});
