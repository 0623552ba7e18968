// warden info NAME|ID [--json]: a chroot (by name or alias) or a session,
// with its locks and the pids holding them.
import { join } from 'node:path';
// The store and the lock census, not the sessions layer: info never mounts or runs hooks.
import { lockCensus } from '../../api/internal/census.js';
import { inspectEntry, listSessions, SessionNotFoundError, validateId } from '../../api/internal/state-dir.js';
import { mountsUnder } from '../../api/internal/system.js';
import { existsSync } from 'node:fs';
import { str, type Parsed } from '../args.js';
import { hooksDirOf, loadContext, NoSuchChrootError } from '../../api/internal/config.js';
import { EXIT } from '../errors.js';
import { age, json, table } from '../output.js';
import { REGISTERED_HEADER, registeredElsewhere, registeredJson, registeredName, registeredRow } from '../registered.js';
import { HOLDER_HEADER, holderRows } from './locks.js';

export default async function info(p: Parsed): Promise<number> {
  const o = p.options;
  const name = p.positional[0]!;
  const ctx = loadContext({ config: str(o.config), stateDir: str(o['state-dir']) });
  const def = ctx.config.lookup(name);
  const out = (v: unknown, text: string) => process.stdout.write(o.json ? json(v) : text);
  if (def) {
    const all = listSessions(ctx.stateDir);
    const sessions = all.filter((s) => s.state?.chroot === def.name);
    // A shared chroot's sessions on other hosts (and this host's leftovers), from its registrations.
    const remote = def.sharedDir ? await registeredElsewhere(ctx, () => all.map((s) => s.id), [def.name]) : [];
    const locks = lockCensus({ stateDir: ctx.stateDir, chroots: [def] }).filter((r) => r.lock === 'source' || r.lock === 'manage');
    const fields: [string, string][] = [
      ['chroot', def.name],
      ['aliases', def.aliases.join(', ') || '-'],
      ['description', def.description ?? '-'],
      ['directory', def.directory],
      ['union-type', def.unionType],
      ['hooks', hooksDirOf(ctx, def)],
      ['defined at', `${def.file}:${def.line}`],
      ['users', def.users.join(', ') || '-'],
      ['groups', def.groups.join(', ') || '-'],
      ['root-users', def.rootUsers.join(', ') || '-'],
      ['root-groups', def.rootGroups.join(', ') || '-'],
      ['source-users', def.sourceUsers.join(', ') || '-'],
      ['source-groups', def.sourceGroups.join(', ') || '-'],
      ['source-root-users', def.sourceRootUsers.join(', ') || '-'],
      ['source-root-groups', def.sourceRootGroups.join(', ') || '-'],
      ['sessions', sessions.length + remote.length ? [...sessions.map((s) => `${s.id} (${s.status})`), ...remote.map((r) => `${registeredName(r)} (${r.status})`)].join(', ') : '-'],
    ];
    const text =
      `${fields.map(([k, v]) => `${`${k}:`.padEnd(20)}${v}`).join('\n')}\n${locks.length ? `\n${table(HOLDER_HEADER, holderRows(locks))}` : `${'locks:'.padEnd(20)}none held\n`}` +
      (remote.length ? `\n${table(REGISTERED_HEADER, remote.map(registeredRow))}` : '');
    out({ kind: 'chroot', ...def, hooksDir: hooksDirOf(ctx, def), sessions: [...sessions.map((s) => ({ id: s.id, status: s.status })), ...remote.map(registeredJson)], locks }, text);
    return EXIT.ok;
  }
  // Not a chroot: a session id (validated before any path is built from it).
  try {
    validateId(name);
  } catch {
    throw new NoSuchChrootError(name, [...ctx.config.chroots.keys()]);
  }
  if (!existsSync(join(ctx.stateDir, name))) {
    const e = new SessionNotFoundError(name, ctx.stateDir);
    e.message = `no chroot or session named ${JSON.stringify(name)} (state dir ${ctx.stateDir})`;
    throw e;
  }
  const entry = inspectEntry(ctx.stateDir, name, { holders: true });
  const st = entry.state;
  const locks = lockCensus({ stateDir: ctx.stateDir, chroots: [] }).filter((r) => r.name === name);
  const mounts = entry.status === 'corrupt' && !st ? [] : mountsUnder(join(entry.dir, 'root')).map((m) => `${m.mountPoint} (${m.fsType})`);
  const fields: [string, string][] = [
    ['session', entry.id],
    ['status', entry.status + (entry.reason ? `: ${entry.reason}` : '')],
    ['phase', st?.status ?? '-'],
    ['chroot', st?.chroot ?? '-'],
    ['source', st?.source ?? '-'],
    ['union-type', st?.unionType ?? '-'],
    ['root', join(entry.dir, 'root')],
    ['created', st ? `${st.createdAt} (${age(st.createdAt)} ago) by pid ${st.beganBy}` : '-'],
    ['mounts', mounts.length ? mounts.join(', ') : '-'],
  ];
  const text = `${fields.map(([k, v]) => `${`${k}:`.padEnd(12)}${v}`).join('\n')}\n${locks.length ? `\n${table(HOLDER_HEADER, holderRows(locks))}` : 'locks:      none held\n'}`;
  out({ kind: 'session', id: entry.id, status: entry.status, reason: entry.reason, state: st, dir: entry.dir, mounts, locks }, text);
  return EXIT.ok;
}
