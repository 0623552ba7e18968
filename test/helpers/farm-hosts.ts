// The two hosts of a farm test (test/helpers/gluster.ts) as the CLI sees
// them: chroot fx on the volume, shared-dir= beside it, each host with its
// own configuration, state dir and host= name (host-a, host-b), no hooks.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync } from 'node:fs';
import type { ExecutionContext } from 'ava';
import { shutdownWaitPool } from '../../src/locks/index.js';
import { mountsUnder } from '../../src/union/index.js';
import { join } from 'node:path';
import { bootstrapChroot } from '../../src/bootstrap/index.js';
import { processesUnder } from './chroots.js';
import { writeConfig, type CliEnv, type Running } from './cli.js';
import type { GlusterFarm, Host } from './gluster.js';

/** Bootstraps fx's source on the volume, makes its shared dir, and writes each host's configuration under `local`. */
export async function farmHosts(farm: GlusterFarm, local: string): Promise<Record<Host, CliEnv>> {
  await bootstrapChroot(join(farm.mounts.A, 'src'), { busybox: false });
  mkdirSync(join(farm.mounts.A, 'shared'), { mode: 0o755 });
  const hooks = join(local, 'no-hooks');
  mkdirSync(hooks, { mode: 0o755 });
  const env = {} as Record<Host, CliEnv>;
  for (const h of ['A', 'B'] as const) {
    const top = join(local, h);
    mkdirSync(top, { mode: 0o755 });
    env[h] = writeConfig(
      top,
      `[warden]\nhost=host-${h.toLowerCase()}\nhooks-dir=${hooks}\nhook-timeout=10\n\n` +
        `[fx]\ntype=directory\ndirectory=${join(farm.mounts[h], 'src')}\nunion-type=overlay\nshared-dir=${join(farm.mounts[h], 'shared')}\n`,
    );
  }
  return env;
}

/** SIGKILL to each of `pids` that is still there. */
export function killAll(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

/** After each farm test: what it left running killed (with anything still running under `local`), and waited for. */
export async function killRunning(running: Set<Running>, local: string): Promise<void> {
  for (const r of running) {
    killAll([r.pid!, ...processesUnder(local)]);
    await r.result;
  }
  running.clear();
}

/** A farm test file's last step: what is mounted under `local` unmounted and removed, the volume torn down, the wait pool shut. */
export async function tearDownFarm(t: ExecutionContext, farm: GlusterFarm | undefined, local: string | undefined): Promise<void> {
  if (local) {
    for (const m of mountsUnder(local)) spawnSync('umount', ['-l', m.mountPoint]);
    rmSync(local, { recursive: true, force: true });
  }
  if (farm) t.log(`gluster farm torn down in ${Math.round((await farm.close()).teardownMs)} ms`);
  await shutdownWaitPool();
}
