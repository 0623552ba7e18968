// The CLI's half of the broker (supervisor/broker.ts): the supervisor parses
// the argv a relay sends with the same parser, and reports failures with
// the same lines and exit codes, as the CLI run directly would. Lent to the
// supervisor by `warden supervise`, so the supervisor does not depend on
// the CLI.
import { isAbsolute, resolve } from 'node:path';
import type { RelayCalls, RelayedCall } from '../supervisor/index.js';
import { parseArgs, str } from './args.js';
import { loadContext } from '../api/internal/config.js';
import { version } from './version.js';
import { schrootCall, schrootQuery } from './schroot-calls.js';
import { exitCodeOf, formatError, UsageError } from './errors.js';
import { waitReporter } from './wait-line.js';
import { recoveredLine } from './verbs/recover.js';

/**
 * The calls a supervisor of `stateDir` (configured from `configFile`)
 * serves for the relay. Anything the relay does not carry (help, JSON
 * output, `end --all`, recovery) falls back to the Node CLI, which the
 * relay then executes in the client's place.
 */
export function relayCalls(stateDir: string, configFile: string | undefined): RelayCalls {
  const v = version();
  return {
    // warden-schroot sends schroot's argv behind the verb `schroot`.
    parse: (args, cwd) => (args[0] === 'schroot' ? schrootCall(args.slice(1), v) : parseCall(args, cwd, stateDir, configFile)),
    failure(describe, e, own, style) {
      // schroot's report: its message alone, exit 1 for every failure of its own.
      if (style === 'schroot') return { text: `E: ${e instanceof Error ? e.message : String(e)}\n`, code: 1 };
      if (e instanceof UsageError) return { text: formatError(e.verb ?? 'usage', e), code: 2 };
      return { text: formatError(describe, e), code: exitCodeOf(e, own) };
    },
    schrootQuery: (call, notices, sources) => schrootQuery(call as Parameters<typeof schrootQuery>[0], loadContext({ config: configFile, stateDir }), v, notices, sources),
    waitReporter: (write) => waitReporter({ write }),
    recoveredLine,
  };
}

function parseCall(args: string[], cwd: string, stateDir: string, configFile: string | undefined): RelayedCall {
  const p = parseArgs(args);
  const o = p.options;
  const verb = p.verb.name;
  if (p.help || o['no-supervisor'] === true) return { verb: 'fallback' };
  // The supervisor serves its own state dir with its own configuration (root's): a client cannot choose either.
  const dir = str(o['state-dir']);
  if (dir !== undefined && (isAbsolute(dir) ? dir : resolve(cwd, dir)) !== stateDir) {
    throw new UsageError(`--state-dir ${dir}: this supervisor serves ${stateDir}`, verb);
  }
  const config = str(o.config);
  if (config !== undefined && (isAbsolute(config) ? config : resolve(cwd, config)) !== configFile) {
    throw new UsageError(`--config ${config}: the supervisor reads its own configuration (${configFile ?? 'none'})`, verb);
  }
  const timeout = typeof o.timeout === 'number' ? o.timeout : undefined;
  const wait = o['no-wait'] === true ? false : undefined;
  if (verb === 'run') {
    if (Boolean(o.chroot) === Boolean(o.session)) throw new UsageError('give exactly one of -c CHROOT or -s ID', 'run');
    if (p.command.length === 0) throw new UsageError('no command given (warden run -c CHROOT -- CMD...)', 'run');
    if (o.id !== undefined && !o.chroot) throw new UsageError('--id names a new automatic session: use it with -c', 'run');
    return {
      verb: 'run',
      describe: o.chroot ? `run -c ${o.chroot as string}` : `run -s ${o.session as string}`,
      session: str(o.session),
      chroot: str(o.chroot),
      id: str(o.id),
      user: str(o.user),
      directory: str(o.directory),
      preserveEnvironment: o['preserve-environment'] === true,
      command: p.command,
      timeout,
      wait,
    };
  }
  if (verb === 'source') {
    if (!o.chroot) throw new UsageError('-c CHROOT is required', 'source');
    if (p.command.length === 0) throw new UsageError('no command given (warden source -c CHROOT -- CMD...)', 'source');
    return {
      verb: 'source',
      describe: `source -c ${o.chroot as string}`,
      chroot: o.chroot as string,
      user: str(o.user),
      directory: str(o.directory),
      preserveEnvironment: o['preserve-environment'] === true,
      command: p.command,
      recoverStale: o['recover-stale'] === true,
      timeout,
      wait,
    };
  }
  if (verb === 'recover' && o.all !== true && o.session !== undefined) {
    if (p.command.length > 0 && o.end) throw new UsageError('a command runs in one re-adopted session: use it with -s ID, without --end', 'recover');
    if ((o.user !== undefined || o.directory !== undefined || o['preserve-environment'] !== undefined) && p.command.length === 0) {
      throw new UsageError('-u, -d and -p apply to a command (-- CMD...)', 'recover');
    }
    return {
      verb: 'recover',
      describe: `recover -s ${o.session as string}`,
      id: o.session as string,
      end: o.end === true,
      command: p.command,
      user: str(o.user),
      directory: str(o.directory),
      preserveEnvironment: o['preserve-environment'] === true,
      timeout,
      wait,
    };
  }
  if (verb === 'begin' && o.json !== true) {
    if (!o.chroot) throw new UsageError('-c CHROOT is required', 'begin');
    return { verb: 'begin', describe: `begin -c ${o.chroot as string}`, chroot: o.chroot as string, id: str(o.id), timeout, wait };
  }
  if (verb === 'end' && o.all !== true && o.session !== undefined) {
    return { verb: 'end', describe: `end -s ${o.session as string}`, id: o.session as string, wait: o.wait === true, force: o.force === true, timeout };
  }
  return { verb: 'fallback' };
}
