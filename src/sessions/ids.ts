// Session ids name directories under the state dir, so they are checked
// before any file is touched: no '/', no '..', nothing a shell would mangle.
import { SessionIdError } from './errors.js';

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const MAX_ID_LENGTH = 64;

/** Throws SessionIdError unless `id` matches DESIGN.md's pattern. */
export function validateId(id: string): string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw new SessionIdError(id);
  return id;
}

/** `<chroot>-<uuid>`, with the chroot part shortened when the whole would exceed 64 characters. */
export function newId(chroot: string): string {
  // The global Web Crypto object: importing node:crypto costs ~4 ms of start-up.
  const uuid = globalThis.crypto.randomUUID();
  const room = MAX_ID_LENGTH - uuid.length - 1;
  return validateId(`${chroot.slice(0, room)}-${uuid}`);
}
