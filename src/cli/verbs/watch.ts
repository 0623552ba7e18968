// warden watch [--json]: session events as they happen, until SIGINT or
// SIGTERM. One human line per event, or with --json one JSON object per
// line (NDJSON). Once the watch is in place, `watching <state dir>` goes to
// stderr (never stdout: that carries events only), so a script knows when
// changes start being reported.
import type { Parsed } from '../args.js';
import { loadContext } from '../../api/internal/config.js';
import { EXIT } from '../errors.js';

/** One event as `watch --json` prints it (a line of NDJSON). */
export interface WatchLine {
  event: string;
  id: string;
  chroot?: string;
  status?: string;
  reason?: string;
  at: string;
}

/** "14:03:27 stale demo-1234 (chroot demo, state active)" */
export function humanLine(e: WatchLine): string {
  const d = new Date(e.at);
  const time = [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':');
  if (e.event === 'corrupt') return `${time} corrupt ${e.id}: ${e.reason ?? 'unknown reason'}`;
  const about = [e.chroot ? `chroot ${e.chroot}` : '', e.status && e.status !== 'active' && e.event !== 'ended' ? `state ${e.status}` : ''].filter(Boolean);
  return `${time} ${e.event} ${e.id}${about.length ? ` (${about.join(', ')})` : ''}`;
}

export default async function watch(p: Parsed): Promise<number> {
  const o = p.options;
  const ctx = loadContext({ config: o.config as string, stateDir: o['state-dir'] as string });
  for (const w of ctx.config.warnings) process.stderr.write(`warden: warning: ${w.message}\n`);
  const { ensureStateDir } = await import('../../api/internal/state-dir.js');
  const { watchSessions } = await import('../../api/internal/watch.js');
  const stateDir = ensureStateDir(ctx.stateDir);
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => (stop = resolve));
  const watcher = watchSessions(stateDir, {
    onEvent: (e) => process.stdout.write(o.json ? `${JSON.stringify(e)}\n` : `${humanLine(e)}\n`),
    onError: (e) => process.stderr.write(`warden: watch: ${e.message}\n`),
  });
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
  for (const s of signals) process.on(s, stop);
  // A reader that went away (`warden watch | head -1`) ends the watch.
  process.stdout.on('error', stop);
  try {
    await Promise.race([watcher.ready.then(() => process.stderr.write(`watching ${stateDir}\n`)), stopped]);
    await stopped;
  } finally {
    for (const s of signals) process.off(s, stop);
    await watcher.close();
  }
  return EXIT.ok;
}
