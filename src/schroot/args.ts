// schroot 1.6's command line (bin/schroot/schroot-options*.cc over
// boost::program_options), parsed the way schroot parses it:
//   - options may come anywhere, also after the command's words (`schroot -c x
//     ls -l` lists chroots!); only `--` ends them: sbuild always passes it;
//   - long options may be abbreviated to any unique prefix (`--chro`);
//   - short options bundle (`-lv`), a short option's value may be stuck on (`-cNAME`);
//   - an option other than -c/--chroot and the command given twice is an error.
// Parse errors come first, in argument order, then the checks schroot makes
// on the whole (one action, exactly one chroot to begin, ...), in its order.
import { messages, SchrootUsageError } from './errors.js';
import type { Common, RunOptions, SchrootAction, SchrootCall, SchrootNotice, Selection } from './call.js';
import { parseChrootName } from './names.js';

export type { RunOptions, SchrootAction, SchrootCall, SchrootNotice, Selection } from './call.js';

type Kind = 'flag' | 'value' | 'list';

interface OptionSpec {
  long: string;
  short?: string;
  kind: Kind;
  /** Set: schroot has the option, warden-schroot refuses it, for this reason. */
  unsupported?: string;
}

// Every option schroot 1.6 registers, hidden ones included: they take part in
// prefix matching, so `--c` is ambiguous between --chroot, --command and --config.
const OPTIONS: readonly OptionSpec[] = [
  { long: 'help', short: 'h', kind: 'flag' },
  { long: 'version', short: 'V', kind: 'flag' },
  { long: 'list', short: 'l', kind: 'flag' },
  { long: 'info', short: 'i', kind: 'flag' },
  { long: 'config', kind: 'flag' },
  { long: 'location', kind: 'flag' },
  { long: 'quiet', short: 'q', kind: 'flag' },
  { long: 'verbose', short: 'v', kind: 'flag' },
  { long: 'debug', kind: 'value', unsupported: "schroot's debug messages have no counterpart in warden" },
  { long: 'chroot', short: 'c', kind: 'list' },
  { long: 'all', short: 'a', kind: 'flag' },
  { long: 'all-chroots', kind: 'flag' },
  { long: 'all-sessions', kind: 'flag' },
  { long: 'all-source-chroots', kind: 'flag' },
  { long: 'exclude-aliases', kind: 'flag' },
  { long: 'directory', short: 'd', kind: 'value' },
  { long: 'shell', short: 's', kind: 'value', unsupported: 'warden runs the shell the user has in the chroot (SHELL with -p, else passwd)' },
  { long: 'user', short: 'u', kind: 'value' },
  { long: 'preserve-environment', short: 'p', kind: 'flag' },
  { long: 'option', short: 'o', kind: 'list', unsupported: 'warden has no user-modifiable-keys or root-modifiable-keys to set' },
  { long: 'automatic-session', kind: 'flag' },
  { long: 'begin-session', short: 'b', kind: 'flag' },
  { long: 'recover-session', kind: 'flag' },
  { long: 'run-session', short: 'r', kind: 'flag' },
  { long: 'end-session', short: 'e', kind: 'flag' },
  { long: 'session-name', short: 'n', kind: 'value' },
  { long: 'force', short: 'f', kind: 'flag' },
  { long: 'command', kind: 'list' },
];

const BY_LONG = new Map(OPTIONS.map((o) => [o.long, o]));
const BY_SHORT = new Map(OPTIONS.filter((o) => o.short !== undefined).map((o) => [o.short!, o]));

// The options that select an action, in the order schroot's check_options
// looks at them (it only matters for which pair is reported: any two fail).
const ACTIONS: readonly [string, SchrootAction][] = [
  ['help', 'help'],
  ['version', 'version'],
  ['list', 'list'],
  ['info', 'info'],
  ['config', 'config'],
  ['location', 'location'],
  ['automatic-session', 'automatic-session'],
  ['begin-session', 'begin-session'],
  ['recover-session', 'recover-session'],
  ['run-session', 'run-session'],
  ['end-session', 'end-session'],
];

