// The soak's private world: a temporary dir with a bootstrapped chroot, a
// config naming it `soak` (overlay, the repository's default hooks), a state
// dir; and the teardown that leaves nothing of it behind.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootstrapChroot } from '../../src/bootstrap/index.js';
import { mountsUnder, removeTree } from '../../src/union/index.js';
import { ROOT } from '../lib.js';

export { WARDEN } from '../procs.js';
export const CHROOT = 'soak';
/** The file source entries write; the invariant checker watches it. */
export const COUNTER = 'counter';
/** Files that commands write inside sessions: they must never show up in the source. */
export const SESSION_FILES = ['soak-file', 'persist-file'];

export interface Setup {
  tmp: string;
  source: string;
  stateDir: string;
  config: string;
  /** Environment of every warden process the soak starts. */
  env: NodeJS.ProcessEnv;
}

export async function setUp(): Promise<Setup> {
  const tmp = mkdtempSync(join(tmpdir(), 'warden-soak-'));
  const source = join(tmp, 'source');
  await bootstrapChroot(source, { busybox: false });
  writeFileSync(join(source, COUNTER), '0\n');
  mkdirSync(join(tmp, 'etc'));
  const config = join(tmp, 'etc', 'warden.conf');
  writeFileSync(
    config,
    `[warden]\nhooks-dir=${join(ROOT, 'hooks')}\nhook-timeout=30\n\n[${CHROOT}]\ntype=directory\ndirectory=${source}\nunion-type=overlay\n`,
  );
  const stateDir = join(tmp, 'sessions');
  mkdirSync(stateDir);
  return { tmp, source, stateDir, config, env: { ...process.env, WARDEN_CONFIG: config, WARDEN_STATE_DIR: stateDir } };
}

/**
 * Whether `pid` runs. A zombie does not: exit has already closed its files,
 * so it holds no lock and no socket any more.
 */
export function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/**
 * Processes other than this one that belong to the soak: their command
 * line or environment names the temp dir. That covers what the soak spawned
 * and everything those started (commands in sessions, hooks, a supervisor
 * that `warden begin` started), since WARDEN_CONFIG and the hooks' variables
 * carry the path, and nothing of the other engineer's.
 */
export function soakProcesses(tmp: string): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'latin1');
      const environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
      // A zombie has neither; it is gone for every purpose the soak checks.
      if (cmdline.includes(tmp) || environ.includes(tmp)) out.push({ pid, cmdline: cmdline.split('\0').join(' ').trim() });
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * Leaves nothing behind: kills what is left of the soak's processes,
 * detaches every mount under the temp dir and deletes it. Deleting while a
 * bind of the host's /dev or /sys is still attached would delete through
 * it, so the dir is kept (and named) unless the mounts are really gone;
 * removeTree refuses the same way and never crosses a device.
 */
export function tearDown(s: Setup): string[] {
  const problems: string[] = [];
  for (const p of soakProcesses(s.tmp)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (const m of mountsUnder(s.tmp)) spawnSync('umount', ['-l', m.mountPoint]);
  const left = mountsUnder(s.tmp);
  if (left.length > 0) {
    problems.push(`${left.length} mount(s) under ${s.tmp} would not go away; the dir is kept: ${left.map((m) => m.mountPoint).join(', ')}`);
    return problems;
  }
  try {
    removeTree(s.tmp);
  } catch (e) {
    problems.push(`could not delete ${s.tmp}: ${(e as Error).message}`);
  }
  if (existsSync(s.tmp)) problems.push(`${s.tmp} is still there`);
  return problems;
}
