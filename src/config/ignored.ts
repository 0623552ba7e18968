// Keys warden does not read. They are warned about, never fatal, so a
// schroot.conf can be used as it is and a newer warden.conf by an older warden.
import { configWarning, quote, type ConfigWarning } from './errors.js';
import { GLOBAL_GROUP } from './names.js';
import type { KeyfileEntry } from './parser.js';

// Keys schroot knows that warden reads past: they configure schroot's setup
// scripts, other chroot types, or behaviour warden leaves to hooks. Keys with a
// '.' (setup.*, unshare.*, user data) and localised keys (`description[de]`)
// are schroot's too.
const SCHROOT_ONLY_KEYS = new Set([
  'script-config',
  'personality',
  'preserve-environment',
  'command-prefix',
  'message-verbosity',
  'shell',
  'environment-filter',
  'location',
  'priority',
  'run-setup-scripts',
  'run-exec-scripts',
  'user-modifiable-keys',
  'root-modifiable-keys',
  'union-overlay-directory',
  'union-underlay-directory',
  'union-mount-options',
  'source-clone',
  'device',
  'file',
  'mount-options',
  'lvm-snapshot-options',
  'btrfs-source-subvolume',
  'btrfs-snapshot-directory',
  'zfs-dataset',
  'zfs-snapshot-options',
  'custom-session-cloneable',
  'custom-session-purgeable',
  'custom-source-cloneable',
]);

/** The warning for a key warden does not read; shared with the [warden] group. */
export function ignoredKeyWarning(file: string, group: string, entry: KeyfileEntry): ConfigWarning {
  const schrootOnly = group !== GLOBAL_GROUP && (SCHROOT_ONLY_KEYS.has(entry.key) || /[.[]/.test(entry.key));
  const reason = schrootOnly
    ? `key ${quote(entry.key)} in [${group}] is a schroot key that warden does not use; ignored`
    : `unknown key ${quote(entry.key)} in [${group}]; ignored`;
  return configWarning({ file, line: entry.line }, reason);
}
