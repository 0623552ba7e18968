// The relay wire's socket calls (relay-wire.ts describes the wire):
// recv, recvmsg and sendmsg through koffi, because node:net can neither
// receive nor send SCM_RIGHTS.
import { arch, platform } from 'node:process';
import { getSystemErrorName } from 'node:util';
import { koffi, libc as glibc } from '../sys/index.js';
import { frame, RelaySocketError, type TerminalFrame } from './relay-wire.js';

// <sys/socket.h>, <asm-generic/errno.h>: the same on every 64-bit Linux warden supports.
const KNOWN_ARCHES = new Set(['x64', 'arm64', 'riscv64', 'loong64']);
const MSG_PEEK = 0x2;
export const MSG_CTRUNC = 0x8;
export const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
export const MSG_CMSG_CLOEXEC = 0x4000_0000;
export const SOL_SOCKET = 1;
export const SCM_RIGHTS = 1;
export const EINTR = 4;
export const EAGAIN = 11;
export const ECONNRESET = 104;
// struct msghdr on LP64: name 0, namelen 8, iov 16, iovlen 24, control 32, controllen 40, flags 48.
const MSGHDR = 56;
const IOVEC = 16;
// struct cmsghdr: size_t len, int level, int type, then the data (CMSG_LEN(n) = 16 + n).
export const CMSG_HDR = 16;
/** Room for 8 fds: a relay sends 3, a hostile client more; MSG_CTRUNC past that. */
export const CONTROL = CMSG_HDR + 8 * 4;

interface Calls {
  recvmsg: (fd: number, msg: Buffer, flags: number) => number;
  sendmsg: (fd: number, msg: Buffer, flags: number) => number;
  recv: (fd: number, buf: Buffer, len: number, flags: number) => number;
}
let bound: Calls | undefined;

// Bound on first use: the CLI loads this folder and never needs them.
export function calls(): Calls {
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

export function errnoName(errno: number): string {
  return errno > 0 ? getSystemErrorName(-errno) : `errno ${errno}`;
}

/**
 * A msghdr for one buffer and a control buffer. The kernel gets the raw
 * addresses of Node buffers (their memory does not move); the buffers must
 * stay referenced until the call returns, which the callers' locals ensure.
 */
export function msghdr(data: Buffer, control: Buffer | undefined): { msg: Buffer; iov: Buffer } {
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
