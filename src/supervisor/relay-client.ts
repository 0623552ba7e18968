// The client of a relayed call as its command sees it: the account it is,
// its umask, nice value and limits, and its fds, cwd and environment, as
// schroot's commands inherit their caller's. From the request (its
// SCM_RIGHTS fds and payload) and the kernel's credentials, never from
// anything the client says about itself.
import { findAccount, type Account, type Credentials } from '../config/index.js';
import { boundedBy, ownAttributes, readProcessAttributes, type CommandOptions, type ProcessAttributes } from '../sessions/index.js';
import type { RelayRequest } from './relay-wire.js';

/** What a relayed call asks to run: its command and the options of run, source and recover. */
export interface ClientCommand {
  command: string[];
  user?: string | undefined;
  directory?: string | undefined;
  preserveEnvironment: boolean;
}

/** What spawning the command of `call` needs besides its pty: the client's fds, cwd, environment and account. */
export function clientCommandOptions(req: RelayRequest, who: Credentials, call: ClientCommand): CommandOptions {
  return {
    command: call.command,
    user: call.user,
    directory: call.directory,
    preserveEnvironment: call.preserveEnvironment,
    env: environment(req.env),
    cwd: req.cwd,
    caller: callerAccount(who),
    stdio: req.fds,
    attributes: clientAttributes(who),
  };
}

/** The account the client is: its passwd entry, or a bare uid. */
function callerAccount(who: Credentials): Account {
  const { uid, gid } = who;
  return findAccount(String(uid)) ?? { name: String(uid), uid, gid, home: '/', shell: '/bin/sh' };
}

/**
 * The client's umask, nice value and limits for its command, as schroot's
 * commands inherit their caller's; bounded by the supervisor's own
 * (attributes.ts). Undefined (the supervisor's own apply) when the pid is
 * unknown (another pid namespace) or already gone.
 */
function clientAttributes(who: Credentials): ProcessAttributes | undefined {
  const pid = who.pid;
  if (pid === undefined || pid <= 0 || pid === process.pid) return undefined;
  const client = readProcessAttributes(pid);
  const own = ownAttributes();
  return client && own ? boundedBy(client, own) : undefined;
}

/** `KEY=VALUE` strings as an environment (a string without '=' is dropped, as getenv would never see it). */
export function environment(strings: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const s of strings) {
    const eq = s.indexOf('=');
    if (eq > 0) env[s.slice(0, eq)] = s.slice(eq + 1);
  }
  return env;
}
