// The hot path's argument parser, driven by spec.ts: Node's own
// util.parseArgs tokenizes (it ships with Node, so nothing to load: yargs-
// parser cost ~4 ms of every call), and this file applies warden's rules on
// the tokens: strict about unknown options and missing values, numbers
// checked, and for verbs that take a command everything from the first
// positional (or after `--`) is the command, untouched. Full yargs is loaded
// only to print help.
import { parseArgs as tokenize } from 'node:util';
import { UsageError } from './errors.js';
import { GLOBAL_OPTIONS, findVerb, type OptionSpec, type VerbSpec } from './spec.js';

export interface Parsed {
  verb: VerbSpec;
  options: Record<string, string | number | boolean | undefined>;
  positional: string[];
  /** The command after the options, for verbs that take one. */
  command: string[];
  help: boolean;
  /** The argv as given (for a call handed on as it is: the relay). */
  argv?: string[];
}

/** A string option's value (the parser gives strings for `type: 'string'`), or undefined when absent. */
export function str(v: Parsed['options'][string]): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

/**
 * Splits off the verb, then parses its options. Global options with a value
 * may also come before the verb (`warden --config F run ...`, as with
 * `git -C DIR` or `systemctl --root DIR`): they are moved behind it.
 */
export function parseArgs(argvIn: string[]): Parsed {
  const argv = globalsFirst(argvIn);
  const [verbName, ...rest] = argv;
  const verb = verbName === undefined ? undefined : findVerb(verbName);
  if (!verb) throw new UsageError(verbName === undefined ? 'no verb given' : `unknown verb ${JSON.stringify(verbName)}`);
  const specs: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS, ...verb.options };
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  const byShort = new Map<string, string>();
  for (const [name, s] of Object.entries(specs)) {
    config[name] = s.alias ? { type: s.type === 'boolean' ? 'boolean' : 'string', short: s.alias } : { type: s.type === 'boolean' ? 'boolean' : 'string' };
    if (s.alias) byShort.set(s.alias, name);
  }
  const { tokens } = tokenize({ args: rest, options: config, strict: false, allowPositionals: true, tokens: true });

  const options: Parsed['options'] = {};
  const loose: string[] = [];
  let command: string[] = [];
  for (const tok of tokens) {
    if (tok.kind === 'option-terminator') {
      const after = rest.slice(tok.index + 1);
      if (verb.command) command = after;
      else loose.push(...after);
      break;
    }
    if (tok.kind === 'positional') {
      if (verb.command) {
        // The command starts here; its own options are not ours.
        command = rest.slice(tok.index);
        break;
      }
      loose.push(tok.value);
      continue;
    }
    const name = specs[tok.name] ? tok.name : byShort.get(tok.name);
    const spec = name === undefined ? undefined : specs[name];
    if (name === undefined || spec === undefined) throw new UsageError(`unknown option ${tok.rawName.startsWith('--') ? '--' : '-'}${tok.name}`, verb.name);
    if (spec.type === 'boolean') {
      if (tok.value !== undefined) throw new UsageError(`option --${name} takes no value`, verb.name);
      options[name] = true;
      continue;
    }
    // `-c --json`: the next word is an option, not a value that was meant.
    const value = tok.value;
    // `--timeout -1` is a bad number, not a missing value.
    const negative = spec.type === 'number' && value !== undefined && /^-[0-9.]/.test(value);
    if (value === undefined || value === '' || (!tok.inlineValue && value.startsWith('-') && value !== '-' && !negative)) {
      throw new UsageError(`option --${name} needs a value`, verb.name);
    }
    if (spec.type === 'number') {
      const n = Number(value);
      if (!/^\s*[0-9.eE+]+\s*$/.test(value) || !Number.isFinite(n) || n < 0) {
        throw new UsageError(`option --${name} needs a non-negative number, got ${JSON.stringify(value)}`, verb.name);
      }
      options[name] = n;
    } else {
      options[name] = value;
    }
  }

  const positional = verb.command ? [] : loose;
  const help = options.help === true;
  if (!help) {
    const max = verb.positional?.length ?? 0;
    const min = verb.positional?.filter((p) => !p.endsWith('?')).length ?? 0;
    if (positional.length > max) throw new UsageError(`unexpected argument ${JSON.stringify(positional[max])}`, verb.name);
    if (positional.length < min) throw new UsageError(`missing ${verb.positional![positional.length]!.toUpperCase()}`, verb.name);
  }
  return { verb, options, positional, command, help, argv: argvIn };
}

/** `--config F VERB ...`, `--config=F VERB ...` and `--no-supervisor VERB ...` as `VERB --config F ...`. */
function globalsFirst(argv: string[]): string[] {
  const moved: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i]!;
    const eq = arg.indexOf('=');
    const name = arg.startsWith('--') ? arg.slice(2, eq < 0 ? undefined : eq) : undefined;
    const type = name === undefined ? undefined : GLOBAL_OPTIONS[name]?.type;
    // --help is not moved: `warden --help` is help on warden, not on a verb.
    if (type === 'boolean' && name !== 'help' && eq < 0) {
      moved.push(arg);
      i += 1;
      continue;
    }
    if (type !== 'string') break;
    if (eq >= 0) {
      moved.push(arg);
      i += 1;
    } else {
      if (i + 1 >= argv.length) throw new UsageError(`option --${name} needs a value`);
      moved.push(arg, argv[i + 1]!);
      i += 2;
    }
  }
  if (moved.length === 0) return argv;
  const [verb, ...rest] = argv.slice(i);
  if (verb === undefined) throw new UsageError('no verb given');
  return [verb, ...moved, ...rest];
}
