// The supervisor as a broker: it serves the calls of the relay (the small C
// `warden` its clients run, src/relay/warden.c) and starts their commands.
// A client passes its stdin, stdout and stderr, its cwd, argv and
// environment in one message (relay-wire.ts); the supervisor parses the
// argv as the CLI would, authorizes the client by the credentials the
// kernel recorded for the connection, takes the command's own lock fds and
// spawns it in the session (or, for `source`, in the source once the
// entry is its) as the client (or the `-u` user), with the client's fds
// as its stdio. The client forwards its signals and exits with
// the status sent back. Clients are ordinary users: everything they send is
// hostile input, and nothing they do may end or stall the supervisor.
import type { Socket } from 'node:net';
import { closeSync } from 'node:fs';
import { accessToRun, accessToSource, authorize, findAccount, type Access, type Account, type Credentials } from '../config/index.js';
import {
  assertRunnable,
  beginSession,
  endSession,
  enterSource,
  fromChildProcess,
  isTerminal,
  openSession,
  Pty,
  SessionBusyError,
  spawnInSession,
  spawnInSource,
  type SourceEntry,
  type Command,
  type CommandLocks,
  type CommandOptions,
  type PtySlave,
  type Recovered,
  type Session,
  type WaitInfo,
} from '../sessions/index.js';
import { describeHolders } from '../locks/index.js';
import { RequestAbortedError, SessionAccessError } from './errors.js';
import { assertSessionOwner } from './owner.js';
import { peerHungUp, socketFd } from './peercred.js';
import type { ReadableWaiter } from './readable.js';
import { exitFrame, fallbackFrame, outputFrame, RelayFrameParser, RelayRequestReader, sendTerminalFrame, type RelayRequest } from './relay-wire.js';
import type { BeginSpec } from './server.js';

/**
 * How a call was made: warden's command line (errors `warden: what: why`,
 * warden's exit codes) or schroot's through warden-schroot (errors `E: why`,
 * exit 1, as schroot reports its own failures); `notices` are lines the
 * parser had for stderr before anything ran (schroot's `W:`/`I:`).
 */
interface Style {
  style?: 'schroot' | undefined;
  notices?: string | undefined;
  /** schroot's -q: no lock-wait lines at all. */
  quiet?: boolean | undefined;
}

/** A call of the relay, as the CLI's parser (injected: the supervisor does not depend on the CLI) makes it. */
export type RelayedCall = (
  | { verb: 'fallback' }
  /** Output decided by the parser alone (help, version, a refused command line). */
  | { verb: 'text'; out: string; err: string; code: number }
  /** schroot's -l, -i, --config, --location: answered by the CLI's formatter (RelayCalls.schrootQuery). */
  | { verb: 'schroot-query'; call: unknown }
  | {
      verb: 'run';
      /** "run -s ID", "run -c NAME": what failed, for error lines. */
      describe: string;
      session?: string | undefined;
      chroot?: string | undefined;
      id?: string | undefined;
      user?: string | undefined;
      directory?: string | undefined;
      preserveEnvironment: boolean;
      command: string[];
      /** Seconds. */
      timeout?: number | undefined;
      wait?: boolean | undefined;
    }
  | {
      verb: 'source';
      /** "source -c NAME". */
      describe: string;
      chroot: string;
      user?: string | undefined;
      directory?: string | undefined;
      preserveEnvironment: boolean;
      command: string[];
      /** End the chroot's stale sessions first (root, source-root-users= and source-root-groups= only). */
      recoverStale: boolean;
      /** Seconds. */
      timeout?: number | undefined;
      wait?: boolean | undefined;
    }
  | {
      verb: 'recover';
      describe: string;
      id: string;
      /** End it instead of re-adopting it. */
      end: boolean;
      /** Empty: recover only (the supervisor holds it then). */
      command: string[];
      user?: string | undefined;
      directory?: string | undefined;
      preserveEnvironment: boolean;
      timeout?: number | undefined;
      wait?: boolean | undefined;
    }
  | { verb: 'begin'; describe: string; chroot: string; id?: string | undefined; timeout?: number | undefined; wait?: boolean | undefined }
  /** A persistent source session (schroot's `-b -c source:NAME`): the source entered, held until its end. */
  | { verb: 'source-begin'; describe: string; chroot: string; id?: string | undefined; timeout?: number | undefined; wait?: boolean | undefined }
  | { verb: 'end'; describe: string; id: string; wait?: boolean | undefined; force?: boolean | undefined; timeout?: number | undefined }
) &
  Style;

