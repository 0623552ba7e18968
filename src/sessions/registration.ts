// This host's hold on one registration of a shared chroot (registry.ts):
// what run, the supervisor and a command keep for the session's life.
import { unlinkSync } from 'node:fs';
import { FileLock } from '../locks/index.js';
import { LIVENESS, METADATA, RegistrationHeldError, RegistryError, SETTLE_MS, settled, writeRecord, type Registration } from './registration-file.js';

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

