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

/** A positive whole number (a count of connections, requests). */
export function count(file: string, entry: KeyfileEntry): number {
  const n = /^\d{1,9}$/.test(entry.value) ? Number(entry.value) : NaN;
  if (!(n > 0)) {
    throw new ConfigError(file, entry.line, `${entry.key}= must be a positive whole number, got ${quote(entry.value)}`);
  }
  return n;
}

const SIZE = /^(\d{1,12})([KMG]?)$/i;
const SIZE_UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3 };

/** A positive number of bytes, with an optional binary suffix: 65536, 64K, 1M. */
export function bytes(file: string, entry: KeyfileEntry): number {
  const m = SIZE.exec(entry.value);
  const n = m ? Number(m[1]) * SIZE_UNITS[m[2]!.toLowerCase()]! : NaN;
  if (!(n > 0) || !Number.isSafeInteger(n)) {
    throw new ConfigError(file, entry.line, `${entry.key}= must be a positive number of bytes (a suffix K, M or G allowed), got ${quote(entry.value)}`);
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
