// An entered source (source.ts's enterSource): the locks a source entry
// holds, and how they reach its command and are let go.
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ChrootDef } from '../config/index.js';
import type { FileLock } from '../locks/index.js';
import type { ManageLock } from './manage-lock.js';
import { RunError } from './run.js';
import { SHARED_CACHE_MS } from './shared.js';
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
  /** A shared chroot's entry (build farms). */
  readonly #shared: boolean;
  /** When the source became ours (a shared chroot's entry is let go no earlier than SHARED_CACHE_MS after). */
  readonly #enteredAt = performance.now();
  #released: Promise<void> | undefined;

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

  /**
   * Closes this process's copies of both locks: the entry ends, unless a
   * command inherited them (OFD mode), which then holds them until it and
   * every process that kept the fds have exited. A shared chroot's entry
   * keeps them until SHARED_CACHE_MS after it entered (a timer that keeps
   * the process alive; `released` settles then). Idempotent.
   */
  close(): void {
    this.#released ??= this.#shared ? this.#settleThenClose() : Promise.resolve(this.#closeNow());
  }

  /**
   * Settles once close() has let the locks go: for a shared chroot up to
   * SHARED_CACHE_MS after the entry began (a process that exits sooner
   * drops them early), at once for another. Before close(): never.
   */
  get released(): Promise<void> {
    return this.#released ?? new Promise(() => {});
  }

  // Other hosts' mounts cache what they saw of the source before this
  // entry (FUSE entry and attribute timeouts, glusterfs's md-cache and
  // quick-read: 1 s by default), and their sessions had all ended before
  // it got the source: held this long, the entry outlasts every such cache
  // entry, and a session that begins after it anywhere sees its changes
  // (measured: a file rewritten by a 30 ms entry on B still read as before
  // in a session begun on A just after it).
  async #settleThenClose(): Promise<void> {
    const left = this.#enteredAt + SHARED_CACHE_MS - performance.now();
    if (left > 0) await sleep(left);
    this.#closeNow();
  }

  #closeNow(): void {
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
