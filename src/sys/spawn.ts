// Starting the command of `run`: posix_spawn(3) through koffi, reaped on
// SIGCHLD. Node's child_process is the obvious tool, but loading it pulls
// in net, stream and dgram (~5 ms of every `run` on these machines) and
// its fork(2) copies the page tables of a 50 MB process, where glibc's
// posix_spawn uses CLONE_VFORK. `run` is the verb users time against
// schroot's C binary, and koffi is loaded already for the locks. Measured
// (node 20, 2 CPUs, CPU time of `node X` over `node -e 0`, 21 runs):
// child_process spawn + wait +8.7 ms, posix_spawn + SIGCHLD +6.0 ms with
// koffi's own load included.
//
// Where libc lacks a symbol (koffi cannot load glibc's posix_spawn*, e.g. on
// musl), child_process does the job; the Command interface is the same.
import { closeSync, readSync, readdirSync } from 'node:fs';
import { fromChildProcess, startWithChildProcess, type Command } from './child.js';
import { RunError } from './errors.js';
import { libc as glibc } from './koffi.js';
import type { PtySlave } from './pty.js';
import { reaped } from './reaper.js';

export type { Command } from './child.js';

export interface StartOptions {
  /**
   * The slave of the command's own pty: its controlling terminal, and
   * those of its stdin, stdout, stderr the slave's flags name (the others
   * inherited). Without it stdio is inherited, and the command still gets
   * a session of its own, without a controlling terminal.
   */
  terminal?: PtySlave | undefined;
  /**
   * The command's stdin, stdout and stderr: fds of this process (a
   * supervisor's client passed its own). Default: this process's 0, 1, 2.
   */
  stdio?: readonly [number, number, number] | undefined;
}

// <spawn.h>, <sys/wait.h> and <fcntl.h> on Linux; the same on every glibc architecture.
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
// glibc >= 2.26; applied in the child before the file actions.
const POSIX_SPAWN_SETSID = 0x80;
const O_RDWR = 0o2;
const O_CLOEXEC = 0o2000000;
const F_DUPFD_CLOEXEC = 1030;

// posix_spawn_file_actions_t is 80 bytes and posix_spawnattr_t 336 on
// 64-bit glibc, sigset_t 128; they are opaque, so give each room to spare.
const OPAQUE_BYTES = 1024;

export interface Libc {
  posix_spawnp: (pid: number[], file: string, actions: Buffer, attr: Buffer, argv: (string | null)[], envp: (string | null)[]) => number;
  actionsInit: (actions: Buffer) => number;
  actionsDup2: (actions: Buffer, fd: number, newfd: number) => number;
  actionsClose: (actions: Buffer, fd: number) => number;
  actionsOpen: (actions: Buffer, fd: number, path: string, oflag: number, mode: number) => number;
  actionsDestroy: (actions: Buffer) => number;
  attrInit: (attr: Buffer) => number;
  attrSetflags: (attr: Buffer, flags: number) => number;
  attrSetsigdefault: (attr: Buffer, set: Buffer) => number;
  attrSetsigmask: (attr: Buffer, set: Buffer) => number;
  attrDestroy: (attr: Buffer) => number;
  sigemptyset: (set: Buffer) => number;
  waitpid: (pid: number, status: number[], options: number) => number;
  pipe2: (fds: Buffer, flags: number) => number;
  dupAbove: (fd: number, cmd: number, min: number) => number;
  strerror: (errnum: number) => string;
}

let libc: Libc | null | undefined;

