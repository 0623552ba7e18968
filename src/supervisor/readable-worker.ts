// Runs in the supervisor's one readiness thread (readable.ts): poll(2) on the
// fds the main thread hands over, reporting each once it is readable or its
// deadline has passed. The thread blocks in poll, so its own event loop never
// turns: requests are taken with receiveMessageOnPort after every wake-up,
// and the main thread wakes it through an eventfd that is always in the set.
import { readSync } from 'node:fs';
import { receiveMessageOnPort, workerData, type MessagePort } from 'node:worker_threads';
import { koffi, libc } from '../sys/index.js';

/** Main thread → here. */
export type ReadableCommand = { op: 'add'; id: number; fd: number; deadline: number } | { op: 'remove'; id: number } | { op: 'stop' };
/** Here → main thread: `ready` false when the deadline passed first. */
export interface ReadableReport {
  id: number;
  ready: boolean;
}

const POLLIN = 0x001;
const POLLERR = 0x008;
const POLLHUP = 0x010;
const POLLNVAL = 0x020;
const EINTR = 4;

const { port, wakeFd } = workerData as { port: MessagePort; wakeFd: number };
const poll = libc().func('int poll(void *fds, unsigned long nfds, int timeout)') as (fds: Buffer, n: number, timeout: number) => number;
const waits = new Map<number, { fd: number; deadline: number }>();
const counter = Buffer.alloc(8);

for (;;) {
  let stop = false;
  for (let m = receiveMessageOnPort(port); m !== undefined; m = receiveMessageOnPort(port)) {
    const cmd = m.message as ReadableCommand;
    if (cmd.op === 'add') waits.set(cmd.id, { fd: cmd.fd, deadline: cmd.deadline });
    else if (cmd.op === 'remove') waits.delete(cmd.id);
    else stop = true;
  }
  if (stop) break;
  const ids = [...waits.keys()];
  const set = Buffer.alloc(8 * (ids.length + 1));
  set.writeInt32LE(wakeFd, 0);
  set.writeInt16LE(POLLIN, 4);
  let next = Infinity;
  ids.forEach((id, i) => {
    const w = waits.get(id)!;
    set.writeInt32LE(w.fd, 8 * (i + 1));
    set.writeInt16LE(POLLIN, 8 * (i + 1) + 4);
    next = Math.min(next, w.deadline);
  });
  const timeout = next === Infinity ? -1 : Math.max(0, Math.min(2 ** 31 - 1, Math.ceil(next - Date.now())));
  const n = poll(set, ids.length + 1, timeout);
  if (n < 0) {
    // EINTR is the only error poll returns for a valid set; anything else would repeat forever.
    if (koffi().errno() === EINTR) continue;
    throw new Error('poll failed in the readiness thread');
  }
  if (set.readInt16LE(6) !== 0) {
    try {
      readSync(wakeFd, counter); // resets the eventfd; EAGAIN when another wake-up took it
    } catch {
      // nothing to drain
    }
  }
  const now = Date.now();
  ids.forEach((id, i) => {
    const revents = set.readInt16LE(8 * (i + 1) + 6);
    const w = waits.get(id)!;
    // Readable, or hung up / in error: the reader finds out which.
    if (revents & (POLLIN | POLLERR | POLLHUP | POLLNVAL)) {
      waits.delete(id);
      port.postMessage({ id, ready: true } satisfies ReadableReport);
    } else if (w.deadline <= now) {
      waits.delete(id);
      port.postMessage({ id, ready: false } satisfies ReadableReport);
    }
  });
}

