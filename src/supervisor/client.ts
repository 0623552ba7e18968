// Talking to the supervisor of a state dir: connect to its socket, or
// start one in the background and then connect (as tmux starts its server).
import type { ChildProcess } from 'node:child_process';
import { childProcess } from '../sys/index.js';
import { closeSync, constants as fsc, openSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { Handlers } from './blocking-socket.js';
import type { WaitInfo } from '../sessions/index.js';
import { RequestAbortedError, SupervisorAccessError, SupervisorConnectionError, SupervisorUnavailableError } from './errors.js';
import { errorFromWire, LineSplitter, wireError, MAX_LINE_BYTES, PROTOCOL_VERSION, type Reply, type Request } from './protocol.js';
import { SUPERVISOR_LOG, SUPERVISOR_SOCKET } from './paths.js';

/** A request as a client writes it: the version and tag are added here. */
export type ClientRequest = Request extends infer R ? (R extends Request ? Omit<R, 'v' | 'tag'> : never) : never;

export interface RequestOptions {
  /** Progress of the request's lock waits, as the supervisor reports them. */
  onWait?: (info: WaitInfo) => void;
  /** Aborting disconnects: the supervisor cancels the request (a begin is rolled back). */
  signal?: AbortSignal;
}

/** A connection as the client uses it: node:net's Socket, or the CLI's BlockingSocket. */
export interface Transport {
  write(data: string): void;
  listen(h: Handlers): void;
  destroy(): void;
}

function netTransport(socket: Socket): Transport {
  return {
    write: (data) => void socket.write(data),
    listen(h) {
      socket.on('data', (chunk: Buffer) => h.data(chunk));
      socket.on('error', (e) => h.error(e));
      socket.on('close', () => h.close());
    },
    destroy: () => void socket.destroy(),
  };
}

export class SupervisorClient {
  readonly #socket: Transport;
  #next = 0;
  #current: { tag: string; onReply: (r: Reply) => void } | undefined;
  #broken: Error | undefined;
  #closed = false;

  /** Internal: built by connectSupervisor. */
  constructor(socket: Transport) {
    this.#socket = socket;
    const lines = new LineSplitter(
      MAX_LINE_BYTES,
      (line) => {
        let r: Reply;
        try {
          r = JSON.parse(line) as Reply;
        } catch {
          return this.#fail(new SupervisorConnectionError(`the supervisor sent a malformed reply: ${line.slice(0, 80)}`));
        }
        // An untagged error answers no request: the supervisor refused or closed the connection (a limit).
        if (r.tag === undefined && 'ok' in r && !r.ok) return this.#fail(errorFromWire(r.error));
        if (this.#current && r.tag === this.#current.tag) this.#current.onReply(r);
      },
      () => this.#fail(new SupervisorConnectionError('the supervisor sent an oversized reply')),
    );
    socket.listen({
      data: (chunk) => lines.push(chunk),
      error: (e) => this.#fail(new SupervisorConnectionError(`connection to the supervisor failed: ${e.message}`, e)),
      close: () => this.#fail(new SupervisorConnectionError('the supervisor closed the connection before replying')),
    });
  }

  #fail(e: Error): void {
    this.#broken ??= e;
    this.#socket.destroy();
    const { name, message, exit } = wireError(e);
    this.#current?.onReply({ v: PROTOCOL_VERSION, ok: false, error: exit === undefined ? { name, message } : { name, message, exit } });
  }

  /** Sends `req` and resolves with its result; rejects with the error the supervisor reported (same name as a local one). */
  request(req: ClientRequest, o: RequestOptions = {}): Promise<Record<string, unknown>> {
    if (this.#current) return Promise.reject(new Error('SupervisorClient: one request at a time'));
    if (this.#broken) return Promise.reject(this.#broken);
    if (o.signal?.aborted) return Promise.reject(new RequestAbortedError(req.op, o.signal.reason));
    const tag = String(++this.#next);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.#current = undefined;
        this.close();
        reject(new RequestAbortedError(req.op, o.signal!.reason));
      };
      o.signal?.addEventListener('abort', onAbort, { once: true });
      this.#current = {
        tag,
        onReply: (r) => {
          if ('wait' in r) {
            o.onWait?.(r.wait);
            return;
          }
          this.#current = undefined;
          o.signal?.removeEventListener('abort', onAbort);
          if (r.ok) resolve(r.result);
          else reject(errorFromWire(r.error));
        },
      };
      try {
        this.#socket.write(`${JSON.stringify({ v: PROTOCOL_VERSION, tag, ...req })}\n`);
      } catch (e) {
        // The blocking socket writes at once; node:net reports it as an 'error'. EPIPE: the supervisor
        // closed the connection, maybe after a line saying why (a limit): reading delivers that, then the close.
        if ((e as NodeJS.ErrnoException).code === 'EPIPE') return;
        this.#fail(new SupervisorConnectionError(`connection to the supervisor failed: ${(e as Error).message}`, e as Error));
      }
    });
  }

  /** Disconnects. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#socket.destroy();
  }
}

export interface ConnectOptions {
  /**
   * Connect and read without node:net (BlockingSocket): for the CLI, which
   * has nothing else to do meanwhile; reads block its event loop for up to
   * 20 ms at a time.
   */
  blocking?: boolean;
}