/** glibc's spawn functions, or null where they cannot be had (then child_process). */
function native(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    const lib = glibc();
    libc = {
      posix_spawnp: lib.func('int posix_spawnp(_Out_ int *pid, const char *file, void *actions, void *attr, const char **argv, const char **envp)'),
      actionsInit: lib.func('int posix_spawn_file_actions_init(void *actions)'),
      actionsDup2: lib.func('int posix_spawn_file_actions_adddup2(void *actions, int fd, int newfd)'),
      actionsClose: lib.func('int posix_spawn_file_actions_addclose(void *actions, int fd)'),
      actionsOpen: lib.func('int posix_spawn_file_actions_addopen(void *actions, int fd, const char *path, int oflag, uint32_t mode)'),
      actionsDestroy: lib.func('int posix_spawn_file_actions_destroy(void *actions)'),
      attrInit: lib.func('int posix_spawnattr_init(void *attr)'),
      attrSetflags: lib.func('int posix_spawnattr_setflags(void *attr, short flags)'),
      attrSetsigdefault: lib.func('int posix_spawnattr_setsigdefault(void *attr, const void *set)'),
      attrSetsigmask: lib.func('int posix_spawnattr_setsigmask(void *attr, const void *set)'),
      attrDestroy: lib.func('int posix_spawnattr_destroy(void *attr)'),
      sigemptyset: lib.func('int sigemptyset(void *set)'),
      waitpid: lib.func('int waitpid(int pid, _Out_ int *status, int options)'),
      pipe2: lib.func('int pipe2(void *fds, int flags)'),
      dupAbove: lib.func('int fcntl(int fd, int cmd, int min)'),
      strerror: lib.func('const char *strerror(int errnum)'),
    } as unknown as Libc;
  } catch {
    libc = null;
  }
  return libc;
}

/**
 * Starts `file` (looked up in PATH unless it has a '/') with `args`, the
 * environment `env`, in a session of its own (setsid(2)), stdio inherited
 * or the pty slave `o.terminal`, and `fds` as fds 3, 4, ... of the child.
 * Every signal is at its default and none is blocked in the child, as
 * after a fork by a plain C program (Node ignores SIGPIPE, for one).
 * Throws RunError when it cannot be started.
 */
export function startCommand(file: string, args: readonly string[], env: NodeJS.ProcessEnv, fds: readonly number[], o: StartOptions = {}): Command {
  const c = native();
  if (c === null) return fromChildProcess(startWithChildProcess(file, args, env, fds, o));
  const envp: (string | null)[] = [];
  for (const [k, v] of Object.entries(env)) if (v !== undefined) envp.push(`${k}=${v}`);
  envp.push(null);
  const actions = Buffer.alloc(OPAQUE_BYTES);
  const attr = Buffer.alloc(OPAQUE_BYTES);
  const set = Buffer.alloc(OPAQUE_BYTES);
  c.actionsInit(actions);
  c.attrInit(attr);
  try {
    // Every signal 1-64 back to SIG_DFL. Not sigfillset: glibc leaves its
    // own two (32 and 33) out of a filled set, and posix_spawn then sets
    // them to SIG_IGN in the child, where the ignoring outlives the exec.
    set.fill(0xff, 0, 8);
    c.attrSetsigdefault(attr, set);
    c.sigemptyset(set);
    c.attrSetsigmask(attr, set);
    // A session of its own: the caller's terminal is not its controlling
    // terminal, so it cannot push input into the caller's shell (TIOCSTI)
    // nor read from that terminal once warden has gone.
    c.attrSetflags(attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSID);
    const spawn = (pid: number[]) =>
      spawnAndWaitForExec(c, (spareFrom) => {
        const free = placeFds(c, actions, o.stdio ?? [0, 1, 2], fds, spareFrom);
        const t = o.terminal;
        if (t) {
          // Opened without O_NOCTTY by a session leader that has no
          // controlling terminal, the slave becomes its controlling
          // terminal (open(2), O_NOCTTY; credentials(7)), whichever fd it
          // lands on: a spare one, so that stdin from a file stays the file.
          c.actionsOpen(actions, free, t.path, O_RDWR, 0);
          [t.stdin, t.stdout, t.stderr].forEach((slave, fd) => {
            if (slave) c.actionsDup2(actions, free, fd);
          });
          c.actionsClose(actions, free);
        }
        return c.posix_spawnp(pid, file, actions, attr, [file, ...args, null], envp);
      });
    return reaped(c, spawn, file);
  } finally {
    c.actionsDestroy(actions);
    c.attrDestroy(attr);
  }
}

