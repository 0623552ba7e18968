// Process groups: every hook leads its own (spawned detached), so a timeout
// can reach whatever it started in the background.
import { readdirSync, readFileSync } from 'node:fs';

/** kill(2) to the whole group; a group that is already gone is fine. */
export function killGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
  }
}

/**
 * Pids of the group that are not zombies. kill(-pgid, 0) alone cannot say:
 * it succeeds for zombies, and an orphaned zombie stays until init reaps it
 * (which some container inits never do).
 */
export function liveMembers(pgid: number): number[] {
  try {
    process.kill(-pgid, 0);
  } catch {
    return []; // ESRCH: no member at all (the cheap, common answer)
  }
  const live: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (entry.charCodeAt(0) < 48 || entry.charCodeAt(0) > 57) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue; // exited meanwhile
    }
    // "pid (comm) state ppid pgrp ...": comm may hold spaces and ')', so parse after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z' && fields[0] !== 'X') live.push(Number(entry));
  }
  return live;
}

/** Resolves once no live member is left, or after `limitMs` (a process stuck in D state). */
export async function untilGroupDead(pgid: number, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (liveMembers(pgid).length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
}
