// The CLI's connection to the supervisor: a Unix socket made with socket(2)
// and connect(2) through koffi, read with poll(2) and read(2), written with
// write(2). The library keeps node:net (src/supervisor/client.ts).
//
// Why by hand: loading node:net (and node:stream under it) and an
// asynchronous connect cost a `warden begin` or `end` ~6 ms of its ~22 ms
// over `node -e 0`, measured with --cpu-prof; koffi is ~1.5 ms and the
// calls are microseconds. No package offers a synchronous Unix-socket
// client without a native build of its own.
//
// The reads never stall the CLI's event loop for long: poll waits at most
// POLL_MS, then the loop turns once (setImmediate) so a Ctrl-C is handled
// and can close the connection, which is how the supervisor learns to
// cancel the request.
import { closeSync, readSync, writeSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';
import { koffi, libc as glibc } from '../sys/index.js';
import { POLLIN, pollOne } from '../sys/index.js';

const AF_UNIX = 1;
const SOCK_STREAM = 1;
const SOCK_CLOEXEC = 0o2000000;
const POLL_MS = 20;
/** sizeof(struct sockaddr_un): a short family and a 108-byte path. */
const SOCKADDR_UN = 110;
const SUN_PATH_MAX = 107;
const EINTR = 4;

interface Calls {
  socket: (domain: number, type: number, protocol: number) => number;
  connect: (fd: number, addr: Buffer, len: number) => number;
}
let calls: Calls | undefined;

function libc(): Calls {
  if (calls) return calls;
  const lib = glibc();
  calls = {
    socket: lib.func('int socket(int domain, int type, int protocol)') as Calls['socket'],
    connect: lib.func('int connect(int fd, const void *addr, uint32_t len)') as Calls['connect'],
  };
  return calls;
}

/** connect(2) failed: `code` as Node names errnos (ENOENT, ECONNREFUSED, EACCES, ...). */
export class ConnectError extends Error {
  constructor(
    readonly code: string,
    readonly errno: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Handlers {
  data: (chunk: Buffer) => void;
  /** Exactly one of error and close ends the stream. */
  error: (e: Error) => void;
  close: () => void;
}

export class BlockingSocket {
  #fd: number;
  #handlers: Handlers | undefined;
  #timer: NodeJS.Immediate | undefined;
  readonly #buf = Buffer.allocUnsafe(64 * 1024);

  private constructor(fd: number) {
    this.#fd = fd;
  }

  /** Connects to the socket at `path`; throws ConnectError. */
  static connect(path: string): BlockingSocket {
    const name = Buffer.from(path);
    if (name.length > SUN_PATH_MAX) throw new ConnectError('ENAMETOOLONG', 36, `socket path longer than ${SUN_PATH_MAX} bytes: ${path}`);
    const c = libc();
    const fd = c.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw errnoError('socket', path);
    const addr = Buffer.alloc(SOCKADDR_UN);
    addr.writeUInt16LE(AF_UNIX, 0);
    name.copy(addr, 2);
    if (c.connect(fd, addr, 2 + name.length + 1) !== 0) {
      const e = errnoError('connect', path);
      closeSync(fd);
      throw e;
    }
    return new BlockingSocket(fd);
  }

  /** Writes all of `data` (a reply-sized request: the kernel takes it at once). */
  write(data: string): void {
    if (this.#fd < 0) throw new Error('write on a closed connection');
    const b = Buffer.from(data);
    for (let off = 0; off < b.length; ) off += writeSync(this.#fd, b, off);
  }

  /** Starts delivering what arrives to `h`. */
  listen(h: Handlers): void {
    this.#handlers = h;
    this.#timer = setImmediate(() => this.#pump());
  }

  #pump(): void {
    this.#timer = undefined;
    if (this.#fd < 0) return;
    const { n } = pollOne(this.#fd, POLLIN, POLL_MS);
    if (n < 0 && koffi().errno() !== EINTR) return this.#end(errnoError('poll', 'the supervisor socket'));
    if (n > 0) {
      let r: number;
      try {
        r = readSync(this.#fd, this.#buf, 0, this.#buf.length, null);
      } catch (e) {
        return this.#end(e as Error);
      }
      if (r === 0) return this.#end();
      this.#handlers?.data(Buffer.from(this.#buf.subarray(0, r)));
      if (this.#fd < 0) return;
    }
    this.#timer = setImmediate(() => this.#pump());
  }

  #end(e?: Error): void {
    const h = this.#handlers;
    this.destroy();
    if (e) h?.error(e);
    else h?.close();
  }

  /** Closes the connection; nothing more is delivered. Idempotent. */
  destroy(): void {
    if (this.#timer) clearImmediate(this.#timer);
    this.#timer = undefined;
    this.#handlers = undefined;
    if (this.#fd < 0) return;
    closeSync(this.#fd);
    this.#fd = -1;
  }
}

function errnoError(call: string, path: string): ConnectError {
  const errno = koffi().errno();
  const code = errno > 0 ? getSystemErrorName(-errno) : `errno ${errno}`;
  return new ConnectError(code, errno, `${call} ${path}: ${code}`);
}
