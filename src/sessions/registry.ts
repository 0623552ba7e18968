// A shared chroot's registrations (build farms, DESIGN.md): one file per
// session of every host in `<shared-dir>/sessions/<host>@<id>`, held for
// the session's life by its holders, so that any host can tell a live
// session anywhere from one whose holders died.
//
// Taken through sessions/locks.ts (one function per lock), by begin, run,
// end, recover and the source entry.
//
// A registration file carries two fcntl locks, as `<id>/lock` does locally:
//   byte 0  liveness: SH by every holder of the session, through fds they
//           inherit; EX non-blocking by a prober (free => stale) and by the
//           ender, while it removes the file.
//   byte 1  metadata: EX while the JSON is rewritten (update()).
// The JSON (host, session, chroot, pids, time) only describes: the lock is
// the truth. Remote holders are invisible to this host's /proc/locks and
// F_OFD_GETLK gives no pid (test/farm/gluster.test.ts), so the JSON is how
// waits and refusals name them.
//
// A registration is created under its final name (O_EXCL: EEXIST means the
// session is registered already), then locked SH and written: a shared
// begin pays one round trip to the volume per step, and ~10 of them made
// it twice as slow as a local one. For that moment a prober may see it
// unlocked and empty, "stale": harmless, because only a holder of the
// chroot's manage lock acts on a stale registration (an entry refuses,
// recover and forget-host remove), and begin registers holding it. Other
// probers only describe (wait reports, recover --all's look before it
// takes the manage lock).
//
// Locks on a FUSE mount are released asynchronously after close(2) (the
// kernel does not wait for FUSE_RELEASE), so every lock here is released
// explicitly before its fd is closed; a holder that dies is seen as gone a
// moment later (a prober then errs towards "active", never "stale").
import { ftruncateSync, lstatSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXIT } from '../exit-codes.js';
import { hostProblem } from '../config/index.js';
import { FileLock } from '../locks/index.js';
import { untrusted } from '../sys/index.js';
import { ID_PATTERN } from './ids.js';

const LIVENESS = Object.freeze({ start: 0, len: 1 });
const METADATA = Object.freeze({ start: 1, len: 1 });
const SESSIONS = 'sessions';

/** What a registration says about its session. */
export interface Registration {
  host: string;
  session: string;
  chroot: string;
  /** The holders' pids, on `host`, when registered (and updated). */
  pids: number[];
  /** When the session began (ISO 8601). */
  began: string;
}

export interface RegistryEntry {
  host: string;
  session: string;
  /** `active`: some holder, on some host, holds byte 0. `stale`: nobody does. */
  status: 'active' | 'stale';
  /** The file's JSON; undefined if it cannot be read or parsed. */
  record: Registration | undefined;
  path: string;
}

export class RegistryError extends Error {
  override name = 'RegistryError';
}

/** A session of this name and host is registered already. */
export class RegistrationExistsError extends RegistryError {
  override name = 'RegistrationExistsError';
}

/** The session has no registration (never made, or removed: an orphan left by a crash, or forgotten). */
export class RegistrationMissingError extends RegistryError {
  override name = 'RegistrationMissingError';
}

/** Other holders keep the registration (unregister), or a host to forget still holds some (forgetHost). */
export class RegistrationHeldError extends RegistryError {
  static readonly exit: number | undefined = EXIT.busy;
  override name = 'RegistrationHeldError';
  readonly held: readonly RegistryEntry[];
  constructor(message: string, held: readonly RegistryEntry[]) {
    super(message);
    this.held = held;
  }
}

/** "host-a@sid-1 (pids 12, 13 on host-a, since 2026-12-06T09:00:00.000Z)": how messages name a session of any host. */
export function describeRegistration(e: Pick<RegistryEntry, 'host' | 'session' | 'record'>): string {
  const r = e.record;
  return r ? `${e.host}@${e.session} (pids ${r.pids.join(', ') || 'none'} on ${e.host}, since ${r.began})` : `${e.host}@${e.session}`;
}

/**
 * The registrations of one shared chroot. `sharedDir` is the chroot's
 * shared-dir= (on the shared mount itself, never a session's view of it);
 * `host` this host's name (config hostOf()).
 */
export class Registry {
  readonly dir: string;
  readonly host: string;

  private constructor(dir: string, host: string) {
    this.dir = dir;
    this.host = host;
  }

