// warden forget-host (build farms): a host that is gone for good leaves
// registrations that nobody can end (their overlays were on that host):
// forgetting them, under the chroot's manage lock, lets entries go on.
// Refused while any of them is held (the host is not gone), and for this
// host itself (its sessions are ended with `warden recover --all --end`).
import type { ChrootDef } from '../config/index.js';
import { crashPoint } from '../sys/index.js';
import { registryOf, takeManageLock, type LockWaitOptions } from './locks.js';
import type { RegistryEntry } from './registry.js';
import { sharedOf } from './shared.js';
import { ensureStateDir } from './store.js';

export interface ForgetHostOptions extends LockWaitOptions {
  stateDir: string;
  chroot: ChrootDef;
  host: string;
}

/** Removes every registration of `o.host` in the chroot's shared dir; returns them. */
export async function forgetHost(o: ForgetHostOptions): Promise<RegistryEntry[]> {
  const shared = sharedOf(o.chroot);
  if (!shared) throw new Error(`chroot ${o.chroot.name} is not shared (no shared-dir=): it has no registrations to forget`);
  const stateDir = ensureStateDir(o.stateDir);
  const manage = await takeManageLock(stateDir, o.chroot.name, { ...o, source: o.chroot.directory, shared, what: 'forget-host' });
  try {
    crashPoint('forget-host:manage');
    return registryOf(shared).forgetHostLocked(o.host);
  } finally {
    manage.close();
  }
}
