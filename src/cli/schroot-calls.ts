// warden-schroot: schroot's command line (src/schroot parses it) as calls of
// the broker. The session actions become warden's own (-b begin, -r run -s,
// -e end, an automatic session run -c, `source:NAME` a source entry); the
// queries (-l, -i, --config, --location) are answered from the
// configuration and the state dir in schroot 1.6's formats. Failures are
// schroot's: `E: message`, exit 1.
import { findAccount, type ChrootDef, type Context } from '../api/internal/config.js';
import {
  chrootInfo,
  formatConfig,
  formatInfo,
  formatList,
  formatLocation,
  hasSource,
  parseSchrootArgs,
  SchrootUsageError,
  sessionInfo,
  usageErrorText,
  type ChrootInfo,
  type ChrootRef,
  type Record,
  type SchrootCall,
  type SessionInfo,
} from '../schroot/index.js';
import { listSessions } from '../api/internal/state-dir.js';
import type { RelayedCall, SourceSessionFacts } from '../supervisor/index.js';

/** What a query prints, and its exit status. */
export interface SchrootOutput {
  out: string;
  err: string;
  code: number;
}

/** warden-schroot's version line (sbuild does not parse it; people do). */
export const schrootVersion = (version: string) => `warden-schroot (warden) ${version}\n`;

/** The program's name in messages, as schroot names itself. */
const PROGRAM = 'schroot';

/**
 * A login shell when schroot is given no command: the user's shell (SHELL
 * is the account's in the clean environment, the caller's with -p) as a
 * login shell, as schroot starts it.
 */
const LOGIN_SHELL = ['/bin/sh', '-c', 'exec "${SHELL:-/bin/sh}" -l'];

/** schroot's argv (after the program name) as a call of the broker; usage errors become output. */
export function schrootCall(argv: readonly string[], version: string): RelayedCall {
  let c: SchrootCall;
  try {
    c = parseSchrootArgs(argv);
  } catch (e) {
    if (e instanceof SchrootUsageError) return { verb: 'text', out: '', err: usageErrorText(e, PROGRAM), code: e.exitCode };
    throw e;
  }
  const notices = c.notices.map((n) => `${n.level}: ${n.text}\n`).join('');
  const refuse = (message: string): RelayedCall => ({ verb: 'text', out: '', err: `${notices}E: ${message}\n`, code: 1 });
  switch (c.action) {
    case 'help':
      return { verb: 'text', out: HELP, err: notices, code: 0 };
    case 'version':
      return { verb: 'text', out: schrootVersion(version), err: notices, code: 0 };
    case 'list':
    case 'info':
    case 'config':
    case 'location':
      return { verb: 'schroot-query', call: c, notices };
    case 'begin-session': {
      const ref = c.chroot;
      if (ref.namespace === 'session') return refuse(`${ref.given}: a session cannot begin a session`);
      if (ref.namespace === 'source') return { verb: 'source-begin', describe: `-b -c ${ref.given}`, chroot: ref.name, id: c.sessionName, style: 'schroot', notices, quiet: c.quiet };
      return { verb: 'begin', describe: `-b -c ${ref.given}`, chroot: ref.name, id: c.sessionName, style: 'schroot', notices, quiet: c.quiet };
    }
    case 'run-session':
    case 'automatic-session':
    case 'end-session':
    case 'recover-session': {
      const refs = c.selection.chroots;
      if (c.selection.allChroots || c.selection.allSourceChroots || c.selection.allSessions || refs.length > 1) {
        return refuse('warden-schroot acts on one chroot or session at a time (-c NAME once, no --all*)');
      }
      const ref: ChrootRef = refs[0] ?? { given: 'default', namespace: undefined, name: 'default' };
      if (c.action === 'end-session') {
        if (ref.namespace !== undefined && ref.namespace !== 'session') return refuse(`${ref.given}: not a session`);
        return { verb: 'end', describe: `-e -c ${ref.given}`, id: ref.name, force: c.force, style: 'schroot', notices, quiet: c.quiet };
      }
      if (c.action === 'recover-session') {
        if (ref.namespace !== undefined && ref.namespace !== 'session') return refuse(`${ref.given}: not a session`);
        return { verb: 'recover', describe: `--recover-session -c ${ref.given}`, id: ref.name, end: false, command: [], preserveEnvironment: false, style: 'schroot', notices, quiet: c.quiet };
      }
      const r = c as Extract<SchrootCall, { action: 'run-session' | 'automatic-session' }>;
      const run = {
        user: r.user,
        directory: r.directory,
        preserveEnvironment: r.preserveEnvironment,
        command: r.command.length > 0 ? r.command : LOGIN_SHELL,
        style: 'schroot' as const,
        notices,
        quiet: c.quiet,
      };
      if (c.action === 'run-session') {
        if (ref.namespace !== undefined && ref.namespace !== 'session') return refuse(`${ref.given}: not a session (-r runs in a session; without -r, an automatic one)`);
        return { verb: 'run', describe: `-r -c ${ref.given}`, session: ref.name, ...run };
      }
      if (ref.namespace === 'session') return { verb: 'run', describe: `-c ${ref.given}`, session: ref.name, ...run };
      if (ref.namespace === 'source') return { verb: 'source', describe: `-c ${ref.given}`, chroot: ref.name, recoverStale: false, ...run };
      return { verb: 'run', describe: `-c ${ref.given}`, chroot: ref.name, ...run };
    }
  }
}

