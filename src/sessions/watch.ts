// Live session events from the state dir. chokidar watches the watch's
// doorbell, `<state-dir>/.manage/changes/` (watch-bell.ts): begin and end
// make and remove a marker named after the session there, right after its
// dir appeared under its id or left it, and chokidar's `raw` event names
// the marker, so the watch looks at that one session. A probe of the
// liveness locks reports what no file event shows (a session goes stale
// when its holders die, and only its lock changes), re-reads a session's
// state.json when its inode, size or times changed (recover re-adopting a
// stale session, a status change, a file gone corrupt), and lists the
// state dir's names every LIST_MS, for what rang no doorbell (a dir made
// or removed by hand, an older warden, an overflowed inotify queue).
//
// Every event comes from comparing what the entry is now with what it was
// last seen as (`#reconcile`), so events that arrive twice, late or out of
// order cannot produce a wrong one.
//
// Why the doorbell and not the state dir (chokidar 5.0.0, measured with
// bench/watch.ts): on every event in a directory it watches, chokidar lists
// the directory again and lstat()s every entry (handler.js, _handleRead;
// its 'readdir' throttle ends with each listing, `ignored` filters after
// the lstat, and no public option skips the listing). Watching the state
// dir with 1,000 sessions, that cost six times the CPU of the begins and
// ends themselves; polling (usePolling) costs more, per change, than
// listing. The doorbell is empty between rings, so each listing is one
// readdir. Session dirs are not watched either (a listing per line a hook
// logs there).
//
// Closing safely: chokidar's add() sets `closed = false` unconditionally,
// and its "watch for the return of the only watched file" path calls add()
// from an event (paulmillr/chokidar#1482), so an event during close() could
// revive the watcher. Here nothing is watched but one directory (the
// markers are `ignored`: no file is ever watched, so that path cannot run),
// this class is the only owner of the FSWatcher and never calls add()
// after construction, the FSWatcher's own add() is disabled before it is
// closed, and every handler returns at once once close() has begun.
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { openLiveness } from './locks.js';
import { bellId, ensureBellDir } from './watch-bell.js';
import { STATE_FILE, type SessionStatus } from './state.js';
import { inspectEntry, isSessionName, listSessions, type SessionEntry } from './store.js';

export type SessionEventName = 'begun' | 'ended' | 'stale' | 'recovered' | 'corrupt';

export interface SessionEvent {
  event: SessionEventName;
  /** The entry's name (a session id unless the event is `corrupt`). */
  id: string;
  chroot?: string;
  /** The status state.json records (setting-up, active, ending). */
  status?: SessionStatus;
  /** Why the entry is corrupt. */
  reason?: string;
  /** ISO time the change was seen. */
  at: string;
}

export interface WatchOptions {
  /** How often the liveness locks of known sessions are probed (default 500 ms). */
  probeMs?: number;
  onEvent: (event: SessionEvent) => void;
  /**
   * Sessions the caller holds itself: active by definition, so neither
   * probed nor inspected (in POSIX lock mode every open of their lock file
   * would park an fd until the caller lets go: a probe every interval would
   * leak one per tick). Their removal is still reported.
   */
  heldByCaller?: (id: string) => boolean;
  /**
   * How often the state dir's names are listed, for sessions whose change
   * rang no doorbell (made or removed by hand, by an older warden; default
   * 5,000 ms).
   */
  listMs?: number;
  /** Errors of the watcher or of a probe; the watch goes on. Default: ignored. */
  onError?: (error: Error) => void;
}

export interface SessionWatch {
  /** Resolves once changes are being watched (rejects if the state dir cannot be watched). */
  ready: Promise<void>;
  /** Stops watching; idempotent, returns the same promise every time. */
  close(): Promise<void>;
}

export const DEFAULT_PROBE_MS = 500;
/** How often the probe lists the state dir's names (WatchOptions.listMs). */
const LIST_MS = 5_000;
/** Sessions probed between two turns of the event loop (see #probe). */
const PROBE_SLICE = 50;

/** What an entry was last seen as. */
interface Known {
  kind: 'active' | 'stale' | 'corrupt';
  chroot?: string;
  status?: SessionStatus;
  updatedAt?: string;
  /** state.json's inode, size and times when last read (stateSig). */
  sig?: string;
}

/**
 * Watches `stateDir` and calls `onEvent` for each change from the moment it
 * starts: `begun` (a session dir appeared), `ended` (it is gone), `stale`
 * (nothing holds it any more), `recovered` (a stale session is held again,
 * or recover rewrote its state.json), `corrupt` (an entry that cannot be a
 * session, still so one probe interval later: a dir being removed by `end`
 * looks corrupt for a moment and must not be reported).
 */
