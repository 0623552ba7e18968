// The hot path's argument parser: yargs-parser (yargs' own tokenizer, a few
// milliseconds) driven by spec.ts, strict about unknown options and
// missing values. Full yargs is loaded only to print help.
import parse from 'yargs-parser';
import { UsageError } from './errors.js';
import { GLOBAL_OPTIONS, findVerb, type OptionSpec, type VerbSpec } from './spec.js';

export interface Parsed {
  verb: VerbSpec;
  options: Record<string, string | number | boolean | undefined>;
  positional: string[];
  /** The command after the options, for verbs that take one. */
  command: string[];
  help: boolean;
}

/** Splits off the verb: the first argument that is not a global option. */
export function parseArgs(argv: string[]): Parsed {
  const [verbName, ...rest] = argv;
  const verb = verbName === undefined ? undefined : findVerb(verbName);
  if (!verb) throw new UsageError(verbName === undefined ? 'no verb given' : `unknown verb ${JSON.stringify(verbName)}`);
  const specs: Record<string, OptionSpec> = { ...GLOBAL_OPTIONS, ...verb.options };
  const opts = { alias: {} as Record<string, string>, boolean: [] as string[], string: [] as string[], number: [] as string[] };
  for (const [name, s] of Object.entries(specs)) {
    opts[s.type].push(name);
    if (s.alias) opts.alias[name] = s.alias;
  }
  const out = parse(rest, {
    ...opts,
    configuration: {
      'halt-at-non-option': verb.command === true,
      'populate--': true,
      'camel-case-expansion': false,
      'boolean-negation': false,
      'strip-aliased': true,
      'short-option-groups': true,
      'duplicate-arguments-array': false,
      'dot-notation': false,
      'parse-numbers': false,
      'parse-positional-numbers': false,
    },
  });
  const aliasOf = new Map(Object.entries(opts.alias).map(([k, v]) => [v, k]));
  const options: Parsed['options'] = {};
  for (const [key, value] of Object.entries(out)) {
    if (key === '_' || key === '--') continue;
    const name = aliasOf.get(key) ?? key;
    const spec = specs[name];
    if (!spec) throw new UsageError(`unknown option ${key.length === 1 ? '-' : '--'}${key}`, verb.name);
    if (spec.type === 'string' && (typeof value !== 'string' || value === '')) {
      throw new UsageError(`option --${name} needs a value`, verb.name);
    }
    if (spec.type === 'number' && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
      throw new UsageError(`option --${name} needs a non-negative number, got ${JSON.stringify(String(value))}`, verb.name);
    }
    options[name] = value as string | number | boolean;
  }
  const loose = (out._ as (string | number)[]).map(String);
  const dashed = ((out['--'] as (string | number)[] | undefined) ?? []).map(String);
  let positional: string[] = [];
  let command: string[] = [];
  if (verb.command) {
    command = [...loose, ...dashed];
  } else {
    positional = [...loose, ...dashed];
  }
  const help = options.help === true;
  if (!help) {
    const max = verb.positional?.length ?? 0;
    const min = verb.positional?.filter((p) => !p.endsWith('?')).length ?? 0;
    if (positional.length > max) throw new UsageError(`unexpected argument ${JSON.stringify(positional[max])}`, verb.name);
    if (positional.length < min) throw new UsageError(`missing ${verb.positional![positional.length]!.toUpperCase()}`, verb.name);
  }
  return { verb, options, positional, command, help };
}
