// The invariant checker: runs beside the load in the soak process and
// records every moment warden's promise is broken. Three loops, so a slow
// lock scan never delays the overlay check: the tick (every 250 ms: mounts,
// the source's counter, session dirs), the lock check (every 250 ms, plus
// its confirmations) and the supervisor's status (every 5 s).
import { existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileKeyOfPath, readProcLocks, type LockEntry } from '../../src/locks/index.js';
import { ofdOwners } from '../../src/locks/inspect.js';
import { listSessions, MANAGE_DIR, SESSION_LOCK_FILE, sourceLockPath } from '../../src/sessions/index.js';
import { SUPERVISOR_LOCK } from '../../src/supervisor/index.js';
import { readMountInfo, type MountEntry } from '../../src/union/index.js';
import { MB } from '../lib.js';
import type { Recorder } from './record.js';
import { COUNTER, SESSION_FILES, alive, type Setup } from './setup.js';
import type { SoakSupervisor, Status } from './supervisor.js';

const TICK_MS = 250;
const STATUS_MS = 5_000;
/** A corrupt entry must stay so this long: begin and end pass through shapes that look corrupt for a moment. */
const CORRUPT_MS = 1_000;
const MAX_RSS_MB = 150;
const MAX_FD_GROWTH = 20;
const GONE_MS = 5_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface SupervisorFigures {
  maxRssMB: number;
  /** Largest `fds.files - 2 × held` over the run, and its growth over the start value of the same supervisor. */
  maxFdExcess: number;
  maxFdGrowth: number;
  maxLoopDelayMs: number;
  statuses: number;
  first: Status | undefined;
  /** Every status: seconds into the run, pid, RSS (MB), sessions held, file-fd excess, event-loop delay max (ms) since the previous one. */
  samples: [number, number, number, number, number, number][];
}

export class Checker {
  readonly #s: Setup;
  readonly #rec: Recorder;
  readonly #sup: SoakSupervisor;
  readonly #stateDir: string;
  #stopped = false;
  #loops: Promise<void>[] = [];
  #prev: { counter: string; overlays: Set<string> } | undefined;
  readonly #corruptSince = new Map<string, number>();
  #unowned = new Set<string>();
  /**
   * /proc/locks keys (dev:inode) of our lock files -> path, and since when
   * the path no longer names that inode. /tmp is shared with other users of
   * warden (the other engineer's benches): ext4 hands a freed inode to the
   * next new file at once, so the key of a deleted session's lock soon names
   * someone else's lock file. A key stays ours only GONE_MS after its file
   * went, long enough for a lock that outlives its file's name to show.
   */
  readonly #keys = new Map<string, { path: string; goneSince: number | undefined }>();
  /** Each finding once: a broken state that persists is one violation, not one per tick. */
  readonly #reported = new Set<string>();
  readonly #baseExcess = new Map<number, number>();
  readonly figures: SupervisorFigures = { maxRssMB: 0, maxFdExcess: 0, maxFdGrowth: 0, maxLoopDelayMs: 0, statuses: 0, first: undefined, samples: [] };

  constructor(s: Setup, rec: Recorder, sup: SoakSupervisor) {
    this.#s = s;
    this.#rec = rec;
    this.#sup = sup;
    // mountinfo spells paths with symlinks resolved (tmpdir() may be one).
    this.#stateDir = realpathSync(s.stateDir);
  }