/** What the CLI layer lends the broker: its argument parser, its error lines and exit codes, its wait lines. */
export interface RelayCalls {
  /** Throws (a usage error) for argv the CLI would refuse; `cwd` is the client's (relative paths in argv). */
  parse(args: string[], cwd: string): RelayedCall;
  /** The error line (with its newline) and exit code the CLI would give for `e`; `own` is the call's own-failure code. */
  failure(describe: string, e: unknown, own: number, style?: 'schroot'): { text: string; code: number };
  /** What a schroot query prints (`call` is the parser's own), from the configuration, the state dir and the held source sessions. */
  schrootQuery(call: unknown, notices: string, sourceSessions: readonly SourceSessionFacts[]): { out: string; err: string; code: number };
  /** Reports lock waits that last (the CLI's rule: nothing for a wait under a second) as text for the client's stderr. */
  waitReporter(write: (text: string) => void): { onWait(info: WaitInfo): void; done(): void };
  /** What `warden recover -s` prints for a recovered session. */
  recoveredLine(r: Recovered): string;
}

/** A persistent source session as a query shows it. */
export interface SourceSessionFacts {
  id: string;
  chroot: string;
  ownerUid: number;
}

/** A persistent source session the supervisor holds: the entry (manage and source locks) and who began it. */
export interface SourceSession {
  id: string;
  entry: SourceEntry;
  owner: Credentials;
}

/** What the broker needs of the supervisor that runs it. */
export interface BrokerHost {
  readonly stateDir: string;
  readonly calls: RelayCalls;
  resolveChroot(name: string): BeginSpec;
  /** The supervisor's begin and end (persistent sessions it holds). */
  begin(call: Extract<RelayedCall, { verb: 'begin' }>, who: Credentials, signal: AbortSignal, hungUp: () => boolean, onWait: (i: WaitInfo) => void): Promise<{ id: string }>;
  end(call: Extract<RelayedCall, { verb: 'end' }>, who: Credentials, signal: AbortSignal, onWait: (i: WaitInfo) => void): Promise<void>;
  /** Takes over an automatic session whose end found holders left (background processes of its command). */
  hold(session: Session): void;
  /** Enters the source of `call.chroot` and holds it as a session until endSource (authorized by the host). */
  beginSource(call: Extract<RelayedCall, { verb: 'source-begin' }>, who: Credentials, signal: AbortSignal, onWait: (i: WaitInfo) => void): Promise<{ id: string }>;
  /** The persistent source session `id`, if the supervisor holds one. */
  sourceSession(id: string): SourceSession | undefined;
  /** Ends persistent source session `id` (its owner or root): the source is let go. */
  endSource(id: string, who: Credentials): void;
  sourceSessions(): SourceSessionFacts[];
  /** Recovers stale session `id` (recover's rules); a re-adopted one is held by the supervisor from then on. */
  recover(id: string, o: { end: boolean; signal: AbortSignal; timeout?: number | undefined; wait?: boolean | undefined; onWait: (i: WaitInfo) => void }): Promise<Recovered>;
  /** Whether the supervisor is stopping: commands are then left running, not hung up. */
  stopping(): boolean;
  log(line: string): void;
}

/** A client's command is hung up when it goes away, and killed this long after if still there. */
export const HANGUP_GRACE_MS = 2000;

/** Signals the relay forwards, and whether they go to the command's process group (as a terminal sends them). */
const FORWARDED: ReadonlyMap<number, { name: NodeJS.Signals; group: boolean }> = new Map([
  [1, { name: 'SIGHUP', group: false }],
  [2, { name: 'SIGINT', group: true }],
  [3, { name: 'SIGQUIT', group: true }],
  [15, { name: 'SIGTERM', group: false }],
  [18, { name: 'SIGCONT', group: true }],
  [20, { name: 'SIGTSTP', group: true }],
]);

/**
 * Serves one relay connection (`fd` is its socket, not read by Node yet):
 * reads the request, waiting for it on `waiter` at most `idleMs`, serves it,
 * and closes the connection. Never throws.
 */