  /** Opens (making it if needed) `<sharedDir>/sessions`, which must be root's and writable by nobody else. */
  static open(sharedDir: string, host: string): Registry {
    const problem = hostProblem(host);
    if (problem !== undefined) throw new RegistryError(`host name ${JSON.stringify(host)} ${problem}`);
    const dir = join(sharedDir, SESSIONS);
    // lstat first: it is answered from the mount's attribute cache, a mkdir always goes to the volume.
    let st = lstatSync(dir, { throwIfNoEntry: false });
    if (st === undefined) {
      try {
        mkdirSync(dir, { mode: 0o700 });
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new RegistryError(`cannot make ${dir}: ${(e as Error).message}`, { cause: e });
      }
      st = lstatSync(dir);
    }
    if (!st.isDirectory()) throw new RegistryError(`${dir} is not a directory`);
    const why = untrusted(st, 'it is');
    if (why !== undefined) throw new RegistryError(`refusing the registrations in ${dir}: ${why}`);
    return new Registry(dir, host);
  }

  #path(host: string, session: string): string {
    if (!ID_PATTERN.test(session)) throw new RegistryError(`invalid session id ${JSON.stringify(session)}`);
    return join(this.dir, `${host}@${session}`);
  }

  /**
   * Registers a session of this host and holds its liveness byte (SH)
   * through the returned handle; hand holders their own fds with
   * holderLock(). Throws RegistrationExistsError if it is registered.
   * Preconditions: the chroot's manage lock is held EX (begin), so that an
   * entry holding it sees every session that began before it, and so that
   * nobody acts on the new file in the moment between its creation and its
   * lock (see the head of this file).
   */
  async registerLocked(reg: { session: string; chroot: string; pids: number[]; began?: Date }): Promise<RegistrationHandle> {
    const path = this.#path(this.host, reg.session);
    const record: Registration = { host: this.host, session: reg.session, chroot: reg.chroot, pids: reg.pids, began: (reg.began ?? new Date()).toISOString() };
    let lock: FileLock;
    try {
      lock = FileLock.open(path, { create: 'new', range: LIVENESS, fileMode: 0o600 });
    } catch (e) {
      if (errnoOf(e) === 'EEXIST') throw new RegistrationExistsError(`session ${reg.session} of host ${this.host} is registered already (${path})`, { cause: e });
      throw e;
    }
    try {
      // A prober's EX (list(), on any host) lasts one round trip: waited out.
      await lock.acquire('shared', { timeout: SETTLE_MS });
      writeRecord(lock.fd, record, false);
      return new RegistrationHandle(path, lock, record);
    } catch (e) {
      // Made by us (O_EXCL): nobody else's to keep.
      try {
        unlinkSync(path);
      } finally {
        if (lock.held) lock.release();
        lock.close();
      }
      throw e;
    }
  }

  /** Where this host's registration of `session` lives. */
  pathOf(session: string): string {
    return this.#path(this.host, session);
  }

  /**
   * A new holder of this host's registration of `session` (run -s, a
   * command): byte 0 SH on an open file description of its own,
   * non-blocking. undefined while an ender or recoverer holds it EX;
   * RegistrationMissingError when there is none.
   */
  holdShared(session: string): FileLock | undefined {
    const path = this.#path(this.host, session);
    const lock = openRegistration(path);
    try {
      if (lock.tryAcquire('shared')) {
        if (lock.namesSameFile()) return lock;
        lock.release();
        throw new RegistrationMissingError(`registration ${path} was removed`);
      }
    } catch (e) {
      lock.close();
      throw e;
    }
    lock.close();
    return undefined;
  }

  /**
   * This host's registration of `session`, byte 0 EX (end, recover), for a
   * caller that holds none of it yet. undefined when there is none. A
   * holder that just exited may keep it a moment longer (a FUSE mount
   * releases a closed fd's lock asynchronously): retried for up to
   * `settleMs`, then RegistrationHeldError.
   */
  async takeExclusive(session: string, settleMs = SETTLE_MS): Promise<RegistrationHandle | undefined> {
    const path = this.#path(this.host, session);
    let lock: FileLock;
    try {
      lock = openRegistration(path);
    } catch (e) {
      if (e instanceof RegistrationMissingError) return undefined;
      throw e;
    }
    try {
      if (!(await settledOrGone(lock, settleMs))) {
        if (lock.closed) return undefined;
        throw new RegistrationHeldError(`registration ${path} is still held`, [{ host: this.host, session, status: 'active', record: readRecord(path), path }]);
      }
      if (!lock.namesSameFile()) {
        lock.release();
        lock.close();
        return undefined;
      }
    } catch (e) {
      lock.close();
      throw e;
    }
    const record = readRecord(path) ?? { host: this.host, session, chroot: '', pids: [], began: new Date(0).toISOString() };
    return new RegistrationHandle(path, lock, record);
  }

  /** Every registration of every host, each probed: held (active) or not (stale). Never blocks. */
  list(): RegistryEntry[] {
    const out: RegistryEntry[] = [];
    for (const name of readdirSync(this.dir).sort()) {
      const at = name.indexOf('@');
      if (name.startsWith('.') || at <= 0) continue;
      const path = join(this.dir, name);
      const status = probe(path);
      if (status === undefined) continue; // unregistered meanwhile
      out.push({ host: name.slice(0, at), session: name.slice(at + 1), status, record: readRecord(path), path });
    }
    return out;
  }

  /**
   * Forgets every registration of `host`, a host that is gone for good.
   * Refused (RegistrationHeldError, nothing removed) while any of them is
   * held, and for this host itself (its sessions are recovered, not forgotten).
   * Preconditions: the chroot's manage lock is held EX.
   */
  forgetHostLocked(host: string): RegistryEntry[] {
    if (host === this.host) throw new RegistryError(`${host} is this host: end its sessions with \`warden recover --all --end\` instead`);
    const mine = this.list().filter((e) => e.host === host);
    const taken: { entry: RegistryEntry; lock: FileLock }[] = [];
    const held: RegistryEntry[] = [];
    try {
      // All or nothing: hold every one EX before removing any.
      for (const entry of mine) {
        let lock: FileLock;
        try {
          lock = FileLock.open(entry.path, { create: false, range: LIVENESS });
        } catch {
          continue; // removed meanwhile
        }
        if (lock.tryAcquire('exclusive')) taken.push({ entry, lock });
        else {
          lock.close();
          held.push({ ...entry, status: 'active' });
        }
      }
      if (held.length > 0) {
        throw new RegistrationHeldError(
          `host ${host} still holds ${held.map(describeRegistration).join(', ')}: it is not gone; end those sessions on ${host}`,
          held,
        );
      }
      for (const { entry } of taken) unlinkSync(entry.path);
      return taken.map(({ entry }) => ({ ...entry, status: 'stale' as const }));
    } finally {
      for (const { lock } of taken) {
        lock.release();
        lock.close();
      }
    }
  }
}

