// A session as one process holds it: the liveness byte and the source lock,
// each through an open file description of its own, plus the state read
// from state.json. The supervisor, `warden run` and the library hold
// sessions through this same object.
import { lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { UnionError, type UnionType } from '../union/index.js';
import type { FileLock } from '../locks/index.js';
import type { HookVars } from '../hooks/index.js';
import { SessionBusyError, SessionNeedsRecoveryError } from './errors.js';
import { takeLivenessShared, takeRegistrationShared, takeSourceShared } from './locks.js';
import { RegistrationMissingError, type RegistrationHandle } from './registry.js';
import { SESSION_LAYOUT, type SessionLayout, type SessionState } from './state.js';

export interface SessionPaths {
  dir: string;
  upper: string;
  work: string;
  /** Where the session's view is mounted (CHROOT_PATH). */
  root: string;
  hooksLog: string;
}

/** `upper` is the overlay's upper layer: `<dir>/upper/fs` (layout 2), or `<dir>/upper` for sessions begun before. */
export function sessionPaths(dir: string, layout: SessionLayout = SESSION_LAYOUT): SessionPaths {
  const upper = layout === 1 ? join(dir, 'upper') : join(dir, UPPER_DIR, UPPER_LAYER);
  return { dir, upper, work: join(dir, 'work'), root: join(dir, 'root'), hooksLog: join(dir, 'hooks.log') };
}

/** The 0700 directory that keeps the upper layer out of other users' reach, and the layer's name in it. */
export const UPPER_DIR = 'upper';
export const UPPER_LAYER = 'fs';

/**
 * Modes of what a session dir holds (DESIGN.md, "Files"). The session dir
 * is traversable so that `root`, the session's view, can be reached by
 * name (as schroot's mount locations can); the layers are root's alone;
 * the upper layer's top and `root` are 0755, the mode of a chroot's `/`.
 */
export const MODES = { sessionDir: 0o711, upperDir: 0o700, upperLayer: 0o755, work: 0o700, root: 0o755 } as const;

/**
 * Creates the directories a session of `unionType` mounts with, where
 * missing, each with its mode; never through a symlink (mkdir does not
 * follow one, and an existing entry must be a real directory).
 */
export function makeSessionDirs(paths: SessionPaths, unionType: UnionType, layout: SessionLayout): void {
  const dirs: [string, number][] =
    unionType !== 'overlay' ? [[paths.root, MODES.root]]
    : layout === 1 ? [[paths.upper, MODES.upperLayer], [paths.work, MODES.work], [paths.root, MODES.root]]
    : [[join(paths.dir, UPPER_DIR), MODES.upperDir], [paths.upper, MODES.upperLayer], [paths.work, MODES.work], [paths.root, MODES.root]];
  for (const [d, mode] of dirs) {
    try {
      mkdirSync(d, { mode });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (!lstatSync(d).isDirectory()) throw new UnionError(d, 'is not a directory (a symbolic link?): refusing to mount with it');
    }
  }
}

/** The environment of this session's hooks (DESIGN.md, "Hooks"). */
export function hookVars(state: SessionState, dir: string, stateDir: string, recover = false): HookVars {
  return {
    chrootName: state.chroot,
    chrootDirectory: state.source,
    chrootPath: join(dir, 'root'),
    sessionId: state.id,
    unionType: state.unionType,
    overlayDirectory: dir,
    stateDir,
    recover,
  };
}

/** Lock fds for a command started in a session: separate open file descriptions, inherited by the command. */
export interface CommandLocks {
  /** The fds, in the order they should appear in the child (after stdio): liveness, source, and a shared chroot's registration. */
  fds: number[];
  /**
   * True when the child keeps the locks through the inherited fds (OFD
   * locks): the starter may close its copies as soon as the child runs.
   * False in POSIX mode, where the starter must hold them until the end.
   */
  inherited: boolean;
  /**
   * A shared chroot's (build farms): closing a copy is a round trip to the
   * cluster filesystem (FUSE flush; for an entry, its manage.owner), which
   * would compete with the command's own start from the same mount, and an
   * entry's owner record must name it for as long as it runs: the starter
   * keeps its copies until the command exits.
   */
  shared?: boolean;
  /** Closes this process's copies; the child's inherited ones (OFD mode) keep the locks. Idempotent. */
  close(): void;
}

/** What a process holds of a session; the registration for a shared chroot only. */
export interface SessionLocks {
  liveness?: FileLock | undefined;
  source?: FileLock | undefined;
  registration?: RegistrationHandle | undefined;
}
let setLocksOf: (s: Session, locks: SessionLocks) => void;
let setStateOf: (s: Session, state: SessionState) => void;

/**
 * Hands over (or drops) the locks `s` owns, after end, begin or recover
 * steps (an absent one is dropped). For src/sessions only:
 * sessions/index.ts does not export it.
 */
export function setSessionLocks(s: Session, locks: SessionLocks): void {
  setLocksOf(s, locks);
}

/** The state of `s` after a rewrite of its state.json. For src/sessions only. */
export function setSessionState(s: Session, state: SessionState): void {
  setStateOf(s, state);
}

export class Session {
  readonly stateDir: string;
  readonly paths: SessionPaths;
  #state: SessionState;
  #liveness: FileLock | undefined;
  #source: FileLock | undefined;
  #registration: RegistrationHandle | undefined;

  /** Internal: built by beginSession / openSession. */
  constructor(stateDir: string, dir: string, state: SessionState, locks: SessionLocks = {}) {
    this.stateDir = stateDir;
    this.paths = sessionPaths(dir, state.layout);
    this.#state = state;
    this.#liveness = locks.liveness;
    this.#source = locks.source;
    this.#registration = locks.registration;
  }

  get id(): string {
    return this.#state.id;
  }

  get state(): SessionState {
    return this.#state;
  }

  /** Whether this object holds the session (liveness shared or exclusive). */
  get held(): boolean {
    return this.#liveness?.held !== undefined;
  }

  /** Internal, for end/recover: the locks this object owns. */
  get locks(): SessionLocks {
    return { liveness: this.#liveness, source: this.#source, registration: this.#registration };
  }

  static {
    setLocksOf = (s, locks) => {
      s.#liveness = locks.liveness;
      s.#source = locks.source;
      s.#registration = locks.registration;
    };
    setStateOf = (s, state) => {
      s.#state = state;
    };
  }

  hookVars(recover = false): HookVars {
    return hookVars(this.#state, this.paths.dir, this.stateDir, recover);
  }

  /**
   * New holders for a command: liveness SH (non-blocking: failing means the
   * session is being ended) and source SH, on fresh open file descriptions
   * (DESIGN.md, "Rules": never the ones end converts).
   */
  async commandLocks(): Promise<CommandLocks> {
    const liveness = takeLivenessShared(this.paths.dir);
    if (!liveness) {
      throw new SessionBusyError(this.id, 'it is being ended or recovered', []);
    }
    let source: FileLock | undefined;
    let registration: FileLock | undefined;
    try {
      source = await takeSourceShared(this.#state.source, { wait: false });
      registration = this.#takeRegistration();
    } catch (e) {
      source?.close();
      liveness.close();
      throw e;
    }
    const locks = registration ? [liveness, source, registration] : [liveness, source];
    let closed = false;
    return {
      fds: locks.map((l) => l.fd),
      inherited: liveness.mode === 'ofd',
      shared: registration !== undefined,
      close() {
        if (closed) return;
        closed = true;
        for (const l of locks) l.close();
      },
    };
  }

  /**
   * A shared chroot's session: registration SH for a new holder, so that
   * every host sees the session held for as long as the command runs.
   * undefined for a session of this host alone.
   */
  #takeRegistration(): FileLock | undefined {
    const shared = this.#state.shared;
    if (!shared) return undefined;
    let lock: FileLock | undefined;
    try {
      lock = takeRegistrationShared(shared, this.id);
    } catch (e) {
      if (e instanceof RegistrationMissingError) throw new SessionNeedsRecoveryError(this.id, 'has no registration in the shared dir (a crash, or its host was forgotten)');
      throw e;
    }
    if (!lock) throw new SessionBusyError(this.id, 'it is being ended or recovered (its registration is held exclusively)', []);
    return lock;
  }

  /** Stops holding the session without ending it (it goes stale unless something else holds it). Idempotent. */
  release(): void {
    this.#registration?.close();
    this.#liveness?.close();
    this.#source?.close();
    this.#registration = undefined;
    this.#liveness = undefined;
    this.#source = undefined;
  }

  [Symbol.dispose](): void {
    this.release();
  }
}