interface Occurrence {
  spec: OptionSpec;
  /** As written, for messages about this option: `-o`, `--opt=x`. */
  token: string;
  value: string | undefined;
}

/** The long option `name` means: exact, else the one option it is a prefix of (boost's allow_guessing). */
function findLong(name: string, token: string): OptionSpec {
  const exact = BY_LONG.get(name);
  if (exact !== undefined) return exact;
  const matches = OPTIONS.filter((o) => o.long.startsWith(name)).map((o) => o.long);
  if (matches.length === 0 || name === '') throw new SchrootUsageError(messages.unrecognised(token));
  if (matches.length > 1) throw new SchrootUsageError(messages.ambiguous(token, matches.sort()));
  return BY_LONG.get(matches[0]!)!;
}

/** A token that is the next option rather than a value (boost will not take it as one). */
function looksLikeOption(token: string): boolean {
  return token.length > 1 && token.startsWith('-');
}

/** Splits argv into option occurrences and positional words, throwing the first syntax error. */
function scan(argv: readonly string[]): { occurrences: Occurrence[]; positional: string[] } {
  const occurrences: Occurrence[] = [];
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const token = argv[i]!;
    if (token === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (token.startsWith('--')) {
      const eq = token.indexOf('=');
      const name = token.slice(2, eq === -1 ? undefined : eq);
      const spec = findLong(name, token);
      if (eq !== -1) {
        const value = token.slice(eq + 1);
        if (value === '') throw new SchrootUsageError(messages.emptyAfterEquals(spec.long));
        if (spec.kind === 'flag') throw new SchrootUsageError(messages.noArguments(spec.long));
        occurrences.push({ spec, token, value });
      } else if (spec.kind === 'flag') {
        occurrences.push({ spec, token, value: undefined });
      } else {
        const next = argv[i + 1];
        if (next === undefined || looksLikeOption(next)) throw new SchrootUsageError(messages.missingArgument(spec.long));
        occurrences.push({ spec, token, value: next });
        i++;
      }
      // `--command X` and the words are one list in boost, in argument order.
      if (spec.long === 'command') positional.push(occurrences.at(-1)!.value!);
      continue;
    }
    if (token.startsWith('-') && token.length > 1) {
      // A bundle: flags, possibly ending in one option whose value is the rest (or the next word).
      for (let j = 1; j < token.length; j++) {
        const spec = BY_SHORT.get(token[j]!);
        if (spec === undefined) throw new SchrootUsageError(messages.unrecognised(token));
        const shortToken = `-${token[j]}`;
        if (spec.kind === 'flag') {
          occurrences.push({ spec, token: shortToken, value: undefined });
          continue;
        }
        let value = token.slice(j + 1);
        if (value === '') {
          const next = argv[i + 1];
          if (next === undefined || looksLikeOption(next)) throw new SchrootUsageError(messages.missingArgument(spec.long));
          value = next;
          i++;
        }
        occurrences.push({ spec, token: shortToken, value });
        break;
      }
      continue;
    }
    positional.push(token); // `-` alone is a word too
  }
  return { occurrences, positional };
}

/** sbuild::is_valid_sessionname: no namespace, not hidden, no editor or dpkg leftovers. */
function isValidSessionName(name: string): boolean {
  return /^[^:/,.][^:/,]*$/.test(name) && !name.endsWith('~') && !/dpkg-(old|dist|new|tmp)$/.test(name);
}

/**
 * Parses schroot's argv (without argv[0]). Throws SchrootUsageError with
 * schroot's wording for what schroot refuses, and names every option schroot
 * has that warden-schroot does not honour (--option, --shell, --debug).
 * What needs the configuration (does the chroot exist, is the namespace
 * right for the action) is the caller's.
 */
