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
//
// This file: the wire's constants, errors and frames; relay-socket.ts the
// socket calls (recv, recvmsg and sendmsg with SCM_RIGHTS); relay-request.ts
// the request reader.

export const RELAY_MAGIC = 'WRLY';
export const RELAY_VERSION = 1;
/** The largest request payload (cwd, argv, environment) the relay sends and the reader takes. */
export const MAX_RELAY_PAYLOAD = 1 << 20;
export const HEADER = 20;
const FRAME_HEADER = 5;
/** The largest frame a relay sends ('S': a u32). */
const MAX_CLIENT_PAYLOAD = 4;
const MAX_U32 = 0xffff_ffff;

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

export function frame(type: string, payload: Buffer): Buffer {
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