export function watchSessions(stateDir: string, opts: WatchOptions): SessionWatch {
  return new SessionWatcher(stateDir, opts).facade();
}

class SessionWatcher {
  readonly #dir: string;
  readonly #probeMs: number;
  readonly #listMs: number;
  readonly #onEvent: WatchOptions['onEvent'];
  readonly #onError: NonNullable<WatchOptions['onError']>;
  readonly #heldByCaller: (id: string) => boolean;
  readonly #known = new Map<string, Known>();
  /** Entries seen corrupt but not reported yet: when first seen. */
  readonly #pending = new Map<string, number>();
  /** chokidar on the state dir (depth 0); this class is its only owner. */
  #fsw: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** A probe run is under way (it goes on across setImmediate slices). */
  #probing = false;
  /** Markers whose creation was seen, not their removal yet (#onBell). */
  readonly #rung = new Set<string>();
  /** When the probe last listed the state dir's names. */
  #listedAt = 0;
  /** Set the moment close() is called: every handler returns at once from then on. */
  #closed = false;
  #closing: Promise<void> | undefined;
  #ready: Promise<void>;
  /** Ends a start still waiting for chokidar's ready (close() called meanwhile). */
  #abandonStart: (() => void) | undefined;

  constructor(stateDir: string, opts: WatchOptions) {
    this.#dir = stateDir;
    this.#probeMs = opts.probeMs ?? DEFAULT_PROBE_MS;
    this.#listMs = opts.listMs ?? LIST_MS;
    this.#onEvent = opts.onEvent;
    this.#onError = opts.onError ?? (() => {});
    this.#heldByCaller = opts.heldByCaller ?? (() => false);
    this.#ready = this.#start();
    // A failed start is the caller's to see through `ready`; no unhandled rejection meanwhile.
    this.#ready.catch(() => {});
  }

  facade(): SessionWatch {
    return { ready: this.#ready, close: () => this.close() };
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      clearInterval(this.#timer);
      this.#timer = undefined;
      this.#abandonStart?.();
      const fsw = this.#fsw;
      this.#fsw = undefined;
      if (fsw) await closeWatcher(fsw);
      await this.#ready.catch(() => {});
    })();
    return this.#closing;
  }

