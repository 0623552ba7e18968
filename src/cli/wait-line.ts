// "What am I waiting for": while a lock wait blocks, say which lock and who
// holds it. On a terminal one live line (elapsed time, holders refreshed);
// otherwise a single line per wait, so logs stay readable.
import { describeHolders, lockHolders } from '../locks/index.js';
import { describeSessionHolders } from '../sessions/errors.js';
import type { WaitInfo } from '../sessions/locks.js';

const WHAT: Record<WaitInfo['lock'], string> = {
  manage: 'the manage lock (a source entry of this chroot is pending or running)',
  source: 'the source lock (the source chroot is entered exclusively)',
  liveness: 'the other holders of the session to exit',
};

export interface WaitReporter {
  onWait: (info: WaitInfo) => void;
  /** Ends the live line, if any. Idempotent. */
  done(): void;
}

export function waitReporter(to?: NodeJS.WriteStream): WaitReporter {
  // process.stderr is made on first use, and on a terminal or a pipe that
  // loads net and stream (~3 ms): only a wait that is reported pays for it.
  let stream: NodeJS.WriteStream | undefined = to;
  let timer: NodeJS.Timeout | undefined;
  let live = false;
  // A wait re-reported (a source entry's sessions ending) keeps its start time.
  let current: { what: string; since: number } | undefined;
  const stop = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    if (live) stream?.write('\r\x1b[K');
    live = false;
  };
  return {
    onWait(info) {
      stop();
      stream ??= process.stderr;
      const out = stream;
      const what = `${info.lock} ${info.path}`;
      if (current?.what !== what) current = { what, since: Date.now() };
      const started = current.since;
      const line = (holders = info.holders) => {
        if (!info.sessions) return `warden: waiting for ${WHAT[info.lock]}: ${info.path}: held ${describeHolders(holders)}`;
        // A source entry: name the sessions behind the pids, and how old they are.
        const pids = new Set(info.sessions.flatMap((s) => s.pids));
        const others = holders.filter((h) => !pids.has(h.pid));
        return `warden: waiting for the sessions using the source to end: ${info.path}: held by ${describeSessionHolders(info.sessions, others)}`;
      };
      if (!out.isTTY) {
        out.write(`${line()}\n`);
        return;
      }
      live = true;
      const draw = (holders = info.holders) => {
        const s = Math.floor((Date.now() - started) / 1000);
        const text = `${line(holders)} (${s} s, Ctrl-C to give up)`;
        out.write(`\r\x1b[K${text.slice(0, (out.columns ?? 200) - 1)}`);
      };
      draw();
      // A source entry's library re-reports its sessions itself; plain waits refresh the pids here.
      timer = setInterval(() => (info.sessions ? draw() : draw(lockHolders(info.path).filter((h) => !h.waiting))), 1000);
      timer.unref();
    },
    done() {
      stop();
      current = undefined;
    },
  };
}
