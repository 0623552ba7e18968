// Typed outcomes of `warden bootstrap`. Every message is built here, in one
// place, as "<what failed>: <why>"; callers read `reason` and `path`.

export type BootstrapReason =
  /** DIR is `/` or a host system directory. */
  | 'refused'
  /** DIR exists and is not a directory. */
  | 'not-a-directory'
  /** DIR is not empty and carries no bootstrap marker (and `force` was not given). */
  | 'foreign'
  /** Something is mounted inside DIR: deleting would reach into that filesystem. */
  | 'mounted'
  /** A session or source entry holds DIR/.ref. */
  | 'in-use'
  /** A required host tool is missing or unusable. */
  | 'missing-tool'
  /** A library a required tool needs cannot be found, or not where the loader in the chroot would look. */
  | 'missing-library'
  /** Reading the host or writing DIR failed. */
  | 'io';

const MESSAGES: { [R in BootstrapReason]: (path: string, detail: string) => string } = {
  refused: (p, why) => `cannot bootstrap into ${p}: ${why}`,
  'not-a-directory': (p) => `cannot bootstrap into ${p}: it exists and is not a directory`,
  foreign: (p) => `cannot bootstrap into ${p}: it is not empty and holds no .warden-bootstrap marker (pass force to replace its contents)`,
  mounted: (p) => `cannot rebuild chroot: ${p} is a mount point (unmount it first)`,
  'in-use': (p, holders) => `cannot rebuild chroot: its source lock ${p} is held (${holders}); end the sessions using it first`,
  'missing-tool': (p, why) => `cannot bootstrap: required host tool ${p} ${why}`,
  'missing-library': (p, why) => `cannot bootstrap: ${p} ${why}`,
  io: (p, why) => `cannot bootstrap: ${p}: ${why}`,
};

export class BootstrapError extends Error {
  override name = 'BootstrapError';
  readonly reason: BootstrapReason;
  /** The path the message names: DIR, a file inside it, or a host tool or library. */
  readonly path: string;

  constructor(reason: BootstrapReason, path: string, detail = '', opts?: { cause?: unknown }) {
    super(MESSAGES[reason](path, detail), opts?.cause === undefined ? undefined : { cause: opts.cause });
    this.reason = reason;
    this.path = path;
  }
}

/** Wraps a filesystem error on `path` as an 'io' BootstrapError; BootstrapErrors pass through. */
export function ioError(path: string, e: unknown): BootstrapError {
  if (e instanceof BootstrapError) return e;
  const err = e as NodeJS.ErrnoException;
  const why = err.code ? `${err.code} (${err.syscall ?? 'fs'})` : String(err.message ?? e);
  return new BootstrapError('io', path, why, { cause: e });
}
