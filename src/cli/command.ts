// Running a command for `run` and `source`: the child was spawned with the
// lock fds; wait for it, pass its status through, close our copies of the
// locks. Ctrl-C (SIGINT, SIGQUIT) reaches the command from the terminal
// itself, so warden only ignores it; SIGTERM and SIGHUP sent to warden are
// passed on to the command.
import type { ChildProcess } from 'node:child_process';
import { constants } from 'node:os';
import type { CommandLocks } from '../sessions/index.js';

/** Spawns through `start`, waits for the command, resolves to its status (128+N for signal N); always closes `locks`. */
export async function runCommand(start: () => ChildProcess, locks: CommandLocks): Promise<number> {
  let child: ChildProcess;
  try {
    child = start();
  } catch (e) {
    locks.close();
    throw e;
  }
  // The command holds the locks through its own copies now (OFD mode):
  // ours would only make `warden locks` show this process twice.
  if (locks.inherited) child.once('spawn', () => locks.close());
  const forward = (sig: NodeJS.Signals) => () => {
    try {
      child.kill(sig);
    } catch {
      // already gone
    }
  };
  const handlers: [NodeJS.Signals, () => void][] = [
    ['SIGINT', () => {}],
    ['SIGQUIT', () => {}],
    ['SIGTERM', forward('SIGTERM')],
    ['SIGHUP', forward('SIGHUP')],
  ];
  for (const [s, h] of handlers) process.on(s, h);
  try {
    const status = (code: number | null, signal: NodeJS.Signals | null) => code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0);
    return await new Promise<number>((resolve, reject) => {
      // A child started ahead (source entry) may be done already.
      if (child.exitCode !== null || child.signalCode !== null) return resolve(status(child.exitCode, child.signalCode));
      child.once('error', reject);
      child.once('exit', (code, signal) => resolve(status(code, signal)));
    });
  } finally {
    for (const [s, h] of handlers) process.off(s, h);
    locks.close();
  }
}
