// Session ids name directories under the state dir, so they are checked
// before any file is touched: no '/', no '..', nothing a shell would mangle.
import { closeSync, openSync, readSync } from 'node:fs';
import { SessionIdError } from './errors.js';

export const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_ID_LENGTH = 64;

/**
 * State-dir names that are warden's own, not sessions: the supervisor's
 * files (`supervisor.lock`, `.sock`, `.log` and any it adds later). Dot
 * names (`.manage`, the `.init-*`, `.new-*`, `.gone-*` build and ending
 * dirs) are outside ID_PATTERN already. A session under one of these names
 * would be hidden from list, end --all and recover --all, and would stop
 * every later supervisor from starting.
 */
const RESERVED_PREFIX = 'supervisor.';

export function isReservedName(name: string): boolean {
  return name.startsWith(RESERVED_PREFIX);
}

/** Throws SessionIdError unless `id` matches DESIGN.md's pattern and is not a name the state dir reserves. */
export function validateId(id: string): string {
  if (typeof id !== 'string' || !ID_PATTERN.test(id)) throw new SessionIdError(id);
  if (isReservedName(id)) throw new SessionIdError(id, `the state dir reserves ${RESERVED_PREFIX}* for the supervisor's files`);
  return id;
}

/** `<chroot>-<uuid>`, with the chroot part shortened when the whole would exceed 64 characters. */
export function newId(chroot: string): string {
  const uuid = randomUuid();
  const room = MAX_ID_LENGTH - uuid.length - 1;
  return validateId(`${chroot.slice(0, room)}-${uuid}`);
}

/**
 * A random (version 4) UUID from the kernel's random source. Not
 * crypto.randomUUID(): its first call loads Node's crypto modules, ~1 ms of
 * every automatic session's start, for 16 bytes.
 */
function randomUuid(): string {
  const b = Buffer.alloc(16);
  const fd = openSync('/dev/urandom', 'r');
  try {
    if (readSync(fd, b, 0, 16, null) !== 16) throw new Error('short read from /dev/urandom');
  } finally {
    closeSync(fd);
  }
  b[6] = (b[6]! & 0x0f) | 0x40; // version 4
  b[8] = (b[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
