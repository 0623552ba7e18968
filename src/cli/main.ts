#!/usr/bin/env node
// warden's command line. Start-up is a cost users pay on every call, so
// this file imports almost nothing: the argument table, then only the
// module of the verb asked for (each verb is its own chunk of the bundle).
import { version } from './version.js';
import type { Parsed } from './args.js';
import { koffiLoadedBy, libc as glibc } from '../api/internal/system.js';
import { EXIT, exitCodeOf, formatError, UsageError } from './errors.js';
import { madeStdio } from './output.js';

type VerbMain = (p: Parsed) => Promise<number>;

// The verbs: each name once, with the module that runs it (esbuild makes
// each import() a lazy chunk). spec.ts's table of their options is typed
// by these names, and the usage line below lists them in this order.
const VERB_MODULES = {
  list: () => import('./verbs/list.js'),
  info: () => import('./verbs/info.js'),
  locks: () => import('./verbs/locks.js'),
  begin: () => import('./verbs/begin.js'),
  run: () => import('./verbs/run.js'),
  end: () => import('./verbs/end.js'),
  source: () => import('./verbs/source.js'),
  recover: () => import('./verbs/recover.js'),
  watch: () => import('./verbs/watch.js'),
  supervise: () => import('./verbs/supervise.js'),
  bootstrap: () => import('./verbs/bootstrap.js'),
  'forget-host': () => import('./verbs/forget-host.js'),
} satisfies Record<string, () => Promise<{ default: VerbMain }>>;

export type VerbName = keyof typeof VERB_MODULES;

async function help(verb: string | undefined): Promise<void> {
  const { helpText } = await import('./help.js');
  const { findVerb } = await import('./spec.js');
  process.stdout.write(`${await helpText(verb === undefined ? undefined : findVerb(verb), version())}\n`);
}

/** Runs one command line; resolves to the exit code. Never throws. */
export async function main(argv: string[]): Promise<number> {
  const first = argv[0];
  if (first === '--version' || first === '-V') {
    process.stdout.write(`warden ${version()}\n`);
    return EXIT.ok;
  }
  if (first === undefined) {
    process.stderr.write(`warden: usage: no verb given (${Object.keys(VERB_MODULES).join(', ')})\nTry 'warden --help'.\n`);
    return EXIT.usage;
  }
  if (first === 'schroot') {
    // schroot's command line, not warden's: parsed by src/schroot, not here.
    try {
      const { default: schroot } = await import('./verbs/schroot.js');
      return await schroot(argv.slice(1));
    } catch (e) {
      process.stderr.write(`E: ${(e as Error).message}\n`);
      return 1;
    }
  }
  if (first === '--help' || first === '-h' || first === 'help') {
    await help(first === 'help' ? argv[1] : undefined);
    return EXIT.ok;
  }
  let parsed: Parsed;
  try {
    const { parseArgs } = await import('./args.js');
    parsed = parseArgs(argv);
  } catch (e) {
    process.stderr.write(formatError(e instanceof UsageError && e.verb ? e.verb : 'usage', e));
    return EXIT.usage;
  }
  if (parsed.help) {
    await help(parsed.verb.name);
    return EXIT.ok;
  }
  const name = parsed.verb.name;
  try {
    const verb = await VERB_MODULES[name]();
    return await verb.default(parsed);
  } catch (e) {
    // run, source (and recover -- CMD) pass the command's status through, so their own failures use 125.
    const fallback = name === 'run' || name === 'source' || (name === 'recover' && parsed.command.length > 0) ? 125 : EXIT.failure;
    process.stderr.write(formatError(describeCall(parsed), e));
    if (process.env.WARDEN_DEBUG) process.stderr.write(`${(e as Error)?.stack}\n`);
    return exitCodeOf(e, fallback);
  }
}

/** "run -c demo", "end -s ID", "info NAME": what failed, for the error line. */
function describeCall(p: Parsed): string {
  const o = p.options;
  const target = o.chroot ? ` -c ${o.chroot}` : o.session ? ` -s ${o.session}` : p.positional[0] ? ` ${p.positional[0]}` : '';
  return `${p.verb.name}${target}`;
}

/**
 * process.exit once what we wrote to stdout and stderr is out: a pipe takes
 * 64 KiB at a time, the rest waits in the stream, and exit drops it (a
 * `list --sessions --json` of thousands of sessions came out cut short).
 */
function exitAfterFlush(code: number): void {
  const streams = [...madeStdio].map((name) => process[name]);
  let pending = streams.length;
  if (pending === 0) quickExit(code);
  const done = () => {
    if (--pending === 0) quickExit(code);
  };
  for (const s of streams) s.write('', done);
}

/**
 * Ends the process once everything is written. Where koffi is loaded
 * already (every verb that took a lock), through _exit(2): process.exit
 * would also run Node's teardown (dispose the isolate, join the libuv and
 * lock-wait threads) and koffi's atexit handler, which fsyncs stdout and
 * stderr: 30 ms for a `run -c` whose output went to a 183 KB log file, for
 * nothing, since the kernel closes our fds and drops our locks either way.
 */
function quickExit(code: number): void {
  // The launcher's code-cache update (src/cli/launcher.cjs), when it has one to make.
  (globalThis as { __wardenBeforeExit?: (code: number) => void }).__wardenBeforeExit?.(code);
  // Node's own exit where something waits for it: --cpu-prof, --inspect,
  // coverage (NODE_V8_COVERAGE) write their data there.
  if (koffiLoadedBy() !== undefined && process.execArgv.length === 0 && process.env.NODE_V8_COVERAGE === undefined) {
    const exit = glibc().func('void _exit(int status)') as (status: number) => void;
    exit(code);
  }
  process.exit(code);
}

// Which of process.stdout and process.stderr this call has used
// (madeStdio): a `run` that prints nothing must not make them only to flush
// them. Node defines both as configurable getters; the first use goes
// through Node's own getter, which then replaces this one.
for (const name of ['stdout', 'stderr'] as const) {
  const own = Object.getOwnPropertyDescriptor(process, name);
  if (!own?.get || !own.configurable) {
    madeStdio.add(name);
    continue;
  }
  Object.defineProperty(process, name, {
    configurable: true,
    enumerable: own.enumerable,
    get() {
      madeStdio.add(name);
      Object.defineProperty(process, name, own);
      return own.get!.call(process);
    },
  });
}

main(process.argv.slice(2)).then(
  (code) => exitAfterFlush(code),
  (e) => {
    process.stderr.write(`warden: internal error: ${(e as Error)?.stack ?? e}\n`);
    process.exit(EXIT.failure);
  },
);
