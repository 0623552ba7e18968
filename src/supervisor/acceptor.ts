// The supervisor's front door: its listening socket (its own, or the one
// systemd passed), and each new connection until it is served. Connections
// are taken paused and told apart by their first byte without reading it:
// a relay's request (`W`) carries the client's stdio as SCM_RIGHTS, which
// only recvmsg(2) receives (libuv's read(2) would have the kernel close
// them), so the broker reads it natively; anything else is a JSON-lines
// client, read by node:net. Here too are the bounds on who may connect:
// connections per non-root uid and in all (root's are never counted).
import { chmodSync, chownSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import type { Credentials } from '../config/index.js';
import { refuseRelay } from './broker.js';
import { refuse } from './connection.js';
import { SupervisorLimitError } from './errors.js';
import type { QuietLog, SupervisorLimits } from './limits.js';
import { peerCredentials, socketFd } from './peercred.js';
import { ReadableWaiter } from './readable.js';
import { peekKind } from './relay-socket.js';

export interface AcceptorOptions {
  socketPath: string;
  /** A listening socket systemd passed (LISTEN_FDS), served instead of making socketPath. */
  listenFd?: number | undefined;
  /** Group of the socket (mode 0660); default root only (0600). */
  socketGid?: number | undefined;
  limits: SupervisorLimits;
  /** RLIMIT_NOFILE at start. */
  nofile: number;
  quiet: QuietLog;
  stopping: () => boolean;
  /** Serves a JSON-lines client; Node reads the connection once this returns. */
  serveJson: (c: Socket, who: Credentials | Error) => void;
  /** Serves a relay call, whose request `waiter` helps read. */
  serveRelay: (c: Socket, fd: number, who: Credentials, waiter: ReadableWaiter) => Promise<void>;
}

export class Acceptor {
  readonly #o: AcceptorOptions;
  /** Every open connection. */
  readonly clients = new Set<Socket>();
  /** Open connections of each non-root uid ('?' for a peer whose credentials could not be read). */
  readonly #perUser = new Map<number | '?', number>();
  #nonRoot = 0;
  #relayed = 0;
  #server: Server | undefined;
  #activated = false;
  /** Waits for connections whose first message has not come yet (readable.ts). */
  readonly #waiter = new ReadableWaiter();

  constructor(o: AcceptorOptions) {
    this.#o = o;
  }

  /** Open non-root connections. */
  get nonRoot(): number {
    return this.#nonRoot;
  }

  /** Relay calls being served (their commands running, most of them). */
  get relayed(): number {
    return this.#relayed;
  }

  /** Whether the socket is systemd's (then it is left in place at the end). */
  get activated(): boolean {
    return this.#activated;
  }

  /** Stops accepting; resolves once the listening socket is closed. Call destroyClients meanwhile. */
  stopListening(): Promise<boolean> {
    const server = this.#server;
    this.#server = undefined;
    return server ? new Promise<boolean>((resolve) => server.close(() => resolve(true))) : Promise.resolve(false);
  }

  /** Closes every connection and the readiness thread. */
  async destroyClients(): Promise<void> {
    for (const c of this.clients) c.destroy();
    await this.#waiter.close();
  }

  /** Listens on the socket (or the one systemd passed); resolves once it does. */
  async listen(): Promise<void> {
    // Paused: a relay's first message carries fds, which only recvmsg(2) receives (#classify).
    const server = createServer({ allowHalfOpen: false, pauseOnConnect: true }, (c) => this.#onConnection(c));
    const passed = this.#o.listenFd;
    if (passed !== undefined) {
      // Socket activation: systemd made the socket (its path, SocketMode=, SocketGroup=) and keeps it.
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd: passed }, () => {
          server.off('error', reject);
          resolve();
        });
      });
      this.#activated = true;
    } else {
      // A socket file left by a supervisor that died: ours to replace, since we hold supervisor.lock.
      unlinkQuiet(this.#o.socketPath);
      // 0600 from the first moment: the umask covers the window between bind and chmod.
      const umask = process.umask(0o177);
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          server.listen(this.#o.socketPath, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } finally {
        process.umask(umask);
      }
      if (this.#o.socketGid !== undefined) {
        chownSync(this.#o.socketPath, 0, this.#o.socketGid);
        chmodSync(this.#o.socketPath, 0o660);
      } else {
        chmodSync(this.#o.socketPath, 0o600);
      }
    }
    // accept(2) failing with EMFILE or ENFILE is handled inside libuv (uv__emfile_trick): it frees
    // a reserve fd, accepts and closes the backlog, and reports nothing, so the loop does not spin
    // on a readable listening socket and accepting resumes by itself once fds are free. The few
    // accept errors it does report (no reserve fd, ENOMEM) come here: logged, never fatal.
    // #onConnection warns before the limit, since at it nothing is reported.
    server.on('error', (e) => {
      const code = (e as NodeJS.ErrnoException).code ?? 'error';
      const why = code === 'EMFILE' || code === 'ENFILE' ? ' (out of file descriptors: connections are dropped until some are closed)' : '';
      this.#o.quiet.note(`accept:${code}`, `socket: ${e.message}${why}`);
    });
    this.#server = server;
  }

  #onConnection(c: Socket): void {
    if (this.#o.stopping()) {
      c.destroy();
      return;
    }
    this.clients.add(c);
    c.once('close', () => this.clients.delete(c));
    if (this.clients.size + FD_HEADROOM >= this.#o.nofile) {
      this.#o.quiet.note(
        'fds',
        `${this.clients.size} connections open, near the open-file limit (${this.#o.nofile}): at the limit new connections are closed as soon as they are accepted, and lock files cannot be opened`,
      );
    }
    // Who is asking, as the kernel recorded it at connect (SO_PEERCRED): never what a message claims.
    let who: Credentials | Error;
    try {
      who = peerCredentials(c);
    } catch (e) {
      who = e as Error;
    }
    const key = who instanceof Error ? '?' : who.uid;
    c.on('error', () => {}); // a client that vanished: 'close' follows
    if (key !== 0) {
      const refusal = this.#admit(key);
      if (refusal) {
        this.#o.quiet.note(`refused:${key}`, `refused a connection of ${key === '?' ? 'a peer of unknown uid' : `uid ${key}`}: ${refusal.message}`);
        // A relay (its request is there by now, as a rule) is told in its own frames, anyone else in a JSON line.
        if (peekQuiet(c) === 'relay') refuseRelay(c, refusal.message, 5);
        else {
          c.resume();
          refuse(c, refusal);
        }
        return;
      }
      this.#nonRoot++;
      this.#perUser.set(key, (this.#perUser.get(key) ?? 0) + 1);
      c.once('close', () => {
        this.#nonRoot--;
        const n = (this.#perUser.get(key) ?? 1) - 1;
        if (n > 0) this.#perUser.set(key, n);
        else this.#perUser.delete(key);
      });
    }
    void this.#classify(c, who);
  }

  /**
   * Tells a relay (its first byte 'W', with fds) from a JSON-lines client
   * ('{') by peeking, before Node reads anything: JSON clients are then
   * served by node:net as before, relay calls by the broker. A connection
   * that sends nothing within the idle timeout is closed.
   */
  async #classify(c: Socket, who: Credentials | Error): Promise<void> {
    try {
      const fd = socketFd(c);
      // A client writes right after connect, often a moment after we accepted:
      // a turn of the loop or two finds it there, with no thread and no fd spent.
      let turns = 2;
      for (;;) {
        if (c.destroyed) return;
        const kind = peekKind(fd);
        if (kind === 'json') {
          this.#o.serveJson(c, who);
          c.resume();
          return;
        }
        if (kind === 'relay') {
          if (who instanceof Error) {
            c.destroy();
            return;
          }
          this.#relayed++;
          try {
            await this.#o.serveRelay(c, fd, who, this.#waiter);
          } finally {
            this.#relayed--;
          }
          return;
        }
        if (kind === 'closed') {
          c.destroy();
          return;
        }
        if (turns-- > 0) {
          await new Promise((resolve) => setImmediate(resolve));
          continue;
        }
        if (!(await this.#waiter.wait(fd, this.#o.limits.idleMs))) {
          if (c.destroyed) return;
          c.resume();
          refuse(c, new SupervisorLimitError('idle-timeout', `closed after ${this.#o.limits.idleMs / 1000} s without a request (idle-timeout=${this.#o.limits.idleMs / 1000})`));
          return;
        }
      }
    } catch (e) {
      this.#o.quiet.note('classify', `could not read a new connection: ${(e as Error).message}`);
      c.destroy();
    }
  }

  /** Why a new connection of non-root `key` is refused, if it is. */
  #admit(key: number | '?'): SupervisorLimitError | undefined {
    const l = this.#o.limits;
    const who = key === '?' ? 'a peer of unknown uid' : `uid ${key}`;
    if ((this.#perUser.get(key) ?? 0) >= l.connectionsPerUser) {
      return new SupervisorLimitError('max-connections-per-user', `too many connections: ${who} has ${l.connectionsPerUser} open (max-connections-per-user=${l.connectionsPerUser})`);
    }
    if (this.#nonRoot >= l.connections) {
      return new SupervisorLimitError('max-connections', `too many connections: ${l.connections} are open (max-connections=${l.connections}); try again later`);
    }
    return undefined;
  }
}

/** fds kept for what is not a connection (locks of held sessions, hooks' pipes, workers, the watch): closer to the limit, it is logged. */
const FD_HEADROOM = 64;

/** peekKind of a new connection, or 'empty' when its fd cannot be had. */
function peekQuiet(c: Socket): ReturnType<typeof peekKind> {
  try {
    return peekKind(socketFd(c));
  } catch {
    return 'empty';
  }
}

/** Removes `path`; one that is not there is fine. */
export function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}
