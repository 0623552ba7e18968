// What the broker (broker.ts, relay-call.ts) needs of the supervisor, and
// the calls of the relay as the CLI's parser hands them over.
import type { Credentials } from '../config/index.js';
import type { Recovered, Session, SourceEntry, WaitInfo } from '../sessions/index.js';
import type { BeginSpec } from './state.js';

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
