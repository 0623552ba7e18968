// The worker threads that sit in blocking F_SETLKW calls, so the event loop
// never does.
//
// Why a signal and not polling or piscina's abort: a thread blocked in
// F_OFD_SETLKW ignores worker termination, piscina's AbortSignal and the fd
// being closed; left alone it would acquire the lock after its caller gave up.
// A signal aimed at that thread with tgkill(2), whose handler lacks
// SA_RESTART, makes the call fail with EINTR within about 0.1 ms. Polling
// F_OFD_SETLK instead would cost ~1% CPU per waiter and milliseconds of
// wake-up latency, against the microseconds of a kernel wake-up.
//
// Bounded: one thread per distinct contended lock (callers queue same-lock
// waiters in-process, see lock.ts), never more than `maxThreads`; a caller
// that finds the pool full polls instead of queueing behind blocked waits.
import type { Piscina } from 'piscina';
import { installWakeSignal, wakeThread } from './native.js';
import { CANCEL, CONTROL_BYTES, STATE, TID, WAITING, type WaitRequest, type WaitResult } from './wait-protocol.js';

// An idle Node worker costs 7-8 MB of RSS on Node 20 whatever its resource
// limits (measured), so the default bound keeps 1,000 waits on many files
// under ~100 MB; waits beyond it poll (2-50 ms backoff) until a thread frees.
export const DEFAULT_MAX_THREADS = 8;

export interface KernelWait {
  readonly result: Promise<WaitResult>;
  /** Asks the worker to give up; the result still arrives (maybe granted: the caller then releases). */
  cancel(): void;
}

class WaitPool {
  #piscina: Piscina | undefined;
  #active = 0;
  #signal = 0;
  readonly maxThreads: number;

  constructor(maxThreads: number) {
    this.maxThreads = maxThreads;
  }

  get active(): number {
    return this.#active;
  }

  /** Number of worker threads alive (idle ones exit after a while). */
  get threads(): number {
    return this.#piscina?.threads.length ?? 0;
  }

  hasCapacity(): boolean {
    return this.#active < this.maxThreads;
  }

  async #pool(): Promise<Piscina> {
    if (this.#piscina) return this.#piscina;
    // piscina is imported only on the first contended wait: CLI verbs that
    // never wait do not pay for it.
    const { Piscina } = await import('piscina');
    this.#signal = installWakeSignal();
    this.#piscina ??= new Piscina({
      filename: new URL('./wait-worker.js', import.meta.url).href,
      minThreads: 0,
      maxThreads: this.maxThreads,
      idleTimeout: 5_000,
      // A blocked wait is not CPU work: one per thread, and start() never
      // submits more than maxThreads, so nothing queues behind a blocked wait.
      concurrentTasksPerWorker: 1,
      // Each blocked thread only needs a small stack for fcntl.
      resourceLimits: { stackSizeMb: 1, maxYoungGenerationSizeMb: 2, maxOldGenerationSizeMb: 16 },
    });
    return this.#piscina;
  }

  /** Starts a blocking wait. Preconditions: hasCapacity(). */
  start(req: Omit<WaitRequest, 'control'>): KernelWait {
    if (!this.hasCapacity()) throw new Error('lock wait pool is full (caller must poll)');
    this.#active++;
    const control = new SharedArrayBuffer(CONTROL_BYTES);
    const word = new Int32Array(control);
    let settled = false;
    let resend: NodeJS.Timeout | undefined;
    const result = this.#pool()
      .then((p) => p.run({ ...req, control } satisfies WaitRequest) as Promise<WaitResult>)
      .finally(() => {
        settled = true;
        if (resend) clearInterval(resend);
        this.#active--;
      });
    const poke = () => {
      if (settled) return;
      if (Atomics.load(word, STATE) === WAITING) wakeThread(Atomics.load(word, TID), this.#signal);
    };
    return {
      result,
      cancel: () => {
        if (settled || Atomics.load(word, CANCEL) !== 0) return;
        Atomics.store(word, CANCEL, 1);
        poke();
        // The signal may land after the worker looked at CANCEL but before it
        // entered the kernel; then it is lost and the worker blocks. Repeat
        // until the worker reports back (each repeat costs one tgkill).
        resend = setInterval(poke, 1);
      },
    };
  }

  async destroy(): Promise<void> {
    const p = this.#piscina;
    this.#piscina = undefined;
    if (p) await p.destroy();
  }
}

let pool: WaitPool | undefined;

export function waitPool(): WaitPool {
  if (!pool) {
    const env = Number(process.env.WARDEN_LOCK_THREADS);
    const max = Number.isInteger(env) && env > 0 ? env : DEFAULT_MAX_THREADS;
    pool = new WaitPool(max);
  }
  return pool;
}

/** Stops the worker threads (tests, orderly shutdown). Waits in flight must be cancelled first. */
export async function shutdownWaitPool(): Promise<void> {
  const p = pool;
  pool = undefined;
  if (p) await p.destroy();
}
