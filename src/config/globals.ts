// The [warden] group: settings for the whole host rather than one chroot.
import { ConfigError, quote, type ConfigWarning } from './errors.js';
import { hostProblem } from './names.js';
import { ignoredKeyWarning } from './ignored.js';
import type { KeyfileGroup } from './parser.js';
import { absolutePath, bytes, count, seconds } from './values.js';

export interface Globals {
  stateDir: string | undefined;
  hooksDir: string | undefined;
  hookTimeout: number | undefined;
  /** `socket-group=`: a group (name or gid) whose members may connect to the supervisor's socket (0660); default root only (0600). */
  socketGroup: string | undefined;
  /** `host=`: this host's name in a build farm's shared registrations; default the host name (see hostOf()). */
  host: string | undefined;
  /** The supervisor's bounds on its clients; undefined fields take the supervisor's defaults. */
  supervisorLimits: SupervisorLimitSettings;
}

/** `[warden] max-connections-per-user=` and the rest, as written (seconds, bytes, counts). */
export interface SupervisorLimitSettings {
  /** `max-connections-per-user=`: connections one non-root uid may have open at once. */
  connectionsPerUser?: number;
  /** `max-connections=`: connections of all non-root clients together. */
  connections?: number;
  /** `idle-timeout=`: seconds a connection may stay open with no request in flight. */
  idleTimeout?: number;
  /** `max-reply-buffer=`: bytes of replies a client has not read, above which its requests are no longer read. */
  replyBuffer?: number;
  /** `max-queued-requests=`: requests read from one connection and not yet served, above which it is no longer read. */
  queuedRequests?: number;
}

export function readGlobals(group: KeyfileGroup, file: string, warnings: ConfigWarning[]): Globals {
  const globals: Globals = { stateDir: undefined, hooksDir: undefined, hookTimeout: undefined, socketGroup: undefined, host: undefined, supervisorLimits: {} };
  const limits = globals.supervisorLimits;
  for (const entry of group.entries) {
    switch (entry.key) {
      case 'state-dir':
        globals.stateDir = absolutePath(file, entry);
        break;
      case 'hooks-dir':
        // Absolute like every path in the file: relative to what would be a guess (cwd? the file?).
        globals.hooksDir = absolutePath(file, entry);
        break;
      case 'hook-timeout':
        globals.hookTimeout = seconds(file, entry);
        break;
      case 'socket-group':
        if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(entry.value)) {
          throw new ConfigError(file, entry.line, `socket-group= must be a group name or gid, got ${JSON.stringify(entry.value)}`);
        }
        globals.socketGroup = entry.value;
        break;
      case 'host': {
        const problem = hostProblem(entry.value);
        if (problem !== undefined) throw new ConfigError(file, entry.line, `host= ${problem}, got ${quote(entry.value)}`);
        globals.host = entry.value;
        break;
      }
      case 'max-connections-per-user':
        limits.connectionsPerUser = count(file, entry);
        break;
      case 'max-connections':
        limits.connections = count(file, entry);
        break;
      case 'idle-timeout':
        limits.idleTimeout = seconds(file, entry);
        break;
      case 'max-reply-buffer':
        limits.replyBuffer = bytes(file, entry);
        break;
      case 'max-queued-requests':
        limits.queuedRequests = count(file, entry);
        break;
      default:
        warnings.push(ignoredKeyWarning(file, group.name, entry));
    }
  }
  return globals;
}
