// A relayed call's command: started with the client's fds (and a pty of
// its own when one of them is a terminal), the client's signals forwarded,
// its status sent back; and the frames the broker writes to a client.
import type { Socket } from 'node:net';
import { closeSync } from 'node:fs';
import type { Credentials } from '../config/index.js';
import { isTerminal, Pty, type Command, type CommandLocks, type PtySlave } from '../sessions/index.js';
import type { BrokerHost } from './broker-host.js';
import { socketFd } from './peercred.js';
import { sendTerminalFrame } from './relay-socket.js';
import { exitFrame, fallbackFrame, outputFrame } from './relay-wire.js';

/** A client's command is hung up when it goes away, and killed this long after if still there. */
export const HANGUP_GRACE_MS = 2000;

export function send(c: Socket, type: 'o' | 'e' | 'X' | 'F', payload: string | number = ''): void {
  if (c.destroyed || !c.writable) return;
  const frame = type === 'X' ? exitFrame((payload as number) & 0xff) : type === 'F' ? fallbackFrame() : outputFrame(type === 'o' ? 1 : 2, payload as string);
  c.write(frame);
}

/** Waits until everything written to `c` has gone to the kernel (a terminal frame must come after it). */
export function flushed(c: Socket): Promise<void> {
  if (c.writableLength === 0 || c.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      c.off('drain', done);
      c.off('close', done);
      resolve();
    };
    c.on('drain', done);
    c.on('close', done);
  });
}

export function closeQuiet(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // closed already
  }
}

/**
 * Starts a client's command with `terminal` (the slave of its pty, if it
 * gets one) and hands over the locks it runs under. Until it resolves it
 * owns what it took: on failure it has released it.
 */
export type CommandStart = (terminal: PtySlave | undefined) => Promise<{ cmd: Command; locks: CommandLocks }>;

/** The call a command is run for (relay-call.ts). */
export interface ClientCall {
  c: Socket;
  /** The client's stdin, stdout, stderr. */
  fds: readonly number[];
  who: Credentials;
  host: BrokerHost;
  /** The client went away. */
  gone: AbortSignal;
  /** Its lock waits are over. */
  waitsDone(): void;
  /** The command started (its signals go to it from then on), or ended. */
  started(cmd: Command | undefined): void;
}

/**
 * Starts the command through `start` with the client's fds (and a pty of
 * its own when any of them is a terminal, whose master goes to the
 * client once the command is started), forwards the client's signals,
 * and resolves to its status; the locks `start` hands over are closed
 * once it has exited. A client that goes away gets its command hung up,
 * then killed.
 */
export async function runClientCommand(k: ClientCall, start: CommandStart): Promise<number> {
  const [i, o, e] = k.fds;
  const tty = { stdin: isTerminal(i), stdout: isTerminal(o), stderr: isTerminal(e) };
  let pty: Pty | undefined;
  let cmd: Command;
  let locks: CommandLocks;
  try {
    if (tty.stdin || tty.stdout || tty.stderr) pty = Pty.open(tty.stdin ? i : tty.stdout ? o : e, tty);
    ({ cmd, locks } = await start(pty?.slave));
    // Its waits are over: a wait line not shown yet is not shown over the command's output.
    k.waitsDone();
  } catch (err) {
    pty?.close();
    throw err;
  }
  // In OFD mode the command holds the locks through its own copies. A
  // shared chroot's stay until it exits (CommandLocks.shared says why), as
  // the CLI keeps them.
  if (locks.inherited && !locks.shared) void cmd.spawned.then(() => locks.close());
  const c = k.c;
  k.started(cmd);
  let killer: NodeJS.Timeout | undefined;
  const onGone = () => {
    if (k.host.stopping()) return; // the command keeps running, holding its session
    cmd.kill('SIGHUP', true);
    killer = setTimeout(() => cmd.kill('SIGKILL', true), HANGUP_GRACE_MS);
  };
  if (k.gone.aborted) onGone();
  else k.gone.addEventListener('abort', onGone, { once: true });
  try {
    if (pty) {
      // The command has its copy of the slave; the master goes to the client, which relays its terminal.
      pty.closeSlave();
      await flushed(c);
      const input = tty.stdin ? 0 : null;
      if (!k.gone.aborted) {
        const master = pty.takeMaster();
        try {
          sendTerminalFrame(socketFd(c), master, { input, output: tty.stdout || !tty.stderr ? 1 : 2, size: tty.stdin ? 0 : tty.stdout ? 1 : 2 });
        } catch (err) {
          k.host.log(`could not pass a pty to uid ${k.who.uid}: ${(err as Error).message}; hanging its command up`);
          c.destroy();
        } finally {
          // The client has its own copy now; ours would keep the pty open after the client is gone.
          closeQuiet(master);
        }
      }
    }
    return await cmd.exited;
  } finally {
    pty?.close();
    if (killer) clearTimeout(killer);
    k.gone.removeEventListener('abort', onGone);
    k.started(undefined);
    locks.close();
  }
}

/** Signals the relay forwards, and whether they go to the command's process group (as a terminal sends them). */
export const FORWARDED: ReadonlyMap<number, { name: NodeJS.Signals; group: boolean }> = new Map([
  [1, { name: 'SIGHUP', group: false }],
  [2, { name: 'SIGINT', group: true }],
  [3, { name: 'SIGQUIT', group: true }],
  [15, { name: 'SIGTERM', group: false }],
  [18, { name: 'SIGCONT', group: true }],
  [20, { name: 'SIGTSTP', group: true }],
]);
