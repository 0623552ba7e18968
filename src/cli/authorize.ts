// The CLI's check of its own caller against the chroot's users=, groups=,
// root-users=, root-groups=, source-users=, source-groups=,
// source-root-users= and source-root-groups=, before it touches a lock or
// a mount: a user the configuration does not admit gets exit 8 naming the
// rule, not an EPERM from somewhere in the middle; one it admits is handed
// to the supervisor (the CLI becomes the relay). Root is always allowed,
// so for root this loads nothing at all (every call pays start-up; the
// policy and the passwd file are for non-root ones).
import type { ChrootDef } from '../api/internal/config.js';
import type { SessionState } from '../api/internal/state-dir.js';
import type { Parsed } from './args.js';
import { RootRequiredError } from './errors.js';

/**
 * Throws PermissionDeniedError unless the calling user may run as `o.user`
 * (a -u value; undefined: themselves) in sessions of the chroot, or in
 * its source (and end its stale sessions first, with `o.recoverStale`);
 * for `run -s` (`o.session` given), SessionAccessError unless they own
 * the session (state.json's owner). `chroot` is a thunk so that root
 * callers never pay for finding it (for `run -s`, reading the session's
 * state). A caller who passes every check but is not root gets
 * RootRequiredError: the locks and mounts are root's, and warden cannot be
 * setuid, so the command cannot be started from this process.
 */
export async function authorizeCaller(
  chroot: () => ChrootDef,
  what: 'run' | 'source',
  o: { user?: string | undefined; recoverStale?: boolean; session?: () => SessionState },
): Promise<void> {
  if (process.getuid!() === 0) return;
  const [{ accessToRun, accessToSource, authorize }, { selfCredentials }, { assertSessionOwner }] = await Promise.all([
    import('../api/internal/config.js'),
    import('../supervisor/peercred.js'),
    import('../supervisor/owner.js'),
  ]);
  const def = chroot();
  const who = selfCredentials();
  const needs = what === 'source' ? accessToSource(who, o) : accessToRun(who, o.user);
  for (const access of needs) authorize(def, who, access);
  if (o.session) assertSessionOwner(o.session(), who, 'run in');
  throw new RootRequiredError(what === 'source' ? 'entering a source chroot' : 'running a command in a session');
}

/**
 * Checks the caller (exit 8 naming the rule when refused). A caller who is
 * admitted but not root cannot start the command from this process (the
 * locks and mounts are root's): the supervisor starts it, through the
 * relay this process then becomes.
 */
export async function viaSupervisor(p: Parsed, stateDir: string, check: () => Promise<void>): Promise<void> {
  try {
    await check();
  } catch (e) {
    if (!(e instanceof RootRequiredError) || p.argv === undefined) throw e;
    const { execRelay } = await import('./relay-exec.js');
    throw execRelay(stateDir, p.argv);
  }
}
