// Hooks whose warden died: a SIGKILLed warden cannot stop the hook it was
// running (the hook leads a process group of its own), so the hook may
// still be at work when recover comes to redo its phase. Only executables
// can stray: a declarative hook (.fstab, .copyfiles) is applied inside
// warden and dies with it, leaving at most the mounts it made, which
// recover finds as mount points and skips.
import { readdirSync, readFileSync } from 'node:fs';
import { killGroup, untilGroupDead } from './group.js';

export interface StrayHook {
  pid: number;
  /** The hook's process group (it leads it: pid === pgid). */
  pgid: number;
  sessionId: string;
  phase: string;
  /** The hook's command line, for reports. */
  command: string;
}

/**
 * Running hooks of sessions in `stateDir`, from /proc: the leader of its own
 * process group whose environment is a hook's (SESSION_ID, WARDEN_PHASE,
 * WARDEN_STATE_DIR = stateDir) and whose arguments end with the phase, as
 * runHooks starts them. A daemon a hook left behind on purpose (hooks/
 * README.md) runs something else, or is no group leader, and is not found.
 * Processes we may not read (not root) are skipped.
 */
export function strayHooks(stateDir: string): StrayHook[] {
  const out: StrayHook[] = [];
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => d.charCodeAt(0) >= 48 && d.charCodeAt(0) <= 57);
  } catch {
    return out;
  }
  for (const p of pids) {
    const pid = Number(p);
    if (pid === process.pid) continue;
    let env: string;
    let stat: string;
    let argv: string[];
    try {
      env = readFileSync(`/proc/${p}/environ`, 'latin1');
      if (!env.includes('WARDEN_PHASE=')) continue;
      stat = readFileSync(`/proc/${p}/stat`, 'latin1');
      argv = readFileSync(`/proc/${p}/cmdline`, 'latin1').split('\0').filter((a) => a !== '');
    } catch {
      continue; // gone, or not ours to read
    }
    const vars = new Map<string, string>();
    for (const kv of env.split('\0')) {
      const eq = kv.indexOf('=');
      if (eq > 0) vars.set(kv.slice(0, eq), kv.slice(eq + 1));
    }
    // "pid (comm) state ppid pgrp ...": parse after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pgid = Number(fields[2]);
    const phase = vars.get('WARDEN_PHASE');
    const sessionId = vars.get('SESSION_ID');
    if (fields[0] === 'Z' || pgid !== pid || !phase || !sessionId) continue;
    if (vars.get('WARDEN_STATE_DIR') !== stateDir || argv[argv.length - 1] !== phase) continue;
    out.push({ pid, pgid, sessionId, phase, command: argv.join(' ') });
  }
  return out;
}

/** SIGKILLs each stray hook's whole group and waits (up to `limitMs` each) until it is gone. */
export async function killStrayHooks(hooks: readonly StrayHook[], limitMs = 2000): Promise<void> {
  for (const h of hooks) killGroup(h.pgid, 'SIGKILL');
  for (const h of hooks) await untilGroupDead(h.pgid, limitMs);
}
