// The plumbing of locks.ts's functions: what a wait reports, the options
// every wait takes, and a non-blocking attempt that tells a fork's passing
// copy of our fds from a real holder.
import { setTimeout as sleep } from 'node:timers/promises';
import { LockBusyError, LockTimeoutError, type FileLock, type LockHolder, type LockKind, type WaitOptions } from '../locks/index.js';
import type { SessionHolder } from './errors.js';
import { sourceLockPath } from './lock-files.js';
import { describeManageOwner, readManageOwner, type ManageOwner } from './manage-owner.js';
import type { SessionShared } from './state.js';

/** Which lock a wait is for, and who holds it: what the CLI shows while waiting. */
export interface WaitInfo {
  lock: 'manage' | 'source' | 'liveness';
  path: string;
  holders: LockHolder[];
  /** Source waits of a source entry: the sessions behind `holders` (re-reported as they end). */
  sessions?: SessionHolder[];
  /**
   * Manage waits: the chroot's `.ref`, where a pending or running source
   * entry shows (it holds or waits for it exclusively) and begins do not.
   */
  source?: string;
  /** Manage waits of a shared chroot: who holds it, on any host, as its `manage.owner` says. */
  owner?: ManageOwner;
}

export interface LockWaitOptions {
  timeout?: number;
  signal?: AbortSignal;
  /** false: fail at once with LockBusyError instead of waiting. */
  wait?: boolean;
  onWait?: (info: WaitInfo) => void;
}

export function waitOpts(lock: WaitInfo['lock'], path: string, o: LockWaitOptions, source?: string): WaitOptions {
  const { onWait } = o;
  return {
    timeout: o.timeout,
    signal: o.signal,
    wait: o.wait,
    onWait: onWait ? (holders) => onWait(source === undefined ? { lock, path, holders } : { lock, path, holders, source }) : undefined,
  };
}

/**
 * The wait options of a manage lock: its wait reports name the chroot's
 * `.ref` (a source entry shows there), and for a shared chroot, whose
 * holders on other hosts are invisible here, the one `manage.owner` names.
 */
export function manageWaitOpts(path: string, o: LockWaitOptions & { source?: string; shared?: SessionShared | undefined }): WaitOptions {
  const source = o.source === undefined ? undefined : sourceLockPath(o.source);
  const wait = waitOpts('manage', path, o, source);
  const { shared, onWait } = o;
  if (shared && onWait && wait.onWait) {
    const report = wait.onWait;
    wait.onWait = (holders) => {
      const owner = readManageOwner(shared.dir);
      if (!owner) return report(holders);
      onWait({ lock: 'manage', path, holders, owner, ...(source === undefined ? {} : { source }) });
    };
  }
  return wait;
}

/**
 * A shared chroot's manage lock refused (--no-wait) or timed out: its
 * holder may be on another host, which no lock inspection here can name;
 * the `manage.owner` it wrote does (DESIGN.md: refusals name remote holders).
 */
export function namedByOwner(e: unknown, shared: SessionShared): unknown {
  if (!(e instanceof LockBusyError) && !(e instanceof LockTimeoutError)) return e;
  if (e.holders.some((h) => !h.waiting)) return e;
  const owner = readManageOwner(shared.dir);
  if (!owner) return e;
  const named =
    e instanceof LockBusyError
      ? new LockBusyError(e.path, e.range!, 'exclusive', e.holders, describeManageOwner(owner))
      : new LockTimeoutError(e.path, e.range!, 'exclusive', e.timeoutMs, e.holders, describeManageOwner(owner));
  return Object.assign(named, { cause: e });
}

/**
 * A non-blocking attempt that looks again, briefly, at a conflict no
 * process can be named for. Whenever anything in this process forks
 * (child_process, posix_spawn, an embedding program's own children), the
 * child holds a copy of every fd of ours, close-on-exec ones included,
 * until its exec closes them: for that moment each of our open file
 * descriptions has a second holder, and a lock that only we hold (a
 * command's lock fds just closed, say) still conflicts. glibc's posix_spawn
 * even returns before the child's exec has closed them: exec releases the
 * vfork parent first. `named` lists the real other holders; while it is
 * empty, tries again after 1, 2, 4 and 8 ms. A real holder ends the retries
 * at once.
 */
export async function tryAcquireSettled(lock: FileLock, kind: LockKind, named: () => LockHolder[]): Promise<boolean> {
  for (let delay = 1; ; delay *= 2) {
    if (lock.tryAcquire(kind)) return true;
    if (delay > 8 || named().length > 0) return false;
    await sleep(delay);
  }
}

/** The errno code of `e`, or of the error it wraps (FileLock wraps the open's). */
export const errnoCode = (e: unknown): string | undefined => (e as NodeJS.ErrnoException).code ?? ((e as Error).cause as NodeJS.ErrnoException | undefined)?.code;
