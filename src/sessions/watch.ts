// Live session events from the state dir. inotify (fs.watch) reports what
// changes on disk: a watch on the state dir names the entries that appear
// or go, and a watch on each session dir reports its state.json rewritten
// or its lock file replaced. A probe of the liveness locks reports what no
// file event shows: a session goes stale when its holders die, and only
// its lock changes.
//
// Every event comes from comparing what the entry is now with what it was
// last seen as (`#reconcile`), so events that arrive twice, late or out of
// order cannot produce a wrong one.
//
// Written on fs.watch, not chokidar (which this used before), for two
// measured reasons:
// - On every event in a directory it watches, chokidar lists the directory
//   again and lstat()s every entry (paulmillr/chokidar#1028). Watching the
//   state dir, each begin or end cost N lstats with N sessions, several
//   times over, and in each session dir every line a hook logged cost a
//   rescan: a supervisor watching 200 library begins and ends used 1,980 ms
//   of CPU for it, as much as the begins themselves took.
// - Watching files instead, chokidar re-adds the parent of a removed file
//   "to watch for its return", and a close() during that revives the
//   watcher: a watch on the state dir outlived close() (a test caught it).
// inotify names the entry that changed, which is all a flat directory of
// sessions needs, and it is Linux-only like the rest of warden. What an
// overflowed inotify queue loses, the probe's listing of names catches.
import { lstatSync, readdirSync, watch as fsWatch, type FSWatcher as DirWatcher, type Stats } from 'node:fs';
import { join } from 'node:path';
import { openLiveness, SESSION_LOCK_FILE } from './locks.js';
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

/** What an entry was last seen as. */
interface Known {
  kind: 'active' | 'stale' | 'corrupt';
  chroot?: string;
  status?: SessionStatus;
  updatedAt?: string;
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
  readonly #onEvent: WatchOptions['onEvent'];
  readonly #onError: NonNullable<WatchOptions['onError']>;
  readonly #heldByCaller: (id: string) => boolean;
  readonly #known = new Map<string, Known>();
  /** Entries seen corrupt but not reported yet: when first seen. */
  readonly #pending = new Map<string, number>();
  /** inotify on the state dir itself: entry names. */
  #dirWatch: DirWatcher | undefined;
  /** inotify on each session dir (its inode: an id ended and begun again is another dir). */
  readonly #tracked = new Map<string, { watch: DirWatcher; ino: number }>();
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  #ready: Promise<void>;

  constructor(stateDir: string, opts: WatchOptions) {
    this.#dir = stateDir;
    this.#probeMs = opts.probeMs ?? DEFAULT_PROBE_MS;
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
      // A start not begun yet sees #closed and never watches.
      await this.#ready.catch(() => {});
      this.#dirWatch?.close();
      this.#dirWatch = undefined;
      for (const id of [...this.#tracked.keys()]) this.#untrack(id);
    })();
    return this.#closing;
  }

