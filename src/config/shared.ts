// Build farms: this host's name, and whether a shared chroot's storage can
// carry warden's locks to every host (DESIGN.md, "Build farms").
//
// Checked where a chroot is first used (context.ts, chrootOf), not while
// the configuration is read: the check stats and, on a FUSE filesystem,
// locks a probe file on the shared mount (~2 ms on glusterfs), which verbs
// that never touch the chroot (list, --help, other chroots) must not pay,
// and which a mount that is down at load time must not turn into a refusal
// of the whole file.
import { realpathSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { describeFilesystem, lockLocality, type LockLocality } from '../locks/index.js';
import { ConfigError, quote } from './errors.js';
import { hostProblem } from './names.js';
import { untrusted } from '../sys/index.js';
import type { ChrootDef, Config } from './types.js';

/**
 * This host's name in registrations and messages: `[warden] host=`, else
 * the kernel's host name. Throws ConfigError (exit 3) when the default is
 * not a usable name, asking for host=.
 */
export function hostOf(config: Pick<Config, 'host' | 'file'>, kernelName: string = hostname()): string {
  if (config.host !== undefined) return config.host;
  const problem = hostProblem(kernelName);
  if (problem === undefined) return kernelName;
  throw new ConfigError(config.file ?? '(no configuration file)', undefined, `this host's name ${quote(kernelName)} ${problem}: set [warden] host= to name it in a build farm`);
}

/** Verdicts per (shared-dir, its device, source device): a remount gives a FUSE mount a new device and is judged again. */
const checked = new Set<string>();

/**
 * Refuses (ConfigError, exit 3) a shared chroot whose locks would not reach
 * other hosts, or that root may not trust: a shared-dir= not root's or
 * writable by group or others, on a FUSE filesystem that leaves locks to the
 * kernel, a source on another filesystem than shared-dir= (its `.ref` lock
 * must be as shared as the manage lock, and the source itself is never
 * written to for a probe), or a shared-dir= that resolves into the source.
 * A chroot without shared-dir= passes untouched.
 */
export function checkSharedStorage(config: Pick<Config, 'host' | 'file'>, def: ChrootDef): void {
  const shared = def.sharedDir;
  if (shared === undefined) return;
  const refuse = (reason: string, cause?: unknown) => new ConfigError(def.file, shared.line, reason, { cause });
  hostOf(config);
  let sharedDev: bigint, sourceDev: bigint, realShared: string, realSource: string;
  try {
    realShared = realpathSync.native(shared.path);
    realSource = realpathSync.native(def.directory);
    sharedDev = statSync(realShared, { bigint: true }).dev;
    sourceDev = statSync(realSource, { bigint: true }).dev;
  } catch (e) {
    throw refuse(`cannot check shared-dir=${shared.path} and source ${def.directory} of [${def.name}]: ${(e as Error).message}`, e);
  }
  const key = `${realShared}\0${sharedDev}\0${realSource}\0${sourceDev}`;
  if (checked.has(key)) return;
  // Root creates and deletes registrations there: whoever may write it decides what root removes.
  const why = untrusted(statSync(realShared), 'it is');
  if (why !== undefined) throw refuse(`refusing shared-dir=${shared.path} of [${def.name}]: ${why}`);
  if (realShared === realSource || realShared.startsWith(`${realSource}/`)) {
    throw refuse(`shared-dir=${shared.path} of [${def.name}] resolves to ${realShared}, inside its source ${realSource}: commands in the source could change it`);
  }
  let locality: LockLocality;
  try {
    locality = lockLocality(realShared);
  } catch (e) {
    throw refuse(`cannot find out where fcntl locks in shared-dir=${shared.path} of [${def.name}] live: ${(e as Error).message}`, e);
  }
  if (locality.scope === 'fuse-local') {
    throw refuse(
      `shared-dir=${shared.path} of [${def.name}] is on ${describeFilesystem(locality)}, a FUSE filesystem that does not implement fcntl locks: ` +
        'the kernel keeps them on this host, so other hosts would not see them (use a filesystem whose locks are cluster-wide, such as a GlusterFS mount)',
    );
  }
  if (sourceDev !== sharedDev) {
    throw refuse(
      `shared-dir=${shared.path} of [${def.name}] is on ${describeFilesystem(locality)} but its source ${def.directory} is not on that filesystem: ` +
        'both must be on the one shared filesystem (the source\'s .ref lock must reach every host too)',
    );
  }
  checked.add(key);
}
