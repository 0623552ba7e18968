// The request a relay sends on connecting (relay-wire.ts describes it),
// read off the socket with the fds passed in it.
import { closeSync } from 'node:fs';
import { isUtf8 } from 'node:buffer';
import { koffi } from '../sys/index.js';
import { calls, CMSG_HDR, CONTROL, EAGAIN, ECONNRESET, EINTR, errnoName, msghdr, MSG_CMSG_CLOEXEC, MSG_CTRUNC, MSG_DONTWAIT, SCM_RIGHTS, SOL_SOCKET } from './relay-socket.js';
import { HEADER, MAX_RELAY_PAYLOAD, RELAY_MAGIC, RELAY_VERSION, RelayProtocolError, RelaySocketError, type RelayRequest } from './relay-wire.js';

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
