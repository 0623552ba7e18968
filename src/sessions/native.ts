// The two libc calls Node does not offer: renameat2(RENAME_NOREPLACE), which
// publishes a fully built session directory under its id atomically and
// only if the id is free, and nothing else.
import { koffi, libc as glibc } from '../locks/koffi.js';

const AT_FDCWD = -100;
const RENAME_NOREPLACE = 1;
const EEXIST = 17;

type Renameat2 = (olddirfd: number, oldpath: string, newdirfd: number, newpath: string, flags: number) => number;
let renameat2: Renameat2 | undefined;

export class RenameError extends Error {
  readonly errno: number;
  constructor(message: string, errno: number) {
    super(message);
    this.errno = errno;
  }
  get exists(): boolean {
    return this.errno === EEXIST;
  }
}

/** rename(2) that fails with EEXIST instead of replacing `to` (an empty directory would otherwise be replaced). */
export function renameNoReplace(from: string, to: string): void {
  renameat2 ??= glibc().func('int renameat2(int, const char *, int, const char *, unsigned int)') as unknown as Renameat2;
  if (renameat2!(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) === 0) return;
  const e = koffi().errno();
  throw new RenameError(`rename ${from} -> ${to}: errno ${e}`, e);
}
