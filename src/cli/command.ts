// Running a command for `run` and `source`: the child was spawned with the
// lock fds; wait for it, pass its status through, close our copies of the
// locks. Ctrl-C (SIGINT, SIGQUIT) reaches the command from the terminal
// itself, so warden only ignores it; SIGTERM and SIGHUP sent to warden are
// passed on to the command.
import type { Command, CommandLocks } from '../sessions/index.js';

/** Spawns through `start`, waits for the command, resolves to its status (128+N for signal N); always closes `locks`. */
export async function runCommand(start: () => Command, locks: CommandLocks): Promise<number> {
  let child: Command;
  try {
    child = start();
  } catch (e) {
    locks.close();
    throw e;
  }
  // The command holds the locks through its own copies now (OFD mode):
  // ours would only make `warden locks` show this process twice.
  if (locks.inherited) void child.spawned.then(() => locks.close());
  const forward = (sig: NodeJS.Signals) => () => child.kill(sig);
  const handlers: [NodeJS.Signals, () => void][] = [
    ['SIGINT', () => {}],
    ['SIGQUIT', () => {}],
    ['SIGTERM', forward('SIGTERM')],
    ['SIGHUP', forward('SIGHUP')],
  ];
  for (const [s, h] of handlers) process.on(s, h);
  try {
    return await child.exited;
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
    locks.close();
  }
}
