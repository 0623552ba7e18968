// What Pty.relay() does (pty.ts): the caller's terminal raw while the
// command runs, bytes moved both ways, the window size followed, and the
// end told apart (EIO, EOF, silence after the exit, a hang-up).
import { closeSync, createWriteStream, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { copyWindowSize, makeRaw } from './tty.js';

export interface RelayOptions {
  /**
   * The caller's terminal, read in raw mode and relayed to the command.
   * Undefined when stdin is not a terminal: nothing is read then and no
   * mode changed (the command reads the caller's stdin itself).
   */
  input?: number | undefined;
  /** Where what the command writes to the pty goes (the caller's terminal, or a pipe or file). */
  output: number;
  /** The caller's terminal whose window size the pty follows (SIGWINCH). Default: `input`. */
  size?: number | undefined;
  /** Settles once the command has exited. */
  exited: Promise<unknown>;
  /**
   * How long the pty may stay silent after the command exited before the
   * relay ends without the master's EIO: a background process that keeps
   * the slave open then gets the hangup (SIGHUP), as when a terminal
   * window closes. Default 100 ms.
   */
  lingerMs?: number;
}

/**
 * Pty.relay(): relays between the caller's terminal and the command until
 * it has exited and its output is flushed; takes the master from `pty`.
 */
export async function relayPty(pty: { closeSlave(): void; takeMaster(): number }, o: RelayOptions): Promise<void> {
  // Our slave fd stays open while the command runs: the master then reads
  // neither EIO nor a hangup's EOF early, and once it is closed only the
  // command's background processes can keep the pty open.
  const exited = o.exited.then(
    () => pty.closeSlave(),
    () => pty.closeSlave(),
  );
  // node:tty loads net: paid only by commands that get a pty.
  const tty = createRequire(import.meta.url)('node:tty') as typeof import('node:tty');
  // The stream closes the master from now on.
  const masterFd = pty.takeMaster();
  let master: import('node:tty').ReadStream;
  try {
    // Not destroyed at EOF (read 0): what follows may still be drained.
    master = new tty.ReadStream(masterFd, { allowHalfOpen: true });
  } catch (e) {
    closeSync(masterFd);
    throw e;
  }
  let outer: import('node:tty').ReadStream | undefined;
  let restore: (() => void) | null = null;
  const out = createWriteStream('', { fd: o.output, autoClose: false });
  const size = o.size ?? o.input;
  const winch = () => size !== undefined && copyWindowSize(size, masterFd);
  try {
    if (o.input !== undefined) {
      outer = new tty.ReadStream(o.input);
      restore = makeRaw(o.input);
    }
    process.on('SIGWINCH', winch);
    // The size may have changed since the pty was opened.
    winch();
    const end = await pump(master, outer, out, { ...o, exited });
    // read(2) on the master can return 0 instead of EIO as the last slave
    // fd closes (n_tty_read's hang-up checks), and on Linux 6.18 did so
    // before the last output was read (2 in 60 runs): read again now
    // (EAGAIN or EIO when there is nothing more).
    if (end === 'eof') drain(masterFd, out);
    // Whatever the command wrote reaches the output before we return.
    await new Promise<void>((resolve) => out.write('', () => resolve()));
  } finally {
    process.off('SIGWINCH', winch);
    // A terminal that hung up ignores this; nothing is left to restore then.
    restore?.();
    outer?.destroy();
    master.destroy();
    out.destroy();
  }
}

/** Reads what is left on the master (non-blocking: libuv made it so), up to 1 MiB. */
function drain(fd: number, out: NodeJS.WritableStream): void {
  const buf = Buffer.alloc(65536);
  for (let total = 0; total < 1 << 20; ) {
    let n: number;
    try {
      n = readSync(fd, buf);
    } catch {
      return; // EAGAIN: nothing more now; EIO: nothing more ever
    }
    if (n === 0) return;
    out.write(Buffer.from(buf.subarray(0, n)));
    total += n;
  }
}

/** Why the relay stopped: EIO, EOF, silence after the exit, the caller's terminal or the output gone. */
type End = 'eio' | 'eof' | 'linger' | 'hangup' | 'output';

/** Moves bytes both ways (only out without `outer`) until the pty is done (EIO, or silent for lingerMs after the exit) or the caller's terminal hangs up. */
function pump(
  master: import('node:tty').ReadStream,
  outer: import('node:tty').ReadStream | undefined,
  out: NodeJS.WritableStream,
  o: RelayOptions,
): Promise<End> {
  const lingerMs = o.lingerMs ?? 100;
  return new Promise<End>((resolve) => {
    let exited = false;
    let paused = false;
    let linger: NodeJS.Timeout | undefined;
    let done = false;
    const finish = (why: End) => () => {
      if (done) return;
      done = true;
      clearTimeout(linger);
      master.off('data', fromCommand);
      outer?.off('data', toCommand);
      resolve(why);
    };
    // Counted from the last byte read, and only while reading (not while the output is full).
    const arm = () => {
      clearTimeout(linger);
      if (exited && !paused && !done) linger = setTimeout(finish('linger'), lingerMs);
    };
    const fromCommand = (d: Buffer) => {
      if (!out.write(d)) {
        paused = true;
        master.pause();
        out.once('drain', () => {
          paused = false;
          master.resume();
          arm();
        });
      }
      arm();
    };
    const toCommand = (d: Buffer) => master.write(d);
    master.on('data', fromCommand);
    // EIO: every slave fd is closed and all that was written has been read.
    master.on('error', finish('eio'));
    master.on('end', finish('eof'));
    // The caller's terminal hung up: closing the master hangs up the command's.
    outer?.on('data', toCommand);
    outer?.on('error', finish('hangup'));
    outer?.on('end', finish('hangup'));
    out.on('error', finish('output'));
    const onExit = () => {
      exited = true;
      arm();
    };
    o.exited.then(onExit, onExit);
  });
}
