// The SIGCHLD reaper of the commands posix_spawn started (spawn.ts): one
// listener for all of them, waitpid(pid, WNOHANG) for each.
import { RunError } from './errors.js';
import type { Command } from './child.js';
import { koffi } from './koffi.js';

const WNOHANG = 1;
const EINTR = 4;

/** What the reaper needs of spawn.ts's libc bindings. */
export interface SpawnLibc {
  waitpid: (pid: number, status: number[], options: number) => number;
  strerror: (errnum: number) => string;
}

let libc: SpawnLibc | undefined;

/**
 * Commands started here and not yet reaped, by pid. One SIGCHLD listener
 * serves them all (a supervisor or an orchestrator may run hundreds at
 * once), and reaps each with waitpid(pid, WNOHANG): never waitpid(-1),
 * which would steal the children of child_process. No thread blocks in
 * waitpid: a libuv pool thread blocked there would hold up process.exit
 * until the command ended. While any is running, a ref'd timer keeps the
 * event loop alive, as a ChildProcess handle would; signal listeners do not.
 */
const running = new Map<number, (status: number) => void>();
let keepAlive: NodeJS.Timeout | undefined;

function listen(): void {
  if (keepAlive !== undefined) return;
  process.on('SIGCHLD', reapExited);
  keepAlive = setInterval(() => {}, 2 ** 31 - 1);
}

function unlistenIfIdle(): void {
  if (running.size > 0 || keepAlive === undefined) return;
  process.off('SIGCHLD', reapExited);
  clearInterval(keepAlive);
  keepAlive = undefined;
}

function reapExited(): void {
  const c = libc!;
  const status = [0];
  for (const [pid, settle] of running) {
    let r: number;
    do r = c.waitpid(pid, status, WNOHANG);
    while (r === -1 && koffi().errno() === EINTR);
    if (r === 0) continue;
    running.delete(pid);
    // r === -1 otherwise (ECHILD): reaped by someone else; its status is lost.
    settle(r === pid ? decode(status[0]!) : 128 + 9);
  }
  unlistenIfIdle();
}

/** Runs `spawn` (posix_spawnp) with the SIGCHLD listener in place, so no exit can be missed. */
export function reaped(c: SpawnLibc, spawn: (pid: number[]) => number, file: string): Command {
  libc = c;
  listen();
  const out = [0];
  const err = spawn(out);
  if (err !== 0) {
    unlistenIfIdle();
    throw new RunError(`cannot start ${file}: ${c.strerror(err)}`);
  }
  const pid = out[0]!;
  let done = false;
  const exited = new Promise<number>((resolve) =>
    running.set(pid, (status) => {
      done = true;
      resolve(status);
    }),
  );
  // It may have exited before it was in the map.
  reapExited();
  return {
    pid,
    spawned: Promise.resolve(),
    exited,
    kill(signal, group = false) {
      if (done) return;
      try {
        process.kill(group ? -pid : pid, signal);
      } catch {
        // gone between its exit and our reaping it
      }
    },
  };
}

/** A wait(2) status as the shell reports it. */
function decode(status: number): number {
  const sig = status & 0x7f;
  return sig === 0 ? (status >> 8) & 0xff : 128 + sig;
}