export async function serveRelay(c: Socket, fd: number, who: Credentials, host: BrokerHost, waiter: ReadableWaiter, idleMs: number): Promise<void> {
  const gone = new AbortController();
  c.once('close', () => gone.abort(new Error('the client disconnected')));
  const reader = new RelayRequestReader(fd);
  let req: RelayRequest | undefined;
  try {
    for (;;) {
      const r = reader.read();
      if (r !== 'more') {
        req = r;
        break;
      }
      if (!(await waiter.wait(fd, idleMs, gone.signal))) {
        reader.close();
        c.destroy();
        return;
      }
    }
  } catch (e) {
    reader.close();
    host.log(`refused a relay request of uid ${who.uid}: ${(e as Error).message}`);
    send(c, 'e', `warden: the supervisor refused the request: ${(e as Error).message}\n`);
    send(c, 'X', 125);
    c.end();
    return;
  }
  try {
    await new Call(c, req, who, host, gone.signal).serve();
  } catch (e) {
    host.log(`internal error serving a relay call of uid ${who.uid}: ${(e as Error).stack ?? String(e)}`);
    c.destroy();
  } finally {
    for (const f of req.fds) closeQuiet(f);
  }
}

/**
 * Refuses a relay connection before reading its request: an error line and
 * exit `code` in the relay's frames, then the connection is closed. What
 * the client sent (and the fds in it) is read and dropped by Node, which
 * makes the kernel close those fds.
 */
export function refuseRelay(c: Socket, message: string, code: number): void {
  c.on('data', () => {});
  c.resume();
  send(c, 'e', `warden: ${message}\n`);
  send(c, 'X', code);
  c.end();
  const timer = setTimeout(() => c.destroy(), 250);
  timer.unref();
  c.once('close', () => clearTimeout(timer));
}

function send(c: Socket, type: 'o' | 'e' | 'X' | 'F', payload: string | number = ''): void {
  if (c.destroyed || !c.writable) return;
  const frame = type === 'X' ? exitFrame((payload as number) & 0xff) : type === 'F' ? fallbackFrame() : outputFrame(type === 'o' ? 1 : 2, payload as string);
  c.write(frame);
}

