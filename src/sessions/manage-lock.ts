// The manage lock as takeManageLock (locks.ts) returns it: for a shared
// chroot, the lock and the `manage.owner` record beside it go together.
import type { FileLock } from '../locks/index.js';
import { removeManageOwner } from './manage-owner.js';
import type { SessionShared } from './state.js';

/**
 * The manage lock as held: its FileLock, and for a shared chroot the
 * `manage.owner` record that tells other hosts who holds it, removed just
 * before the lock is released. close() is idempotent.
 */
export class ManageLock {
  readonly lock: FileLock;
  #shared: SessionShared | undefined;

  constructor(lock: FileLock, shared: SessionShared | undefined) {
    this.lock = lock;
    this.#shared = shared;
  }

  /** The fd, for a command that keeps the lock (a source entry's). */
  get fd(): number {
    return this.lock.fd;
  }

  get path(): string {
    return this.lock.path;
  }

  close(): void {
    if (this.lock.closed) return;
    if (this.#shared) removeManageOwner(this.#shared.dir, this.#shared.host);
    this.lock.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
