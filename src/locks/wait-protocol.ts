// Shared between the main thread and wait-worker.ts: the request, the result
// and the layout of the control words in a SharedArrayBuffer.

export const TID = 0; // worker's kernel thread id, set before it waits
export const STATE = 1; // IDLE -> WAITING -> DONE
export const CANCEL = 2; // set to 1 by the main thread to cancel
// IDLE is 0: a fresh SharedArrayBuffer is zeroed.
export const WAITING = 1;
export const DONE = 2;
export const CONTROL_BYTES = 3 * Int32Array.BYTES_PER_ELEMENT;

export interface WaitRequest {
  fd: number;
  cmd: number;
  type: number;
  start: number;
  len: number;
  control: SharedArrayBuffer;
}

export interface WaitResult {
  granted: boolean;
  errno: number;
  /** The worker saw CANCEL before the kernel granted anything. */
  cancelled: boolean;
}
