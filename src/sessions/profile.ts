// What a chroot's schroot profile (profile=, setup.*=) adds to its sessions,
// recorded in state.json when the session begins so that recover re-applies
// the same files (as end runs the stop hooks of the hooks dir it began with).
import type { ChrootDef } from '../config/index.js';
import type { RunHooksOptions } from '../hooks/index.js';
import type { SessionProfile, SessionState } from './state.js';

/**
 * The profile a session of `def` gets, or undefined. Its files replace the
 * hooks dir's declarative hooks (warden's default binds and copies, which
 * play the part of schroot's "default" profile) unless the chroot names a
 * hooks dir of its own (hooks=): schroot applies a profile alone, and the
 * sbuild profile means to bind /dev/pts without the host's /dev. The hooks
 * dir's executables run either way.
 */
export function sessionProfile(def: ChrootDef): SessionProfile | undefined {
  const files = def.profileFiles;
  if (files === undefined) return undefined;
  const p: SessionProfile = { replacesDeclarativeHooks: def.hooks === undefined };
  for (const k of ['fstab', 'copyfiles', 'nssdatabases'] as const) if (files[k] !== undefined) p[k] = files[k];
  return p;
}

/** The runHooks options that apply a session's profile (post-mount only; runHooks ignores them elsewhere). */
export function profileHookOptions(state: SessionState): Pick<RunHooksOptions, 'profile' | 'declarative'> {
  const p = state.profile;
  if (p === undefined) return {};
  return { profile: { fstab: p.fstab, copyfiles: p.copyfiles, nssdatabases: p.nssdatabases }, declarative: !p.replacesDeclarativeHooks };
}
