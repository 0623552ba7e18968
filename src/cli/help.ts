// --help, rendered by yargs from the same tables the parser uses. Loaded
// only when help is asked for.
import { GLOBAL_OPTIONS, VERBS, type OptionSpec, type VerbSpec } from './spec.js';

function describe(y: any, options: Record<string, OptionSpec>): any {
  for (const [name, s] of Object.entries(options)) {
    y = y.option(name, { type: s.type, alias: s.alias, describe: s.describe, requiresArg: s.type !== 'boolean' });
  }
  return y;
}

/** Help for one verb, or the overview when `verb` is undefined. */
export async function helpText(verb: VerbSpec | undefined, version: string): Promise<string> {
  const { default: yargs } = await import('yargs');
  let y: any = yargs([]).scriptName('warden').version(version).wrap(Math.min(100, process.stdout.columns ?? 80)).help(false);
  if (verb) {
    y = y.usage(`${verb.usage}\n\n${verb.describe}`);
    y = describe(y, { ...verb.options, ...GLOBAL_OPTIONS });
    for (const [cmd, what] of verb.examples ?? []) y = y.example(cmd, what);
  } else {
    y = y.usage('warden VERB [OPTIONS]\n\nSession supervisor for chroots: overlay sessions over source chroots, guarded by fcntl locks.');
    for (const v of VERBS) y = y.command(v.name, v.describe);
    y = describe(y, GLOBAL_OPTIONS);
    y = y.epilog('Exit codes: 0 ok, 1 failure, 2 usage, 3 config, 4 no such chroot/session, 5 busy or timeout, 6 hook failed, 7 stale sessions, 8 not permitted; run and source pass the command\'s status through (125 own failure, 126 not executable, 127 not found).');
  }
  return y.getHelp();
}