/** -l, -i, --config, --location from the configuration and the state dir, as schroot 1.6 prints them. */
export function schrootQuery(
  call: Extract<SchrootCall, { action: 'list' | 'info' | 'config' | 'location' }>,
  ctx: Context,
  version: string,
  notices = '',
  sourceSessions: readonly SourceSessionFacts[] = [],
): SchrootOutput {
  const defs = [...new Set(ctx.config.chroots.values())].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const infos = new Map<string, ChrootInfo>(defs.map((d) => [d.name, chrootInfo(d, ctx.stateDir)]));
  const sessions = [...sessionInfos(ctx, infos), ...sourceSessionInfos(ctx, infos, sourceSessions)].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const byName = (name: string): ChrootDef | undefined => ctx.config.lookup(name);
  const records: Record[] = [];
  const sel = call.selection;
  try {
    for (const ref of sel.chroots) records.push(recordOf(ref, byName, infos, sessions));
  } catch (e) {
    return { out: '', err: `${notices}E: ${(e as Error).message}\n`, code: 1 };
  }
  if (call.action === 'list') {
    return { out: formatList(sel, [...infos.values()], sessions), err: notices, code: 0 };
  }
  if (sel.chroots.length === 0) {
    if (sel.allChroots) for (const c of infos.values()) records.push({ kind: 'chroot', chroot: c });
    if (sel.allSessions) for (const s of sessions) records.push({ kind: 'session', session: s });
    if (sel.allSourceChroots) for (const c of infos.values()) if (hasSource(c)) records.push({ kind: 'source', chroot: c });
  }
  const out =
    call.action === 'info'
      ? formatInfo(records)
      : call.action === 'location'
        ? formatLocation(records)
        : formatConfig(records, { program: 'warden-schroot', version, date: new Date() });
  return { out, err: notices, code: 0 };
}

/** The record a `-c` names: `session:ID`, `source:NAME`, or a chroot by name or alias. */
function recordOf(ref: ChrootRef, byName: (n: string) => ChrootDef | undefined, infos: Map<string, ChrootInfo>, sessions: readonly SessionInfo[]): Record {
  if (ref.namespace === 'session') {
    const s = sessions.find((x) => x.id === ref.name);
    if (!s) throw new Error(`${ref.given}: Chroot not found`);
    return { kind: 'session', session: s };
  }
  const def = byName(ref.name);
  const info = def ? infos.get(def.name) : undefined;
  if (!info || (ref.namespace === 'source' && !hasSource(info))) throw new Error(`${ref.given}: Chroot not found`);
  return ref.namespace === 'source' ? { kind: 'source', chroot: info } : { kind: 'chroot', chroot: info };
}

/** The supervisor's persistent source sessions: commands run in the source directory itself. */
function sourceSessionInfos(ctx: Context, infos: Map<string, ChrootInfo>, facts: readonly SourceSessionFacts[]): SessionInfo[] {
  const out: SessionInfo[] = [];
  for (const f of facts) {
    const info = infos.get(f.chroot);
    if (!info) continue;
    const owner = findAccount(String(f.ownerUid))?.name ?? String(f.ownerUid);
    out.push(sessionInfo(info, { id: f.id, stateDir: ctx.stateDir, source: true, selectedName: `source:${f.chroot}`, owner }));
  }
  return out;
}

/** The state dir's sessions whose chroot is configured, with their owners by name. */
function sessionInfos(ctx: Context, infos: Map<string, ChrootInfo>): SessionInfo[] {
  const out: SessionInfo[] = [];
  for (const e of listSessions(ctx.stateDir)) {
    if (!e.state) continue;
    const def = ctx.config.lookup(e.state.chroot);
    const info = def ? infos.get(def.name) : undefined;
    if (!info) continue;
    const uid = e.state.owner?.uid ?? 0;
    const owner = findAccount(String(uid))?.name ?? String(uid);
    out.push(sessionInfo(info, { id: e.id, stateDir: ctx.stateDir, source: false, selectedName: e.state.chroot, owner }));
  }
  return out;
}

const HELP = `Usage:
  schroot  [OPTION...] [COMMAND] - run command or shell in a chroot

warden-schroot: schroot's command line over warden's sessions.
Actions:
  -h [ --help ]                Show help options
  -V [ --version ]             Print version information
  -l [ --list ]                List available chroots
  -i [ --info ]                Show information about selected chroots
  --config                     Dump configuration of selected chroots
  --location                   Print location of selected chroots
  --automatic-session          Begin, run and end a session (the default)
  -b [ --begin-session ]       Begin a session; returns a session ID
  --recover-session            Recover an existing session
  -r [ --run-session ]         Run an existing session
  -e [ --end-session ]         End an existing session

General options:
  -q [ --quiet ]               Show less output
  -v [ --verbose ]             Show more output

Chroot selection:
  -c [ --chroot ] arg          Use specified chroot (chroot:, source:, session:)
  -a [ --all ]                 Select all chroots, source chroots and sessions
  --all-chroots                Select all chroots
  --all-source-chroots         Select all source chroots
  --all-sessions               Select all active sessions
  --exclude-aliases            Do not include aliases

Chroot environment:
  -d [ --directory ] arg       Directory to use
  -u [ --user ] arg            Username (default current user)
  -p [ --preserve-environment ]
                               Preserve user environment

Session actions:
  -n [ --session-name ] arg    Session name (defaults to an automatically
                               generated name)
  -f [ --force ]               Force operation, even if it fails
`;
