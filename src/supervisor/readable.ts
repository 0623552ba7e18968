// Waiting, off the event loop, for a socket that Node does not read to
// become readable. The supervisor takes every connection paused
// (pauseOnConnect) because a relay's first message carries its stdin,
// stdout and stderr as SCM_RIGHTS, which only recvmsg(2) receives: libuv
// reads a plain stream socket with read(2), and the kernel then closes the
// passed fds. Node has no poll for an fd it does not read, so one thread
// of ours polls the few connections whose first bytes have not come yet
// (most have: a client sends right after connect). One thread for all of
// them, not a thread per wait: a user holding 64 silent connections costs
// 64 pollfds.
import { closeSync, writeSync } from 'node:fs';
import { MessageChannel, Worker } from 'node:worker_threads';
import { libc } from '../sys/index.js';
import type { ReadableCommand, ReadableReport } from './readable-worker.js';

const EFD_CLOEXEC = 0o2000000;
const F_DUPFD_CLOEXEC = 1030;
const EFD_NONBLOCK = 0o4000;
let fcntl: ((fd: number, cmd: number, arg: number) => number) | undefined;

export class ReadableWaiter {
  #worker: Worker | undefined;
  #send: ((cmd: ReadableCommand) => void) | undefined;
  #wakeFd = -1;
  #nextId = 1;
  readonly #waits = new Map<number, { dup: number; settle: (ready: boolean) => void }>();
  #closed = false;

  /**
   * Resolves true once `fd` is readable (or hung up), false after
   * `timeoutMs` or when `signal` aborts. The thread polls a dup of `fd`,
   * so the caller may close its own at any time.
   */
  wait(fd: number, timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.#closed || signal?.aborted) return Promise.resolve(false);
    const send = this.#start();
    const id = this.#nextId++;
    fcntl ??= libc().func('int fcntl(int fd, int cmd, int arg)') as (fd: number, cmd: number, arg: number) => number;
    const dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (dup < 0) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const onAbort = () => {
        send({ op: 'remove', id });
        this.#settle(id, false);
      };
      this.#waits.set(id, {
        dup,
        settle: (ready) => {
          signal?.removeEventListener('abort', onAbort);
          resolve(ready);
        },
      });
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#worker!.ref();
      send({ op: 'add', id, fd: dup, deadline: Date.now() + timeoutMs });
    });
  }

  #settle(id: number, ready: boolean): void {
    const w = this.#waits.get(id);
    if (!w) return;
    this.#waits.delete(id);
    if (this.#waits.size === 0) this.#worker?.unref();
    // The thread has dropped the id (it reported it), or drops it before its
    // next poll ('remove' was posted first). A poll under way holds its own
    // reference to the file; should the number be reused meanwhile, the
    // worst is a report for an id already settled, which is ignored.
    closeQuiet(w.dup);
    w.settle(ready);
  }

  #start(): (cmd: ReadableCommand) => void {
    if (this.#send) return this.#send;
    const efd = (libc().func('int eventfd(unsigned int initval, int flags)') as (v: number, f: number) => number)(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (efd < 0) throw new Error('eventfd failed: the supervisor cannot wait for its clients');
    this.#wakeFd = efd;
    const { port1, port2 } = new MessageChannel();
    const worker = new Worker(new URL('./readable-worker.js', import.meta.url), {
      workerData: { port: port2, wakeFd: efd },
      transferList: [port2],
      resourceLimits: { stackSizeMb: 1, maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 },
    });
    worker.unref();
    port1.unref();
    port1.on('message', (r: ReadableReport) => this.#settle(r.id, r.ready));
    worker.on('error', () => {
      // The thread died (it never should): every wait ends as not ready, and the next wait starts a new one.
      for (const id of [...this.#waits.keys()]) this.#settle(id, false);
      this.#send = undefined;
      this.#worker = undefined;
    });
    const wake = Buffer.alloc(8);
    wake.writeBigUInt64LE(1n);
    this.#worker = worker;
    this.#send = (cmd) => {
      port1.postMessage(cmd);
      try {
        writeSync(efd, wake);
      } catch {
        // EAGAIN: the counter is full of wake-ups already
      }
    };
    return this.#send;
  }

  /** Ends every wait (false) and the thread. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const id of [...this.#waits.keys()]) this.#settle(id, false);
    const worker = this.#worker;
    if (worker) {
      this.#send!({ op: 'stop' });
      await new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    }
    this.#send = undefined;
    this.#worker = undefined;
    if (this.#wakeFd >= 0) closeQuiet(this.#wakeFd);
    this.#wakeFd = -1;
  }
}

function closeQuiet(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // closed already
  }
}
