// Who is at the other end of a unix socket, as the kernel recorded it when
// the peer called connect(2): SO_PEERCRED for pid, uid and gid, and
// SO_PEERGROUPS (Linux >= 4.13) for the supplementary groups (socket(7)).
// A client cannot lie about these, which is what lets the supervisor decide
// users=, groups= and the rest for requests that arrive on its socket.
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { arch, platform } from 'node:process';
import type { Credentials } from '../config/index.js';
import { koffi, libc as glibc } from '../sys/index.js';
import { POLLERR, POLLHUP, POLLRDHUP, pollOne } from '../sys/index.js';

/** The peer's credentials cannot be had: not a unix socket, no fd, or getsockopt failed. */
export class PeerCredentialsError extends Error {
  override name = 'PeerCredentialsError';
  /** errno of the failed call, when one failed. */
  readonly errno: number | undefined;
  constructor(message: string, errno?: number, opts: { cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.errno = errno;
  }
}

// asm-generic/socket.h numbers. alpha, mips, parisc, powerpc and sparc have
// their own (SO_PEERCRED is 18 on mips, 21 on powerpc): refuse them rather
// than ask the kernel for the wrong option. All of these are little-endian.
const KNOWN_ARCHES = new Set(['x64', 'ia32', 'arm', 'arm64', 'riscv64', 'loong64']);
const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const SO_DOMAIN = 39;
const SO_PEERGROUPS = 59;
const AF_UNIX = 1;
const ERANGE = 34;
const ENOPROTOOPT = 92;
/** struct ucred { pid_t pid; uid_t uid; gid_t gid; } */
const UCRED_SIZE = 12;
/** Room for this many groups on the first try; most users have a handful. */
const FIRST_GROUPS = 64;

interface Libc {
  getsockopt: (fd: number, level: number, optname: number, optval: Buffer, optlen: Buffer) => number;
  strerror: (errnum: number) => string;
}

let libc: Libc | undefined;

// Bound on first use, like locks/native.ts: the CLI never needs it, and
// each koffi prototype costs a parse.
function bind(): Libc {
  if (libc) return libc;
  if (platform !== 'linux' || !KNOWN_ARCHES.has(arch)) {
    throw new PeerCredentialsError(`peer credentials are supported on Linux (${[...KNOWN_ARCHES].join(', ')}), not ${platform}/${arch}`);
  }
  const lib = glibc();
  // socklen_t *optlen is in/out: a 4-byte Buffer the kernel rewrites.
  libc = {
    getsockopt: lib.func('int getsockopt(int fd, int level, int optname, void *optval, void *optlen)') as Libc['getsockopt'],
    strerror: lib.func('const char *strerror(int errnum)') as Libc['strerror'],
  };
  return libc;
}

/**
 * The credentials of the process that connected `socket` (a connected
 * unix socket, e.g. one a net.Server accepted). The ids are the peer's
 * effective ones at connect(2) time: a client that changes its ids later
 * is still judged by those it connected with.
 */
export function peerCredentials(socket: Socket): Credentials {
  const fd = socketFd(socket);
  const c = bind();
  // Anything but AF_UNIX has no peer credentials, yet SO_PEERCRED succeeds
  // on it with pid 0 and uid and gid (uid_t)-1: refuse before anyone reads
  // those as a user.
  const domain = Buffer.alloc(4);
  let r = sockopt(c, fd, SO_DOMAIN, domain);
  if (r.errno !== 0) throw failed(c, fd, 'SO_DOMAIN', r.errno);
  if (domain.readInt32LE(0) !== AF_UNIX) {
    throw new PeerCredentialsError(`fd ${fd} is not a unix socket (address family ${domain.readInt32LE(0)}): it has no peer credentials`);
  }
  const ucred = Buffer.alloc(UCRED_SIZE);
  r = sockopt(c, fd, SO_PEERCRED, ucred);
  if (r.errno !== 0) throw failed(c, fd, 'SO_PEERCRED', r.errno);
  const pid = ucred.readInt32LE(0);
  const uid = ucred.readUInt32LE(4);
  const gid = ucred.readUInt32LE(8);
  // pid is 0 when the peer lives in a pid namespace we cannot see.
  const groups = peerGroups(c, fd, pid > 0 ? pid : undefined, uid, gid);
  return pid > 0 ? { uid, gid, groups, pid } : { uid, gid, groups };
}

/**
 * The calling process's own real ids, for the CLI's checks of itself. Real,
 * not effective: they say who asked, also for a warden that was installed
 * setuid root (as schroot is). The groups come from /proc/self/status:
 * process.getgroups() adds the effective gid to the supplementary groups.
 */
export function selfCredentials(): Credentials {
  const uid = process.getuid!();
  const gid = process.getgid!();
  let groups: number[];
  try {
    groups = readStatus('self').groups;
  } catch {
    groups = process.getgroups!(); // no /proc: the effective gid among them is harmless
  }
  return { uid, gid, groups, pid: process.pid };
}

/**
 * Whether the peer of `socket` has closed the connection (or shut down its
 * writing side), as the kernel knows it now: poll(2) with no wait. Node
 * learns of a hang-up only when its event loop next reads the socket, so a
 * server that must act on "the client is gone" before a step it cannot take
 * back asks the kernel instead. A socket Node has already closed counts as
 * hung up; if poll itself fails, the peer is taken to be there.
 */
export function peerHungUp(socket: Socket): boolean {
  if (socket.destroyed || socket.readableEnded) return true;
  let fd: number;
  try {
    fd = socketFd(socket);
  } catch {
    return true;
  }
  // The peer shut down its side, hung up, or the socket failed.
  return (pollOne(fd, POLLRDHUP, 0).revents & (POLLRDHUP | POLLHUP | POLLERR)) !== 0;
}

/**
 * The fd behind a net.Socket. Node does not expose it; its libuv handle
 * does (`_handle.fd`, the uv_fileno of a Pipe) on Linux.
 */
export function socketFd(socket: Socket): number {
  const handle = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle;
  const fd = handle?.fd;
  if (typeof fd === 'number' && fd >= 0) return fd;
  if (socket.destroyed || !handle) throw new PeerCredentialsError('the socket is closed: its peer credentials are gone with it');
  throw new PeerCredentialsError('the socket has no file descriptor that can be asked for peer credentials (not a unix socket?)');
}

/**
 * getsockopt(2) at SOL_SOCKET into `buf`: errno 0 and the length written,
 * or the errno and whatever the kernel left in optlen (for SO_PEERGROUPS'
 * ERANGE, the length it needs).
 */
function sockopt(c: Libc, fd: number, optname: number, buf: Buffer): { errno: number; len: number } {
  const len = Buffer.alloc(4);
  len.writeUInt32LE(buf.length, 0);
  const errno = c.getsockopt(fd, SOL_SOCKET, optname, buf, len) === 0 ? 0 : koffi().errno();
  return { errno, len: len.readUInt32LE(0) };
}

function failed(c: Libc, fd: number, what: string, errno: number): PeerCredentialsError {
  return new PeerCredentialsError(`getsockopt(${fd}, SOL_SOCKET, ${what}): ${c.strerror(errno)}`, errno);
}

function peerGroups(c: Libc, fd: number, pid: number | undefined, uid: number, gid: number): number[] {
  let room = FIRST_GROUPS;
  // The kernel answers ERANGE with the length it needs; a peer's groups
  // were fixed at connect(2), so the second try fits. Bounded all the same.
  for (let attempt = 0; attempt < 3; attempt++) {
    const buf = Buffer.alloc(room * 4);
    const r = sockopt(c, fd, SO_PEERGROUPS, buf);
    if (r.errno === 0) return Array.from({ length: Math.floor(r.len / 4) }, (_, i) => buf.readUInt32LE(i * 4));
    // Kernels before 4.13 do not know the option.
    if (r.errno === ENOPROTOOPT) return procGroups(pid, uid, gid);
    if (r.errno !== ERANGE) throw failed(c, fd, 'SO_PEERGROUPS', r.errno);
    room = Math.max(Math.ceil(r.len / 4), room * 2);
  }
  throw new PeerCredentialsError(`getsockopt(${fd}, SOL_SOCKET, SO_PEERGROUPS): the group list kept growing`, ERANGE);
}

/**
 * The supplementary groups of process `pid` from /proc/PID/status, for
 * kernels without SO_PEERGROUPS. Weaker than the socket option: these are
 * the groups *now*, and the pid may have been reused since connect(2), so
 * the process must still have the effective uid and gid the socket
 * recorded, or the groups are refused rather than guessed.
 */
export function procGroups(pid: number | undefined, uid: number, gid: number): number[] {
  if (pid === undefined) throw new PeerCredentialsError('SO_PEERGROUPS is not supported and the peer pid is not visible: its groups cannot be read');
  let status: ProcStatus;
  try {
    status = readStatus(pid);
  } catch (e) {
    throw new PeerCredentialsError(`cannot read the groups of peer pid ${pid}: ${(e as Error).message}`, undefined, { cause: e });
  }
  // Uid:/Gid: list real, effective, saved and filesystem ids: SO_PEERCRED has the effective ones.
  if (status.uids[1] !== uid || status.gids[1] !== gid) {
    throw new PeerCredentialsError(`peer pid ${pid} no longer has uid ${uid} and gid ${gid} (exited, or changed ids since it connected)`);
  }
  return status.groups;
}

interface ProcStatus {
  uids: number[];
  gids: number[];
  groups: number[];
}

/** The id lines of /proc/PID/status (proc(5)). */
function readStatus(pid: number | 'self'): ProcStatus {
  const text = readFileSync(`/proc/${pid}/status`, 'utf8');
  const field = (key: string): number[] => {
    const line = text.split('\n').find((l) => l.startsWith(`${key}:`));
    if (line === undefined) throw new Error(`/proc/${pid}/status has no ${key}: line`);
    return line
      .slice(key.length + 1)
      .split(/\s+/)
      .filter((x) => x !== '')
      .map(Number);
  };
  return { uids: field('Uid'), gids: field('Gid'), groups: field('Groups') };
}