/**
 * Runs `spawn` and returns once the child has closed its copies of our
 * close-on-exec fds. Until its exec does, the child holds every open file
 * description of ours, so each lock of ours has a second holder: another
 * session's just-closed command locks, say, which would make that
 * session's end see a holder that is not there. glibc's posix_spawn
 * returns as soon as exec releases the vfork parent, before the exec closes
 * those fds; under load the child can be descheduled in between for
 * milliseconds (20 concurrent sessions on 2 CPUs showed it). Like libuv,
 * wait for EOF on a close-on-exec pipe, here one whose write end has the
 * highest fd number: exec closes fds in ascending order, so it goes last.
 */
function spawnAndWaitForExec(c: Libc, spawn: (spareFrom: number) => number): number {
  const ends = Buffer.alloc(8);
  if (c.pipe2(ends, O_CLOEXEC) !== 0) return spawn(0); // out of fds: spawn will say so
  const readEnd = ends.readInt32LE(0);
  let writeEnd = ends.readInt32LE(4);
  const top = Math.max(...readdirSync('/proc/self/fd').map(Number));
  const high = c.dupAbove(writeEnd, F_DUPFD_CLOEXEC, top + 1);
  if (high >= 0) {
    closeSync(writeEnd);
    writeEnd = high;
  }
  let err: number;
  try {
    // The file actions' spare fds go above the write end: a dup2 onto it
    // in the child would close it there before the exec does.
    err = spawn(writeEnd + 1);
  } finally {
    closeSync(writeEnd);
  }
  try {
    // EOF once the child's copy is closed (exec'd, or exited after a failed exec).
    if (err === 0) readSync(readEnd, Buffer.alloc(1));
  } finally {
    closeSync(readEnd);
  }
  return err;
}

/**
 * File actions that put `stdio` at 0-2 and fds[i] at 3+i in the
 * child. Each goes through a dup2 onto its target, which clears the
 * target's close-on-exec flag: Node sets that flag on its own fds 0-2 too.
 * A source inside the target range (0, 1, 2 always) would be overwritten or
 * keep its flag, so those are first moved above every fd involved, in the
 * child only: a dup made and closed in this process would drop its
 * POSIX-mode locks on the file (fcntl(2)). Spares start at `spareFrom`
 * or above. Returns an fd above every one these actions use.
 */
function placeFds(c: Libc, actions: Buffer, stdio: readonly number[], fds: readonly number[], spareFrom: number): number {
  const sources = [...stdio, ...fds];
  const end = sources.length;
  const spare = Math.max(end, ...sources.map((fd) => fd + 1), spareFrom);
  const from = sources.map((fd, i) => (fd < end ? spare + i : fd));
  sources.forEach((fd, i) => {
    if (from[i] !== fd) c.actionsDup2(actions, fd, from[i]!);
  });
  from.forEach((fd, i) => c.actionsDup2(actions, fd, i));
  from.forEach((fd, i) => {
    if (fd !== sources[i]) c.actionsClose(actions, fd);
  });
  return Math.max(spare + end, ...sources.map((fd) => fd + 1));
}

/**
 * A pipe, both ends close-on-exec: [read end, write end]. For a command's
 * stdout or stderr collected by the caller (the write end passed in
 * `stdio`, where the spawn dup2s it, which clears close-on-exec there).
 */
export function makePipe(): [number, number] {
  const c = native();
  if (c === null) throw new RunError('cannot collect output: pipe2(2) is not available through koffi on this libc');
  const ends = Buffer.alloc(8);
  if (c.pipe2(ends, O_CLOEXEC) !== 0) throw new RunError('cannot collect output: pipe2(2) failed (out of file descriptors?)');
  return [ends.readInt32LE(0), ends.readInt32LE(4)];
}
