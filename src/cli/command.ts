// Running a command for `run`, `source` and `recover -- CMD`: the child was
// spawned with the lock fds; wait for it, pass its status through, close
// our copies of the locks. The command runs in a session of its own: when
// stdin is a terminal it gets a pty of its own, which warden relays (Ctrl-C
// is a byte in the pty then, and the pty's line discipline signals the
// command); otherwise stdio is passed through and warden forwards SIGINT
// and SIGQUIT to the command's process group, as a terminal would. SIGTERM
// and SIGHUP sent to warden are passed on to the command.
import { isTerminal, Pty, type Command, type CommandLocks, type PtySlave } from '../sessions/index.js';

/**
 * A pty for the command when stdin is a terminal, whoever the command
 * runs as: the caller's terminal is never the command's controlling
 * terminal (one behaviour for every user; see DESIGN.md, security model).
 */
export function terminalForCommand(): Pty | undefined {
  return isTerminal(0) ? Pty.open(0, { stdout: isTerminal(1), stderr: isTerminal(2) }) : undefined;
}

/** Where the pty's output goes: the caller's terminal (stdout, else stderr), else stdout. */
function ptyOutput(): number {
  return isTerminal(1) || !isTerminal(2) ? 1 : 2;
}

/**
 * Spawns through `start` (with the slave of `given`, or of a pty opened
 * here when stdin is a terminal; null: none), relays the pty, waits for the
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
  // ours would only make `warden locks` show this process twice.
  if (locks.inherited) void child.spawned.then(() => locks.close());
  const forward = (sig: NodeJS.Signals, group: boolean) => () => child.kill(sig, group);
  const handlers: [NodeJS.Signals, () => void][] = [
    ['SIGINT', forward('SIGINT', true)],
    ['SIGQUIT', forward('SIGQUIT', true)],
    ['SIGTERM', forward('SIGTERM', false)],
    ['SIGHUP', forward('SIGHUP', false)],
  ];
  for (const [s, h] of handlers) process.on(s, h);
  try {
    const relayed = pty?.relay({ input: 0, output: ptyOutput(), exited: child.exited });
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
