// Runs inside a piscina worker thread: one blocking F_SETLKW at a time.
// The main thread cancels it by setting CANCEL and sending the wake signal to
// this thread (see native.ts); EINTR brings us back here to look at CANCEL.
import { EDEADLK, EINTR, FLOCK_SIZE, encodeFlock, errno, native, useSmallCallBuffers } from './native.js';
import { CANCEL, DONE, STATE, TID, WAITING, type WaitRequest, type WaitResult } from './wait-protocol.js';

const flock = Buffer.alloc(FLOCK_SIZE);
/** How long to wait before asking again after EDEADLK (a cancel is seen within this time too). */
const DEADLOCK_RETRY_MS = 20;
useSmallCallBuffers();

export default function waitForLock(req: WaitRequest): WaitResult {
  const c = native();
  const word = new Int32Array(req.control);
  Atomics.store(word, TID, c.gettid());
  // Publish WAITING before looking at CANCEL: a canceller that sets CANCEL
  // after our look will see WAITING and signal us (and keep re-signalling
  // until DONE, which covers a signal that lands just before the syscall).
  Atomics.store(word, STATE, WAITING);
  try {
    encodeFlock(flock, req.type, req.start, req.len);
    for (;;) {
      if (Atomics.load(word, CANCEL) !== 0) return { granted: false, errno: EINTR, cancelled: true };
      if (c.fcntl(req.fd, req.cmd, flock) === 0) return { granted: true, errno: 0, cancelled: false };
      const e = errno();
      // POSIX locks belong to the process, so the kernel's deadlock check
      // sees a cycle whenever this process holds any lock the holder we
      // wait for is itself waiting on: a supervisor holding one session of
      // a chroot while another begin of it waits behind a source entry,
      // which waits for that session. Not a deadlock (ending the session
      // breaks it), so wait and ask again instead of failing. OFD locks
      // are never checked for deadlock (fcntl(2)).
      if (e === EDEADLK) {
        Atomics.wait(word, CANCEL, 0, DEADLOCK_RETRY_MS);
        continue;
      }
      if (e !== EINTR) return { granted: false, errno: e, cancelled: false };
    }
  } finally {
    Atomics.store(word, STATE, DONE);
  }
}
