// poll(2) on one fd through koffi: the CLI's blocking socket waits with it,
// and the supervisor asks with it whether a client has hung up. Node has no
// poll of its own for an fd it does not manage.
import { libc } from './koffi.js';

// poll.h; POLLRDHUP (Linux >= 2.6.17) is the same on every architecture warden supports.
export const POLLIN = 0x001;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
export const POLLRDHUP = 0x2000;

type Poll = (fds: Buffer, nfds: number, timeout: number) => number;
let call: Poll | undefined;

/**
 * Waits up to `timeoutMs` (0: not at all) for `events` on `fd`. `n` is
 * poll's result (< 0: failed, errno in koffi().errno()), `revents` what
 * happened.
 */
export function pollOne(fd: number, events: number, timeoutMs: number): { n: number; revents: number } {
  call ??= libc().func('int poll(void *fds, unsigned long nfds, int timeout)') as Poll;
  const pollfd = Buffer.alloc(8); // struct pollfd { int fd; short events; short revents; }
  pollfd.writeInt32LE(fd, 0);
  pollfd.writeInt16LE(events, 4);
  const n = call(pollfd, 1, timeoutMs);
  return { n, revents: n > 0 ? pollfd.readInt16LE(6) : 0 };
}
