// Whether root may trust a file or directory it reads as configuration or
// works in: owned by root (or, for a process that is not root, by itself)
// and not writable by group or others. schroot applies this rule to
// schroot.conf and chroot.d (sbuild::chroot::config: "file is not owned by
// root" / "file has write permissions for others"); anything else lets the
// user who can write it decide what root runs.
import type { Stats } from 'node:fs';

const myUid = process.getuid?.() ?? 0;

/** `0644`-style mode of `st`. */
function modeOf(st: Pick<Stats, 'mode'>): string {
  return (st.mode & 0o7777).toString(8).padStart(4, '0');
}

/**
 * Why `st` may not be trusted with root's power, or undefined when it may.
 * `what` starts the reason (`'file is'`, `'directory is'`). `checkMode`:
 * also refuse group/world-writable (a symlink's own mode means nothing).
 * `stickyOk`: a world-writable directory with the sticky bit (/tmp) is
 * fine as a directory on a path, since nobody but an entry's owner can
 * replace that entry, and the entries on the path are checked themselves.
 */
export function untrusted(st: Pick<Stats, 'uid' | 'mode'>, what: string, { checkMode = true, stickyOk = false } = {}): string | undefined {
  if (st.uid !== 0 && !(myUid !== 0 && st.uid === myUid)) {
    return `${what} owned by uid ${st.uid}, not ${myUid === 0 ? 'root' : `root or uid ${myUid}`}`;
  }
  if (!checkMode) return undefined;
  if (stickyOk && st.mode & 0o1000) return undefined;
  if (st.mode & 0o002) return `${what} world-writable (mode ${modeOf(st)})`;
  if (st.mode & 0o020) return `${what} group-writable (mode ${modeOf(st)})`;
  return undefined;
}
