// One client connection of the supervisor: its request lines, served one at
// a time in order, with the bounds of limits.ts. Reading stops (socket.pause)
// while too many requests wait or too many reply bytes are unread, and goes
// on when they are served or read ('drain'): a client that pipelines
// requests without reading the replies costs a bounded amount of memory. A
// connection with no request in flight for the idle timeout is closed.
import type { Socket } from 'node:net';
import type { Credentials } from '../config/index.js';
import { SupervisorLimitError } from './errors.js';
import type { SupervisorLimits } from './limits.js';
import { peerHungUp } from './peercred.js';
import { LineSplitter, MAX_LINE_BYTES, PROTOCOL_VERSION, wireError, type Reply } from './protocol.js';

/** What the server does with a request line; must never throw (every failure is an error reply). */
export type ServeLine = (line: string, send: (r: Reply) => void, gone: AbortSignal, hungUp: () => boolean, who: Credentials | Error) => Promise<void>;

export interface ConnectionOptions {
  limits: SupervisorLimits;
  /** Resolves when this connection's next request may start (the server's one-start-per-turn queue). */
  turn: () => Promise<void>;
  serve: ServeLine;
  log: (line: string) => void;
}

/**
 * Writes one final error line naming the limit, then closes. Not a close
 * right after the write: a unix socket closed with unread data in it (the
 * client's first request, often there already) makes the kernel reset the
 * peer (unix_release_sock sets ECONNRESET), which then may never read the
 * line. So what the client sends is read and dropped, the line is followed
 * by an orderly end, and the socket is destroyed once the client has
 * closed too, or after REFUSE_LINGER_MS at the most (a refused connection
 * must not hold an fd for long: refusals come when fds are short).
 */
export function refuse(c: Socket, e: SupervisorLimitError): void {
  const line: Reply = { v: PROTOCOL_VERSION, ok: false, error: wireError(e) };
  c.on('error', () => {});
  c.on('data', () => {});
  const timer = setTimeout(() => c.destroy(), REFUSE_LINGER_MS);
  timer.unref();
  c.once('close', () => clearTimeout(timer));
  try {
    c.end(`${JSON.stringify(line)}\n`);
  } catch {
    c.destroy();
  }
}

/** How long a refused connection may stay open for its line to be read. */
const REFUSE_LINGER_MS = 250;

/** Serves the requests of `c` until it closes; `onClose` runs once, when it has. */
export function serveConnection(c: Socket, who: Credentials | Error, o: ConnectionOptions, onClose: () => void): void {
  const { limits } = o;
  /** Request lines read and not yet started. May exceed the bound by the lines of one read (at most 64 KiB). */
  const pending: string[] = [];
  let running = false;
  let paused = false;
  let awaitingDrain = false;
  /** Cancels the requests of this connection when the client goes away. */
  const gone = new AbortController();
  /** Whether the client is gone, asking the kernel rather than waiting for 'close'; aborts its requests if so. */
  const hungUp = (): boolean => {
    if (!gone.signal.aborted && peerHungUp(c)) gone.abort(new Error('the client disconnected'));
    return gone.signal.aborted;
  };
  const send = (r: Reply): void => {
    if (!c.destroyed && c.writable) c.write(`${JSON.stringify(r)}\n`);
  };
  const congested = () => c.writableLength >= limits.replyBufferBytes;
  /** Reads while there is room for requests and replies; stops otherwise. */
  const flow = (): void => {
    if (c.destroyed) return;
    const full = pending.length >= limits.queuedRequests || congested();
    if (full && !paused) {
      paused = true;
      c.pause();
    } else if (!full && paused) {
      paused = false;
      c.resume();
    }
  };
  /** Starts the next request when none runs and the client has read enough of the replies. */
  const pump = (): void => {
    if (running || c.destroyed) return;
    if (congested()) {
      if (!awaitingDrain) {
        awaitingDrain = true;
        c.once('drain', () => {
          awaitingDrain = false;
          flow();
          pump();
        });
      }
      return;
    }
    const line = pending.shift();
    if (line === undefined) return;
    running = true;
    flow();
    void (async () => {
      try {
        await o.turn();
        await o.serve(line, send, gone.signal, hungUp, who);
      } catch (e) {
        // serve never throws; should it ever, the connection goes, not the supervisor.
        o.log(`internal error serving a request: ${(e as Error).stack ?? String(e)}`);
        c.destroy();
      } finally {
        running = false;
        flow();
        pump();
      }
    })();
  };
  const lines = new LineSplitter(
    MAX_LINE_BYTES,
    (line) => pending.push(line),
    () => send({ v: PROTOCOL_VERSION, ok: false, error: { name: 'ProtocolError', message: `message longer than ${MAX_LINE_BYTES} bytes, dropped` } }),
  );
  c.on('data', (chunk: Buffer) => {
    lines.push(chunk);
    flow();
    pump();
  });
  // Idle: no request in flight (one queued behind unread replies counts as idle: the client is not reading).
  c.setTimeout(limits.idleMs, () => {
    if (running) return;
    const e = new SupervisorLimitError('idle-timeout', `closed after ${limits.idleMs / 1000} s without a request in flight (idle-timeout=${limits.idleMs / 1000})`);
    refuse(c, e);
  });
  c.on('error', () => {}); // a client that vanished: 'close' follows
  c.once('close', () => {
    pending.length = 0;
    gone.abort(new Error('the client disconnected'));
    onClose();
  });
}
