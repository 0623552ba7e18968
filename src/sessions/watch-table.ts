// The watch's table of what each state-dir entry was last seen as, and the
// probe: every event comes from comparing what an entry is now with what it
// was (reconcile), so events that arrive twice, late or out of order cannot
// produce a wrong one. Fed by watch.ts (doorbell rings, its timer); owns no
// watcher and no timer.
import { lstatSync, readdirSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { livenessHolderKind } from './lock-holders.js';
import { STATE_FILE, type SessionStatus } from './state.js';
import { inspectEntry, isSessionName, type SessionEntry } from './store.js';
import type { SessionEvent, WatchOptions } from './watch.js';

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

export interface TableOptions {
  dir: string;
  probeMs: number;
  listMs: number;
  onEvent: WatchOptions['onEvent'];
  onError: NonNullable<WatchOptions['onError']>;
  heldByCaller: (id: string) => boolean;
  /** Whether the watch is closing: nothing runs or is emitted from then on. */
  closed: () => boolean;
}

export class SessionTable {
  readonly #dir: string;
  readonly #probeMs: number;
  readonly #listMs: number;
  readonly #onEvent: WatchOptions['onEvent'];
  readonly #onError: NonNullable<WatchOptions['onError']>;
  readonly #heldByCaller: (id: string) => boolean;
  readonly #isClosed: () => boolean;
  readonly #known = new Map<string, Known>();
  /** Entries seen corrupt but not reported yet: when first seen. */
  readonly #pending = new Map<string, number>();
  /** A probe run is under way (it goes on across setImmediate slices). */
  #probing = false;
  /** When the probe last listed the state dir's names. */
  #listedAt = 0;

  constructor(o: TableOptions) {
    this.#dir = o.dir;
    this.#probeMs = o.probeMs;
    this.#listMs = o.listMs;
    this.#onEvent = o.onEvent;
    this.#onError = o.onError;
    this.#heldByCaller = o.heldByCaller;
    this.#isClosed = o.closed;
  }

  get #closed(): boolean {
    return this.#isClosed();
  }

  /** The starting point: entries there when the watch starts, with no event for them. */
  seed(entries: readonly SessionEntry[]): void {
    for (const e of entries) this.#known.set(e.id, knownOf(e));
  }

  /**
   * Session `id` rang the doorbell; `begunAs`: the chroot it rang with when
   * its dir appeared, if it did since the last look. A session that began
   * and ended between two looks is seen by no look: its rings say so.
   */
  onRing(id: string, begunAs: string | undefined): void {
    if (this.#closed || !isSessionName(id)) return;
    const before = this.#known.has(id);
    this.#reconcileOrReport(id);
    // Neither known nor pending now: nothing is there.
    if (before || begunAs === undefined || this.#known.has(id) || this.#pending.has(id)) return;
    this.#emit({ event: 'begun', id, chroot: begunAs });
    this.#emit({ event: 'ended', id, chroot: begunAs });
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
   * Entries whose change rang no doorbell (made or removed by hand, an
   * older warden, rings lost): a name in the state dir not known yet, or
   * known and gone. One readdir; nothing stat'ed but those.
   */
  reconcileNames(): void {
    const names = this.#names();
    const present = new Set(names);
    const missed = [...names.filter((n) => !this.#known.has(n) && !this.#pending.has(n)), ...[...this.#known.keys()].filter((n) => !present.has(n))];
    for (const id of missed) this.#reconcileOrReport(id);
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
    // Its type from the lstat above: one lstat fewer per event. Its
    // liveness is the probe's: a new session is taken as active until the
    // probe's next run (a ring comes from a begin, which holds the session
    // before it publishes it), and for a known one only state.json matters.
    // Most sessions of a busy state dir live less than a probe interval
    // (run -c): their lock is then never opened.
    const entry = inspectEntry(this.#dir, id, { liveness: false }, undefined, st);
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
   * phase, which delivers the doorbell's poll and the supervisor's
   * requests): with 1,000 unheld sessions a run in one piece holds them for
   * tens of ms. Whatever a
   * slice throws (EMFILE at the fd limit, EACCES) goes to onError and ends
   * the run, never out of a timer callback, where it would end the process.
   */
  probe(): void {
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

  /**
   * Entries no ring told of reconciled (every LIST_MS); the ids to probe:
   * those the caller does not hold (a supervisor holds most of them, and
   * they would only be skipped, slice after slice).
   */
  #probeStart(): string[] {
    if (Date.now() - this.#listedAt >= this.#listMs) {
      this.#listedAt = Date.now();
      this.reconcileNames();
    }
    const ids: string[] = [];
    for (const [id, k] of this.#known) if (k.kind !== 'corrupt' && !(this.#heldByCaller(id) && k.kind === 'active')) ids.push(id);
    return ids;
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
      held = livenessHolderKind(join(this.#dir, id));
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


/** Identity of a session's state.json: changes with every atomic rewrite (a new inode) or edit. */
function stateSig(sessionDir: string): string | undefined {
  const st = entryStat(join(sessionDir, STATE_FILE));
  return st && `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
}

/** lstat of `path`: undefined when nothing is there (no error made: an ended session is no exception). */
function entryStat(path: string): Stats | undefined {
  return lstatSync(path, { throwIfNoEntry: false });
}
