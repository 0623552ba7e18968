// Starting a command inside a session (or, for a source entry, in the
// source directory itself): chroot into its root, change to a
// directory there, optionally switch user, with the session's lock fds
// inherited (fd 3 and up, named in WARDEN_LOCK_FDS).
//
// Node cannot run code between fork and exec, so a small program does the
// chroot: util-linux unshare(1) with no namespace flags (`--root`, `--wd`)
// for a command that runs as warden's own user, coreutils chroot(8)
// (`--userspec`, `--groups`) for one that runs as another user, followed by
// the chroot's sh to change directory once that user. Both take these
// steps in that order with the exit codes we document (126 not executable,
// 127 not found).
//
// Whoever it runs as, the command gets a session of its own, a pty of its
// own when the caller hands one (any of its stdio is a terminal), and a minimal
// environment unless the caller asks to preserve its own (environment.ts).
import type { ChildProcess } from 'node:child_process';
import { childProcess } from '../sys/index.js';
import { existsSync, fchownSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { findAccount, groupsOfAccount, type Account } from '../config/index.js';
import { RunError, SessionNeedsRecoveryError } from './errors.js';
import { startCommand, viaSetsid, type Command } from '../sys/index.js';
import { commandEnvironment } from './environment.js';
import { ownAttributes, withAttributes, type ProcessAttributes } from './attributes.js';
import type { PtySlave } from '../sys/index.js';

export { RunError } from './errors.js';
import type { CommandLocks, Session } from './session.js';
import { isMountPoint } from '../union/index.js';

const UNSHARE = ['/usr/bin/unshare', '/bin/unshare'].find((p) => existsSync(p)) ?? 'unshare';
// coreutils chroot(8): chroot, chdir("/"), setgroups, setgid, setuid, exec,
// in that order and with the same exit codes (125 its own failure, 126,
// 127). unshare(1) cannot set supplementary groups (its --setgid drops them).
const CHROOT = ['/usr/sbin/chroot', '/sbin/chroot', '/usr/bin/chroot'].find((p) => existsSync(p)) ?? 'chroot';

export interface CommandOptions {
  command: string[];
  /** User name or numeric uid, looked up in the host's /etc/passwd (as schroot does). */
  user?: string;
  /** Working directory inside the session; default: the caller's cwd when it exists there, else `/`. */
  directory?: string;
  /** The caller's environment (default: this process's): kept with `preserveEnvironment`, else only TERM of it. */
  env?: NodeJS.ProcessEnv;
  /** Keep the caller's environment, minus schroot's environment filter (`-p`). */
  preserveEnvironment?: boolean;
  /** The slave of a pty for the command (see Pty): its stdio and controlling terminal. Default: stdio inherited. */
  terminal?: PtySlave | undefined;
  /** The command's stdin, stdout, stderr (a client's, passed to the supervisor); default this process's. */
  stdio?: readonly [number, number, number] | undefined;
  /** The caller's working directory (the default directory); default this process's. */
  cwd?: string | undefined;
  /**
   * Who is asking (the supervisor's client): the command runs as them
   * unless `user` says otherwise. Default: this process's user.
   */
  caller?: Account | undefined;
  /**
   * The umask, nice value and resource limits the command gets where they
   * differ from this process's (attributes.ts): the client's, bounded.
   * Default: this process's own.
   */
  attributes?: ProcessAttributes | undefined;
}

/** The account `-u USER` names; a numeric uid without a passwd entry runs with gid = uid and home /. */
function lookupUser(user: string): Account {
  const found = findAccount(user);
  if (found) return found;
  if (/^\d+$/.test(user)) return { name: user, uid: Number(user), gid: Number(user), home: '/', shell: '/bin/sh' };
  throw new RunError(`user ${JSON.stringify(user)}: no such user in /etc/passwd`);
}

function isDirIn(root: string, dir: string): boolean {
  try {
    return statSync(join(root, dir)).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Checks that a session can run a command now: its view must be in place.
 * A stale session qualifies when its mount survived (recover, or a crash
 * after begin finished); one whose begin or end was cut short, or whose
 * mount is gone (a reboot), needs `warden recover` first.
 * Call it holding the session (liveness SH), with the state read since.
 */
export function assertRunnable(session: Session): void {
  const { state, paths } = session;
  if (state.status !== 'active') throw new SessionNeedsRecoveryError(session.id, `is ${state.status}, not active`);
  if (state.unionType !== 'copy' && !isMountPoint(paths.root)) {
    throw new SessionNeedsRecoveryError(session.id, 'is not mounted (after a reboot?)');
  }
}

/** Where a command is chrooted: a session's view, or a source directory (source entry). */
export interface ChrootTarget {
  root: string;
  /** Names the target in errors: "session ID", "source of chroot NAME". */
  what: string;
  /** Variables that name the target for the command; undefined removes an inherited one. */
  env: Record<string, string | undefined>;
}

/**
 * Spawns `o.command` inside the session, stdio inherited, with `locks.fds`
 * as fds 3.. of the child. The caller waits for it and closes `locks`.
 */
export function spawnInSession(session: Session, locks: CommandLocks, o: CommandOptions): Command {
  const target = { root: session.paths.root, what: `session ${session.id}`, env: { WARDEN_SESSION_ID: session.id, WARDEN_CHROOT: session.state.chroot } };
  return spawnChrooted(target, locks.fds, o);
}

/**
 * Spawns `o.command` chrooted into `target.root` (unshare --root --wd, then
 * setgid/setuid for -u), stdio inherited, `lockFds` as fds 3.. of the child
 * named in WARDEN_LOCK_FDS.
 */
export function spawnChrooted(target: ChrootTarget, lockFds: readonly number[], o: CommandOptions): Command {
  const { file, args, env } = chrootCommand(target, lockFds, o);
  return startCommand(file, args, env, lockFds, { terminal: o.terminal, stdio: o.stdio });
}

/** A command started ahead of time, held back before it chroots until open(). */
export interface GatedChild {
  readonly child: ChildProcess;
  /** Lets the command run. */
  open(): void;
  /** Ends the process without running the command; resolves once it has exited. Idempotent. */
  cancel(): Promise<void>;
}

// The host's sh waits for "go" on the gate (a socket warden holds the other
// end of), closes it and execs unshare. EOF instead, when warden cancels or
// dies, ends it without running anything.
const GATE_SCRIPT = (fd: number) => `read -r go <&${fd} && [ "$go" = go ] || exit 125; exec ${fd}<&-; exec "$@"`;

/**
 * spawnChrooted, but started now and held back until open(): forking a
 * Node process (the first spawn() of a process costs ~6 ms) and exec'ing
 * happen while the caller still waits for its lock, so that only an exec
 * chain remains between the grant and the command. The child gets
 * `lockFds` at once: in OFD mode it shares any lock later taken through
 * them, so a caller that gives up must cancel() (or release the locks)
 * before closing its copies.
 */
export function spawnGated(target: ChrootTarget, lockFds: readonly number[], o: CommandOptions): GatedChild {
  const { file, args, env } = chrootCommand(target, lockFds, o);
  const gateFd = 3 + lockFds.length;
  // A session of its own, as startCommand gives: with a pty setsid(1)
  // makes it the controlling terminal once the gate opens; without one the
  // gate's shell starts detached (setsid).
  const t = o.terminal;
  const fds: (number | 'pipe')[] = [...lockFds, 'pipe'];
  const own = o.stdio ?? (['inherit', 'inherit', 'inherit'] as const);
  const { argv: chain, stdio } = t ? viaSetsid(t, [file, ...args], fds, o.stdio) : { argv: [file, ...args], stdio: [...own, ...fds] };
  const child = childProcess().spawn('/bin/sh', ['-c', GATE_SCRIPT(gateFd), 'warden-gate', ...chain], {
    stdio: stdio as (number | 'inherit' | 'pipe')[],
    env,
    detached: !t,
  });
  let failure: unknown;
  child.once('error', (e) => (failure = e));
  const gate = child.stdio[gateFd] as NodeJS.WritableStream & { destroy(): void };
  const exited = new Promise<void>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve();
    else child.once('close', () => resolve());
  });
  let state: 'closed' | 'open' | 'cancelled' = 'closed';
  return {
    child,
    open() {
      if (failure) throw failure;
      if (state !== 'closed') throw new RunError(`gate already ${state}`);
      state = 'open';
      gate.end('go\n');
    },
    async cancel() {
      if (state === 'closed') {
        state = 'cancelled';
        gate.destroy();
      }
      if (state === 'cancelled' && child.pid !== undefined) await exited;
    },
  };
}

/** The account a command runs as without -u: this process's. */
function selfAccount(): Account {
  const uid = process.getuid!();
  return findAccount(String(uid)) ?? { name: uid === 0 ? 'root' : String(uid), uid, gid: process.getgid!(), home: '/', shell: '/bin/sh' };
}

// Changes directory once the command runs as its user, then execs it: a
// chdir done as root (unshare --wd) would put a user's process in a
// directory it may not search, from where it could open what that
// directory hides. The shell is the chroot's own; the OLDPWD its cd sets
// is not the command's.
const CD_SCRIPT = 'cd -- "$1" || exit 125; unset OLDPWD; shift; exec "$@"';
// The same for the default directory (the caller's cwd), which falls back
// to / where it does not exist in the session, as for root's commands.
const CD_OR_ROOT_SCRIPT = 'cd -- "$1" 2>/dev/null || cd /; unset OLDPWD; shift; exec "$@"';

/**
 * The program that chroots and execs the command (unshare for root, chroot
 * for another user), its arguments and the command's environment; gives
 * the pty's slave to the user the command runs as.
 */
function chrootCommand(target: ChrootTarget, lockFds: readonly number[], o: CommandOptions): { file: string; args: string[]; env: NodeJS.ProcessEnv } {
  if (o.command.length === 0) throw new RunError('no command given');
  const root = target.root;
  const caller = o.caller ?? selfAccount();
  const pw = o.user === undefined ? undefined : lookupUser(o.user);
  const runAs = pw ?? caller;
  if (o.directory !== undefined && !o.directory.startsWith('/')) throw new RunError(`directory ${JSON.stringify(o.directory)} must be absolute`);
  let file: string;
  let args: string[];
  if (runAs.uid === process.getuid!()) {
    let dir = o.directory;
    if (dir !== undefined) {
      if (!isDirIn(root, dir)) throw new RunError(`directory ${dir} does not exist in ${target.what}`);
    } else {
      const cwd = o.cwd ?? process.cwd();
      dir = isDirIn(root, cwd) ? cwd : '/';
    }
    file = UNSHARE;
    args = ['--root', root, '--wd', dir, '--', ...o.command];
  } else {
    // As the user: their groups (the host's /etc/group), then the directory once they are them,
    // looked up inside the chroot only: a stat from here would follow a symlink the session
    // holds out to the host, and tell its owner whether a host directory exists.
    file = CHROOT;
    args = [`--userspec=${runAs.uid}:${runAs.gid}`, `--groups=${groupsOfAccount(runAs).join(',')}`, root];
    const dir = o.directory ?? o.cwd ?? process.cwd();
    if (dir !== '/') args.push('/bin/sh', '-c', o.directory === undefined ? CD_OR_ROOT_SCRIPT : CD_SCRIPT, 'warden', dir);
    args.push(...o.command);
  }
  if (o.attributes) {
    const own = ownAttributes();
    if (own) [file, ...args] = withAttributes([file, ...args], o.attributes, own);
  }
  const firstFd = 3;
  const env = commandEnvironment({
    caller: o.env ?? process.env,
    account: runAs,
    switched: runAs.uid !== caller.uid,
    preserve: o.preserveEnvironment === true,
    warden: { ...target.env, WARDEN_LOCK_FDS: lockFds.map((_, i) => firstFd + i).join(',') },
  });
  // The user's own terminal, as login(1) makes it (group tty and mode 0620 stay).
  if (runAs.uid !== process.getuid!() && o.terminal) fchownSync(o.terminal.fd, runAs.uid, -1);
  return { file, args, env };
}
