// The lines of a post-mount.d/NAME.fstab hook (hooks/README.md has the
// format): parsed and checked before anything is mounted.
import { DeclarativeError, refuse } from './errors.js';
import { components } from './within.js';
import { unescapeOctal } from '../sys/index.js';
import { MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY } from '../sys/index.js';

/** One line of a .fstab file. */
export interface FstabEntry {
  line: number;
  /** Host path (binds), or the filesystem's source (`tmpfs`, `proc`, a device). */
  spec: string;
  /** Absolute path inside the session, normalised ('/dev/pts'). */
  file: string;
  parts: string[];
  vfstype: string;
  /** `bind` or `rbind`. */
  bind: boolean;
  /** `rbind`: MS_REC. */
  rec: boolean;
  /** ro, nosuid, nodev, noexec as MS_* flags, and by name for messages. */
  flags: number;
  flagNames: string[];
  nofail: boolean;
  /** Unknown options of a filesystem mount, for mount(2)'s data argument. */
  data: string | null;
}

// mount(8)'s names of the per-mount flags (and of what mountinfo shows).
export const FLAGS: Record<string, number> = { ro: MS_RDONLY, nosuid: MS_NOSUID, nodev: MS_NODEV, noexec: MS_NOEXEC };
// mount(2) copies at most one page of option data.
const MAX_DATA = 4095;

/** Parses every line; throws DeclarativeError naming the first bad line. */
export function parseFstab(text: string): FstabEntry[] {
  const out: FstabEntry[] = [];
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.trim();
    if (raw === '' || raw.startsWith('#')) continue;
    try {
      const e = parseLine(raw, i + 1);
      const earlier = seen.get(e.file);
      if (earlier !== undefined) throw new DeclarativeError(refuse.sameFile(e.file, earlier));
      seen.set(e.file, e.line);
      out.push(e);
    } catch (err) {
      if (err instanceof DeclarativeError) err.line ??= i + 1;
      throw err;
    }
  }
  return out;
}

function parseLine(raw: string, line: number): FstabEntry {
  const fields = raw.split(/[ \t]+/);
  if (fields.length < 4 || fields.length > 6) throw new DeclarativeError(refuse.fields(fields.length));
  // fstab(5): "\040" and the like stand for a space (tab, newline, backslash, any byte) in a field.
  const [spec, file, vfstype, options] = fields.slice(0, 4).map(unescapeOctal) as [string, string, string, string];
  // FREQ and PASSNO are dump(8) and fsck(8) matters: checked, then ignored.
  for (const [name, value] of [['FREQ', fields[4]], ['PASSNO', fields[5]]] as const) {
    if (value !== undefined && !/^\d+$/.test(value)) throw new DeclarativeError(refuse.notNumber(name, value));
  }
  for (const [name, value] of [['SPEC', spec], ['FILE', file], ['VFSTYPE', vfstype], ['OPTIONS', options]] as const) {
    if (value.includes('\0')) throw new DeclarativeError(refuse.nul(name));
  }
  if (!file.startsWith('/')) throw new DeclarativeError(refuse.fileNotAbsolute(file));
  const parts = components(file);
  if (parts === undefined) throw new DeclarativeError(refuse.dotDot('FILE', file));
  if (parts.length === 0) throw new DeclarativeError(refuse.sessionRoot());

  let bind = false;
  let rec = false;
  let nofail = false;
  const named = new Set<string>();
  const rest: string[] = [];
  for (const opt of options.split(',')) {
    if (opt === '') throw new DeclarativeError(refuse.emptyOption(options));
    if (opt === 'bind') bind = true;
    else if (opt === 'rbind') bind = rec = true;
    else if (opt === 'nofail') nofail = true;
    else if (opt === 'rw') named.delete('ro');
    else if (opt in FLAGS) named.add(opt);
    else if (opt !== 'defaults') rest.push(opt);
  }
  if (bind) {
    if (rest.length > 0) throw new DeclarativeError(refuse.bindOption(rest[0]!));
    if (!spec.startsWith('/')) throw new DeclarativeError(refuse.bindSource(spec));
    if (rec && named.size > 0) throw new DeclarativeError(refuse.rbindFlags([...named]));
  }
  const data = rest.length > 0 ? rest.join(',') : null;
  if (data !== null && data.length > MAX_DATA) throw new DeclarativeError(refuse.dataTooLong(MAX_DATA));
  const flagNames = Object.keys(FLAGS).filter((n) => named.has(n));
  const flags = flagNames.reduce((acc, n) => acc | FLAGS[n]!, 0);
  return { line, spec, file: `/${parts.join('/')}`, parts, vfstype, bind, rec, flags, flagNames, nofail, data };
}