  /** Starts the loops once the supervisor's first status (the baseline of its figures) is in. */
  async start(): Promise<void> {
    await this.#checkSupervisor();
    this.#loops = [
      this.#every('tick', TICK_MS, () => this.#tick()),
      this.#every('locks', TICK_MS, () => this.#checkLocks()),
      this.#every('supervisor status', STATUS_MS, () => this.#checkSupervisor(), true),
    ];
  }

  /** Stops the loops after their current round. Idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    await Promise.all(this.#loops);
  }

  /** Keys of our lock files whose paths still name them (for the final leak check), and their paths. */
  get lockKeys(): ReadonlyMap<string, string> {
    this.#refreshKeys();
    return new Map([...this.#keys].filter(([, v]) => v.goneSince === undefined).map(([k, v]) => [k, v.path]));
  }

  async #every(name: string, ms: number, round: () => void | Promise<void>, pauseFirst = false): Promise<void> {
    if (pauseFirst) await sleep(ms);
    while (!this.#stopped) {
      try {
        await round();
      } catch (e) {
        // A checker bug must not pass for a clean run, nor stop the others.
        this.#rec.error(`checker (${name})`, e);
      }
      await sleep(ms);
    }
  }

  #once(key: string, invariant: Parameters<Recorder['violation']>[0], details: string): void {
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    this.#rec.violation(invariant, details);
  }

  #tick(): void {
    this.#checkOverlays();
    this.#checkUnownedMounts();
    this.#checkCorrupt();
    for (const f of SESSION_FILES) {
      if (existsSync(join(this.#s.source, f))) this.#once(`source-file ${f}`, 'session write reached the source', `${f}, written only inside sessions, exists in the source ${this.#s.source}`);
    }
  }

  #mountsUnderState(): MountEntry[] {
    return readMountInfo().filter((m) => m.mountPoint.startsWith(`${this.#stateDir}/`));
  }

  /** Overlays under the state dir, keyed by mount id and point: ids are reused, a session's mount point is not. */
  #overlays(): Set<string> {
    return new Set(this.#mountsUnderState().filter((m) => m.fsType === 'overlay').map((m) => `${m.id} ${m.mountPoint}`));
  }

  #counter(): string {
    const path = join(this.#s.source, COUNTER);
    try {
      const st = statSync(path, { bigint: true });
      return `${st.ino}:${st.mtimeNs}:${readFileSync(path, 'utf8').trim()}`;
    } catch (e) {
      return `(${(e as NodeJS.ErrnoException).code})`;
    }
  }

  /**
   * Source changed under a mounted overlay. The overlays are read before
   * and after the counter, and only those in both count as mounted "at" the
   * counter read: with a single read on one side, a session ending (or
   * beginning) between the two reads, and a source entry writing in that
   * gap, which is legitimate, would look like a write under a mount. So a
   * counter change between two ticks while an overlay was there around
   * both reads means the overlay stayed mounted while the source was
   * written, unless it was unmounted and mounted again with the same id at
   * the same point in between (only recovery of that very session mounts
   * there again, and the entry refuses while it is stale).
   */
  #checkOverlays(): void {
    const before = this.#overlays();
    const counter = this.#counter();
    const after = this.#overlays();
    const overlays = new Set([...before].filter((k) => after.has(k)));
    const prev = this.#prev;
    this.#prev = { counter, overlays };
    if (!prev || prev.counter === counter) return;
    const stayed = [...overlays].filter((k) => prev.overlays.has(k));
    if (stayed.length > 0) {
      this.#rec.violation(
        'source changed under a mounted overlay',
        `counter ${prev.counter} -> ${counter} while mounted: ${stayed.map((k) => k.replace(`${this.#stateDir}/`, '')).join(', ')}`,
      );
    }
  }

  /** A mount whose session dir (first component under the state dir) is gone, in two ticks in a row. */
  #checkUnownedMounts(): void {
    const now = new Set<string>();
    for (const m of this.#mountsUnderState()) {
      const owner = m.mountPoint.slice(this.#stateDir.length + 1).split('/')[0]!;
      if (existsSync(join(this.#stateDir, owner))) continue;
      const key = `${m.id} ${m.mountPoint}`;
      now.add(key);
      if (this.#unowned.has(key)) this.#once(`unowned ${key}`, 'mount without a session directory', `${m.fsType} at ${m.mountPoint} (mount id ${m.id}) but ${owner} is gone`);
    }
    this.#unowned = now;
  }

  #checkCorrupt(): void {
    const now = Date.now();
    const seen = new Set<string>();
    for (const e of listSessions(this.#s.stateDir)) {
      if (e.status !== 'corrupt') continue;
      seen.add(e.id);
      const since = this.#corruptSince.get(e.id) ?? now;
      this.#corruptSince.set(e.id, since);
      if (now - since >= CORRUPT_MS) this.#once(`corrupt ${e.id}`, 'corrupt session directory', `${e.id}: ${e.reason ?? '?'} (for ${now - since} ms)`);
    }
    // Only an unbroken run of corrupt sightings counts.
    for (const id of this.#corruptSince.keys()) if (!seen.has(id)) this.#corruptSince.delete(id);
  }

  #refreshKeys(): void {
    const paths = [sourceLockPath(this.#s.source), join(this.#s.stateDir, SUPERVISOR_LOCK)];
    const manage = join(this.#s.stateDir, MANAGE_DIR);
    for (const dir of [manage, this.#s.stateDir]) {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch {
        continue;
      }
      for (const n of names) paths.push(dir === manage ? join(dir, n) : join(dir, n, SESSION_LOCK_FILE));
    }
    const now = Date.now();
    for (const [key, v] of this.#keys) {
      if (keyOf(v.path) === key) v.goneSince = undefined;
      else v.goneSince ??= now;
      if (v.goneSince !== undefined && now - v.goneSince > GONE_MS) this.#keys.delete(key);
    }
    for (const p of paths) {
      const key = keyOf(p);
      if (key !== undefined) this.#keys.set(key, { path: p, goneSince: undefined });
    }
  }

  /**
   * Locks of dead processes on our files. A suspect is confirmed twice,
   * 100 ms apart, before it counts: the brief's single retry was not enough
   * on `.ref`, where sessions take and drop shared locks many times a
   * second and any one scan can miss a holder that came and went.
   */
  async #checkLocks(): Promise<void> {
    this.#refreshKeys();
    let suspects = this.#lockSuspects();
    for (let i = 0; i < 2 && suspects.size > 0; i++) {
      await sleep(100);
      const again = this.#lockSuspects();
      suspects = new Map([...suspects].filter(([k]) => again.has(k)).map(([k]) => [k, again.get(k)!]));
    }
    for (const [k, details] of suspects) this.#once(k, 'lock of a dead process', details);
  }

  /** Suspect id -> details: POSIX locks of dead pids, OFD locks no live process holds an fd of. */
  #lockSuspects(): Map<string, string> {
    const out = new Map<string, string>();
    const ours = (e: LockEntry) => this.#keys.has(e.key) && !e.waiting;
    const before = readProcLocks().filter(ours);
    for (const e of before) {
      const path = this.#keys.get(e.key)?.path;
      if (e.family === 'FLOCK') this.#once(`flock ${e.key}`, 'flock(2) lock on a warden file', `${e.kind} flock by pid ${e.pid} on ${path}`);
      if (e.family === 'POSIX' && !alive(e.pid)) out.set(`posix ${e.pid} ${e.key}`, `POSIX ${e.kind} lock of dead pid ${e.pid} on ${path} [${e.range.start}, +${e.range.len}]`);
    }
    const count = (list: LockEntry[]) => {
      const m = new Map<string, number>();
      for (const e of list) if (e.family === 'OFD') m.set(e.key, (m.get(e.key) ?? 0) + 1);
      return m;
    };
    const listed = count(before);
    if (listed.size === 0) return out;
    const found = new Map<string, number>();
    for (const o of ofdOwners(new Set(listed.keys()))) found.set(o.entry.key, (found.get(o.entry.key) ?? 0) + 1);
    if (![...listed].some(([k, n]) => n > (found.get(k) ?? 0))) return out;
    // A lock dropped during the fdinfo scan is listed but has no owner any
    // more: only locks still listed after the scan can be unowned.
    const after = count(readProcLocks().filter(ours));
    for (const [k, n] of listed) {
      const still = Math.min(n, after.get(k) ?? 0);
      const owned = found.get(k) ?? 0;
      if (still > owned) out.set(`ofd ${k}`, `${still - owned} of ${still} OFD lock(s) on ${this.#keys.get(k)?.path} held through no open fd of a live process`);
    }
    return out;
  }

  async #checkSupervisor(): Promise<void> {
    const st = await this.#sup.status(3_000);
    if (!st) return; // none answers: between a kill and its restart
    const f = this.figures;
    f.statuses++;
    f.first ??= st;
    const rssMB = st.rssBytes / MB;
    const excess = st.fds.files - 2 * st.held.length;
    if (!this.#baseExcess.has(st.pid)) this.#baseExcess.set(st.pid, excess);
    const growth = excess - this.#baseExcess.get(st.pid)!;
    f.maxRssMB = Math.max(f.maxRssMB, rssMB);
    f.maxFdExcess = Math.max(f.maxFdExcess, excess);
    f.maxFdGrowth = Math.max(f.maxFdGrowth, growth);
    f.maxLoopDelayMs = Math.max(f.maxLoopDelayMs, st.eventLoopDelay.maxMs);
    f.samples.push([Math.round(this.#rec.elapsedS), st.pid, Math.round(rssMB * 10) / 10, st.held.length, excess, st.eventLoopDelay.maxMs]);
    // Once per supervisor and kind; the samples show how it went on.
    if (rssMB > MAX_RSS_MB) this.#once(`rss ${st.pid}`, 'supervisor growth', `pid ${st.pid}: RSS ${rssMB.toFixed(1)} MB > ${MAX_RSS_MB} MB`);
    if (growth > MAX_FD_GROWTH) {
      this.#once(`fds ${st.pid}`, 'supervisor growth', `pid ${st.pid}: ${st.fds.files} file fds with ${st.held.length} sessions held: excess ${excess}, ${growth} above its start`);
    }
  }

  /** The file-fd excess of supervisor `pid` when the checker first saw it. */
  baseExcess(pid: number): number | undefined {
    return this.#baseExcess.get(pid);
  }
}

function keyOf(path: string): string | undefined {
  try {
    return fileKeyOfPath(path);
  } catch {
    return undefined; // not there (any more)
  }
}
