// Who may do what with a chroot: schroot's users=, groups=, root-users=,
// root-groups=, source-users=, source-groups=, source-root-users= and
// source-root-groups= (schroot.conf(5)), decided
// from a caller's credentials: SO_PEERCRED for the supervisor's clients, the
// process's own ids for the CLI. Root is always allowed; an empty list
// admits nobody else.
import { readFileSync, statSync } from 'node:fs';
import { PermissionDeniedError, type Access } from './errors.js';
import type { ChrootDef } from './types.js';

export type { Access } from './errors.js';

/** A caller, as the kernel vouches for it. */
export interface Credentials {
  uid: number;
  /** Primary group. */
  gid: number;
  /** Supplementary groups. */
  groups: number[];
  pid?: number;
}

/** Where user and group names come from (tests point these at fixtures). */
export interface AccountFiles {
  /** Default /etc/passwd. */
  passwd?: string | undefined;
  /** Default /etc/group. */
  group?: string | undefined;
}

const PASSWD_FILE = '/etc/passwd';
const GROUP_FILE = '/etc/group';

type ListKey = 'users' | 'groups' | 'rootUsers' | 'rootGroups' | 'sourceUsers' | 'sourceGroups' | 'sourceRootUsers' | 'sourceRootGroups';

interface Rule {
  /** User list and group list pairs; being in any of them grants the access. */
  lists: ReadonlyArray<readonly [users: ListKey, groups: ListKey]>;
  /** The same lists as the configuration spells them. */
  keys: readonly string[];
}

// schroot (sbuild::session::get_chroot_auth_status) lets a user run as
// themselves when they are in users=, groups=, root-users= or root-groups=,
// and become root without a password only through root-users= or
// root-groups=. The source chroot (chroot_facet_source_clonable) has the
// source lists in those places: source-users= and source-groups= admit
// to it, source-root-users= and source-root-groups= admit to it as root.
const RULES: Record<Access, Rule> = {
  session: {
    lists: [
      ['users', 'groups'],
      ['rootUsers', 'rootGroups'],
    ],
    keys: ['users=', 'groups=', 'root-users=', 'root-groups='],
  },
  root: { lists: [['rootUsers', 'rootGroups']], keys: ['root-users=', 'root-groups='] },
  source: {
    lists: [
      ['sourceUsers', 'sourceGroups'],
      ['sourceRootUsers', 'sourceRootGroups'],
    ],
    keys: ['source-users=', 'source-groups=', 'source-root-users=', 'source-root-groups='],
  },
  'source-root': { lists: [['sourceRootUsers', 'sourceRootGroups']], keys: ['source-root-users=', 'source-root-groups='] },
  // Ending stale sessions deletes what their owners wrote in them, which
  // only root or the owner may do otherwise (`warden end`): it is left to
  // those who are root in the source anyway (schroot.conf(5): root there
  // is as good as root on the host).
  'recover-stale': { lists: [['sourceRootUsers', 'sourceRootGroups']], keys: ['source-root-users=', 'source-root-groups='] },
};

/**
 * Throws PermissionDeniedError unless `who` may have `access` to `chroot`.
 * Entries of the lists are names or numeric ids. A user is in a group when
 * it is their primary group, one of their supplementary groups, or when
 * the group file lists them as a member (so a user added to a group is
 * admitted before they log in again).
 */
export function authorize(chroot: ChrootDef, who: Credentials, access: Access, files: AccountFiles = {}): void {
  if (who.uid === 0) return;
  const rule = RULES[access];
  const passwd = passwdOf(files);
  const name = passwd.nameByUid.get(who.uid);
  let empty = true;
  for (const [users, groups] of rule.lists) {
    if (chroot[users].length > 0 || chroot[groups].length > 0) empty = false;
    if (chroot[users].some((entry) => isUser(entry, who, passwd))) return;
    if (chroot[groups].length > 0) {
      const table = groupsOf(files);
      if (chroot[groups].some((entry) => inGroup(entry, who, name, table))) return;
    }
  }
  const reason = empty ? `${both(rule.keys)} are empty, so only root may` : `not in ${either(rule.keys)}`;
  const place = { file: chroot.file, line: chroot.line };
  throw new PermissionDeniedError({ chroot: chroot.name, uid: who.uid, user: name, access, rule: reason, place });
}

