// Value syntaxes shared by [warden] and chroot groups. Each checker throws a
// ConfigError at the key's line, echoing the value it refused.
import { statSync } from 'node:fs';
import { isAbsolute, normalize } from 'node:path';
import { ConfigError, quote } from './errors.js';
import type { KeyfileEntry } from './parser.js';

/** An absolute path, normalised (`/srv//sid/` → `/srv/sid`). */
export function absolutePath(file: string, entry: KeyfileEntry): string {
  if (!isAbsolute(entry.value)) {
    throw new ConfigError(file, entry.line, `${entry.key}= must be an absolute path, got ${quote(entry.value)}`);
  }
  const path = normalize(entry.value);
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

/** Follows symlinks, as chroot(2) will: a link to a directory is a directory. */
export function checkDirectory(file: string, entry: KeyfileEntry, path: string): void {
  let isDir: boolean;
  try {
    isDir = statSync(path).isDirectory();
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : `cannot be read (${code ?? String(e)})`;
    throw new ConfigError(file, entry.line, `${entry.key}=${path} ${why}`, { cause: e });
  }
  if (!isDir) throw new ConfigError(file, entry.line, `${entry.key}=${path} is not a directory`);
}

// Plain decimal only: Number() would also take "0x10", "1e3" and "Infinity".
const SECONDS = /^\d+(\.\d+)?$/;

/** A positive number of seconds, fractions allowed. */
export function seconds(file: string, entry: KeyfileEntry): number {
  const n = SECONDS.test(entry.value) ? Number(entry.value) : NaN;
  if (!(n > 0)) {
    throw new ConfigError(file, entry.line, `${entry.key}= must be a positive number of seconds, got ${quote(entry.value)}`);
  }
  return n;
}

/** schroot's list syntax: comma-separated, blanks around items ignored, empty items dropped. */
export function list(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}