/** Connects to the supervisor of `stateDir`; undefined when none is listening. */
export async function connectSupervisor(stateDir: string, o: ConnectOptions = {}): Promise<SupervisorClient | undefined> {
  const path = join(stateDir, SUPERVISOR_SOCKET);
  let transport: Transport;
  try {
    transport = o.blocking ? (await import('./blocking-socket.js')).BlockingSocket.connect(path) : netTransport(await connectNet(path));
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // No socket, or a socket file that nothing listens on (a supervisor that died).
    if (code === 'ENOENT' || code === 'ECONNREFUSED') return undefined;
    if (code === 'EACCES') throw new SupervisorAccessError(path, e as Error);
    throw new SupervisorUnavailableError(`cannot connect to the supervisor at ${path}: ${(e as Error).message}`, e as Error);
  }
  return new SupervisorClient(transport);
}

async function connectNet(path: string): Promise<Socket> {
  const { connect } = await import('node:net');
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', (e) => {
      s.destroy();
      reject(e);
    });
  });
}

export interface StartOptions {
  /** Arguments for `node` that run `warden supervise --ready-fd 3` (the CLI's own entry, config and state dir). */
  argv: string[];
}

/**
 * Connects to the supervisor of `stateDir`, first starting one in the
 * background if none is listening: detached (its own session, so a Ctrl-C
 * of this terminal never reaches it), output appended to supervisor.log,
 * readiness reported on fd 3. Two clients starting one at the same moment
 * is fine: the loser exits on supervisor.lock and both connect to the winner.
 */
export async function ensureSupervisor(stateDir: string, start: StartOptions, o: ConnectOptions = {}): Promise<SupervisorClient> {
  const existing = await connectSupervisor(stateDir, o);
  if (existing) return existing;
  const { spawn } = childProcess();
  const logPath = join(stateDir, SUPERVISOR_LOG);
  const log = openSync(logPath, fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW, 0o600);
  let child;
  try {
    child = spawn(process.execPath, start.argv, { detached: true, cwd: '/', stdio: ['ignore', log, log, 'pipe'] });
  } finally {
    closeSync(log);
  }
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (await supervisorReady(child)) {
    child.unref();
  } else {
    // It exited (another supervisor won the race, or it failed): reap it first.
    await exited;
  }
  const client = await connectSupervisor(stateDir, o);
  if (client) return client;
  throw new SupervisorUnavailableError(`could not start a supervisor for ${stateDir}; ${logPath} ends with: ${lastLines(logPath)}`);
}

/**
 * Resolves true once a `warden supervise --ready-fd 3` child writes READY
 * on the pipe at its fd 3, false if it closes the pipe (or fails to start)
 * first: it failed, or another supervisor holds the state dir. Closes our
 * end of the pipe either way.
 */
export async function supervisorReady(child: ChildProcess): Promise<boolean> {
  const pipe = child.stdio[3] as Socket;
  const ready = await new Promise<boolean>((resolve) => {
    let got = '';
    pipe.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.includes('READY\n')) resolve(true);
    });
    pipe.on('error', () => resolve(false));
    pipe.on('close', () => resolve(got.includes('READY\n')));
    child.once('error', () => resolve(false));
  });
  pipe.destroy();
  return ready;
}

function lastLines(path: string): string {
  try {
    const text = readFileSync(path, 'utf8').trimEnd().split('\n').slice(-3).join(' | ');
    return text || '(nothing)';
  } catch (e) {
    return `(unreadable: ${(e as Error).message})`;
  }
}
