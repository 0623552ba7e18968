// The schroot side of bench/vs-schroot: installing schroot, configuring one
// chroot for it the way warden's defaults set up a session, driving its
// sessions, and removing everything the bench made (configuration files,
// sessions, mounts) afterwards.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mountsUnder, unmountAll } from '../src/union/index.js';
import { background, timed, type Ran } from './procs.js';

export const SCHROOT = '/usr/bin/schroot';
const SESSION_DIR = '/var/lib/schroot/session';
const MOUNT_DIR = '/run/schroot/mount';

/** Installs schroot from Debian's packages when it is missing (the bench's one download, documented in README). */
export function ensureSchroot(): string {
  if (existsSync(SCHROOT)) return 'already installed';
  const r = spawnSync('apt-get', ['install', '-y', 'schroot'], { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (r.status !== 0 || !existsSync(SCHROOT)) throw new Error('schroot is missing and `apt-get install -y schroot` failed');
  return 'installed by this run (apt-get install -y schroot)';
}

export interface SchrootSetup {
  /** The chroot's name in schroot. */
  name: string;
  /** Files and directories of ours under /etc/schroot, removed at the end. */
  created: string[];
  /** Where schroot puts the sessions' overlay upper/work dirs (ours, in the bench's temp dir). */
  unionDir: string;
  /** Session names start with this, so that cleanup touches only ours. */
  prefix: string;
}

/**
 * Configures `source` for schroot as chroot NAME: union-type=overlay and a
 * profile whose fstab binds what warden's default hooks bind (/proc, /sys,
 * /dev, /dev/pts) and whose copyfiles are the files they copy
 * (/etc/resolv.conf, /etc/hosts); no NSS databases, which warden does not
 * copy either.
 */
export function configureSchroot(name: string, source: string, tmp: string, o: { users?: readonly string[] } = {}): SchrootSetup {
  const profile = join('/etc/schroot', name);
  const conf = join('/etc/schroot/chroot.d', name);
  const unionDir = join(tmp, 'schroot-union');
  mkdirSync(unionDir);
  mkdirSync(profile);
  const created = [profile, conf];
  writeFileSync(join(profile, 'fstab'), ['/proc', '/sys', '/dev', '/dev/pts'].map((d) => `${d} ${d} none rw,bind 0 0\n`).join(''));
  writeFileSync(join(profile, 'copyfiles'), '/etc/resolv.conf\n/etc/hosts\n');
  writeFileSync(join(profile, 'nssdatabases'), '');
  writeFileSync(
    conf,
    `[${name}]\ntype=directory\ndirectory=${source}\nunion-type=overlay\nunion-overlay-directory=${unionDir}\nprofile=${name}\nroot-users=root\nsource-root-users=root\n${o.users?.length ? `users=${o.users.join(',')}\n` : ''}`,
  );
  return { name, created, unionDir, prefix: `${name}-` };
}

const run = (args: readonly string[], check = true): Ran => timed(SCHROOT, args, process.env, check);

/** `schroot -c NAME -d / -- CMD`: an automatic session. */
export const automatic = (s: SchrootSetup, cmd: readonly string[]): Ran => run(['-c', s.name, '-d', '/', '--', ...cmd]);
export const begin = (s: SchrootSetup, id: string): Ran => run(['-b', '-c', s.name, '-n', id]);
export const runIn = (id: string, cmd: readonly string[], check = true): Ran => run(['-r', '-c', id, '-d', '/', '--', ...cmd], check);
export const end = (id: string, check = true): Ran => run(['-e', '-c', id], check);
export const recover = (id: string, check = true): Ran => run(['--recover-session', '-c', id], check);
export const beginAsync = (s: SchrootSetup, id: string): Promise<string> => background(SCHROOT, ['-b', '-c', s.name, '-n', id], process.env);
export const endAsync = (id: string): Promise<string> => background(SCHROOT, ['-e', '-c', id], process.env);

/** A simulated reboot of schroot session ID: every mount of it goes, its session file stays. */
export function unmountSession(id: string): void {
  unmountAll(join(MOUNT_DIR, id));
  const underlay = join('/var/lib/schroot/union/underlay', id);
  if (existsSync(underlay)) unmountAll(underlay);
}

/** Our sessions that schroot still knows about. */
export function ourSessions(s: SchrootSetup): string[] {
  try {
    return readdirSync(SESSION_DIR).filter((f) => f.startsWith(s.prefix));
  } catch {
    return [];
  }
}

/**
 * Ends every session of ours (recovering first those whose mounts went, as
 * schroot cannot end those cleanly otherwise), then removes whatever schroot
 * could not: mounts, session files, and our configuration.
 */
export function removeSchroot(s: SchrootSetup): void {
  for (const id of ourSessions(s)) {
    if (end(id, false).status !== 0) {
      recover(id, false);
      end(id, false);
    }
  }
  for (const id of ourSessions(s)) {
    for (const m of [...mountsUnder(join(MOUNT_DIR, id)), ...mountsUnder(join('/var/lib/schroot/union/underlay', id))].reverse()) {
      spawnSync('umount', ['-l', m.mountPoint]);
    }
    rmSync(join(SESSION_DIR, id), { force: true });
  }
  for (const f of s.created) rmSync(f, { recursive: true, force: true });
}