  async #start(): Promise<void> {
    // What is there now is the starting point: no events for it.
    for (const e of listSessions(this.#dir)) this.#known.set(e.id, knownOf(e));
    // A watch closed as soon as it was made never watches.
    await null;
    if (this.#closed) return;
    // chokidar's ready comes after its first listing; a missing or unreadable
    // state dir is an error, not a ready watch of nothing.
    lstatSync(this.#dir);
    const bell = ensureBellDir(this.#dir);
    if (!lstatSync(bell).isDirectory()) throw new Error(`${bell}: not a directory`);
    const fsw = chokidarWatch(bell, {
      depth: 0,
      ignoreInitial: true,
      persistent: true,
      followSymlinks: false,
      // Its atomic mode holds back unlink events for 100 ms and ignores dot entries; nothing here needs it.
      atomic: false,
      // Markers are never tracked: no addDir/unlinkDir, and no watch on any
      // entry (the revival path of #1482 needs a watched file). Its raw
      // event names them all the same.
      ignored: (path: string) => path !== bell,
    });
    this.#fsw = fsw;
    fsw.on('raw', (_event: string, name: string | null) => this.#onBell(name));
    fsw.on('error', (e: unknown) => {
      if (!this.#closed) this.#onError(e instanceof Error ? e : new Error(String(e)));
    });
    // close() during the first listing took the FSWatcher and closes it; ready resolves.
    await new Promise<void>((resolve) => {
      this.#abandonStart = resolve;
      fsw.once('ready', resolve);
    });
    this.#abandonStart = undefined;
    if (this.#closed) return;
    // Whatever changed between the listing and the watch being in place.
    this.#reconcileAll();
    this.#timer = setInterval(() => this.#probe(), this.#probeMs);
  }

  /** A marker came or went in the doorbell (watch-bell.ts): its session changed. */
  #onBell(name: string | null): void {
    if (this.#closed) return;
    if (name === null || name === '') {
      // The kernel did not say which entry: every one is looked at.
      try {
        this.#reconcileAll();
      } catch (e) {
        this.#onError(e as Error);
      }
      return;
    }
    const id = bellId(name);
    if (id === undefined) return;
    // Its removal, the second event of one ring: nothing new to look at.
    if (this.#rung.delete(name)) return;
    this.#rung.add(name);
    this.#onName(id);
  }

  /** An entry of the state dir was created, renamed or removed. */
  #onName(name: string): void {
    if (this.#closed) return;
    if (isSessionName(name)) this.#reconcileOrReport(name);
  }

  /** #reconcile, its failure reported through onError: the watch goes on. */
  #reconcileOrReport(id: string): void {
    try {
      this.#reconcile(id);
    } catch (e) {
      this.#onError(e as Error);
    }
  }

  #reconcileAll(): void {
    for (const id of new Set([...this.#known.keys(), ...this.#names()].sort())) this.#reconcile(id);
  }

  /** The session names in the state dir now (readdir, nothing stat'ed). */
  #names(): string[] {
    try {
      return readdirSync(this.#dir).filter(isSessionName);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      return [];
    }
  }

  /** Compares entry `id` as it is now with what it was; emits what changed. */
  #reconcile(id: string): void {
    const prev = this.#known.get(id);
    const st = entryStat(join(this.#dir, id));
    if (st === undefined) {
      this.#pending.delete(id);
      if (!prev) return;
      this.#known.delete(id);
      this.#emit({ event: 'ended', id, chroot: prev.chroot });
      return;
    }
    if (prev && prev.kind !== 'corrupt' && this.#heldByCaller(id)) {
      if (prev.kind === 'stale') this.#known.set(id, { ...prev, kind: 'active' });
      return;
    }
    // Taken before reading it: a rewrite after this is seen by the next probe.
    const sig = stateSig(join(this.#dir, id));
    // Its type from the lstat above: one lstat fewer per event.
    const entry = inspectEntry(this.#dir, id, {}, undefined, st);
    if (entry.status === 'corrupt') {
      if (prev?.kind === 'corrupt') return;
      // Reported only when it stays corrupt for a probe interval (see watchSessions).
      const first = this.#pending.get(id);
      if (first === undefined) this.#pending.set(id, Date.now());
      if (first === undefined || Date.now() - first < this.#probeMs) return;
      this.#pending.delete(id);
      this.#known.set(id, knownOf(entry));
      this.#emit({ event: 'corrupt', id, reason: entry.reason });
      return;
    }
    this.#pending.delete(id);
    const now = { ...knownOf(entry), sig };
    if (!prev || prev.kind === 'corrupt') {
      this.#known.set(id, now);
      this.#emit({ event: 'begun', id, chroot: now.chroot, status: now.status });
      if (now.kind === 'stale') this.#emit({ event: 'stale', id, chroot: now.chroot, status: now.status });
      return;
    }
    // Liveness is the probe's business; here only state.json matters. A
    // stale session rewritten as active was re-adopted by recover (end
    // rewrites it as ending).
    const rewritten = now.updatedAt !== prev.updatedAt;
    this.#known.set(id, { ...now, kind: prev.kind });
    if (rewritten && prev.kind === 'stale' && now.status === 'active') {
      this.#known.set(id, { ...now, kind: 'active' });
      this.#emit({ event: 'recovered', id, chroot: now.chroot, status: now.status });
    }
  }

  /**
   * One probe run from the interval timer, in slices of PROBE_SLICE sessions
   * with the event loop free between them (setImmediate runs after the poll
   * phase, which delivers inotify events): with 1,000 sessions a run in one
   * piece holds events for tens of ms, and a session begun and ended inside
   * that time would be gone before its first event is looked at. Whatever a
   * slice throws (EMFILE at the fd limit, EACCES) goes to onError and ends
   * the run, never out of a timer callback, where it would end the process.
   */
  #probe(): void {
    if (this.#probing || this.#closed) return;
    this.#probing = true;
    let ids: string[];
    try {
      ids = this.#probeStart();
    } catch (e) {
      this.#probing = false;
      this.#onError(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    const slice = (from: number): void => {
      if (this.#closed) return;
      try {
        for (const id of ids.slice(from, from + PROBE_SLICE)) this.#probeOne(id);
        if (from + PROBE_SLICE < ids.length) {
          setImmediate(slice, from + PROBE_SLICE);
          return;
        }
        for (const id of [...this.#pending.keys()]) this.#reconcileOrReport(id);
      } catch (e) {
        this.#onError(e instanceof Error ? e : new Error(String(e)));
      }
      this.#probing = false;
    };
    slice(0);
  }

  /** Entries the inotify watch may have missed reconciled (every LIST_MS); the ids to probe. */
  #probeStart(): string[] {
    if (Date.now() - this.#listedAt < this.#listMs) return [...this.#known.keys()];
    this.#listedAt = Date.now();
    // A marker whose removal never came (a lost event) is forgotten here: at worst one more look at its session.
    this.#rung.clear();
    const names = this.#names();
    const present = new Set(names);
    const missed = [...names.filter((n) => !this.#known.has(n) && !this.#pending.has(n)), ...[...this.#known.keys()].filter((n) => !present.has(n))];
    for (const id of missed) this.#reconcileOrReport(id);
    return [...this.#known.keys()];
  }

  /** Liveness of session `id`; its state.json re-read if it changed. */
  #probeOne(id: string): void {
    let k = this.#known.get(id);
    if (!k || k.kind === 'corrupt') return;
    if (this.#heldByCaller(id)) {
      // Re-adopted by the caller: active again without a probe.
      if (k.kind === 'stale') this.#known.set(id, { ...k, kind: 'active' });
      return;
    }
    // state.json rewritten (recover, end, a status change) or gone: what
    // a watch on the session dir used to report.
    if (stateSig(join(this.#dir, id)) !== k.sig) {
      // Then its liveness too, in this same probe: a begin's last rewrite
      // (setting-up -> active) must not put off seeing its holder gone.
      // A stale session rewritten as active (recovered) is left to the next
      // probe, so that the rewrite and its holder are not told apart here.
      const before = k.kind;
      this.#reconcileOrReport(id);
      k = this.#known.get(id);
      if (!k || k.kind === 'corrupt' || k.kind !== before) return;
    }
    let held: 'shared' | 'exclusive' | undefined;
    try {
      held = holderKind(join(this.#dir, id));
    } catch (e) {
      // Its lock file is gone: being removed (ended) or broken (corrupt).
      if (((e as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') return this.#reconcileOrReport(id);
      this.#onError(e as Error);
      return;
    }
    // An exclusive holder is end or recover at work: wait for its outcome.
    if (held === 'exclusive') return;
    const change = k.kind === 'active' && held === undefined ? 'stale' : k.kind === 'stale' && held === 'shared' ? 'recovered' : undefined;
    if (!change) return;
    // state.json as it is now, so a later look at the same rewrite finds nothing new.
    const sig = stateSig(join(this.#dir, id));
    const entry = inspectEntry(this.#dir, id);
    const now = entry.status === 'corrupt' ? k : { ...knownOf(entry), sig };
    this.#known.set(id, { ...now, kind: change === 'stale' ? 'stale' : 'active' });
    this.#emit({ event: change, id, chroot: now.chroot, status: now.status });
  }

  #emit(e: Omit<SessionEvent, 'at'>): void {
    if (this.#closed) return;
    const event: SessionEvent = { event: e.event, id: e.id, at: new Date().toISOString() };
    if (e.chroot !== undefined) event.chroot = e.chroot;
    if (e.status !== undefined) event.status = e.status;
    if (e.reason !== undefined) event.reason = e.reason;
    try {
      this.#onEvent(event);
    } catch (err) {
      this.#onError(err as Error);
    }
  }
}

function knownOf(e: SessionEntry): Known {
  return { kind: e.status, chroot: e.state?.chroot, status: e.state?.status, updatedAt: e.state?.updatedAt };
}

/**
 * Closes a chokidar watcher that this module owns. chokidar's add() re-arms a
 * closed watcher (it sets `closed = false`), and some of its event paths call
 * it (paulmillr/chokidar#1482): disabled first, so that nothing in flight can.
 */
function closeWatcher(fsw: FSWatcher): Promise<void> {
  fsw.add = () => fsw;
  return fsw.close();
}

/** Identity of a session's state.json: changes with every atomic rewrite (a new inode) or edit. */
function stateSig(sessionDir: string): string | undefined {
  const st = entryStat(join(sessionDir, STATE_FILE));
  return st && `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** lstat of `path`: undefined when nothing is there. */
function entryStat(path: string): Stats | undefined {
  try {
    return lstatSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** The kind of lock a holder has on the liveness byte (F_GETLK: never takes it), undefined when none. */
function holderKind(sessionDir: string): 'shared' | 'exclusive' | undefined {
  const lock = openLiveness(sessionDir, { readOnly: true });
  try {
    return lock.conflict('exclusive')?.kind;
  } finally {
    lock.close();
  }
}