/** The gid of group `nameOrGid` (a name from the group file, or a number); undefined when there is no such group. */
export function groupId(nameOrGid: string, files: AccountFiles = {}): number | undefined {
  if (/^\d+$/.test(nameOrGid)) return Number(nameOrGid);
  return groupsOf(files).gidByName.get(nameOrGid);
}

/** The first passwd record named `user` or with uid `user` (as getpwnam(3), then getpwuid(3), would find it in the file); undefined when none. */
export function findAccount(user: string, files: AccountFiles = {}): Account | undefined {
  return passwdOf(files).accounts.find((a) => a.name === user || String(a.uid) === user);
}

/**
 * The accesses a command run as `user` (a -u value: name or uid; undefined:
 * the caller) needs: 'session', and 'root' for anyone but the caller.
 * schroot lets a caller become root without a password only through
 * root-users= or root-groups=, and asks for a password to become any other
 * user; warden asks none. Another user is admitted on root's terms, since
 * whoever may be root in a session can become anyone there. A name with
 * no passwd entry counts as someone else.
 */
/**
 * The groups a command run as `account` gets: its primary group, then
 * every group /etc/group lists it in (initgroups(3)'s list, from the
 * host's file, as `-u` is resolved from the host's passwd: a group line
 * written inside a session grants nothing).
 */
export function groupsOfAccount(account: Pick<Account, 'name' | 'gid'>, files: AccountFiles = {}): number[] {
  const out = [account.gid];
  for (const [gid, members] of groupsOf(files).membersByGid) if (members.has(account.name) && !out.includes(gid)) out.push(gid);
  return out;
}

export function accessToRun(who: Credentials, user: string | undefined, files: AccountFiles = {}): Access[] {
  return isCaller(who, user, files) ? ['session'] : ['session', 'root'];
}

/**
 * The accesses a source entry whose command runs as `o.user` needs:
 * 'source', 'source-root' for anyone but the caller (on the same terms as
 * accessToRun: the source is what every later session is made of, root
 * there is root in all of them), and 'recover-stale' with
 * `o.recoverStale`.
 */
export function accessToSource(who: Credentials, o: { user?: string | undefined; recoverStale?: boolean | undefined }, files: AccountFiles = {}): Access[] {
  const needs: Access[] = isCaller(who, o.user, files) ? ['source'] : ['source', 'source-root'];
  if (o.recoverStale) needs.push('recover-stale');
  return needs;
}

/** Whether `-u user` (undefined: no -u) names the caller themselves. */
export function isCaller(who: Pick<Credentials, 'uid'>, user: string | undefined, files: AccountFiles = {}): boolean {
  if (user === undefined) return true;
  const uid = isId(user) ? Number(user) : passwdOf(files).uidByName.get(user);
  return uid === who.uid;
}

// Plain decimal: "0x10" or " 1" are names (that no passwd has), not ids.
function isId(entry: string): boolean {
  return /^\d{1,10}$/.test(entry);
}

function isUser(entry: string, who: Credentials, passwd: Passwd): boolean {
  const uid = isId(entry) ? Number(entry) : passwd.uidByName.get(entry);
  return uid === who.uid;
}

function inGroup(entry: string, who: Credentials, name: string | undefined, table: Groups): boolean {
  const gid = isId(entry) ? Number(entry) : table.gidByName.get(entry);
  if (gid === undefined) return false;
  if (gid === who.gid || who.groups.includes(gid)) return true;
  return name !== undefined && (table.membersByGid.get(gid)?.has(name) ?? false);
}

function either(keys: readonly string[]): string {
  return keys.length === 1 ? keys[0]! : `${keys.slice(0, -1).join(', ')} or ${keys.at(-1)}`;
}

