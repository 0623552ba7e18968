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
import { lstatSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hostProblem } from '../config/index.js';
import { FileLock } from '../locks/index.js';
import { untrusted } from '../sys/index.js';
import { ID_PATTERN } from './ids.js';
import {
  describeRegistration,
  errnoOf,
  LIVENESS,
  openRegistration,
  probe,
  readRecord,
  RegistrationExistsError,
  RegistrationHeldError,
  RegistrationMissingError,
  RegistryError,
  SETTLE_MS,
  settledOrGone,
  writeRecord,
  type Registration,
  type RegistryEntry,
} from './registration-file.js';
import { RegistrationHandle } from './registration.js';

export {
  describeRegistration,
  RegistrationExistsError,
  RegistrationHeldError,
  RegistrationMissingError,
  RegistryError,
  type Registration,
  type RegistryEntry,
} from './registration-file.js';
export { RegistrationHandle } from './registration.js';

const SESSIONS = 'sessions';
/** How long a name another host removed may stay in this mount's cache (glusterfs's entry timeout is 1 s). */
const CACHED_NAME_MS = 2_500;

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
    const lock = await createRegistration(path, () => new RegistrationExistsError(`session ${reg.session} of host ${this.host} is registered already (${path})`));
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


/**
 * The new registration file at `path` (O_EXCL), locked by nobody yet.
 * EEXIST may come from this mount's cache alone: a FUSE mount keeps a name
 * it has seen for its entry timeout (glusterfs: 1 s) without asking the
 * server, and an open of it still reaches the unlinked file by its id; so a
 * registration another host removed meanwhile (forget-host) still "exists"
 * here. The directory's listing comes from the server: a name not in it is
 * only cached, and the create is tried again once the cache has let it go.
 */
async function createRegistration(path: string, exists: () => Error): Promise<FileLock> {
  const deadline = Date.now() + CACHED_NAME_MS;
  for (;;) {
    try {
      return FileLock.open(path, { create: 'new', range: LIVENESS, fileMode: 0o600 });
    } catch (e) {
      if (errnoOf(e) !== 'EEXIST') throw e;
      if (readdirSync(dirname(path)).includes(basename(path)) || Date.now() > deadline) throw exists();
      await sleep(50);
    }
  }
}
