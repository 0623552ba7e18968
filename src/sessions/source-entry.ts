// An entered source (source.ts's enterSource): the locks a source entry
// holds, and how they reach its command and are let go.
import type { ChildProcess } from 'node:child_process';
import type { ChrootDef } from '../config/index.js';
import type { FileLock } from '../locks/index.js';
import type { ManageLock } from './manage-lock.js';
import { RunError } from './run.js';
import type { CommandLocks } from './session.js';

/**
 * An entered source: the chroot's manage lock and `<source>/.ref`, both
 * exclusive, held through this object until close(). As CommandLocks its
 * fds (manage, source) go to the command, which keeps them in OFD mode.
 */
export class SourceEntry implements CommandLocks {
  readonly chroot: string;
  readonly source: string;
  /** Stale sessions that were ended before entering (recoverStale). */
  readonly recovered: readonly string[];
  /** The command, running (when `command` was given). */
  readonly child: ChildProcess | undefined;
  #manage: ManageLock | undefined;
  #ref: FileLock | undefined;

  /** Internal: built by enterSource. */
  constructor(chroot: ChrootDef, manage: ManageLock, ref: FileLock, recovered: readonly string[], child?: ChildProcess) {
    this.chroot = chroot.name;
    this.source = chroot.directory;
    this.recovered = recovered;
    this.child = child;
    this.#manage = manage;
    this.#ref = ref;
    this.#shared = chroot.sharedDir !== undefined;
  }

  get held(): boolean {
    return this.#manage !== undefined;
  }

  /** The lock fds for the command: manage, source. Throws once closed. */
  get fds(): number[] {
    if (!this.#manage || !this.#ref) throw new RunError(`source entry of chroot ${this.chroot} was already released`);
    return [this.#manage.fd, this.#ref.fd];
  }

  /** OFD mode: the command's inherited fds keep both locks, ours may close once it runs. */
  get inherited(): boolean {
    return this.#ref?.mode === 'ofd';
  }

  /** A shared chroot's (build farms). */
  get shared(): boolean {
    return this.#shared;
  }

  #shared = false;

  /**
   * Closes this process's copies of both locks: the entry ends, unless a
   * command inherited them (OFD mode), which then holds them until it and
   * every process that kept the fds have exited. Idempotent.
   */
  close(): void {
    // Source first: a begin woken by the manage lock must find it free.
    this.#ref?.close();
    this.#manage?.close();
    this.#ref = undefined;
    this.#manage = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
