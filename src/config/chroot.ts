// One chroot group → a validated ChrootDef, or an entry in the "unsupported"
// list for schroot types warden does not run.
import { ConfigError, quote, type ConfigWarning } from './errors.js';
import { ignoredKeyWarning } from './ignored.js';
import { GLOBAL_GROUP, nameProblem } from './names.js';
import type { KeyfileEntry, KeyfileGroup } from './parser.js';
import { join } from 'node:path';
import type { ChrootDef, ProfileFiles, SharedDir, UnionType, UnsupportedChroot } from './types.js';
import { absolutePath, checkDirectory, list, seconds } from './values.js';

// schroot.conf(5) types. `plain` is a directory chroot without setup scripts;
// warden runs no schroot setup scripts at all, so the two are the same here.
// An empty or missing type= means plain, as in schroot.
const RUNNABLE_TYPES = new Set(['directory', 'plain', '']);
const UNSUPPORTED_TYPES = new Set(['file', 'loopback', 'block-device', 'lvm-snapshot', 'btrfs-snapshot', 'zfs-snapshot', 'custom']);

// schroot's union filesystems all give the same thing: a writable upper layer
// over a read-only source, which warden builds with overlayfs.
// (A Map, not an object literal: `union-type=constructor` must not find Object.prototype.)
const UNION_TYPES = new Map<string, UnionType>([
  ['overlay', 'overlay'],
  ['overlayfs', 'overlay'],
  ['aufs', 'overlay'],
  ['unionfs', 'overlay'],
  ['copy', 'copy'],
  ['none', 'none'],
]);

export type ChrootGroup =
  | { kind: 'runnable'; def: ChrootDef; aliasesLine: number }
  | { kind: 'unsupported'; entry: UnsupportedChroot; aliases: string[]; aliasesLine: number };

export interface ReadChrootOptions {
  checkDirectories: boolean;
  /** Where profiles live: the main configuration file's directory. */
  profileBase: string;
  /**
   * The profile of a chroot that names none (no profile=, no setup.*):
   * `default` for a schroot configuration, as schroot has it (see
   * defaultProfileOf in load.ts); undefined for warden's own, whose
   * chroots get warden's default hooks.
   */
  defaultProfile?: string;
}

// The profile files warden applies; setup.config (a shell fragment for
// schroot's setup scripts) stays an ignored key.
const PROFILE_PARTS = ['fstab', 'copyfiles', 'nssdatabases'] as const;

/**
 * Validates the keys of one chroot group in line order, so the first bad line
 * is the one reported. Warnings for ignored keys are appended to `warnings`.
 * Names and aliases are checked against other chroots by the caller.
 */
