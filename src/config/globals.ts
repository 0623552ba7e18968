// The [warden] group: settings for the whole host rather than one chroot.
import { ConfigError, type ConfigWarning } from './errors.js';
import { ignoredKeyWarning } from './ignored.js';
import type { KeyfileGroup } from './parser.js';
import { absolutePath, seconds } from './values.js';

export interface Globals {
  stateDir: string | undefined;
  hooksDir: string | undefined;
  hookTimeout: number | undefined;
  /** `socket-group=`: a group (name or gid) whose members may connect to the supervisor's socket (0660); default root only (0600). */
  socketGroup: string | undefined;
}

export function readGlobals(group: KeyfileGroup, file: string, warnings: ConfigWarning[]): Globals {
  const globals: Globals = { stateDir: undefined, hooksDir: undefined, hookTimeout: undefined, socketGroup: undefined };
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
      default:
        warnings.push(ignoredKeyWarning(file, group.name, entry));
    }
  }
  return globals;
}