/** This host's hold on one registration. close() is idempotent. */
export class RegistrationHandle {
  readonly path: string;
  #lock: FileLock | undefined;
  #record: Registration;

  constructor(path: string, lock: FileLock, record: Registration) {
    this.path = path;
    this.#lock = lock;
    this.#record = record;
  }

  get record(): Registration {
    return this.#record;
  }

  /** The fd holding byte 0 SH (for WARDEN_LOCK_FDS-style hand-over to this process's own children). */
  get fd(): number {
    return this.#live().fd;
  }

  /**
   * A new open file description holding byte 0 SH, for a holder to
   * inherit: never the one unregister() converts to EX (DESIGN.md,
   * "Rules": a lock never conflicts with its own open file description).
   */
  holderLock(): FileLock {
    this.#live();
    const lock = FileLock.open(this.path, { create: false, range: LIVENESS });
    if (!lock.tryAcquire('shared') || !lock.namesSameFile()) {
      lock.close();
      throw new RegistryError(`registration ${this.path} is being removed`);
    }
    return lock;
  }

  /** Whether this handle holds byte 0 exclusively (end, recover) or shared (a holder). */
  get held(): 'shared' | 'exclusive' | undefined {
    return this.#lock?.held;
  }

  /**
   * byte 0 SH -> EX for an ender that holds the registration already
   * (retried for up to `settleMs`, as takeExclusive). false: other holders
   * remain, and the handle still holds SH.
   */
  async toExclusive(settleMs = SETTLE_MS): Promise<boolean> {
    return settled(this.#live(), 'exclusive', settleMs);
  }

  /** EX -> SH (recover, once the session is held again). fcntl(2): never blocks. */
  downgrade(): void {
    if (!this.#live().tryAcquire('shared')) throw new RegistryError(`registration ${this.path}: could not downgrade to shared`);
  }

  /**
   * Removes the registration while holding it EX, then closes: no host
   * ever sees it unheld. Preconditions: held EX through this handle (and
   * the session's overlay is gone: an entry on any host may go on now).
   */
  remove(): void {
    const lock = this.#live();
    if (lock.held !== 'exclusive') throw new RegistryError(`registration ${this.path} removed without holding it exclusively`);
    try {
      unlinkSync(this.path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.close();
  }

  /** Rewrites the JSON (new pids after a re-adoption), under the metadata byte. */
  update(pids: number[]): void {
    const lock = this.#live();
    const meta = FileLock.open(this.path, { create: false, range: METADATA });
    try {
      if (!meta.tryAcquire('exclusive')) throw new RegistryError(`registration ${this.path} is being rewritten by someone else`);
      this.#record = { ...this.#record, pids };
      writeRecord(lock.fd, this.#record);
      meta.release();
    } finally {
      meta.close();
    }
  }

  /**
   * Ends the registration: byte 0 SH -> EX (non-blocking; RegistrationHeldError
   * while other holders remain, and the handle still holds SH), then removes
   * the file while holding EX, so no host ever sees it unheld.
   */
  unregister(): void {
    const lock = this.#live();
    if (!lock.tryAcquire('exclusive')) {
      throw new RegistrationHeldError(`registration ${this.path} is still held by other holders of the session`, []);
    }
    unlinkSync(this.path);
    this.close();
  }

  /** Releases this handle's hold (the registration stays while other holders keep it). Idempotent. */
  close(): void {
    const lock = this.#lock;
    if (!lock) return;
    this.#lock = undefined;
    // On a mount whose client died both calls fail with ENOTCONN; the lock
    // went with the client, and close(2) frees the fd even when it fails.
    try {
      if (lock.held) lock.release();
    } catch {
      // see above
    }
    try {
      lock.close();
    } catch {
      // see above
    }
  }

  #live(): FileLock {
    if (!this.#lock) throw new RegistryError(`registration ${this.path} is closed`);
    return this.#lock;
  }
}

/** How long an ender retries a registration whose last holder just exited (see takeExclusive). */
const SETTLE_MS = 2000;

function errnoOf(e: unknown): string | undefined {
  return (e as NodeJS.ErrnoException).code ?? ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code;
}

function openRegistration(path: string): FileLock {
  try {
    return FileLock.open(path, { create: false, range: LIVENESS, fileMode: 0o600 });
  } catch (e) {
    const code = errnoOf(e);
    if (code === 'ENOENT' || code === 'ESTALE') throw new RegistrationMissingError(`no registration ${path}`, { cause: e });
    throw e;
  }
}

/**
 * settled() for EX, where a registration removed by another host (forget-host)
 * may still be cached by this host's FUSE mount: the lock then fails with
 * ESTALE, and the handle is closed (false, lock.closed).
 */
async function settledOrGone(lock: FileLock, settleMs: number): Promise<boolean> {
  try {
    return await settled(lock, 'exclusive', settleMs);
  } catch (e) {
    if (!/Stale file handle/.test((e as Error).message)) throw e;
    lock.close();
    return false;
  }
}

/** tryAcquire, again after 1, 2, 4... ms until `settleMs` have passed. */
async function settled(lock: FileLock, kind: 'shared' | 'exclusive', settleMs: number): Promise<boolean> {
  const end = Date.now() + settleMs;
  for (let delay = 1; ; delay = Math.min(delay * 2, 100)) {
    if (lock.tryAcquire(kind)) return true;
    if (Date.now() >= end) return false;
    await sleep(delay);
  }
}

/** byte 0 EX non-blocking: taken => nobody holds the session => stale. undefined if the file is gone. */
function probe(path: string): 'active' | 'stale' | undefined {
  let lock: FileLock;
  try {
    lock = FileLock.open(path, { create: false, range: LIVENESS });
  } catch {
    return undefined;
  }
  try {
    if (!lock.tryAcquire('exclusive')) return 'active';
    lock.release(); // explicitly: a close alone frees it only when FUSE_RELEASE arrives
    return lock.namesSameFile() ? 'stale' : undefined;
  } finally {
    lock.close();
  }
}

// Not fsynced: the record only describes (the lock is the truth), and an
// fsync through glusterfs is a round trip to the brick's disk on every begin.
function writeRecord(fd: number, record: Registration, truncate = true): void {
  const text = `${JSON.stringify(record)}\n`;
  if (truncate) ftruncateSync(fd, 0);
  writeSync(fd, text, 0, 'utf8');
}

function readRecord(path: string): Registration | undefined {
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as Registration;
    return typeof r.host === 'string' && typeof r.session === 'string' && Array.isArray(r.pids) ? r : undefined;
  } catch {
    return undefined;
  }
}