/** Waits until everything written to `c` has gone to the kernel (a terminal frame must come after it). */
function flushed(c: Socket): Promise<void> {
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

class Call {
  readonly #c: Socket;
  readonly #req: RelayRequest;
  readonly #who: Credentials;
  readonly #host: BrokerHost;
  /** The client went away. */
  readonly #gone: AbortSignal;
  /** The client went away, or was interrupted (its SIGINT, SIGTERM, SIGHUP or SIGQUIT) before its command started. */
  readonly #cancel = new AbortController();
  /** The command, once started: the client's signals go to it from then on. */
  #cmd: Command | undefined;
  readonly #parser = new RelayFrameParser();
  /** schroot's way of reporting failures, for a call of warden-schroot. */
  #style: 'schroot' | undefined;
  /** The call's lock-wait lines: ended when its waits are (the command starts, or the call finishes). */
  #waits: { onWait(info: WaitInfo): void; done(): void } | undefined;

  constructor(c: Socket, req: RelayRequest, who: Credentials, host: BrokerHost, gone: AbortSignal) {
    this.#c = c;
    this.#req = req;
    this.#who = who;
    this.#host = host;
    this.#gone = gone;
    if (gone.aborted) this.#cancel.abort(gone.reason);
    else gone.addEventListener('abort', () => this.#cancel.abort(gone.reason), { once: true });
  }

  /** The client's frames (its signals) from now on, read by Node: the request with its fds has been read. */
  #listen(): void {
    this.#c.on('data', (chunk: Buffer) => {
      let frames;
      try {
        frames = this.#parser.push(chunk);
      } catch {
        this.#c.destroy(); // a client speaking garbage is a client gone
        return;
      }
      for (const f of frames) this.#signal(f.signo);
    });
    this.#c.resume();
  }

  #signal(signo: number): void {
    const sig = FORWARDED.get(signo);
    if (!sig) return;
    if (this.#cmd) this.#cmd.kill(sig.name, sig.group);
    else if (sig.name !== 'SIGCONT' && sig.name !== 'SIGTSTP') this.#cancel.abort(new RequestAbortedError('the call', new Error(`interrupted by ${sig.name}`)));
  }

  async serve(): Promise<void> {
    const { calls } = this.#host;
    this.#listen();
    let call: RelayedCall;
    try {
      call = calls.parse(this.#req.args, this.#req.cwd);
    } catch (e) {
      return this.#finish(calls.failure('usage', e, 2));
    }
    if (call.verb === 'fallback') {
      send(this.#c, 'F');
      this.#c.end();
      return;
    }
    if (call.verb === 'text' || call.verb === 'schroot-query') {
      let r: { out: string; err: string; code: number };
      try {
        r = call.verb === 'text' ? call : calls.schrootQuery(call.call, call.notices ?? '', this.#host.sourceSessions());
      } catch (e) {
        r = { out: '', err: calls.failure('', e, 1, 'schroot').text, code: 1 };
      }
      if (r.out) send(this.#c, 'o', r.out);
      return this.#finish({ text: r.err, code: r.code });
    }
    if (call.notices) send(this.#c, 'e', call.notices);
    this.#style = call.style;
    const waits = call.quiet ? { onWait() {}, done() {} } : calls.waitReporter((text) => send(this.#c, 'e', text));
    this.#waits = waits;
    const onWait = (info: WaitInfo) => waits.onWait(info);
    const hungUp = () => peerHungUp(this.#c);
    try {
      if (call.verb === 'begin') {
        const { id } = await this.#host.begin(call, this.#who, this.#cancel.signal, hungUp, onWait);
        send(this.#c, 'o', `${id}\n`);
        return this.#finish({ text: '', code: 0 });
      }
      if (call.verb === 'source-begin') {
        const { id } = await this.#host.beginSource(call, this.#who, this.#cancel.signal, onWait);
        send(this.#c, 'o', `${id}\n`);
        return this.#finish({ text: '', code: 0 });
      }
      if (call.verb === 'end') {
        if (this.#host.sourceSession(call.id)) this.#host.endSource(call.id, this.#who);
        else await this.#host.end(call, this.#who, this.#cancel.signal, onWait);
        return this.#finish({ text: '', code: 0 });
      }
      if (call.verb === 'source') return this.#finish({ text: '', code: await this.#source(call, onWait) });
      if (call.verb === 'recover') return this.#finish({ text: '', code: await this.#recover(call, onWait) });
      return this.#finish({ text: '', code: await this.#run(call, onWait) });
    } catch (e) {
      const own = call.verb === 'run' || call.verb === 'source' || (call.verb === 'recover' && call.command.length > 0) ? 125 : 1;
      return this.#finish(calls.failure(call.describe, e, own, call.style));
    }
  }

  #finish(r: { text: string; code: number }): void {
    this.#waits?.done();
    if (r.text) send(this.#c, 'e', r.text);
    send(this.#c, 'X', r.code);
    this.#c.end();
  }

  /** The account the client is: its passwd entry, or a bare uid. */
  #caller(): Account {
    const { uid, gid } = this.#who;
    return findAccount(String(uid)) ?? { name: String(uid), uid, gid, home: '/', shell: '/bin/sh' };
  }

  /** Refuses a client the chroot does not admit to what `needs` names (exit 8, naming the rule). Root always may. */
  #authorize(chroot: string, needs: (who: Credentials) => Access[]): BeginSpec {
    const spec = this.#host.resolveChroot(chroot);
    if (this.#who.uid !== 0) for (const access of needs(this.#who)) authorize(spec.chroot, this.#who, access);
    return spec;
  }

  /** What spawning the command of `call` needs besides its pty: the client's fds, cwd, environment and account. */
  #commandOptions(call: { command: string[]; user?: string | undefined; directory?: string | undefined; preserveEnvironment: boolean }): CommandOptions {
    return {
      command: call.command,
      user: call.user,
      directory: call.directory,
      preserveEnvironment: call.preserveEnvironment,
      env: environment(this.#req.env),
      cwd: this.#req.cwd,
      caller: this.#caller(),
      stdio: this.#req.fds,
    };
  }

  async #run(call: Extract<RelayedCall, { verb: 'run' }>, onWait: (i: WaitInfo) => void): Promise<number> {
    if (call.session !== undefined && this.#host.sourceSession(call.session)) return this.#inSourceSession(this.#host.sourceSession(call.session)!, call);
    if (call.session !== undefined) {
      const id = call.session;
      const before = openSession(this.#host.stateDir, id);
      this.#authorize(before.state.chroot, (who) => accessToRun(who, call.user));
      assertSessionOwner(before.state, this.#who, 'run in');
      const locks = await before.commandLocks();
      let session: Session;
      try {
        // Read again under our lock: an end or recover may have changed it.
        session = openSession(this.#host.stateDir, id);
        assertRunnable(session);
      } catch (e) {
        locks.close();
        throw e;
      }
      return this.#command(this.#inSession(session, locks, call));
    }
    const spec = this.#authorize(call.chroot!, (who) => accessToRun(who, call.user));
    const session = await beginSession({
      stateDir: this.#host.stateDir,
      chroot: spec.chroot,
      id: call.id,
      hooksDir: spec.hooksDir,
      hookTimeoutMs: spec.hookTimeoutMs,
      owner: { uid: this.#who.uid, gid: this.#who.gid },
      signal: this.#cancel.signal,
      timeout: call.timeout === undefined ? undefined : call.timeout * 1000,
      wait: call.wait,
      onWait,
    });
    let code: number;
    try {
      code = await this.#command(this.#inSession(session, await session.commandLocks(), call));
    } catch (e) {
      // The command never ran: say so, then still end the session.
      const f = this.#host.calls.failure(call.describe, e, 125, this.#style);
      send(this.#c, 'e', f.text);
      code = f.code;
    }
    try {
      await endSession(session, { offThread: true });
    } catch (e) {
      if (e instanceof SessionBusyError) {
        // Background processes of the command hold it: the supervisor keeps it for `warden end`.
        this.#host.hold(session);
        send(this.#c, 'e', `warden: session ${session.id} is still held (${describeHolders(e.holders)}); it was left for \`warden end -s ${session.id}\`\n`);
      } else {
        session.release();
        send(this.#c, 'e', this.#host.calls.failure(`end of session ${session.id}`, e, 125, this.#style).text);
        if (code === 0) code = 125;
      }
    }
    return code;
  }

  /**
   * recover -s ID [--end] [-- CMD]: the owner of a stale session (or root)
   * re-adopts it, which the supervisor then holds as it holds a begun one,
   * or ends it; with CMD the command then runs in it as with `run -s`. A
   * session something holds (the supervisor re-adopts stale sessions
   * itself within a probe interval) is refused as the CLI refuses it
   * (SessionActiveError, exit 5).
   */
  async #recover(call: Extract<RelayedCall, { verb: 'recover' }>, onWait: (i: WaitInfo) => void): Promise<number> {
    const before = openSession(this.#host.stateDir, call.id);
    this.#authorize(before.state.chroot, (who) => accessToRun(who, call.user));
    assertSessionOwner(before.state, this.#who, 'recover');
    const r = await this.#host.recover(
      call.id,
      { end: call.end, signal: this.#cancel.signal, timeout: call.timeout === undefined ? undefined : call.timeout * 1000, wait: call.wait, onWait },
    );
    // With a command, stdout is the command's.
    send(this.#c, call.command.length > 0 ? 'e' : 'o', this.#host.calls.recoveredLine(r));
    if (r.action === 'ended' || call.command.length === 0) return 0;
    const session = r.session;
    const locks = await session.commandLocks();
    return this.#command(this.#inSession(session, locks, call));
  }

  /**
   * `-r` in a persistent source session: the command runs chrooted in the
   * source itself, with the entry's lock fds (in OFD mode it keeps the
   * source entered while it runs, even past the session's end). Its owner
   * or root; as another user only with source-root-users=/-groups=.
   */
  async #inSourceSession(src: SourceSession, call: Extract<RelayedCall, { verb: 'run' }>): Promise<number> {
    if (this.#who.uid !== 0 && this.#who.uid !== src.owner.uid) throw new SessionAccessError(src.id, this.#who.uid, src.owner.uid, 'run in');
    this.#authorize(src.entry.chroot, (who) => accessToSource(who, { user: call.user }));
    // The entry stays the supervisor's: the command gets copies of its fds, ours stay open until the session ends.
    const keep: CommandLocks = { fds: [], inherited: true, close() {} };
    return this.#command(async (terminal) => {
      this.#cancel.signal.throwIfAborted();
      return { cmd: spawnInSource(src.entry, { ...this.#commandOptions(call), terminal }), locks: keep };
    });
  }

  /** Starts the command of `call` in `session` holding `locks`: a #command start, which owns `locks` until it resolves. */
  #inSession(session: Session, locks: CommandLocks, call: Extract<RelayedCall, { verb: 'run' | 'recover' }>): CommandStart {
    return async (terminal) => {
      try {
        this.#cancel.signal.throwIfAborted();
        return { cmd: spawnInSession(session, locks, { ...this.#commandOptions(call), terminal }), locks };
      } catch (e) {
        locks.close();
        throw e;
      }
    };
  }

  /**
   * source -c: the exclusive entry (DESIGN.md, "Locks") with the command
   * started behind its gate while the entry waits, let go once the source
   * is the entry's, and run as #command runs any other. The client's
   * SIGINT, SIGTERM or SIGHUP, or its going away, while the entry waits
   * cancels it, leaving nothing held (exit 130). --recover-stale ends
   * sessions of any owner, deleting what was written in them: only root
   * and source-root-users= or source-root-groups= may (exit 8 otherwise).
   */
  async #source(call: Extract<RelayedCall, { verb: 'source' }>, onWait: (i: WaitInfo) => void): Promise<number> {
    const spec = this.#authorize(call.chroot, (who) => accessToSource(who, call));
    return this.#command(async (terminal) => {
      const entry = await enterSource({
        stateDir: this.#host.stateDir,
        chroot: spec.chroot,
        recoverStale: call.recoverStale,
        signal: this.#cancel.signal,
        timeout: call.timeout === undefined ? undefined : call.timeout * 1000,
        wait: call.wait,
        onWait,
        command: { ...this.#commandOptions(call), terminal },
      });
      for (const id of entry.recovered) send(this.#c, 'e', `warden: ended stale session ${id} before entering the source\n`);
      return { cmd: fromChildProcess(entry.child!), locks: entry };
    });
  }

  /**
   * Starts the command through `start` with the client's fds (and a pty of
   * its own when any of them is a terminal, whose master goes to the
   * client once the command is started), forwards the client's signals,
   * and resolves to its status; the locks `start` hands over are closed
   * once it has exited. A client that goes away gets its command hung up,
   * then killed.
   */
  async #command(start: CommandStart): Promise<number> {
    const [i, o, e] = this.#req.fds;
    const tty = { stdin: isTerminal(i), stdout: isTerminal(o), stderr: isTerminal(e) };
    let pty: Pty | undefined;
    let cmd: Command;
    let locks: CommandLocks;
    try {
      if (tty.stdin || tty.stdout || tty.stderr) pty = Pty.open(tty.stdin ? i : tty.stdout ? o : e, tty);
      ({ cmd, locks } = await start(pty?.slave));
      // Its waits are over: a wait line not shown yet is not shown over the command's output.
      this.#waits?.done();
    } catch (err) {
      pty?.close();
      throw err;
    }
    // In OFD mode the command holds the locks through its own copies.
    if (locks.inherited) void cmd.spawned.then(() => locks.close());
    const c = this.#c;
    this.#cmd = cmd;
    let killer: NodeJS.Timeout | undefined;
    const onGone = () => {
      if (this.#host.stopping()) return; // the command keeps running, holding its session
      cmd.kill('SIGHUP', true);
      killer = setTimeout(() => cmd.kill('SIGKILL', true), HANGUP_GRACE_MS);
    };
    if (this.#gone.aborted) onGone();
    else this.#gone.addEventListener('abort', onGone, { once: true });
    try {
      if (pty) {
        // The command has its copy of the slave; the master goes to the client, which relays its terminal.
        pty.closeSlave();
        await flushed(c);
        const input = tty.stdin ? 0 : null;
        if (!this.#gone.aborted) {
          const master = pty.takeMaster();
          try {
            sendTerminalFrame(socketFd(c), master, { input, output: tty.stdout || !tty.stderr ? 1 : 2, size: tty.stdin ? 0 : tty.stdout ? 1 : 2 });
          } catch (err) {
            this.#host.log(`could not pass a pty to uid ${this.#who.uid}: ${(err as Error).message}; hanging its command up`);
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
      this.#gone.removeEventListener('abort', onGone);
      this.#cmd = undefined;
      locks.close();
    }
  }
}

/**
 * Starts a client's command with `terminal` (the slave of its pty, if it
 * gets one) and hands over the locks it runs under. Until it resolves it
 * owns what it took: on failure it has released it.
 */
type CommandStart = (terminal: PtySlave | undefined) => Promise<{ cmd: Command; locks: CommandLocks }>;

/** `KEY=VALUE` strings as an environment (a string without '=' is dropped, as getenv would never see it). */
function environment(strings: readonly string[]): Record<string, string> {
  const env: Record<string, string> = {};
  for (const s of strings) {
    const eq = s.indexOf('=');
    if (eq > 0) env[s.slice(0, eq)] = s.slice(eq + 1);
  }
  return env;
}

function closeQuiet(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // closed already
  }
}
