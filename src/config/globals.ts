// The [warden] group: settings for the whole host rather than one chroot.
import type { ConfigWarning } from './errors.js';
import { ignoredKeyWarning } from './ignored.js';
import type { KeyfileGroup } from './parser.js';
import { absolutePath, seconds } from './values.js';

export interface Globals {
  stateDir: string | undefined;
  hooksDir: string | undefined;
  hookTimeout: number | undefined;
}

export function readGlobals(group: KeyfileGroup, file: string, warnings: ConfigWarning[]): Globals {
  const globals: Globals = { stateDir: undefined, hooksDir: undefined, hookTimeout: undefined };
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
      default:
        warnings.push(ignoredKeyWarning(file, group.name, entry));
    }
  }
  return globals;
}
