// Running a command for `run`, `source` and `recover -- CMD`: the child was
// spawned with the lock fds; wait for it, pass its status through, close
// our copies of the locks. The command runs in a session of its own: when
// any of stdin, stdout, stderr is a terminal it gets a pty of its own,
// which warden relays (with stdin a terminal, Ctrl-C is a byte in the pty,
// and the pty's line discipline signals the command); what is not a
// terminal is passed through, and warden forwards SIGINT and SIGQUIT to
// the command's process group, as a terminal would. SIGTERM and SIGHUP
// sent to warden are passed on to the command.
import type { CommandLocks } from '../api/internal/protocols.js';
import { isTerminal, Pty, type Command, type PtySlave, type PtyStdio } from '../api/internal/system.js';

/**
 * A pty for the command when any of stdin, stdout, stderr is a terminal
 * (sudo's use_pty rule), whoever the command runs as: no fd of the
 * caller's terminal reaches the command, and it is never its controlling
 * terminal (one behaviour for every user; see DESIGN.md, security model).
 * Each of the three that is a terminal becomes the slave; the others are
 * passed through. Nothing a terminal: three isatty(3) calls, no pty.
 */
export function terminalForCommand(): Pty | undefined {
  const stdio = { stdin: isTerminal(0), stdout: isTerminal(1), stderr: isTerminal(2) };
  const like = callerTerminal(stdio);
  return like === undefined ? undefined : Pty.open(like, stdio);
}

/** The first of fds 0-2 that is a terminal (as `t` records), or undefined. */
function callerTerminal(t: PtyStdio): number | undefined {
  return t.stdin ? 0 : t.stdout ? 1 : t.stderr ? 2 : undefined;
}

/** Where the pty's output goes: the caller's terminal (stdout, else stderr), else stdout. */
function ptyOutput(t: PtySlave): number {
  return t.stdout || !t.stderr ? 1 : 2;
}

/**
 * Spawns through `start` (with the slave of `given`, or of a pty opened
 * here when any of stdin, stdout, stderr is a terminal; null: none), relays the pty, waits for the
 * command, resolves to its status (128+N for signal N); always closes
 * `locks` and the pty.
 */
export async function runCommand(
  start: (terminal: PtySlave | undefined) => Command,
  locks: CommandLocks,
  given?: Pty | null,
): Promise<number> {
  let pty: Pty | undefined;
  let child: Command;
  try {
    pty = given === undefined ? terminalForCommand() : (given ?? undefined);
    child = start(pty?.slave);
  } catch (e) {
    locks.close();
    pty?.close();
    throw e;
  }
  // The command holds the locks through its own copies now (OFD mode):
  // ours would only make `warden locks` show this process twice. A shared
  // chroot's stay until it exits (CommandLocks.shared says why).
  if (locks.inherited && !locks.shared) void child.spawned.then(() => locks.close());
  const forward = (sig: NodeJS.Signals, group: boolean) => () => child.kill(sig, group);
  const handlers: [NodeJS.Signals, () => void][] = [
    ['SIGINT', forward('SIGINT', true)],
    ['SIGQUIT', forward('SIGQUIT', true)],
    ['SIGTERM', forward('SIGTERM', false)],
    ['SIGHUP', forward('SIGHUP', false)],
  ];
  for (const [s, h] of handlers) process.on(s, h);
  try {
    // Stdin is read only when it is a terminal; otherwise the command reads it itself.
    const relayed = pty?.relay({ input: pty.slave.stdin ? 0 : undefined, output: ptyOutput(pty.slave), size: callerTerminal(pty.slave), exited: child.exited });
    // Both settle: the relay ends once the command's output is flushed, or
    // (failing) closes the master, which hangs the command up.
    const [status, relay] = await Promise.allSettled([child.exited, relayed]);
    if (status.status === 'rejected') throw status.reason;
    if (relay.status === 'rejected') throw relay.reason;
    return status.value;
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
    locks.close();
    pty?.close();
  }
}