function both(keys: readonly string[]): string {
  return keys.length === 1 ? keys[0]! : `${keys.slice(0, -1).join(', ')} and ${keys.at(-1)}`;
}

// --- the account files ------------------------------------------------------
//
// Read by hand because Node has no getpwuid(3), getgrnam(3) or
// getgrouplist(3) (os.userInfo() knows only the calling process). Binding
// them through koffi would reach NSS (LDAP, sssd) too, but a lookup there
// can block the supervisor's event loop for as long as a directory server
// takes; and `-u USER` is resolved by findAccount from the same file, so
// "who may" and "who it runs as" are one view. Users known only through NSS must be named by numeric id.

/** One passwd record: what `-u USER` needs to run a command as that user. */
export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
  /** The login shell (field 7); may be empty. */
  shell: string;
}

interface Passwd {
  nameByUid: Map<number, string>;
  uidByName: Map<string, number>;
  /** Every record, in file order. */
  accounts: Account[];
}

interface Groups {
  gidByName: Map<string, number>;
  /** Members listed in the group file, by gid (groups sharing a gid are merged, as the kernel sees only the gid). */
  membersByGid: Map<number, Set<string>>;
}

interface Cached {
  /** What identifies this version of the file. */
  stamp: string;
  value: unknown;
}

// Per process, by path, checked against the file's identity on every use:
// the supervisor lives for weeks, and useradd/usermod replace the file
// (write a new one, rename it over), which changes its inode.
const cache = new Map<string, Cached>();

function passwdOf(files: AccountFiles): Passwd {
  return cached(files.passwd ?? PASSWD_FILE, parsePasswd);
}

function groupsOf(files: AccountFiles): Groups {
  return cached(files.group ?? GROUP_FILE, parseGroup);
}

function cached<T>(path: string, parse: (text: string) => T): T {
  let stamp: string;
  try {
    const st = statSync(path);
    stamp = `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`;
  } catch (e) {
    // No file: no names. Numeric entries still work, and nothing is granted by mistake.
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') stamp = 'missing';
    else throw new Error(`cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  const hit = cache.get(path);
  if (hit?.stamp === stamp) return hit.value as T;
  const value = parse(stamp === 'missing' ? '' : readFileSync(path, 'utf8'));
  cache.set(path, { stamp, value });
  return value;
}

/**
 * Records of `name:x:id:...` files. Comments, blank lines and NIS compat
 * entries (`+name`, `-name`, `+`) are skipped, and so is a record whose id
 * is not a number: a broken line must not map a name to uid NaN or 0.
 */
function records(text: string, minFields: number): Array<{ name: string; id: number; fields: string[] }> {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#') || line.startsWith('+') || line.startsWith('-')) continue;
    const fields = line.split(':');
    if (fields.length < minFields || fields[0] === '' || !isId(fields[2]!)) continue;
    out.push({ name: fields[0]!, id: Number(fields[2]), fields });
  }
  return out;
}

// The first record wins, as with getpwnam(3) and getpwuid(3).
function parsePasswd(text: string): Passwd {
  const p: Passwd = { nameByUid: new Map(), uidByName: new Map(), accounts: [] };
  for (const r of records(text, 7)) {
    p.accounts.push({ name: r.name, uid: r.id, gid: Number(r.fields[3]), home: r.fields[5]!, shell: r.fields[6]! });
    if (!p.nameByUid.has(r.id)) p.nameByUid.set(r.id, r.name);
    if (!p.uidByName.has(r.name)) p.uidByName.set(r.name, r.id);
  }
  return p;
}

function parseGroup(text: string): Groups {
  const g: Groups = { gidByName: new Map(), membersByGid: new Map() };
  for (const r of records(text, 4)) {
    if (!g.gidByName.has(r.name)) g.gidByName.set(r.name, r.id);
    const members = g.membersByGid.get(r.id) ?? new Set<string>();
    for (const m of r.fields[3]!.split(',')) if (m.trim() !== '') members.add(m.trim());
    g.membersByGid.set(r.id, members);
  }
  return g;
}