  async #start(): Promise<void> {
    // What is there now is the starting point: no events for it.
    for (const e of listSessions(this.#dir)) this.#known.set(e.id, knownOf(e));
    // A watch closed as soon as it was made never watches.
    await null;
    if (this.#closed) return;
    const dirWatch = fsWatch(this.#dir, { persistent: true }, (_event, name) => this.#onName(name));
    this.#dirWatch = dirWatch;
    dirWatch.on('error', (e) => this.#onError(e instanceof Error ? e : new Error(String(e))));
    // Whatever changed between the listing and the watch being in place;
    // it also watches each session dir there is.
    this.#reconcileAll();
    this.#timer = setInterval(() => this.#probe(), this.#probeMs);
  }

  /** An entry of the state dir was created, renamed or removed (no name: the kernel did not say which). */
  #onName(name: string | Buffer | null): void {
    if (this.#closed) return;
    if (name !== null) {
      if (isSessionName(String(name))) this.#reconcileOrReport(String(name));
      return;
    }
    try {
      this.#reconcileAll();
    } catch (e) {
      this.#onError(e as Error);
    }
  }

  /** Something in session dir `id` changed: only its state.json and lock file matter. */
  #onSessionFile(id: string, name: string | Buffer | null): void {
    if (this.#closed) return;
    if (name !== null && String(name) !== STATE_FILE && String(name) !== SESSION_LOCK_FILE) return;
    this.#reconcileOrReport(id);
  }

  /** #reconcile, its failure reported through onError: the watch goes on. */
  #reconcileOrReport(id: string): void {
    try {
      this.#reconcile(id);
    } catch (e) {
      this.#onError(e as Error);
    }
  }

  /**
   * Watches session dir `id` from now on, unless the caller holds it: the
   * supervisor's own sessions change only through the supervisor (their
   * removal still shows in the state dir). The probe starts it for one the
   * caller lets go of.
   */
  #track(id: string, ino: number): void {
    const had = this.#tracked.get(id);
    if (had?.ino === ino) return;
    if (had) this.#untrack(id);
    if (this.#closed || this.#heldByCaller(id)) return;
    let w: DirWatcher;
    try {
      w = fsWatch(join(this.#dir, id), { persistent: true }, (_event, name) => this.#onSessionFile(id, name));
    } catch (e) {
      // Gone already: the state dir's watch reports it.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT' && (e as NodeJS.ErrnoException).code !== 'ENOTDIR') this.#onError(e as Error);
      return;
    }
    w.on('error', (e) => this.#onError(e instanceof Error ? e : new Error(String(e))));
    this.#tracked.set(id, { watch: w, ino });
  }

  #untrack(id: string): void {
    this.#tracked.get(id)?.watch.close();
    this.#tracked.delete(id);
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
      this.#untrack(id);
      if (!prev) return;
      this.#known.delete(id);
      this.#emit({ event: 'ended', id, chroot: prev.chroot });
      return;
    }
    if (st.isDirectory()) this.#track(id, st.ino);
    if (prev && prev.kind !== 'corrupt' && this.#heldByCaller(id)) {
      if (prev.kind === 'stale') this.#known.set(id, { ...prev, kind: 'active' });
      return;
    }
    const entry = inspectEntry(this.#dir, id);
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
    const now = knownOf(entry);
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
   * #probeOnce from the interval timer: whatever it throws (EMFILE at the
   * fd limit, EACCES) goes to onError, never out of a timer callback, where
   * it would end the process.
   */
  #probe(): void {
    try {
      this.#probeOnce();
    } catch (e) {
      this.#onError(e instanceof Error ? e : new Error(String(e)));
    }
  }

  /** Liveness of every known session; corrupt-looking entries confirmed or dropped. */
  #probeOnce(): void {
    if (this.#closed) return;
    // What the inotify watch may have missed (its queue overflows silently).
    const names = this.#names();
    const present = new Set(names);
    const missed = [...names.filter((n) => !this.#known.has(n) && !this.#pending.has(n)), ...[...this.#known.keys()].filter((n) => !present.has(n))];
    for (const id of missed) this.#reconcileOrReport(id);
    for (const [id, k] of this.#known) {
      if (k.kind === 'corrupt') continue;
      if (this.#heldByCaller(id)) {
        // Re-adopted by the caller: active again without a probe.
        if (k.kind === 'stale') this.#known.set(id, { ...k, kind: 'active' });
        continue;
      }
      // One the caller has let go of is watched from now on.
      if (!this.#tracked.has(id)) {
        const st = entryStat(join(this.#dir, id));
        if (st?.isDirectory()) this.#track(id, st.ino);
      }
      let held: 'shared' | 'exclusive' | undefined;
      try {
        held = holderKind(join(this.#dir, id));
      } catch (e) {
        // Being removed (its lock file is gone): the file event reports it.
        if (((e as Error).cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT') continue;
        this.#onError(e as Error);
        continue;
      }
      // An exclusive holder is end or recover at work: wait for its outcome.
      if (held === 'exclusive') continue;
      const change = k.kind === 'active' && held === undefined ? 'stale' : k.kind === 'stale' && held === 'shared' ? 'recovered' : undefined;
      if (!change) continue;
      // state.json as it is now (its file event may not have arrived yet),
      // so a later event for the same rewrite finds nothing new.
      const entry = inspectEntry(this.#dir, id);
      const now = entry.status === 'corrupt' ? k : knownOf(entry);
      this.#known.set(id, { ...now, kind: change === 'stale' ? 'stale' : 'active' });
      this.#emit({ event: change, id, chroot: now.chroot, status: now.status });
    }
    for (const id of [...this.#pending.keys()]) this.#reconcileOrReport(id);
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
