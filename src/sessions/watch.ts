// Live session events from the state dir. Two watches report what changes
// on disk: an inotify watch of the state dir itself (fs.watch) names the
// entries that appear or go, and chokidar watches each session's state.json
// and lock file (state.json rewritten, the lock file replaced). A probe of the liveness
// locks reports what no file event shows: a session goes stale when its
// holders die, and only its lock changes.
//
// Why not chokidar on the directories: on every event in a directory it
// watches, chokidar lists the directory again and lstat()s every entry
// (paulmillr/chokidar#1028). Watching the state dir, each begin or end cost
// N lstats with N sessions, several times over: a supervisor watching 50
// library begins spent as much CPU in those rescans as the begins took
// (1,980 ms for 200), and one holding 1,000 sessions paid 1,000 lstats per
// event. Watching session dirs, every line a hook logs cost a rescan.
// inotify names the state dir's entry, which is all it needs; the probe
// also lists the names (readdir, no stat) to catch what an overflowed
// inotify queue lost. On a file chokidar costs one stat per event, and it
// follows state.json across the renames that replace it.
//
// Every event comes from comparing what the entry is now with what it was
// last seen as (`#reconcile`), so events that arrive twice, late or out of
// order cannot produce a wrong one.
import { lstatSync, readdirSync, watch as fsWatch, type FSWatcher as DirWatcher } from 'node:fs';
import { join, relative, sep } from 'node:path';
import type { FSWatcher } from 'chokidar';
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
  /** Resolves once changes are being watched (rejects if chokidar cannot start). */
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
  /** chokidar's watch function, once imported. */
  #chokidar: typeof import('chokidar').watch | undefined;
  /** inotify on the state dir itself: entry names. */
  #dirWatch: DirWatcher | undefined;
  /**
   * One chokidar watcher for each entry's files: closing it frees
   * everything it had (its unwatch() keeps every path it was given in an
   * ignore list that every later event matches against, a leak with
   * unique ids).
   */
  readonly #tracked = new Map<string, FSWatcher>();
  /** Watchers being closed. */
  readonly #closingWatchers = new Set<Promise<void>>();
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
      // A start still importing chokidar sees #closed and never watches.
      await this.#ready.catch(() => {});
      this.#dirWatch?.close();
      this.#dirWatch = undefined;
      for (const id of [...this.#tracked.keys()]) this.#untrack(id);
      await Promise.all(this.#closingWatchers);
    })();
    return this.#closing;
  }

  async #start(): Promise<void> {
    // What is there now is the starting point: no events for it.
    for (const e of listSessions(this.#dir)) this.#known.set(e.id, knownOf(e));
    // chokidar is ESM-only; a dynamic import also loads it only for a watch.
    const { watch } = await import('chokidar');
    if (this.#closed) return;
    this.#chokidar = watch;
    const dirWatch = fsWatch(this.#dir, { persistent: true }, (_event, name) => this.#onName(name));
    this.#dirWatch = dirWatch;
    dirWatch.on('error', (e) => this.#onError(e instanceof Error ? e : new Error(String(e))));
    // Whatever changed between the listing and the watch being in place;
    // it also starts chokidar inside each session dir there is.
    this.#reconcileAll();
    await Promise.all([...this.#tracked.values()].map((w) => new Promise<void>((resolve) => w.once('ready', () => resolve()))));
    if (this.#closed) return;
    this.#timer = setInterval(() => this.#probe(), this.#probeMs);
  }

  /** An entry of the state dir was created, renamed or removed (no name: the kernel did not say which). */
  #onName(name: string | Buffer | null): void {
    if (this.#closed) return;
    try {
      if (name === null) this.#reconcileAll();
      else if (isSessionName(String(name))) this.#reconcile(String(name));
    } catch (e) {
      this.#onError(e as Error);
    }
  }

  #onPath(path: string): void {
    if (this.#closed) return;
    const rel = relative(this.#dir, path);
    if (rel === '' || rel.startsWith('..')) return;
    try {
      this.#reconcile(rel.split(sep)[0]!);
    } catch (e) {
      this.#onError(e as Error);
    }
  }

  /**
   * chokidar watches state.json and the lock file of entry `id` from now
   * on (a file not there yet: the dir, for it to appear), unless the caller
   * holds it: the supervisor's own sessions change only through the
   * supervisor (their removal still shows in the state dir). The probe
   * starts it for one the caller lets go of.
   */
  #track(id: string): void {
    if (this.#closed || this.#tracked.has(id) || this.#heldByCaller(id) || !this.#chokidar) return;
    const dir = join(this.#dir, id);
    const w = this.#chokidar([join(dir, STATE_FILE), join(dir, SESSION_LOCK_FILE)], { ignoreInitial: true, followSymlinks: false });
    w.on('all', (_event, path) => this.#onPath(path));
    w.on('error', (e) => this.#onError(e instanceof Error ? e : new Error(String(e))));
    this.#tracked.set(id, w);
  }

  #untrack(id: string): void {
    const w = this.#tracked.get(id);
    if (!w) return;
    this.#tracked.delete(id);
    const closing = w.close().catch((e: unknown) => this.#onError(e as Error));
    this.#closingWatchers.add(closing);
    void closing.then(() => this.#closingWatchers.delete(closing));
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
    const kind = entryKind(join(this.#dir, id));
    if (kind === undefined) {
      this.#pending.delete(id);
      this.#untrack(id);
      if (!prev) return;
      this.#known.delete(id);
      this.#emit({ event: 'ended', id, chroot: prev.chroot });
      return;
    }
    if (kind === 'dir') this.#track(id);
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

  /** Liveness of every known session; corrupt-looking entries confirmed or dropped. */
  #probe(): void {
    if (this.#closed) return;
    // What the inotify watch may have missed (its queue overflows silently).
    const names = this.#names();
    const present = new Set(names);
    const missed = [...names.filter((n) => !this.#known.has(n) && !this.#pending.has(n)), ...[...this.#known.keys()].filter((n) => !present.has(n))];
    for (const id of missed) {
      try {
        this.#reconcile(id);
      } catch (e) {
        this.#onError(e as Error);
      }
    }
    for (const [id, k] of this.#known) {
      if (k.kind !== 'corrupt' && !this.#tracked.has(id)) this.#track(id);
      if (k.kind === 'corrupt') continue;
      if (this.#heldByCaller(id)) {
        // Re-adopted by the caller: active again without a probe.
        if (k.kind === 'stale') this.#known.set(id, { ...k, kind: 'active' });
        continue;
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
    for (const id of [...this.#pending.keys()]) {
      try {
        this.#reconcile(id);
      } catch (e) {
        this.#onError(e as Error);
      }
    }
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

/** What is at `path` (not following a link): undefined when nothing is. */
function entryKind(path: string): 'dir' | 'other' | undefined {
  try {
    return lstatSync(path).isDirectory() ? 'dir' : 'other';
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
