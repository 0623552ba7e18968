// `warden bootstrap DIR`: a minimal chroot made of the host's own programs
// (busybox when the host has it, else sh plus coreutils-like tools) and
// every library they load, in the host's directory layout. No downloads.
// Tests build one per test file, so a build takes milliseconds: a few reads
// per ELF file, then copies (reflinks where the filesystem can) in parallel.
import { fchmodSync, ftruncateSync, lstatSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LockBusyError, describeHolders, type FileLock } from '../locks/index.js';
import { sourceLockPath, takeSourceForDestroy } from '../sessions/index.js';
import { BootstrapError, ioError } from './errors.js';
import { LD_SO_CACHE } from './libraries.js';
import { planHost, type HostPlan, type PlanOptions } from './plan.js';
import { writeSkeleton } from './skeleton.js';
import { MARKER, SOURCE_LOCK, classify, inspectTarget, refuseMountsUnder, removeContents, removeEntry } from './target.js';
import { ChrootTree } from './tree.js';

export { BootstrapError, type BootstrapReason } from './errors.js';
export { MARKER, SOURCE_LOCK } from './target.js';
export { REQUIRED_TOOLS } from './tools.js';

/** Layout version of a bootstrap tree, recorded in its marker. */
const BOOTSTRAP_VERSION = 1;
/** Where busybox goes in the chroot; its applets are symlinks to it. */
const BUSYBOX = '/bin/busybox';

export interface BootstrapOptions extends PlanOptions {
  /** Replace the contents of a non-empty directory that is not a previous bootstrap. */
  force?: boolean;
}

export interface BootstrapResult {
  /** The chroot directory, symlinks resolved. */
  dir: string;
  /** The host file /bin/sh is a copy of (dash, bash, busybox), symlinks resolved. */
  shell: string;
  /** Tools the chroot has, by name. */
  tools: string[];
  /** Optional tools the host could not supply. */
  skipped: string[];
  /** Interpreters and libraries copied, by the host path the loader opens them by. */
  libraries: string[];
  busybox: boolean;
  /** Wall time of the whole call. */
  ms: number;
}

/**
 * Builds (or rebuilds) a minimal chroot in `dir`. A non-empty `dir` must be
 * a previous bootstrap (it has the marker) unless `force`; `/` and host
 * system directories are always refused; a tree whose source lock is held
 * (live sessions) or that has something mounted inside is left alone.
 * Throws BootstrapError.
 */
export async function bootstrapChroot(dir: string, opts: BootstrapOptions = {}): Promise<BootstrapResult> {
  const started = performance.now();
  const force = opts.force ?? false;
  const target = inspectTarget(dir);
  if (target.state === 'foreign' && !force) throw new BootstrapError('foreign', target.dir);
  if (target.state !== 'missing') refuseMountsUnder(target.dir);
  const plan = planHost(opts);

  // mkdir -p; on failure, roll back from the first directory this call created.
  let created: string | undefined;
  if (target.state === 'missing') {
    try {
      created = mkdirSync(target.dir, { recursive: true, mode: 0o755 });
    } catch (e) {
      throw ioError(target.dir, e);
    }
  }
  try {
    const lock = await lockSource(target.dir);
    try {
      await buildLocked(target.dir, plan, force, lock);
    } finally {
      lock.close();
    }
  } catch (e) {
    if (created) {
      try {
        removeEntry(created, lstatSync(created).dev);
      } catch {
        // The build's error is the one to report. What is left is harmless:
        // at most an empty tree or one with our marker, which a retry rebuilds.
      }
    }
    throw e;
  }
  return {
    dir: target.dir,
    shell: plan.shell,
    tools: plan.tools,
    skipped: plan.skipped,
    libraries: plan.libraries,
    busybox: plan.busybox !== undefined,
    ms: performance.now() - started,
  };
}

/**
 * Takes the source lock exclusively, without waiting: rebuilding is
 * destroying the chroot (DESIGN.md, "Locks"), so live sessions, a source
 * entry or a flatpak-style tool holding `.ref` make it fail with 'in-use'.
 * A `.ref` that is not a regular file is no lock anyone holds: replaced.
 */
async function lockSource(dir: string): Promise<FileLock> {
  const ref = sourceLockPath(dir);
  const st = lstatSync(ref, { throwIfNoEntry: false });
  if (st && !st.isFile()) removeEntry(ref, lstatSync(dir).dev);
  try {
    return await takeSourceForDestroy(dir);
  } catch (e) {
    if (e instanceof LockBusyError) throw new BootstrapError('in-use', ref, describeHolders(e.holders), { cause: e });
    throw ioError(ref, e);
  }
}

/**
 * Empties `dir` (keeping `.ref`, and the old marker until the new one
 * replaces it, so an interrupted rebuild is still recognised as ours) and
 * builds the chroot in it.
 * Preconditions: `lock` holds `dir/.ref` exclusively.
 */
async function buildLocked(dir: string, plan: HostPlan, force: boolean, lock: FileLock): Promise<void> {
  // Checked again under the lock: something may have moved in since.
  const state = classify(dir);
  if (state === 'foreign' && !force) throw new BootstrapError('foreign', dir);
  refuseMountsUnder(dir);
  removeContents(dir, state === 'ours' ? [SOURCE_LOCK, MARKER] : [SOURCE_LOCK]);
  try {
    // The lock file stays the same inode, so waiters queue on it throughout.
    fchmodSync(lock.fd, 0o644);
    ftruncateSync(lock.fd, 0);
  } catch (e) {
    throw ioError(join(dir, SOURCE_LOCK), e);
  }

  const tree = new ChrootTree(dir);
  tree.replace(`/${MARKER}`, stamp(plan, false));
  writeSkeleton(tree);
  if (plan.busybox) {
    // At /bin/busybox wherever the host keeps it (/usr/local/bin, a build dir).
    tree.copyTo(BUSYBOX, plan.busybox.path);
    for (const applet of plan.busybox.applets) if (applet !== BUSYBOX) tree.symlink(applet, BUSYBOX);
  }
  for (const tool of plan.hostTools.values()) tree.copy(tool);
  for (const lib of plan.libraries) tree.copy(lib);
  if (plan.ldCache) tree.copy(LD_SO_CACHE);
  await tree.flush();
  tree.replace(`/${MARKER}`, stamp(plan, true));
}

function stamp(plan: HostPlan, complete: boolean): string {
  const body = {
    format: 'warden-bootstrap',
    version: BOOTSTRAP_VERSION,
    complete,
    busybox: plan.busybox?.path ?? null,
    shell: plan.shell,
    tools: plan.tools,
    hostTools: Object.fromEntries(plan.hostTools),
    libraries: plan.libraries,
  };
  return `${JSON.stringify(body, null, 2)}\n`;
}
