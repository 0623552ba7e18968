// The keyfile dialect of schroot.conf: `[group]` headers, `key=value` lines,
// whole-line `#` comments, blank lines.
// Hand-written because no npm package parses schroot's dialect with line numbers
// (ini and its kin accept `;` comments, quoting and sections-in-keys, and drop lines).
import { ConfigError, quote } from './errors.js';
import { nameProblem } from './names.js';

export interface KeyfileEntry {
  key: string;
  value: string;
  /** 1-based line of the `key=value` line. */
  line: number;
}

export interface KeyfileGroup {
  name: string;
  /** 1-based line of the `[name]` header. */
  line: number;
  /** In file order; keys are unique within a group. */
  entries: KeyfileEntry[];
}

export interface Keyfile {
  file: string;
  /** In file order. The same name may appear twice: the loader reports that, naming both places. */
  groups: KeyfileGroup[];
}

// Keys as schroot spells them: `directory`, `setup.fstab`, and localised
// variants such as `description[de_DE]`.
const KEY = /^[A-Za-z0-9][A-Za-z0-9._-]*(\[[A-Za-z0-9_.@-]+\])?$/;

/**
 * Parses one file. Throws ConfigError at the first bad line.
 *
 * Like schroot's own parser (sbuild keyfile_parser::parse_line), `#` starts a
 * comment only at the beginning of a line: `description=C# tools` keeps its
 * `#`, even though schroot.conf(5) claims otherwise. Unlike schroot, leading
 * and trailing whitespace is ignored and text after `]` is refused.
 */
export function parseKeyfile(text: string, file: string): Keyfile {
  const groups: KeyfileGroup[] = [];
  let current: KeyfileGroup | undefined;
  // Where each key of the current group was set, to name the first place in a duplicate.
  let seen = new Map<string, number>();

  const lines = text.replace(/^\uFEFF/, '').split('\n');
  // A final newline does not start another line.
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();

  lines.forEach((raw, index) => {
    const line = index + 1;
    const trimmed = raw.trim();
    if (trimmed === '' || trimmed.startsWith('#')) return;

    if (trimmed.startsWith('[')) {
      if (!trimmed.endsWith(']') || trimmed.indexOf(']') !== trimmed.length - 1) {
        throw new ConfigError(file, line, `invalid group header ${quote(trimmed)}: expected [name] alone on the line`);
      }
      const name = trimmed.slice(1, -1);
      const problem = nameProblem(name);
      if (problem !== undefined) throw new ConfigError(file, line, `invalid group name ${quote(name)}: ${problem}`);
      current = { name, line, entries: [] };
      seen = new Map();
      groups.push(current);
      return;
    }

    const eq = trimmed.indexOf('=');
    if (eq < 0) {
      throw new ConfigError(file, line, `expected [group], key=value or a # comment, got ${quote(trimmed)}`);
    }
    const key = trimmed.slice(0, eq).trim();
    const value = trimmed.slice(eq + 1).trim();
    if (!KEY.test(key)) throw new ConfigError(file, line, `invalid key ${quote(key)} in ${quote(trimmed)}`);
    if (current === undefined) throw new ConfigError(file, line, `key ${quote(key)} appears before any [group]`);
    const first = seen.get(key);
    if (first !== undefined) {
      throw new ConfigError(file, line, `duplicate key ${quote(key)} in [${current.name}] (first set at line ${first})`);
    }
    seen.set(key, line);
    current.entries.push({ key, value, line });
  });

  return { file, groups };
}