export function parseSchrootArgs(argv: readonly string[]): SchrootCall {
  const { occurrences, positional } = scan(argv);

  // boost stores after parsing: a second occurrence fails only now.
  const seen = new Map<string, Occurrence[]>();
  for (const o of occurrences) {
    const list = seen.get(o.spec.long) ?? [];
    if (list.length > 0 && o.spec.kind !== 'list') throw new SchrootUsageError(messages.twice(o.spec.long));
    list.push(o);
    seen.set(o.spec.long, list);
  }
  for (const o of occurrences) {
    if (o.spec.unsupported !== undefined) {
      const name = o.token.startsWith('--') ? `--${o.spec.long}` : o.token;
      throw new SchrootUsageError(messages.unsupported(name, o.spec.unsupported), { option: name });
    }
  }
  const has = (long: string) => seen.has(long);
  const value = (long: string) => seen.get(long)?.[0]?.value;

  let action: SchrootAction | undefined;
  for (const [long, a] of ACTIONS) {
    if (!has(long)) continue;
    if (action !== undefined) throw new SchrootUsageError(messages.oneAction(), { hint: true });
    action = a;
  }
  action ??= 'automatic-session';

  const quiet = has('quiet');
  const verbose = has('verbose');
  const notices: SchrootNotice[] = [];
  if (quiet && verbose) {
    notices.push({ level: 'W', text: '--quiet and --verbose may not be used at the same time' }, { level: 'I', text: 'Using verbose output' });
  }

  const all = has('all');
  const sel: Selection = {
    chroots: (seen.get('chroot') ?? []).map((o) => o.value!).map(parseChrootName),
    allChroots: all || has('all-chroots'),
    allSourceChroots: all || has('all-source-chroots'),
    allSessions: all || has('all-sessions'),
    excludeAliases: has('exclude-aliases'),
  };
  const allUsed = () => sel.allChroots || sel.allSourceChroots || sel.allSessions;
  const clearAll = () => {
    sel.allChroots = sel.allSourceChroots = sel.allSessions = false;
  };
  if (sel.chroots.length > 0 && allUsed()) {
    notices.push({ level: 'W', text: '--chroot and --all may not be used at the same time' }, { level: 'I', text: 'Using --chroots only' });
    clearAll();
  }

  // schroot treats an empty --session-name as none.
  const sessionName = value('session-name') || undefined;
  switch (action) {
    case 'automatic-session':
      sel.allSessions = false;
      if (sel.chroots.length === 0 && !allUsed()) sel.chroots.push(parseChrootName('default'));
      break;
    case 'begin-session':
      if (sel.chroots.length !== 1 || allUsed()) throw new SchrootUsageError(messages.exactlyOneToBegin(), { hint: true });
      break;
    case 'recover-session':
    case 'run-session':
    case 'end-session':
      if (sessionName !== undefined) throw new SchrootUsageError(messages.sessionNameForSession(), { hint: true });
      break;
    case 'help':
    case 'version':
      clearAll();
      break;
    case 'list':
    case 'info':
    case 'location':
    case 'config':
      if (sel.chroots.length === 0 && !allUsed()) {
        sel.allChroots = true;
        if (action === 'list' || action === 'info') sel.allSourceChroots = true;
      }
      break;
  }
  if (sessionName !== undefined && action !== 'begin-session') throw new SchrootUsageError(messages.sessionNameNotPermitted(), { hint: true });
  if (sessionName !== undefined && !isValidSessionName(sessionName)) throw new SchrootUsageError(messages.invalidSessionName(), { hint: true });

  const common: Common = { quiet, verbose, notices };
  const run: RunOptions = {
    user: value('user'),
    directory: value('directory'),
    preserveEnvironment: has('preserve-environment'),
    command: positional,
  };
  switch (action) {
    case 'help':
    case 'version':
      return { ...common, action };
    case 'list':
    case 'info':
    case 'config':
    case 'location':
      return { ...common, action, selection: sel };
    case 'automatic-session':
    case 'run-session':
      return { ...common, ...run, action, selection: sel };
    case 'begin-session':
      return { ...common, ...run, action, chroot: sel.chroots[0]!, sessionName };
    case 'end-session':
    case 'recover-session':
      return { ...common, action, selection: sel, force: has('force') };
  }
}
