// A shared chroot (build farms) as the sessions layer sees it: its
// shared-dir= and this host's name, as state.json records them.
import type { ChrootDef } from '../config/index.js';
import type { SessionShared } from './state.js';

/**
 * How long another host's mount may show what it saw of a shared source
 * before an entry changed it: glusterfs's defaults for its FUSE entry and
 * attribute timeouts, md-cache and quick-read are 1 s each (README, "Build
 * farm", says not to raise them, and negative-timeout= no higher). A
 * shared chroot's source entry holds its locks at least this long.
 */
export const SHARED_CACHE_MS = 1000;

/** A shared chroot's shared-dir= and this host (config chrootOf fills in the host), or undefined. */
export function sharedOf(def: ChrootDef): SessionShared | undefined {
  const s = def.sharedDir;
  if (!s) return undefined;
  if (s.host === undefined) throw new Error(`chroot ${def.name} is shared (shared-dir=${s.path}) but this host's name was not resolved (use chrootOf)`);
  return { dir: s.path, host: s.host };
}

