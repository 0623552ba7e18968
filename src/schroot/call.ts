// What parseSchrootArgs (args.ts) makes of a schroot command line: the
// action, the chroots it applies to, and how a command runs.
import type { ChrootRef } from './names.js';

export type SchrootAction =
  | 'automatic-session'
  | 'begin-session'
  | 'recover-session'
  | 'run-session'
  | 'end-session'
  | 'list'
  | 'info'
  | 'config'
  | 'location'
  | 'help'
  | 'version';

/** A warning schroot prints and carries on after (`W: ...`, then `I: ...`). */
export interface SchrootNotice {
  level: 'W' | 'I';
  text: string;
}

/** Which chroots an action applies to: those named (in order), and the --all-* sets. */
export interface Selection {
  chroots: ChrootRef[];
  allChroots: boolean;
  allSourceChroots: boolean;
  allSessions: boolean;
  /** --exclude-aliases: -l lists each chroot once, by its name. */
  excludeAliases: boolean;
}

export interface Common {
  quiet: boolean;
  verbose: boolean;
  /** Warnings schroot prints while parsing; the caller prints them (unless it chooses not to under -q, as schroot does not). */
  notices: SchrootNotice[];
}

/** How a command is run in a chroot or session. */
export interface RunOptions {
  user: string | undefined;
  directory: string | undefined;
  preserveEnvironment: boolean;
  /** Empty: a login shell. */
  command: string[];
}

export type SchrootCall =
  | (Common & { action: 'help' | 'version' })
  | (Common & { action: 'list' | 'info' | 'config' | 'location'; selection: Selection })
  /** Begin, run, end. Named chroots are looked up in the `chroot` namespace; `default` when none was named. */
  | (Common & RunOptions & { action: 'automatic-session'; selection: Selection })
  /** Exactly one chroot; prints the session id. */
  | (Common & RunOptions & { action: 'begin-session'; chroot: ChrootRef; sessionName: string | undefined })
  /** Named chroots are looked up in the `session` namespace. */
  | (Common & RunOptions & { action: 'run-session'; selection: Selection })
  | (Common & { action: 'end-session' | 'recover-session'; selection: Selection; force: boolean });
