// "What am I waiting for": while a lock wait blocks, say which lock and who
// holds it. Nothing for a wait that ends within a second (quietMs): begins of one
// chroot take its manage lock in turn for milliseconds each, and a line
// about every such moment would be noise (and, read as "a source entry is
// pending", wrong). A wait that lasts is named by what really holds it,
// looked up when it is shown. On a terminal one live line (elapsed time,
// holders refreshed); otherwise a single line per wait, so logs stay
// readable.
import { describeHolders, describeManageOwner, describeSessionHolders, lockHolders, type LockHolder, type WaitInfo } from '../api/internal/holders.js';

/** How long a wait goes unreported: 1 s, or WARDEN_WAIT_QUIET_MS (0: every wait, at once). */
function quietMs(env: NodeJS.ProcessEnv = process.env): number {
  const v = Number(env.WARDEN_WAIT_QUIET_MS);
  return env.WARDEN_WAIT_QUIET_MS !== undefined && Number.isFinite(v) && v >= 0 ? v : 1000;
}

const WHAT: Record<'source' | 'liveness', string> = {
  source: 'the source lock (the source chroot is entered exclusively)',
  liveness: 'the other holders of the session to exit',
};

export interface WaitReporter {
  onWait: (info: WaitInfo) => void;
  /** The wait is over: cancels a line not shown yet, ends the live line, if any. Idempotent. */
  done(): void;
}

/** Where the lines go: a terminal gets one live line, anything else whole lines. */
export interface WaitSink {
  write(text: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/**
 * The line for a wait, from the holders as they are now. A manage wait is
 * told apart by the chroot's `.ref`: a source entry holds it, or waits for
 * it, exclusively for as long as it holds the manage lock; begins take the
 * manage lock only for moments and never `.ref` exclusively.
 */
function waitLine(info: WaitInfo, holders: readonly LockHolder[] = info.holders): string {
  if (info.sessions) {
    // A source entry: name the sessions behind the pids, and how old they are.
    const pids = new Set(info.sessions.flatMap((s) => s.pids));
    const others = holders.filter((h) => !pids.has(h.pid));
    return `warden: waiting for the sessions using the source to end: ${info.path}: held by ${describeSessionHolders(info.sessions, others)}`;
  }
  if (info.lock === 'manage' && info.owner) {
    // A shared chroot: the holder may be on another host, where only its manage.owner names it.
    return `warden: waiting for ${describeManageOwner(info.owner)}: ${info.path}`;
  }
  if (info.lock === 'manage') {
    const entry = info.source === undefined ? undefined : lockHolders(info.source).find((h) => h.kind === 'exclusive');
    if (entry) {
      const who = entry.pid > 0 ? `pid ${entry.pid}${entry.comm ? ` (${entry.comm})` : ''}` : 'an unknown process';
      const state = entry.waiting ? 'pending: it waits for the sessions using the source' : 'running';
      return `warden: waiting for a source entry of this chroot to finish (${who}, ${state}): ${info.path}`;
    }
    return `warden: waiting for other begins of this chroot: ${info.path}: held ${describeHolders(holders)}`;
  }
  return `warden: waiting for ${WHAT[info.lock]}: ${info.path}: held ${describeHolders(holders)}`;
}

export function waitReporter(to?: WaitSink, o: { delayMs?: number } = {}): WaitReporter {
  const delay = o.delayMs ?? quietMs();
  // process.stderr is made on first use, and on a terminal or a pipe that
  // loads net and stream (~3 ms): only a wait that is reported pays for it.
  let stream: WaitSink | undefined = to;
  let refresh: NodeJS.Timeout | undefined;
  let pending: NodeJS.Timeout | undefined;
  let live = false;
  // A wait re-reported (a source entry's sessions ending) keeps its start time.
  let current: { what: string; since: number; info: WaitInfo; shown: boolean } | undefined;
  const stopLive = () => {
    if (refresh) clearInterval(refresh);
    refresh = undefined;
    if (live) stream?.write('\r\x1b[K');
    live = false;
  };
  const show = () => {
    pending = undefined;
    const c = current;
    if (!c) return;
    c.shown = true;
    stopLive();
    stream ??= process.stderr;
    const out = stream;
    const info = c.info;
    // Holders as they are now: those at the start of the wait may have let go.
    const holdersNow = () => (info.sessions ? info.holders : lockHolders(info.path).filter((h) => !h.waiting));
    if (!out.isTTY) {
      out.write(`${waitLine(info, holdersNow())}\n`);
      return;
    }
    live = true;
    const draw = () => {
      const s = Math.floor((Date.now() - c.since) / 1000);
      const text = `${waitLine(info, holdersNow())} (${s} s, Ctrl-C to give up)`;
      out.write(`\r\x1b[K${text.slice(0, (out.columns ?? 200) - 1)}`);
    };
    draw();
    refresh = setInterval(draw, 1000);
    refresh.unref();
  };
  return {
    onWait(info) {
      const what = `${info.lock} ${info.path}`;
      if (current?.what === what) {
        current.info = info;
        // Shown already: a re-report (the sessions of a source entry) is shown at once.
        if (current.shown) show();
        return;
      }
      if (pending) clearTimeout(pending);
      stopLive();
      current = { what, since: Date.now(), info, shown: false };
      pending = setTimeout(show, delay);
      pending.unref();
    },
    done() {
      if (pending) clearTimeout(pending);
      pending = undefined;
      stopLive();
      current = undefined;
    },
  };
}
