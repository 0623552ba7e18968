// schroot 1.6's output formats, byte for byte: -l, -i (sbuild::format_detail),
// --config (sbuild::keyfile) and --location, from the plain data of model.ts.
// Values schroot has and warden does not (personality, shell, user data...)
// are printed as schroot prints them for a chroot that does not set them.
import { DEFAULT_ENVIRONMENT_FILTER, type ChrootInfo, type SessionInfo } from './model.js';
import type { Selection } from './args.js';

/** One record of -i or --config: a chroot, its source chroot, or a session. */
export type Record =
  | { kind: 'chroot'; chroot: ChrootInfo }
  | { kind: 'source'; chroot: ChrootInfo }
  | { kind: 'session'; session: SessionInfo };

/** Has a source chroot (`source:NAME`): schroot's source-clonable facet goes with a union. */
export function hasSource(c: ChrootInfo): boolean {
  return c.unionType !== 'none';
}

const byteOrder = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const sorted = (xs: Iterable<string>) => [...xs].sort(byteOrder);

/**
 * `schroot -l`: with chroots named (-c), those names as given, in order;
 * else the --all-* sets, each sorted (chroots, then sessions, then source
 * chroots), aliases included unless --exclude-aliases. Like schroot 1.6, an
 * alias A of a chroot with a source also lists `chroot:A-source`.
 * The caller has checked that each named chroot exists.
 */
export function formatList(selection: Selection, chroots: readonly ChrootInfo[], sessions: readonly SessionInfo[]): string {
  if (selection.chroots.length > 0) return selection.chroots.map((r) => `${r.given}\n`).join('');
  const aliases = !selection.excludeAliases;
  const names: string[] = [];
  if (selection.allChroots) {
    const set = new Set<string>();
    for (const c of chroots) {
      set.add(`chroot:${c.name}`);
      if (!aliases) continue;
      for (const a of c.aliases) {
        set.add(`chroot:${a}`);
        if (hasSource(c)) set.add(`chroot:${a}-source`);
      }
    }
    names.push(...sorted(set));
  }
  if (selection.allSessions) names.push(...sorted(sessions.map((s) => `session:${s.id}`)));
  if (selection.allSourceChroots) {
    const set = new Set<string>();
    for (const c of chroots.filter(hasSource)) {
      set.add(`source:${c.name}`);
      if (aliases) for (const a of c.aliases) set.add(`source:${a}`);
    }
    names.push(...sorted(set));
  }
  return names.map((n) => `${n}\n`).join('');
}

type Item = [key: string, value: string];

const bool = (b: boolean) => (b ? 'true' : 'false');
const words = (xs: readonly string[]) => xs.join(' ');

function setupKeys(profile: string): Item[] {
  return ['config', 'copyfiles', 'fstab', 'nssdatabases'].map((k) => [`setup.${k}`, `${profile}/${k}`]);
}

/** The key/value lines of one -i record, in schroot's order (chroot, then its facets). */
function detailItems(r: Record): Item[] {
  const c = r.kind === 'session' ? r.session.chroot : r.chroot;
  const s = r.kind === 'session' ? r.session : undefined;
  const fromSource = r.kind === 'source' || s?.source === true;
  const union = !fromSource && hasSource(c);
  let description = c.description;
  if (fromSource) description += ' (source chroot)';
  if (s) description += ' (session chroot)';
  // A source chroot's access lists are its source-* keys; a session lets in its owner alone.
  const access =
    s ? { users: [], groups: [], rootUsers: [s.owner], rootGroups: [] }
    : r.kind === 'source' ? { users: c.sourceUsers, groups: c.sourceGroups, rootUsers: c.sourceRootUsers, rootGroups: c.sourceRootGroups }
    : c;
  const items: Item[] = [
    ['Name', s ? s.id : c.name],
    ['Description', description],
    ['Type', c.type],
    ['Message Verbosity', 'normal'],
    ['Users', words(access.users)],
    ['Groups', words(access.groups)],
    ['Root Users', words(access.rootUsers)],
    ['Root Groups', words(access.rootGroups)],
    ['Aliases', s ? '' : words(c.aliases)],
    ['Preserve Environment', 'false'],
    ['Default Shell', ''],
    ['Environment Filter', DEFAULT_ENVIRONMENT_FILTER],
    ['Run Setup Scripts', 'true'],
    ['Configuration Profile', c.profile],
    ['Script Configuration', ''],
    ['Session Managed', bool(!s)],
    ['Session Cloned', bool(!s && union)],
    ['Session Purged', bool(s !== undefined && union)],
  ];
  if (s) items.push(['Mount Location', s.mountLocation], ['Path', s.mountLocation]);
  items.push(
    ['Directory', c.directory],
    ['Personality', 'undefined'],
    ['User Modifiable Keys', ''],
    ['Root Modifiable Keys', ''],
    ['User Data', ''],
    ...setupKeys(c.profile).map(([k, v]): Item => [`  ${k}`, v]),
  );
  // The union facet: gone from a source chroot, type none in a session of one.
  if (r.kind !== 'source') {
    items.push(['Filesystem Union Type', union ? c.unionType : 'none']);
    if (union) {
      items.push(
        ['Filesystem Union Overlay Directory', s ? s.unionOverlayDirectory : c.unionOverlayDirectory],
        ['Filesystem Union Underlay Directory', s ? s.unionUnderlayDirectory : c.unionUnderlayDirectory],
      );
    }
  }
  if (s) items.push(['Original Chroot Name', c.name], ['Selected Chroot Name', s.selectedName], ['Session ID', s.id]);
  if (union) {
    const src = s ? { sourceUsers: [], sourceGroups: [], sourceRootUsers: [], sourceRootGroups: [] } : c;
    items.push(
      ['Source Users', words(src.sourceUsers)],
      ['Source Groups', words(src.sourceGroups)],
      ['Source Root Users', words(src.sourceRootUsers)],
      ['Source Root Groups', words(src.sourceRootGroups)],
    );
  }
  return items;
}

