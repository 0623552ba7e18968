// The supervisor's bounds on its clients (DESIGN.md, "Who may do what"):
// one user of socket-group must not be able to take the supervisor's fds,
// memory or time from everyone else. Root is never counted: it must always
// be able to connect to manage things, and the non-root total is kept well
// under RLIMIT_NOFILE so that there are fds left for it.
import { readFileSync } from 'node:fs';
import type { SupervisorLimitSettings } from '../config/index.js';

export interface SupervisorLimits {
  /** Open connections of one non-root uid (`max-connections-per-user=`). */
  connectionsPerUser: number;
  /** Open connections of all non-root clients together (`max-connections=`). */
  connections: number;
  /** A connection with no request in flight for this long is closed (`idle-timeout=`). */
  idleMs: number;
  /** Unread replies above this many bytes: the connection's requests are not read until it drains (`max-reply-buffer=`). */
  replyBufferBytes: number;
  /** Requests read and not yet served above this: the connection is not read (`max-queued-requests=`). */
  queuedRequests: number;
}

export const DEFAULT_LIMITS: Readonly<SupervisorLimits> = Object.freeze({
  connectionsPerUser: 64,
  connections: 1024,
  idleMs: 60_000,
  replyBufferBytes: 1024 * 1024,
  queuedRequests: 16,
});

/** The `[warden]` settings in the supervisor's units (ms). */
export function limitsFromSettings(s: SupervisorLimitSettings): Partial<SupervisorLimits> {
  const out: Partial<SupervisorLimits> = {};
  if (s.connectionsPerUser !== undefined) out.connectionsPerUser = s.connectionsPerUser;
  if (s.connections !== undefined) out.connections = s.connections;
  if (s.idleTimeout !== undefined) out.idleMs = Math.round(s.idleTimeout * 1000);
  if (s.replyBuffer !== undefined) out.replyBufferBytes = s.replyBuffer;
  if (s.queuedRequests !== undefined) out.queuedRequests = s.queuedRequests;
  return out;
}

/**
 * The limits in force: the defaults, overridden by `given`, with the
 * non-root total held to a quarter of RLIMIT_NOFILE by default and to half
 * of it at most (the rest is for root, session locks, hooks' pipes and
 * workers). `notes` says what was lowered, for the log.
 */
export function resolveLimits(given: Partial<SupervisorLimits> = {}, nofile = openFilesLimit()): { limits: SupervisorLimits; nofile: number; notes: string[] } {
  const notes: string[] = [];
  const limits: SupervisorLimits = { ...DEFAULT_LIMITS, ...given };
  const ceiling = Math.max(1, Math.floor(nofile / 2));
  if (given.connections === undefined) {
    limits.connections = Math.max(1, Math.min(DEFAULT_LIMITS.connections, Math.floor(nofile / 4)));
  } else if (limits.connections > ceiling) {
    notes.push(`max-connections=${limits.connections} lowered to ${ceiling}: half of this process's open-file limit (${nofile})`);
    limits.connections = ceiling;
  }
  return { limits, nofile, notes };
}

/** This process's soft RLIMIT_NOFILE, from /proc/self/limits (Node raises it to the hard limit at start). */
function openFilesLimit(): number {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m && m[1] !== 'unlimited') return Number(m[1]);
  } catch {
    // no /proc: assume the common default
  }
  return 1024;
}

/**
 * Logs a line for a key at most once per `intervalMs`, counting the
 * occurrences it kept quiet about: a flood of refused connections costs a
 * line a minute, not a line each.
 */
export class QuietLog {
  readonly #log: (line: string) => void;
  readonly #intervalMs: number;
  readonly #last = new Map<string, { at: number; quiet: number }>();

  constructor(log: (line: string) => void, intervalMs = 60_000) {
    this.#log = log;
    this.#intervalMs = intervalMs;
  }

  note(key: string, line: string, now = Date.now()): void {
    const seen = this.#last.get(key);
    if (seen && now - seen.at < this.#intervalMs) {
      seen.quiet++;
      return;
    }
    if (this.#last.size >= 4096) this.#prune(now);
    this.#last.set(key, { at: now, quiet: 0 });
    this.#log(seen && seen.quiet > 0 ? `${line} (and ${seen.quiet} more like it since the last such line)` : line);
  }

  #prune(now: number): void {
    for (const [key, v] of this.#last) if (now - v.at >= this.#intervalMs) this.#last.delete(key);
  }
}
