// What schroot's -l, -i, --config and --location print, as plain data: a
// chroot definition and a session as warden knows them. The formatters
// (format.ts) print these as schroot 1.6 prints its own; chrootInfo() and
// sessionInfo() fill them from warden's ChrootDef and a session's facts.
import { join } from 'node:path';
import type { ChrootDef } from '../config/index.js';

/** schroot's default environment-filter= (schroot.conf(5)); warden filters -p environments the same way. */
export const DEFAULT_ENVIRONMENT_FILTER =
  '^(BASH_ENV|CDPATH|ENV|HOSTALIASES|IFS|KRB5_CONFIG|KRBCONFDIR|KRBTKFILE|KRB_CONF|LD_.*|LOCALDOMAIN|NLSPATH|PATH_LOCALE|RES_OPTIONS|TERMINFO|TERMINFO_DIRS|TERMPATH)$';

/** A chroot definition, with the values schroot prints for it. */
export interface ChrootInfo {
  name: string;
  /** '' when none. */
  description: string;
  type: 'directory';
  users: string[];
  groups: string[];
  rootUsers: string[];
  rootGroups: string[];
  aliases: string[];
  /** profile=; schroot prints `default` when none is set. */
  profile: string;
  /** schroot's spelling; `none`: no source chroot, no session union. */
  unionType: string;
  /** Where sessions keep their writable layers (schroot: union-overlay-directory=). */
  unionOverlayDirectory: string;
  /** What the overlay is laid over (schroot: union-underlay-directory=). */
  unionUnderlayDirectory: string;
  directory: string;
  sourceUsers: string[];
  sourceGroups: string[];
  sourceRootUsers: string[];
  sourceRootGroups: string[];
}

/** A session: the chroot it was begun from and what is its own. */
export interface SessionInfo {
  id: string;
  chroot: ChrootInfo;
  /** Begun from `source:NAME`: a session of the source itself, without a union. */
  source: boolean;
  /** The name or alias it was begun with (schroot's Selected Chroot Name). */
  selectedName: string;
  /** The user who began it: the only one schroot lets in (as Root Users). */
  owner: string;
  /** Where it is mounted; commands run there. */
  mountLocation: string;
  /** Its own union directories (the overlay one holds upper/ and work/). */
  unionOverlayDirectory: string;
  unionUnderlayDirectory: string;
}

/** A chroot as warden defines it, for schroot's formats. `stateDir` holds warden's sessions. */
export function chrootInfo(def: ChrootDef, stateDir: string): ChrootInfo {
  return {
    name: def.name,
    description: def.description ?? '',
    type: 'directory',
    users: def.users,
    groups: def.groups,
    rootUsers: def.rootUsers,
    rootGroups: def.rootGroups,
    aliases: def.aliases,
    profile: def.profile ?? 'default',
    unionType: def.unionType,
    // warden keeps a session's upper/ and work/ in <state-dir>/<id>, and lays
    // the overlay straight over the source directory: there is no underlay copy.
    unionOverlayDirectory: stateDir,
    unionUnderlayDirectory: def.directory,
    directory: def.directory,
    sourceUsers: def.sourceUsers,
    sourceGroups: def.sourceGroups,
    sourceRootUsers: def.sourceRootUsers,
    sourceRootGroups: def.sourceRootGroups,
  };
}

export interface SessionFacts {
  id: string;
  stateDir: string;
  source: boolean;
  selectedName: string;
  owner: string;
}

/**
 * A warden session, for schroot's formats: mounted at `<state-dir>/<id>/root`,
 * its layers in `<state-dir>/<id>`. A source session has no mount of its own:
 * its commands run in the source directory, under the source lock.
 */
export function sessionInfo(chroot: ChrootInfo, f: SessionFacts): SessionInfo {
  const dir = join(f.stateDir, f.id);
  if (f.source) {
    return { ...f, chroot, mountLocation: chroot.directory, unionOverlayDirectory: '', unionUnderlayDirectory: '' };
  }
  return {
    id: f.id,
    chroot,
    source: false,
    selectedName: f.selectedName,
    owner: f.owner,
    mountLocation: join(dir, 'root'),
    unionOverlayDirectory: dir,
    unionUnderlayDirectory: chroot.directory,
  };
}
