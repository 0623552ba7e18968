// warden list [--sessions] [--json]
import { str, type Parsed } from '../args.js';
import { loadContext } from '../../api/internal/config.js';
import { EXIT } from '../errors.js';
import { age, json, table } from '../output.js';
import { registeredElsewhere, registeredJson, registeredRow } from '../registered.js';

export default async function list(p: Parsed): Promise<number> {
  const o = p.options;
  const ctx = loadContext({ config: str(o.config), stateDir: str(o['state-dir']) });
  for (const w of ctx.config.warnings) process.stderr.write(`warden: warning: ${w.message}\n`);
  if (o.sessions) {
    // Only this branch needs the session store (and the lock layer under it).
    const { describeSessions, listSessions } = await import('../../api/internal/state-dir.js');
    // One mountinfo read for all: whether each view is in place (run -s
    // works on a stale session only while it is; else it needs recover).
    const sessions = describeSessions(listSessions(ctx.stateDir), ctx.stateDir, () => false);
    const remote = await registeredElsewhere(ctx, () => sessions.map((s) => s.id));
    if (o.json) {
      process.stdout.write(
        json([
          ...sessions.map((s) => ({ ...s, mounted: s.mounted ?? null })),
          ...remote.map(registeredJson),
        ]),
      );
    } else {
      const note = (s: (typeof sessions)[number]) => {
        if (s.reason) return s.reason;
        const notes = s.phase === 'active' ? [] : [s.phase ?? ''];
        if (s.status === 'stale') {
          // Stale but consistent (run -s works) needs no hint; the rest needs recover.
          if (s.mounted !== undefined) notes.push(s.mounted ? 'mounted' : 'not mounted');
          if (s.phase !== 'active' || s.mounted === false) notes.push(`warden recover -s ${s.id}`);
        }
        return notes.join('; ');
      };
      const rows = sessions.map((s) => [s.id, s.status, s.chroot ?? '-', age(s.createdAt), note(s)]);
      rows.push(...remote.map(registeredRow));
      process.stdout.write(table(['SESSION', 'STATUS', 'CHROOT', 'AGE', 'NOTE'], rows));
    }
    return EXIT.ok;
  }
  const chroots = [...ctx.config.chroots.values()];
  if (o.json) {
    process.stdout.write(
      json({
        chroots: chroots.map((c) => ({ name: c.name, aliases: c.aliases, directory: c.directory, unionType: c.unionType, description: c.description ?? null })),
        unsupported: ctx.config.unsupported,
      }),
    );
  } else {
    const rows = chroots.map((c) => [c.name + (c.aliases.length ? ` (${c.aliases.join(', ')})` : ''), c.unionType, c.directory, c.description ?? '']);
    for (const u of ctx.config.unsupported) rows.push([u.name, '-', '-', `not supported: ${u.reason}`]);
    process.stdout.write(table(['CHROOT', 'UNION', 'DIRECTORY', 'DESCRIPTION'], rows));
  }
  return EXIT.ok;
}
