// What a command inherits from whoever starts it, besides fds, cwd and
// environment: the umask, the nice value and the resource limits. A
// command schroot starts has its caller's (schroot is a set-user-ID program
// the caller execs); one the supervisor starts would have the supervisor's
// (systemd's umask 0022, Node's RLIMIT_NOFILE raised to its hard limit, the
// service's nice value) unless it is given the client's. The client is the
// relay, whose attributes the kernel shows in /proc/PID (the pid from
// SO_PEERCRED, alive while it waits for its status); they are applied by
// dist/bin/warden-attrs (src/relay/attrs.c) in front of the command.
//
// Nothing here gives a client more than the supervisor has: a hard limit is
// the lower of the two, a soft one at most that, the nice value the higher
// (the lower priority). So a pid that is not the client's any more (reused
// after the relay died) can only make the command poorer than the
// supervisor's own, which is what it got before.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { RunError } from './errors.js';

export interface ProcessAttributes {
  /** The umask, e.g. 0o022. */
  umask: number;
  /** The nice value, -20..19. */
  nice: number;
  /** Resource limits by RLIMIT_* number: [soft, hard], Infinity for unlimited. */
  limits: Map<number, [number, number]>;
}

// /proc/PID/limits names its rows; these are the RLIMIT_* numbers of
// Linux's generic ABI (asm-generic/resource.h: x86, arm, arm64, riscv).
const RESOURCES = new Map<string, number>([
  ['Max cpu time', 0],
  ['Max file size', 1],
  ['Max data size', 2],
  ['Max stack size', 3],
  ['Max core file size', 4],
  ['Max resident set', 5],
  ['Max processes', 6],
  ['Max open files', 7],
  ['Max locked memory', 8],
  ['Max address space', 9],
  ['Max file locks', 10],
  ['Max pending signals', 11],
  ['Max msgqueue size', 12],
  ['Max nice priority', 13],
  ['Max realtime priority', 14],
  ['Max realtime timeout', 15],
]);

const limitValue = (s: string): number => (s === 'unlimited' ? Infinity : Number(s));

/** The umask, nice value and limits of process `pid` (or this one), from /proc; undefined when it is gone or unreadable. */
export function readProcessAttributes(pid: number | 'self' = 'self'): ProcessAttributes | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const limitsText = readFileSync(`/proc/${pid}/limits`, 'utf8');
    const umask = /^Umask:\s+([0-7]+)$/m.exec(status);
    // Fields after the command name, which is in parentheses and may hold anything: nice is field 19.
    const nice = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    if (!umask || !Number.isInteger(nice)) return undefined;
    const limits = new Map<number, [number, number]>();
    for (const line of limitsText.split('\n')) {
      const m = /^(Max [a-z ]+?)\s{2,}(\d+|unlimited)\s+(\d+|unlimited)/.exec(line);
      const resource = m ? RESOURCES.get(m[1]!) : undefined;
      if (m && resource !== undefined) limits.set(resource, [limitValue(m[2]!), limitValue(m[3]!)]);
    }
    return { umask: parseInt(umask[1]!, 8), nice, limits };
  } catch {
    return undefined;
  }
}

let own: ProcessAttributes | undefined;

/**
 * This process's attributes, read once: what a command gets without
 * warden-attrs. Nothing in warden changes its own umask, nice value or
 * limits after start-up (Node raised RLIMIT_NOFILE before any of our code).
 */
export function ownAttributes(): ProcessAttributes | undefined {
  return (own ??= readProcessAttributes());
}

/**
 * The client's attributes, bounded by `own` (this process's): hard limits
 * the lower of the two, soft ones at most that, the nice value the higher.
 */
export function boundedBy(client: ProcessAttributes, own: ProcessAttributes): ProcessAttributes {
  const limits = new Map<number, [number, number]>();
  for (const [resource, [soft, hard]] of client.limits) {
    const ours = own.limits.get(resource);
    if (!ours) continue;
    const h = Math.min(hard, ours[1]);
    limits.set(resource, [Math.min(soft, h), h]);
  }
  return { umask: client.umask & 0o777, nice: Math.max(client.nice, own.nice), limits };
}

/** dist/bin/warden-attrs beside this code (dist/src/sessions, or the bundle in dist/cli). */
function helperPath(): string | undefined {
  for (const rel of ['../bin/warden-attrs', '../../bin/warden-attrs']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  return undefined;
}

const limitArg = (v: number) => (v === Infinity ? 'inf' : String(v));

/**
 * The argv that runs `argv` with `want` where it differs from `own` (what
 * the command would get anyway): warden-attrs in front, or `argv` itself
 * when nothing differs (no exec added).
 */
export function withAttributes(argv: readonly string[], want: ProcessAttributes, own: ProcessAttributes): string[] {
  const limits = [...want.limits].filter(([r, [soft, hard]]) => {
    const o = own.limits.get(r);
    return !o || o[0] !== soft || o[1] !== hard;
  });
  if (want.umask === own.umask && want.nice === own.nice && limits.length === 0) return [...argv];
  const helper = helperPath();
  if (helper === undefined) throw new RunError("the client's umask, nice value and limits cannot be applied: dist/bin/warden-attrs is not built (npm run build)");
  return [helper, want.umask.toString(8).padStart(4, '0'), String(want.nice), ...limits.map(([r, [s, h]]) => `${r}=${limitArg(s)}:${limitArg(h)}`), '--', ...argv];
}