export function readChroot(group: KeyfileGroup, file: string, opts: ReadChrootOptions, warnings: ConfigWarning[]): ChrootGroup {
  // The type decides which keys mean anything, so it is read first.
  const typeEntry = group.entries.find((e) => e.key === 'type');
  const aliasesEntry = group.entries.find((e) => e.key === 'aliases');
  const aliasesLine = aliasesEntry?.line ?? group.line;

  const type = typeEntry?.value ?? '';
  if (typeEntry !== undefined && !RUNNABLE_TYPES.has(type)) {
    if (!UNSUPPORTED_TYPES.has(type)) {
      throw new ConfigError(file, typeEntry.line, `unknown chroot type ${quote(type)} for [${group.name}]: expected directory or plain`);
    }
    // Only its names matter to warden (they may not clash); its other keys
    // belong to a type warden never runs, so they get no warnings either.
    return {
      kind: 'unsupported',
      entry: { name: group.name, file, line: typeEntry.line, reason: `type=${type} is not supported by warden (only directory and plain are)` },
      aliases: aliasesEntry === undefined ? [] : readAliases(file, group.name, aliasesEntry),
      aliasesLine,
    };
  }

  const def: ChrootDef = {
    name: group.name,
    file,
    line: group.line,
    type: 'directory',
    directory: '',
    description: undefined,
    aliases: [],
    unionType: 'none',
    users: [],
    groups: [],
    rootUsers: [],
    rootGroups: [],
    sourceUsers: [],
    sourceGroups: [],
    sourceRootUsers: [],
    sourceRootGroups: [],
    hookTimeout: undefined,
    hooks: undefined,
    profile: undefined,
    profileFiles: undefined,
  };
  let hasDirectory = false;
  const setup = new Map<string, string>();

  for (const entry of group.entries) {
    switch (entry.key) {
      case 'type':
        break; // read above
      case 'aliases':
        def.aliases = readAliases(file, group.name, entry);
        break;
      case 'directory':
        def.directory = absolutePath(file, entry);
        if (opts.checkDirectories) checkDirectory(file, entry, def.directory);
        hasDirectory = true;
        break;
      case 'description':
        def.description = entry.value === '' ? undefined : entry.value;
        break;
      case 'union-type': {
        const union = UNION_TYPES.get(entry.value);
        if (union === undefined) {
          throw new ConfigError(
            file,
            entry.line,
            `union-type ${quote(entry.value)} is not one of overlay, copy, none (schroot's overlayfs, aufs and unionfs mean overlay)`,
          );
        }
        def.unionType = union;
        break;
      }
      case 'users':
        def.users = list(entry.value);
        break;
      case 'groups':
        def.groups = list(entry.value);
        break;
      case 'root-users':
        def.rootUsers = list(entry.value);
        break;
      case 'root-groups':
        def.rootGroups = list(entry.value);
        break;
      case 'source-users':
        def.sourceUsers = list(entry.value);
        break;
      case 'source-groups':
        def.sourceGroups = list(entry.value);
        break;
      case 'source-root-users':
        def.sourceRootUsers = list(entry.value);
        break;
      case 'source-root-groups':
        def.sourceRootGroups = list(entry.value);
        break;
      case 'hook-timeout':
        def.hookTimeout = seconds(file, entry);
        break;
      case 'hooks':
        def.hooks = absolutePath(file, entry);
        break;
      case 'shared-dir': {
        const path = absolutePath(file, entry);
        if (opts.checkDirectories) checkDirectory(file, entry, path);
        def.sharedDir = { path, line: entry.line };
        break;
      }
      case 'profile':
        if (entry.value !== '' && (entry.value.includes('/') || entry.value === '.' || entry.value === '..')) {
          throw new ConfigError(file, entry.line, `profile ${quote(entry.value)} of [${group.name}] must be a name (a directory in ${opts.profileBase})`);
        }
        def.profile = entry.value === '' ? undefined : entry.value;
        break;
      case 'setup.fstab':
      case 'setup.copyfiles':
      case 'setup.nssdatabases':
        if (entry.value.split('/').includes('..')) throw new ConfigError(file, entry.line, `${entry.key} ${quote(entry.value)} of [${group.name}] may not contain '..'`);
        setup.set(entry.key.slice('setup.'.length), entry.value);
        break;
      default:
        warnings.push(ignoredKeyWarning(file, group.name, entry));
    }
  }

  if (!hasDirectory) throw new ConfigError(file, group.line, `chroot [${group.name}] has no directory= (required)`);
  // An empty profile= turns the default off, as it does every setup.* part;
  // schroot runs no setup scripts (so no profile) for type=plain.
  if (def.profile === undefined && setup.size === 0 && type !== 'plain' && !group.entries.some((e) => e.key === 'profile')) def.profile = opts.defaultProfile;
  if (def.sharedDir !== undefined) checkSharedDirPlace(file, def.name, def.directory, def.sharedDir);
  def.profileFiles = profileFiles(def.profile, setup, opts.profileBase);
  return { kind: 'runnable', def, aliasesLine };
}

/**
 * shared-dir= and directory= by their paths (symlinks are checked where the
 * chroot is first used, config/shared.ts): a source entry runs commands as
 * root in the source, and a session's view shows it, so registrations
 * inside it could be deleted from there; and the source inside shared-dir=
 * would put it among warden's lock files.
 */
function checkSharedDirPlace(file: string, chroot: string, directory: string, shared: SharedDir): void {
  const within = (p: string, base: string) => p === base || p.startsWith(base === '/' ? '/' : `${base}/`);
  if (within(shared.path, directory)) {
    throw new ConfigError(file, shared.line, `shared-dir=${shared.path} of [${chroot}] is inside its source ${directory}: commands in the source could change it`);
  }
  if (within(directory, shared.path)) {
    throw new ConfigError(file, shared.line, `shared-dir=${shared.path} of [${chroot}] contains its source ${directory}: keep warden's lock files beside the source`);
  }
}

/** schroot's setup.KEY defaults to PROFILE/KEY; both are relative to the base (common-config: "${SYSCONF_DIR}/${SETUP_FSTAB}"). An empty setup.KEY= turns that part off. */
function profileFiles(profile: string | undefined, setup: ReadonlyMap<string, string>, base: string): ProfileFiles | undefined {
  if (profile === undefined && setup.size === 0) return undefined;
  const part = (k: (typeof PROFILE_PARTS)[number]) => {
    const v = setup.get(k) ?? (profile === undefined ? '' : `${profile}/${k}`);
    return v === '' ? undefined : join(base, v);
  };
  return { fstab: part('fstab'), copyfiles: part('copyfiles'), nssdatabases: part('nssdatabases') };
}

function readAliases(file: string, chroot: string, entry: KeyfileEntry): string[] {
  const aliases = list(entry.value);
  for (const alias of aliases) {
    const problem = alias === GLOBAL_GROUP ? `is reserved for the [${GLOBAL_GROUP}] group` : nameProblem(alias);
    if (problem !== undefined) throw new ConfigError(file, entry.line, `alias ${quote(alias)} of [${chroot}] ${problem}`);
  }
  return aliases;
}
