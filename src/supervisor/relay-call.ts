// One relayed call (broker.ts accepts it): parsed as the CLI would, the
// client authorized by its credentials, then begin, end, run, recover or
// source done for it, its command run by relay-command.ts.
import type { Socket } from 'node:net';
import { accessToRun, accessToSource, authorize, type Access, type Credentials } from '../config/index.js';
import {
  assertRunnable,
  beginSession,
  endSession,
  enterSource,
  fromChildProcess,
  openSession,
  SessionBusyError,
  spawnInSession,
  spawnInSource,
  type Command,
  type CommandLocks,
  type CommandOptions,
  type Session,
  type WaitInfo,
} from '../sessions/index.js';
import { describeHolders } from '../locks/index.js';
import type { BrokerHost, RelayedCall, SourceSession } from './broker-host.js';
import { RequestAbortedError, SessionAccessError } from './errors.js';
import { assertSessionOwner } from './owner.js';
import { peerHungUp } from './peercred.js';
import { clientCommandOptions, type ClientCommand } from './relay-client.js';
import { FORWARDED, runClientCommand, send, type CommandStart } from './relay-command.js';
import { RelayFrameParser, type RelayRequest } from './relay-wire.js';
import type { BeginSpec } from './state.js';

export class Call {
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

  /** Refuses a client the chroot does not admit to what `needs` names (exit 8, naming the rule). Root always may. */
  #authorize(chroot: string, needs: (who: Credentials) => Access[]): BeginSpec {
    const spec = this.#host.resolveChroot(chroot);
    if (this.#who.uid !== 0) for (const access of needs(this.#who)) authorize(spec.chroot, this.#who, access);
    return spec;
  }

  #commandOptions(call: ClientCommand): CommandOptions {
    return clientCommandOptions(this.#req, this.#who, call);
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

  #command(start: CommandStart): Promise<number> {
    return runClientCommand(
      {
        c: this.#c,
        fds: this.#req.fds,
        who: this.#who,
        host: this.#host,
        gone: this.#gone,
        waitsDone: () => this.#waits?.done(),
        started: (cmd) => (this.#cmd = cmd),
      },
      start,
    );
  }
}
