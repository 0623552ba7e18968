// The supervisor as a broker: it serves the calls of the relay (the small C
// `warden` its clients run, src/relay/warden.c) and starts their commands.
// A client passes its stdin, stdout and stderr, its cwd, argv and
// environment in one message (relay-wire.ts); the supervisor parses the
// argv as the CLI would, authorizes the client by the credentials the
// kernel recorded for the connection, takes the command's own lock fds and
// spawns it in the session (or, for `source`, in the source once the
// entry is its) as the client (or the `-u` user), with the client's fds
// as its stdio. The client forwards its signals and exits with
// the status sent back. Clients are ordinary users: everything they send is
// hostile input, and nothing they do may end or stall the supervisor.
import type { Socket } from 'node:net';
import type { Credentials } from '../config/index.js';
import type { BrokerHost } from './broker-host.js';
import type { ReadableWaiter } from './readable.js';
import { Call } from './relay-call.js';
import { closeQuiet, send } from './relay-command.js';
import { RelayRequestReader } from './relay-request.js';
import type { RelayRequest } from './relay-wire.js';

export type { BrokerHost, RelayCalls, RelayedCall, SourceSession, SourceSessionFacts } from './broker-host.js';
export { HANGUP_GRACE_MS } from './relay-command.js';

/**
 * Serves one relay connection (`fd` is its socket, not read by Node yet):
 * reads the request, waiting for it on `waiter` at most `idleMs`, serves it,
 * and closes the connection. Never throws.
 */
export async function serveRelay(c: Socket, fd: number, who: Credentials, host: BrokerHost, waiter: ReadableWaiter, idleMs: number): Promise<void> {
  const gone = new AbortController();
  c.once('close', () => gone.abort(new Error('the client disconnected')));
  const reader = new RelayRequestReader(fd);
  let req: RelayRequest | undefined;
  try {
    for (;;) {
      const r = reader.read();
      if (r !== 'more') {
        req = r;
        break;
      }
      if (!(await waiter.wait(fd, idleMs, gone.signal))) {
        reader.close();
        c.destroy();
        return;
      }
    }
  } catch (e) {
    reader.close();
    host.log(`refused a relay request of uid ${who.uid}: ${(e as Error).message}`);
    send(c, 'e', `warden: the supervisor refused the request: ${(e as Error).message}\n`);
    send(c, 'X', 125);
    c.end();
    return;
  }
  try {
    await new Call(c, req, who, host, gone.signal).serve();
  } catch (e) {
    host.log(`internal error serving a relay call of uid ${who.uid}: ${(e as Error).stack ?? String(e)}`);
    c.destroy();
  } finally {
    for (const f of req.fds) closeQuiet(f);
  }
}

/**
 * Refuses a relay connection before reading its request: an error line and
 * exit `code` in the relay's frames, then the connection is closed. What
 * the client sent (and the fds in it) is read and dropped by Node, which
 * makes the kernel close those fds.
 */
export function refuseRelay(c: Socket, message: string, code: number): void {
  c.on('data', () => {});
  c.resume();
  send(c, 'e', `warden: ${message}\n`);
  send(c, 'X', code);
  c.end();
  const timer = setTimeout(() => c.destroy(), 250);
  timer.unref();
  c.once('close', () => clearTimeout(timer));
}
