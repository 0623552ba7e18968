// warden list [--sessions] [--json]
import type { Parsed } from '../args.js';
import { loadContext } from '../context.js';
import { EXIT } from '../errors.js';
import { age, json, table } from '../output.js';

export default async function list(p: Parsed): Promise<number> {
  const o = p.options;
  const ctx = loadContext({ config: o.config as string, stateDir: o['state-dir'] as string });
  for (const w of ctx.config.warnings) process.stderr.write(`warden: warning: ${w.message}\n`);
  if (o.sessions) {
    // Only this branch needs the session store (and the lock layer under it).
    const { listSessions } = await import('../../sessions/store.js');
    const entries = listSessions(ctx.stateDir);
    if (o.json) {
      process.stdout.write(
        json(
          entries.map((e) => ({
            id: e.id,
            status: e.status,
            reason: e.reason,
            chroot: e.state?.chroot,
            phase: e.state?.status,
            unionType: e.state?.unionType,
            createdAt: e.state?.createdAt,
            dir: e.dir,
          })),
        ),
      );
    } else {
      const rows = entries.map((e) => [e.id, e.status, e.state?.chroot ?? '-', age(e.state?.createdAt), e.reason ?? (e.state?.status === 'active' ? '' : e.state?.status ?? '')]);
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
