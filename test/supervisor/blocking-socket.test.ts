// The CLI's blocking Unix-socket client against a real node:net server (in
// this process: the client's poll gives the event loop a turn every 20 ms)
// and against socket files nothing listens on.
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BlockingSocket, ConnectError } from '../../src/supervisor/blocking-socket.js';
import { fileFds } from '../helpers/leaks.js';

function listen(path: string, onConn: (c: Socket) => void): Promise<Server> {
  return new Promise((resolve) => {
    const s = createServer(onConn);
    s.listen(path, () => resolve(s));
  });
}

function collect(sock: BlockingSocket): Promise<{ data: string; end: string }> {
  return new Promise((resolve) => {
    let data = '';
    sock.listen({
      data: (b) => (data += b.toString()),
      error: (e) => resolve({ data, end: `error ${e.message}` }),
      close: () => resolve({ data, end: 'close' }),
    });
  });
}

test.serial('a request and a reply in pieces, then the server closes: every byte, then close; nothing left open', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-bsock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fds = fileFds();
  const got: string[] = [];
  const server = await listen(join(dir, 's'), (c) => {
    c.on('data', (b) => {
      got.push(b.toString());
      c.write('part one, ');
      setTimeout(() => c.end('part two\n'), 50);
    });
  });
  const sock = BlockingSocket.connect(join(dir, 's'));
  sock.write('{"op":"hello"}\n');
  t.deepEqual(await collect(sock), { data: 'part one, part two\n', end: 'close' });
  t.deepEqual(got, ['{"op":"hello"}\n']);
  await new Promise((resolve) => server.close(resolve));
  t.deepEqual(fileFds(), fds);
});

test.serial('destroy() stops delivery and closes the connection: the server sees the client go', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-bsock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  let gone!: () => void;
  const serverSawClose = new Promise<void>((resolve) => (gone = resolve));
  const server = await listen(join(dir, 's'), (c) => {
    c.on('close', gone);
    c.on('error', () => {});
  });
  const sock = BlockingSocket.connect(join(dir, 's'));
  let delivered = false;
  sock.listen({ data: () => (delivered = true), error: () => t.fail('no error'), close: () => t.fail('no close after destroy') });
  sock.destroy();
  sock.destroy();
  await serverSawClose;
  await new Promise((resolve) => setTimeout(resolve, 60));
  t.false(delivered);
  t.throws(() => sock.write('x'), { message: /closed/ });
  await new Promise((resolve) => server.close(resolve));
});

test.serial('no socket: ENOENT; a socket file nothing listens on: ECONNREFUSED; a path too long for sun_path: ENAMETOOLONG', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-bsock-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const fds = fileFds();
  t.like(t.throws(() => BlockingSocket.connect(join(dir, 'none')), { instanceOf: ConnectError }), { code: 'ENOENT' });
  // A socket file with no listener, as a supervisor killed -9 leaves it: bound by python3, which exits.
  const { spawnSync } = await import('node:child_process');
  spawnSync('python3', ['-c', `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(join(dir, 'bound'))})`]);
  t.like(t.throws(() => BlockingSocket.connect(join(dir, 'bound')), { instanceOf: ConnectError }), { code: 'ECONNREFUSED' });
  t.like(t.throws(() => BlockingSocket.connect(join(dir, 'x'.repeat(120))), { instanceOf: ConnectError }), { code: 'ENAMETOOLONG' });
  t.deepEqual(fileFds(), fds, 'no fd left by a failed connect');
});
