// The supervisor's end of the relay's wire (the relay is src/relay/warden.c):
// the request a relay sends on connecting, the frames sent back to it, and
// the frames it sends afterwards. The socket calls go through koffi because
// node:net can neither receive nor send SCM_RIGHTS.
//
// Wire protocol v1. Integers are little-endian u32.
//   Request, relay -> supervisor, one sendmsg with SCM_RIGHTS = the relay's
//   fds 0, 1, 2 (exactly 3, on the first byte):
//     "WRLY" version=1 N argc envc   (20 bytes), then N payload bytes:
//     cwd\0, argc strings arg\0 (the relay's argv[1..]: the verb first),
//     envc strings KEY=VALUE\0 (its environ, passed as it is).
//     N <= 1 MiB, argc >= 1, and the payload is exactly those strings.
//   Frames after it, both ways: type (1 byte), u32 payload length, payload.
//     supervisor -> relay:
//       'o' / 'e'  bytes the relay writes to its fd 1 / fd 2
//       'T' [input 0|255, output 1|2, size 0|1|2] and one fd (SCM_RIGHTS on
//           the frame's first byte): a pty master the relay copies fd 0 into
//           (input 0; 255: none), copies out to fd `output`, and whose
//           window size follows fd `size`; at most one per connection
//       'X' u32 exit status 0-255: the relay exits with it
//       'F' (empty) the relay execs the Node CLI instead; only as the first frame
//     relay -> supervisor:
//       'S' u32 signo: SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGCONT it got
//
// Strings are decoded as UTF-8 and a request with any string that is not
// valid UTF-8 (cwd, argument or environment entry) is refused: Node would
// turn invalid bytes into U+FFFD and run something else than was typed.
// Environment entries are passed as they are (one without '=' included):
// what to keep of them is the supervisor's decision, not the wire's.
//
// The reader takes exactly the request's bytes off the socket and no more,
// so that what follows ('S' frames) is left for node:net to read.
import { closeSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { arch, platform } from 'node:process';
import { getSystemErrorName } from 'node:util';
import { koffi, libc as glibc } from '../sys/index.js';

export const RELAY_MAGIC = 'WRLY';
export const RELAY_VERSION = 1;
/** The largest request payload (cwd, argv, environment) the relay sends and the reader takes. */
export const MAX_RELAY_PAYLOAD = 1 << 20;
const HEADER = 20;
const FRAME_HEADER = 5;
/** The largest frame a relay sends ('S': a u32). */
const MAX_CLIENT_PAYLOAD = 4;
const MAX_U32 = 0xffff_ffff;

// <sys/socket.h>, <asm-generic/errno.h>: the same on every 64-bit Linux warden supports.
const KNOWN_ARCHES = new Set(['x64', 'arm64', 'riscv64', 'loong64']);
const MSG_PEEK = 0x2;
const MSG_CTRUNC = 0x8;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x4000_0000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const EINTR = 4;
const EAGAIN = 11;
const ECONNRESET = 104;
// struct msghdr on LP64: name 0, namelen 8, iov 16, iovlen 24, control 32, controllen 40, flags 48.
const MSGHDR = 56;
const IOVEC = 16;
// struct cmsghdr: size_t len, int level, int type, then the data (CMSG_LEN(n) = 16 + n).
const CMSG_HDR = 16;
/** Room for 8 fds: a relay sends 3, a hostile client more; MSG_CTRUNC past that. */
const CONTROL = CMSG_HDR + 8 * 4;

/** A relay sent something that is not a v1 request or frame. The connection should be closed. */
export class RelayProtocolError extends Error {
  override name = 'RelayProtocolError';
}

/** A socket call on a relay's connection failed (not a protocol violation). */
export class RelaySocketError extends Error {
  override name = 'RelaySocketError';
  /** errno as Node names it (EPIPE, EBADF, ...), or EAGAIN/ESHORT for a terminal frame that could not go whole. */
  readonly code: string;
  constructor(call: string, code: string, detail = '') {
    super(`${call}: ${code}${detail && ` (${detail})`}`);
    this.code = code;
  }
}

export interface RelayRequest {
  /** The relay's argv[1..]: the verb first. */
  args: string[];
  cwd: string;
  /** The relay's environ, KEY=VALUE each. */
  env: string[];
  /** The relay's stdin, stdout and stderr, now fds of this process (close-on-exec); the caller owns them. */
  fds: [number, number, number];
}

export interface TerminalFrame {
  /** 0: the relay copies its fd 0 to the master (raw mode); null: it leaves fd 0 alone. */
  input: 0 | null;
  /** The relay's fd the master's output goes to. */
  output: 1 | 2;
  /** The relay's fd whose window size the pty follows. */
  size: 0 | 1 | 2;
}

export interface RelaySignalFrame {
  type: 'signal';
  signo: number;
}

interface Calls {
  recvmsg: (fd: number, msg: Buffer, flags: number) => number;
  sendmsg: (fd: number, msg: Buffer, flags: number) => number;
  recv: (fd: number, buf: Buffer, len: number, flags: number) => number;
}
let bound: Calls | undefined;

// Bound on first use: the CLI loads this folder and never needs them.
function calls(): Calls {
  if (bound) return bound;
  if (platform !== 'linux' || !KNOWN_ARCHES.has(arch)) {
    throw new RelaySocketError('relay wire', 'ENOTSUP', `the relay's wire is laid out for 64-bit Linux (${[...KNOWN_ARCHES].join(', ')}), not ${platform}/${arch}`);
  }
  const lib = glibc();
  bound = {
    recvmsg: lib.func('long recvmsg(int fd, void *msg, int flags)') as Calls['recvmsg'],
    sendmsg: lib.func('long sendmsg(int fd, const void *msg, int flags)') as Calls['sendmsg'],
    recv: lib.func('long recv(int fd, void *buf, size_t len, int flags)') as Calls['recv'],
  };
  return bound;
}

function errnoName(errno: number): string {
  return errno > 0 ? getSystemErrorName(-errno) : `errno ${errno}`;
}

/**
 * A msghdr for one buffer and a control buffer. The kernel gets the raw
 * addresses of Node buffers (their memory does not move); the buffers must
 * stay referenced until the call returns, which the callers' locals ensure.
 */
function msghdr(data: Buffer, control: Buffer | undefined): { msg: Buffer; iov: Buffer } {
  const k = koffi();
  const iov = Buffer.alloc(IOVEC);
  iov.writeBigUInt64LE(k.address(data), 0);
  iov.writeBigUInt64LE(BigInt(data.length), 8);
  const msg = Buffer.alloc(MSGHDR);
  msg.writeBigUInt64LE(k.address(iov), 16);
  msg.writeBigUInt64LE(1n, 24);
  if (control) {
    msg.writeBigUInt64LE(k.address(control), 32);
    msg.writeBigUInt64LE(BigInt(control.length), 40);
  }
  return { msg, iov };
}

/**
 * What a new connection speaks, judged by its first byte without taking it
 * off the socket: 'W' (a relay's "WRLY") is 'relay'; anything else is
 * 'json', whose reader answers a line that is not JSON with an error line,
 * as the supervisor always has (a relay's own frames would be garbage to a
 * JSON client). 'empty':
 * nothing arrived yet; 'closed': the peer hung up. A plain recv(2) with no
 * control buffer: a MSG_PEEK through recvmsg with one would install the
 * relay's fds here a second time (unix(7) passes them on peek too).
 */
export function peekKind(fd: number): 'relay' | 'json' | 'empty' | 'closed' {
  const c = calls();
  const b = Buffer.alloc(1);
  for (;;) {
    const n = c.recv(fd, b, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0) return b[0] === 0x57 ? 'relay' : 'json';
    if (n === 0) return 'closed';
    const errno = koffi().errno();
    if (errno === EINTR) continue;
    if (errno === EAGAIN) return 'empty';
    if (errno === ECONNRESET) return 'closed';
    throw new RelaySocketError(`recv(${fd}, MSG_PEEK)`, errnoName(errno));
  }
}

/**
 * Reads one relay request off a connected unix stream socket, as its bytes
 * arrive: call read() whenever the socket is readable, until it returns the
 * request. Never blocks and never reads past the request. Owns the fds
 * received until read() hands them out; close() closes the ones it still
 * owns (call it when giving up on the connection). Idempotent.
 */
export class RelayRequestReader {
  readonly #fd: number;
  readonly #header = Buffer.alloc(HEADER);
  #payload: Buffer | undefined;
  /** Bytes received: of the header, then of header and payload. */
  #have = 0;
  #argc = 0;
  #envc = 0;
  #fds: number[] = [];
  #state: 'reading' | 'done' | 'failed' | 'closed' = 'reading';
  readonly #control = Buffer.alloc(CONTROL);

  constructor(fd: number) {
    this.#fd = fd;
  }

  /** 'more' until the whole request is in; throws RelayProtocolError (the fds received are closed by then). */
  read(): 'more' | RelayRequest {
    if (this.#state !== 'reading') throw new Error(`RelayRequestReader.read() after the request was ${this.#state === 'done' ? 'read' : this.#state}`);
    try {
      for (;;) {
        const into = this.#payload ? this.#payload.subarray(this.#have - HEADER) : this.#header.subarray(this.#have);
        const n = this.#recv(into);
        if (n === undefined) return 'more';
        this.#have += n;
        if (!this.#payload) {
          if (this.#have < HEADER) continue;
          this.#payload = Buffer.alloc(this.#parseHeader());
        }
        if (this.#have === HEADER + this.#payload.length) {
          const request = this.#parsePayload(this.#payload);
          this.#state = 'done';
          return request;
        }
      }
    } catch (e) {
      this.#fail();
      throw e;
    }
  }

  /** Closes the fds received and not handed out. Idempotent. */
  close(): void {
    if (this.#state === 'reading') this.#state = 'closed';
    this.#closeFds();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** One recvmsg into `into`: the bytes it got, or undefined when nothing is there yet. */
  #recv(into: Buffer): number | undefined {
    // The header first, then the payload; a request with N = 0 is refused in parseHeader.
    const c = calls();
    const { msg, iov } = msghdr(into, this.#control);
    let n: number;
    for (;;) {
      n = c.recvmsg(this.#fd, msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (n >= 0) break;
      const errno = koffi().errno();
      if (errno === EINTR) continue;
      if (errno === EAGAIN) return undefined;
      if (errno === ECONNRESET) throw this.#truncated();
      throw new RelaySocketError(`recvmsg(${this.#fd})`, errnoName(errno));
    }
    void iov; // referenced until here: the kernel read its address
    // The fds first: whatever else is wrong, they must be ours to close.
    const bad = this.#takeFds(msg);
    if (msg.readInt32LE(48) & MSG_CTRUNC) throw new RelayProtocolError('the relay sent more file descriptors than a request carries (control data truncated)');
    if (bad) throw new RelayProtocolError(bad);
    if (this.#fds.length > 3) throw new RelayProtocolError(`the relay sent ${this.#fds.length} file descriptors; a request carries 3 (stdin, stdout, stderr)`);
    if (n === 0) throw this.#truncated();
    return n;
  }

  /** Adopts every fd in the control data; a description of anything else found there. */
  #takeFds(msg: Buffer): string | undefined {
    const len = Number(msg.readBigUInt64LE(40));
    let bad: string | undefined;
    for (let off = 0; off + CMSG_HDR <= len; ) {
      const clen = Number(this.#control.readBigUInt64LE(off));
      if (clen < CMSG_HDR || off + clen > len) break;
      const level = this.#control.readInt32LE(off + 8);
      const type = this.#control.readInt32LE(off + 12);
      if (level === SOL_SOCKET && type === SCM_RIGHTS) {
        for (let p = off + CMSG_HDR; p + 4 <= off + clen; p += 4) this.#fds.push(this.#control.readInt32LE(p));
      } else {
        bad ??= `the relay sent control data other than file descriptors (level ${level}, type ${type})`;
      }
      off += (clen + 7) & ~7;
    }
    return bad;
  }

  #truncated(): RelayProtocolError {
    const expected = this.#payload ? `${HEADER + this.#payload.length}` : `at least ${HEADER}`;
    return new RelayProtocolError(`the relay closed the connection after ${this.#have} of ${expected} bytes of its request`);
  }

  /** Checks the header; the payload length. */
  #parseHeader(): number {
    const h = this.#header;
    const magic = h.subarray(0, 4);
    if (!magic.equals(Buffer.from(RELAY_MAGIC))) throw new RelayProtocolError(`not a relay request: it starts with ${JSON.stringify(magic.toString('latin1'))}, not "${RELAY_MAGIC}"`);
    const version = h.readUInt32LE(4);
    if (version !== RELAY_VERSION) throw new RelayProtocolError(`relay protocol version ${version} is not supported (this supervisor speaks ${RELAY_VERSION}): the relay and the supervisor come from different installs`);
    const length = h.readUInt32LE(8);
    this.#argc = h.readUInt32LE(12);
    this.#envc = h.readUInt32LE(16);
    if (length > MAX_RELAY_PAYLOAD) throw new RelayProtocolError(`relay request of ${length} bytes refused: at most ${MAX_RELAY_PAYLOAD}`);
    if (this.#argc === 0) throw new RelayProtocolError('relay request without arguments (argc 0): the verb is missing');
    // Every string takes at least its NUL: refuse counts the length cannot hold before allocating anything.
    if (1 + this.#argc + this.#envc > length) throw new RelayProtocolError(`relay request of ${length} bytes cannot hold the cwd, ${this.#argc} arguments and ${this.#envc} environment entries it announces`);
    return length;
  }

  #parsePayload(payload: Buffer): RelayRequest {
    if (this.#fds.length !== 3) throw new RelayProtocolError(`the relay sent ${this.#fds.length} file descriptors; a request carries 3 (stdin, stdout, stderr)`);
    const want = 1 + this.#argc + this.#envc;
    let count = 0;
    for (let i = payload.indexOf(0); i >= 0; i = payload.indexOf(0, i + 1)) count++;
    // Every byte belongs to a string: the last one ends the last string.
    if (count !== want || payload[payload.length - 1] !== 0) {
      throw new RelayProtocolError(`relay request holds ${count} NUL-terminated strings${payload[payload.length - 1] !== 0 ? ' and an unterminated tail' : ''}, not the ${want} its header announces (cwd, ${this.#argc} arguments, ${this.#envc} environment entries)`);
    }
    const strings: string[] = [];
    for (let start = 0; start < payload.length; ) {
      const end = payload.indexOf(0, start);
      const bytes = payload.subarray(start, end);
      if (!isUtf8(bytes)) {
        const i = strings.length;
        const what = i === 0 ? 'the working directory' : i <= this.#argc ? `argument ${i}` : `environment entry ${i - this.#argc}`;
        throw new RelayProtocolError(`${what} is not valid UTF-8: ${JSON.stringify(bytes.toString('latin1'))}`);
      }
      strings.push(bytes.toString('utf8'));
      start = end + 1;
    }
    const fds = this.#fds as [number, number, number];
    this.#fds = [];
    return { cwd: strings[0]!, args: strings.slice(1, 1 + this.#argc), env: strings.slice(1 + this.#argc), fds };
  }

  #fail(): void {
    this.#state = 'failed';
    this.#closeFds();
  }

  #closeFds(): void {
    const fds = this.#fds;
    this.#fds = [];
    for (const fd of fds) {
      try {
        closeSync(fd);
      } catch {
        // Ours, just received: EBADF cannot happen; nothing else to do about EIO on a close.
      }
    }
  }
}

function frame(type: string, payload: Buffer): Buffer {
  if (payload.length > MAX_U32) throw new RangeError(`relay frame of ${payload.length} bytes: at most ${MAX_U32}`);
  const b = Buffer.allocUnsafe(FRAME_HEADER + payload.length);
  b.write(type, 0, 'latin1');
  b.writeUInt32LE(payload.length, 1);
  payload.copy(b, FRAME_HEADER);
  return b;
}

/** 'o' / 'e': bytes the relay writes to its stdout (1) or stderr (2). */
export function outputFrame(fd: 1 | 2, data: Buffer | string): Buffer {
  return frame(fd === 1 ? 'o' : 'e', typeof data === 'string' ? Buffer.from(data) : data);
}

/** 'X': the relay exits with `status`. */
export function exitFrame(status: number): Buffer {
  if (!Number.isInteger(status) || status < 0 || status > 255) throw new RangeError(`exit status ${status} is not an integer from 0 to 255`);
  const p = Buffer.alloc(4);
  p.writeUInt32LE(status, 0);
  return frame('X', p);
}

/** 'F': the relay execs the Node CLI with its argv instead. Only as the first frame. */
export function fallbackFrame(): Buffer {
  return frame('F', Buffer.alloc(0));
}

/**
 * Sends the 'T' frame with `master` attached, in one non-blocking sendmsg.
 * It writes to the fd directly, past any node:net buffer: call it only when
 * nothing written through node:net is still pending on this connection
 * (socket.writableLength === 0), or the frames arrive out of order. Throws
 * RelaySocketError with code EAGAIN (socket buffer full), ESHORT (part of
 * the frame went; the stream is then corrupt and must be closed) or the
 * errno of the call. `master` stays ours: the kernel gives the relay a copy.
 */
export function sendTerminalFrame(fd: number, master: number, t: TerminalFrame): void {
  if ((t.input !== 0 && t.input !== null) || (t.output !== 1 && t.output !== 2) || ![0, 1, 2].includes(t.size)) {
    throw new RangeError(`terminal frame ${JSON.stringify(t)}: input is 0 or null, output 1 or 2, size 0, 1 or 2`);
  }
  const data = frame('T', Buffer.from([t.input === 0 ? 0 : 255, t.output, t.size]));
  const control = Buffer.alloc(CMSG_HDR + 8); // CMSG_SPACE(sizeof(int))
  control.writeBigUInt64LE(BigInt(CMSG_HDR + 4), 0);
  control.writeInt32LE(SOL_SOCKET, 8);
  control.writeInt32LE(SCM_RIGHTS, 12);
  control.writeInt32LE(master, 16);
  const { msg, iov } = msghdr(data, control);
  const c = calls();
  let n: number;
  while ((n = c.sendmsg(fd, msg, MSG_DONTWAIT | MSG_NOSIGNAL)) < 0 && koffi().errno() === EINTR);
  void iov;
  const call = `sendmsg(${fd}, terminal frame)`;
  if (n < 0) {
    const code = errnoName(koffi().errno());
    throw new RelaySocketError(call, code, code === 'EAGAIN' ? "the relay's socket buffer is full; nothing was sent" : '');
  }
  if (n !== data.length) throw new RelaySocketError(call, 'ESHORT', `${n} of ${data.length} bytes went: the connection is unusable`);
}

/**
 * Splits what a relay sends after its request into frames. Fed the bytes
 * as node:net delivers them; after an error it stays failed. end() says
 * whether the stream stopped between frames.
 */
export class RelayFrameParser {
  #pending: Buffer = Buffer.alloc(0);
  #failed: RelayProtocolError | undefined;

  /** The frames complete so far; throws RelayProtocolError. */
  push(chunk: Buffer): RelaySignalFrame[] {
    if (this.#failed) throw this.#failed;
    let buf = this.#pending.length ? Buffer.concat([this.#pending, chunk]) : chunk;
    const out: RelaySignalFrame[] = [];
    while (buf.length >= 1) {
      const type = String.fromCharCode(buf[0]!);
      if (type !== 'S') return this.#error(`unknown relay frame type ${JSON.stringify(type)} (0x${buf[0]!.toString(16)})`);
      if (buf.length < FRAME_HEADER) break;
      const len = buf.readUInt32LE(1);
      // The only frame is a u32: anything longer is refused before it is waited for.
      if (len !== MAX_CLIENT_PAYLOAD) return this.#error(`relay signal frame of ${len} bytes; it is ${MAX_CLIENT_PAYLOAD}`);
      if (buf.length < FRAME_HEADER + len) break;
      const signo = buf.readUInt32LE(FRAME_HEADER);
      if (signo < 1 || signo > 64) return this.#error(`relay signal frame with signal number ${signo}`);
      out.push({ type: 'signal', signo });
      buf = buf.subarray(FRAME_HEADER + len);
    }
    // Copied: a pending tail must not pin node:net's whole chunk.
    this.#pending = Buffer.from(buf);
    return out;
  }

  /** The stream ended; throws RelayProtocolError if it stopped inside a frame. */
  end(): void {
    if (this.#failed) throw this.#failed;
    if (this.#pending.length) this.#error(`the relay's stream ended inside a frame (${this.#pending.length} bytes of it)`);
  }

  #error(message: string): never {
    this.#failed = new RelayProtocolError(message);
    this.#pending = Buffer.alloc(0);
    throw this.#failed;
  }
}
