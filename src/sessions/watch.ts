// Live session events from the state dir. chokidar reports what changes on
// disk (a session dir published or removed, state.json rewritten); a probe
// of the liveness locks reports what no file event shows: a session goes
// stale when its holders die, and only its lock changes.
//
// Every event comes from comparing what the entry is now with what it was
// last seen as (`#reconcile`), so events that arrive twice, late or out of
// order cannot produce a wrong one.
import { lstatSync, readdirSync } from 'node:fs';
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
  #watcher: FSWatcher | undefined;
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
      const w = this.#watcher;
      this.#watcher = undefined;
      await w?.close();
    })();
    return this.#closing;
  }

  async #start(): Promise<void> {
    // What is there now is the starting point: no events for it.
    for (const e of listSessions(this.#dir)) this.#known.set(e.id, knownOf(e));
    // chokidar is ESM-only; a dynamic import also loads it only for a watch.
    const { watch } = await import('chokidar');
    if (this.#closed) return;
    const watcher = watch(this.#dir, {
      ignoreInitial: true,
      // <id>/state.json is one level below the state dir.
      depth: 1,
      ignored: (path: string) => this.#ignored(path),
    });
    this.#watcher = watcher;
    watcher.on('all', (_event, path) => this.#onPath(path));
    watcher.on('error', (e) => this.#onError(e instanceof Error ? e : new Error(String(e))));
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    if (this.#closed) return;
    // Whatever changed between the listing and the watch being in place.
    this.#reconcileAll();
    this.#timer = setInterval(() => this.#probe(), this.#probeMs);
  }

  /** Only session dirs and their state.json and lock file: never the tmp files, never inside the mounted view. */
  #ignored(path: string): boolean {
    const rel = relative(this.#dir, path);
    if (rel === '') return false;
    const parts = rel.split(sep);
    if (parts[0] === '..' || !isSessionName(parts[0]!)) return true;
    if (parts.length === 1) return false;
    return parts.length > 2 || (parts[1] !== STATE_FILE && parts[1] !== SESSION_LOCK_FILE);
  }

  #onPath(path: string): void {
    if (this.#closed) return;
    const rel = relative(this.#dir, path);
    try {
      if (rel === '') this.#reconcileAll();
      else this.#reconcile(rel.split(sep)[0]!);
    } catch (e) {
      this.#onError(e as Error);
    }
  }

  #reconcileAll(): void {
    let names: string[];
    try {
      names = readdirSync(this.#dir).filter(isSessionName);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      names = [];
    }
    for (const id of new Set([...this.#known.keys(), ...names].sort())) this.#reconcile(id);
  }

  /** Compares entry `id` as it is now with what it was; emits what changed. */
  #reconcile(id: string): void {
    const prev = this.#known.get(id);
    if (!exists(join(this.#dir, id))) {
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
    for (const [id, k] of this.#known) {
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

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
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
