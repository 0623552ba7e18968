// Live session events from the state dir. chokidar polls the watch's
// doorbell, `<state-dir>/.manage/changes/` (watch-bell.ts): begin and end
// append the session's id to its log and touch it, right after the session's
// dir appeared under its id or left it; chokidar's `raw` event says the
// doorbell changed, and the watch reads the ids from the log and looks at
// those sessions only. A probe of the liveness locks reports what no file
// event shows (a session goes stale when its holders die, and only its lock
// changes), re-reads a session's state.json when its inode, size or times
// changed (recover re-adopting a stale session, a status change, a file
// gone corrupt), and lists the state dir's names every LIST_MS, for what
// rang no doorbell (a dir made or removed by hand, an older warden).
//
// Every event comes from comparing what the entry is now with what it was
// last seen as (watch-table.ts), so events that arrive twice, late or out of
// order cannot produce a wrong one.
//
// Why a polled doorbell, and not inotify on the state dir (chokidar 5.0.0,
// measured with bench/watch.ts): on every inotify event in a directory it
// watches, chokidar lists the directory again and lstat()s every entry
// (handler.js, _handleRead; its 'readdir' throttle ends with each listing,
// `ignored` filters after the lstat, and no public option skips it).
// Watching the state dir with 1,000 sessions, that cost six times the CPU
// of the begins and ends themselves; watching an empty doorbell by inotify
// still cost ~0.5 ms per event (readdirp's streams for an empty listing),
// twice the target. Polled (usePolling, one stat per interval in libuv's
// thread pool), chokidar lists a directory only when its mtime or size grew,
// and a ring changes the doorbell's ctime alone: a ring costs one look at
// its session, and rings within one interval cost one wake-up. The price
// is latency, half the interval on average (BELL_POLL_MS, 50 ms). Session dirs
// are not watched either (a listing per line a hook logs there).
//
// Closing safely: chokidar's add() sets `closed = false` unconditionally,
// and its "watch for the return of the only watched file" path calls add()
// from an event (paulmillr/chokidar#1482), so an event during close() could
// revive the watcher. Here nothing is watched but one directory (the log
// and its old copy are `ignored`: no file is ever watched, so that path
// cannot run), this class is the only owner of the FSWatcher and never
// calls add() after construction, the FSWatcher's own add() is disabled
// before it is closed, and every handler returns at once once close() has
// begun.
import { watch as chokidarWatch, type FSWatcher } from 'chokidar';
import { lstatSync } from 'node:fs';
import { BellReader, ensureBellDir } from './watch-bell.js';
import { SessionTable } from './watch-table.js';
import type { SessionStatus } from './state.js';
import { listSessions } from './store.js';

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
  /** How often chokidar polls the doorbell (default BELL_POLL_MS): half of it is the mean latency of an event. */
  bellPollMs?: number;
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
/**
 * How often chokidar polls the doorbell (WatchOptions.bellPollMs): an event
 * is seen 25 ms after its ring on average, 50 ms at worst; the poll costs
 * ~2 ms of CPU a second (a stat in libuv's thread pool).
 */
export const BELL_POLL_MS = 50;

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
  readonly #onError: NonNullable<WatchOptions['onError']>;
  /** What each entry was last seen as, and the probe (watch-table.ts). */
  readonly #table: SessionTable;
  readonly #bellPollMs: number;
  /** chokidar polling the doorbell (depth 0); this class is its only owner. */
  #fsw: FSWatcher | undefined;
  /** Where this watch is in the doorbell's log; this class is its only owner. */
  #bell: BellReader | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Set the moment close() is called: every handler returns at once from then on. */
  #closed = false;
  #closing: Promise<void> | undefined;
  #ready: Promise<void>;
  /** Ends a start still waiting for chokidar's ready (close() called meanwhile). */
  #abandonStart: (() => void) | undefined;

  constructor(stateDir: string, opts: WatchOptions) {
    this.#dir = stateDir;
    this.#probeMs = opts.probeMs ?? DEFAULT_PROBE_MS;
    this.#onError = opts.onError ?? (() => {});
    this.#bellPollMs = opts.bellPollMs ?? BELL_POLL_MS;
    this.#table = new SessionTable({
      dir: stateDir,
      probeMs: this.#probeMs,
      listMs: opts.listMs ?? LIST_MS,
      onEvent: opts.onEvent,
      onError: this.#onError,
      heldByCaller: opts.heldByCaller ?? (() => false),
      closed: () => this.#closed,
    });
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
      this.#bell?.close();
      this.#bell = undefined;
      await this.#ready.catch(() => {});
    })();
    return this.#closing;
  }

  async #start(): Promise<void> {
    // A watch closed as soon as it was made never watches.
    await null;
    if (this.#closed) return;
    // chokidar's ready comes after its first listing; a missing or unreadable
    // state dir is an error, not a ready watch of nothing.
    lstatSync(this.#dir);
    const bell = ensureBellDir(this.#dir);
    if (!lstatSync(bell).isDirectory()) throw new Error(`${bell}: not a directory`);
    // Rings from here on are read; what is there now is the starting point: no events for it.
    this.#bell = new BellReader(this.#dir);
    this.#table.seed(listSessions(this.#dir));
    const fsw = chokidarWatch(bell, {
      depth: 0,
      ignoreInitial: true,
      persistent: true,
      followSymlinks: false,
      usePolling: true,
      interval: this.#bellPollMs,
      // Its atomic mode holds back unlink events for 100 ms and ignores dot entries; nothing here needs it.
      atomic: false,
      // The log is never tracked: no add or change event, and no poll of
      // any file (the revival path of #1482 needs a watched file).
      ignored: (path: string) => path !== bell,
    });
    this.#fsw = fsw;
    fsw.on('raw', () => this.#onBell());
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
    this.#onBell();
    this.#timer = setInterval(() => this.#table.probe(), this.#probeMs);
  }

  /** The doorbell changed: the sessions rung since the last look (watch-bell.ts). */
  #onBell(): void {
    if (this.#closed || !this.#bell) return;
    try {
      const rings = this.#bell.read();
      // A log went by unread: the names of the state dir tell what changed.
      if (rings === undefined) return this.#table.reconcileNames();
      // One look per session, however often it rang; with the chroot it
      // began as, if it did since the last look.
      const begunAs = new Map<string, string | undefined>();
      for (const r of rings) {
        if (r.begun !== undefined) begunAs.set(r.id, r.begun);
        else if (!begunAs.has(r.id)) begunAs.set(r.id, undefined);
      }
      for (const [id, chroot] of begunAs) this.#table.onRing(id, chroot);
    } catch (e) {
      this.#onError(e as Error);
    }
  }
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
