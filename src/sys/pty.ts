// A pseudo-terminal of the command's own, as `su --pty`, `runuser --pty`
// and `machinectl shell` give one. A command that had the caller's
// terminal as its controlling terminal could push keystrokes into the
// caller's shell with TIOCSTI (tty_ioctl(4)) or read what is typed there
// after warden exits; with a pty of its own, all it can reach is itself.
// As sudo's use_pty, there is one whenever any of stdin, stdout, stderr
// is a terminal: a command given only an fd of it (stdout, opened O_RDWR
// by the shell) could still read it, and keep reading from a background
// process after warden exits. When stdin is the terminal, warden puts it
// in raw mode and relays bytes both ways; the pty's line discipline then
// turns Ctrl-C into SIGINT for the command's foreground process group,
// not for warden's. Otherwise only the output is relayed.
import { closeSync, openSync } from 'node:fs';
import { koffi } from './koffi.js';
import { RunError } from './errors.js';
import { relayPty, type RelayOptions } from './pty-relay.js';
import { calls, copyWindowSize, C_OFLAG, O_CLOEXEC, O_NOCTTY, O_RDWR, OPOST, TCSANOW, TERMIOS_BYTES } from './tty.js';

export { copyWindowSize, isTerminal } from './tty.js';
export type { RelayOptions } from './pty-relay.js';

/** Which of the command's stdin, stdout and stderr are the slave (see PtySlave). */
export interface PtyStdio {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
}

/**
 * The slave side, as a command gets it: by path (posix_spawn opens it) and
 * as an fd of ours (O_NOCTTY). It is always the command's controlling
 * terminal; each of its stdin, stdout and stderr is the slave where the
 * flag says so (warden's own is a terminal), else the caller's passed
 * through, as sudo's use_pty does: `warden run ... > file` must not get
 * the pty's CRLFs, and `... < input` reads the file.
 */
export interface PtySlave extends Readonly<PtyStdio> {
  readonly path: string;
  readonly fd: number;
}

/**
 * A pty pair. The master is warden's; the slave goes to one command as
 * its controlling terminal and some of its stdio. close() is idempotent.
 */
export class Pty {
  readonly slave: PtySlave;
  #master: number;
  #masterOwned = true;
  #slaveOpen = true;
  #relaying: Promise<void> | undefined;

  private constructor(master: number, slave: PtySlave) {
    this.#master = master;
    this.slave = slave;
  }

  /**
   * Opens a pty (posix_openpt(3), grantpt, unlockpt, ptsname_r) whose
   * slave starts with the modes and window size of terminal `like` (when
   * given), as script(1) and su --pty set theirs up. `stdio`: which of
   * the command's stdin, stdout and stderr are to be the slave (see PtySlave).
   */
  static open(like?: number, stdio: PtyStdio = { stdin: true, stdout: true, stderr: true }): Pty {
    const c = calls();
    const fail = (what: string): never => {
      throw new RunError(`cannot open a pseudo-terminal: ${what}: ${c.strerror(koffi().errno())}`);
    };
    const master = c.posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master < 0) fail('posix_openpt');
    let slaveFd = -1;
    try {
      if (c.grantpt(master) !== 0) fail('grantpt');
      if (c.unlockpt(master) !== 0) fail('unlockpt');
      const name = Buffer.alloc(128);
      const err = c.ptsname_r(master, name, name.length);
      if (err !== 0) throw new RunError(`cannot open a pseudo-terminal: ptsname_r: ${c.strerror(err)}`);
      const path = name.toString('latin1', 0, name.indexOf(0));
      // termios and window size set through the master apply to the slave (tty_ioctl(4)).
      if (like !== undefined) {
        const termios = Buffer.alloc(TERMIOS_BYTES);
        if (c.tcgetattr(like, termios) === 0) {
          // Without stdin to relay, the caller's terminal stays as it is
          // (not raw), so its own output processing (ONLCR) applies to what
          // the relay writes: the pty's would double every CR.
          if (!stdio.stdin) termios.writeUInt32LE(termios.readUInt32LE(C_OFLAG) & ~OPOST, C_OFLAG);
          c.tcsetattr(master, TCSANOW, termios);
        }
        copyWindowSize(like, master);
      }
      slaveFd = openSync(path, O_RDWR | O_NOCTTY | O_CLOEXEC);
      return new Pty(master, { path, fd: slaveFd, stdin: stdio.stdin, stdout: stdio.stdout, stderr: stdio.stderr });
    } catch (e) {
      if (slaveFd >= 0) closeSync(slaveFd);
      closeSync(master);
      throw e;
    }
  }

  /** Closes our fd of the slave (the master reads EIO only once every slave fd is closed). Idempotent. */
  closeSlave(): void {
    if (!this.#slaveOpen) return;
    this.#slaveOpen = false;
    closeSync(this.slave.fd);
  }

  /**
   * Relays between the caller's terminal and the command until the
   * command has exited and its output is flushed (the master reads EIO
   * once the last slave fd is closed and what was written before is read).
   * The caller's terminal (`input`, when given) is raw meanwhile and
   * restored on every way out.
   * Call once, after the command started; closes the slave once the
   * command has exited, and the master.
   */
  relay(o: RelayOptions): Promise<void> {
    if (this.#relaying) throw new RunError('the pty is relayed already');
    this.#relaying = relayPty(this, o);
    return this.#relaying;
  }

  /** Hands the master's fd over: the caller closes it from now on (relay() takes it this way). */
  takeMaster(): number {
    if (!this.#masterOwned) throw new RunError('the pty master is closed or taken');
    this.#masterOwned = false;
    return this.#master;
  }

  /** Closes what relay() has not taken over. Idempotent. */
  close(): void {
    this.closeSlave();
    if (this.#masterOwned) {
      this.#masterOwned = false;
      closeSync(this.#master);
    }
  }
}
