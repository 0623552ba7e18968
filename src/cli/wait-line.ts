// "What am I waiting for": while a lock wait blocks, say which lock and who
// holds it. On a terminal one live line (elapsed time, holders refreshed);
// otherwise a single line per wait, so logs stay readable.
import { describeHolders, lockHolders } from '../locks/index.js';
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

export function waitReporter(stream: NodeJS.WriteStream = process.stderr): WaitReporter {
  let timer: NodeJS.Timeout | undefined;
  let live = false;
  const stop = () => {
    if (timer) clearInterval(timer);
    timer = undefined;
    if (live) stream.write('\r\x1b[K');
    live = false;
  };
  return {
    onWait(info) {
      stop();
      const line = (holders = info.holders) => `warden: waiting for ${WHAT[info.lock]}: ${info.path}: held ${describeHolders(holders)}`;
      if (!stream.isTTY) {
        stream.write(`${line()}\n`);
        return;
      }
      const started = Date.now();
      live = true;
      const draw = (holders = info.holders) => {
        const s = Math.floor((Date.now() - started) / 1000);
        const text = `${line(holders)} (${s} s, Ctrl-C to give up)`;
        stream.write(`\r\x1b[K${text.slice(0, (stream.columns ?? 200) - 1)}`);
      };
      draw();
      timer = setInterval(() => draw(lockHolders(info.path).filter((h) => !h.waiting)), 1000);
      timer.unref();
    },
    done: stop,
  };
}