const TITLES = { chroot: 'Chroot', source: 'Source', session: 'Session' } as const;

/**
 * One -i record as sbuild::format_detail prints it: `  ─── Title ───`, then
 * `  KEY` padded to the longest key of the record (at least 20) plus 2, then
 * the value. (Keys are ASCII, so their display width is their length.)
 */
function formatDetail(r: Record): string {
  const items = detailItems(r);
  const width = Math.max(20, ...items.map(([k]) => k.length)) + 2;
  const lines = items.map(([k, v]) => `  ${k.padEnd(width)}${v}\n`);
  return `  ─── ${TITLES[r.kind]} ───\n${lines.join('')}`;
}

/** `schroot -i`: the records, a blank line between two. */
export function formatInfo(records: readonly Record[]): string {
  return records.map(formatDetail).join('\n');
}

/** `schroot --location`: one path a line; '' for a chroot, which has a location only in a session. */
export function formatLocation(records: readonly Record[]): string {
  return records.map((r) => `${r.kind === 'session' ? r.session.mountLocation : ''}\n`).join('');
}

/** The keys of one --config group; undefined for a source chroot, which schroot does not print (it is generated). */
function configKeys(r: Record): Map<string, string> | undefined {
  if (r.kind === 'source') return undefined;
  const c = r.kind === 'session' ? r.session.chroot : r.chroot;
  const s = r.kind === 'session' ? r.session : undefined;
  const union = !s?.source && hasSource(c);
  const k = new Map<string, string>();
  k.set('aliases', s ? '' : c.aliases.join(','));
  k.set('command-prefix', '');
  k.set('description', `${c.description}${s?.source ? ' (source chroot)' : ''}${s ? ' (session chroot)' : ''}`);
  k.set('directory', c.directory);
  k.set('environment-filter', DEFAULT_ENVIRONMENT_FILTER);
  k.set('groups', s ? '' : c.groups.join(','));
  k.set('message-verbosity', 'normal');
  k.set('preserve-environment', 'false');
  k.set('profile', c.profile);
  k.set('root-groups', s ? '' : c.rootGroups.join(','));
  k.set('root-modifiable-keys', '');
  k.set('root-users', s ? s.owner : c.rootUsers.join(','));
  for (const [key, v] of setupKeys(c.profile)) k.set(key, v);
  k.set('shell', '');
  k.set('type', c.type);
  k.set('union-type', union ? c.unionType : 'none');
  k.set('user-modifiable-keys', '');
  k.set('users', s ? '' : c.users.join(','));
  if (union) {
    k.set('source-clone', 'true');
    k.set('source-groups', s ? '' : c.sourceGroups.join(','));
    k.set('source-root-groups', s ? '' : c.sourceRootGroups.join(','));
    k.set('source-root-users', s ? '' : c.sourceRootUsers.join(','));
    k.set('source-users', s ? '' : c.sourceUsers.join(','));
    k.set('union-mount-options', '');
    k.set('union-overlay-directory', s ? s.unionOverlayDirectory : c.unionOverlayDirectory);
    k.set('union-underlay-directory', s ? s.unionUnderlayDirectory : c.unionUnderlayDirectory);
  }
  if (s) {
    k.set('mount-location', s.mountLocation);
    k.set('name', s.id);
    k.set('original-name', c.name);
    k.set('selected-name', s.selectedName);
  }
  return k;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** sbuild::date: strftime `%d %b %Y` in the C locale, local time. */
function schrootDate(d: Date): string {
  return `${String(d.getDate()).padStart(2, '0')} ${MONTHS[d.getMonth()]} ${d.getFullYear()}`;
}

export interface ConfigHeader {
  /** schroot prints its program name and version: `schroot 1.6.13`. */
  program: string;
  version: string;
  date: Date;
}

/**
 * `schroot --config`: a comment line, a blank line, then one keyfile group a
 * record (keys in byte order, a blank line between groups); a source chroot
 * prints nothing.
 */
export function formatConfig(records: readonly Record[], header: ConfigHeader): string {
  const groups: string[] = [];
  for (const r of records) {
    const keys = configKeys(r);
    if (keys === undefined) continue;
    const name = r.kind === 'session' ? r.session.id : r.chroot.name;
    const lines = sorted(keys.keys()).map((k) => `${k}=${keys.get(k)}\n`);
    groups.push(`[${name}]\n${lines.join('')}`);
  }
  return `# schroot configuration generated by ${header.program} ${header.version} on ${schrootDate(header.date)}\n\n${groups.join('\n')}`;
}
