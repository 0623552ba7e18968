// state.json: what a session is, versioned, written atomically (tmp file,
// fsync, rename, fsync of the directory), so a crash leaves either the old
// or the new file, never half of one. Readers validate every field: a
// corrupt file is reported, never trusted.
import { closeSync, constants as fsc, fsyncSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { UnionType } from '../config/index.js';
import { ID_PATTERN } from './ids.js';
import { crashPoint } from '../sys/index.js';

export const STATE_FILE = 'state.json';
export const STATE_VERSION = 1;
/** A state.json larger than this is not ours. */
const MAX_STATE_BYTES = 64 * 1024;

/** setting-up: begin is building it; active: mounted and usable; ending: end is tearing it down. */
export type SessionStatus = 'setting-up' | 'active' | 'ending';
const STATUSES: readonly SessionStatus[] = ['setting-up', 'active', 'ending'];
const UNION_TYPES: readonly UnionType[] = ['overlay', 'copy', 'none'];

export interface SessionState {
  version: typeof STATE_VERSION;
  id: string;
  chroot: string;
  /** The source directory, as configured when the session began. */
  source: string;
  unionType: UnionType;
  status: SessionStatus;
  /** Hooks the session began with; end runs the stop phases from the same dir. */
  hooksDir: string;
  hookTimeoutMs: number;
  /** ISO times. */
  createdAt: string;
  updatedAt: string;
  /** Pid of the process that began the session (informational: liveness is the lock, never a pid). */
  beganBy: number;
  /**
   * Where the overlay's upper layer is: 2, in `upper/fs` inside the 0700
   * `upper` (overlayfs gives the session's `/` the mode of the upper
   * layer's top, so the layer itself cannot be 0700); 1, `upper` itself
   * (sessions begun before; absent in their state.json).
   */
  layout: SessionLayout;
  /**
   * Who began the session (the supervisor's client, or the CLI's real ids
   * for `run -c`): besides root, only this uid may end it. Absent in files
   * written before it was recorded; read as root's (sessionOwner).
   */
  owner?: SessionOwner;
  /**
   * The chroot's schroot profile when the session began (profile.ts): its
   * files, applied first in post-mount (again on recover), and whether they
   * replace the hooks dir's declarative hooks. Absent: none.
   */
  profile?: SessionProfile;
  /**
   * A shared chroot's session (build farms): the chroot's shared-dir= and
   * this host's name when it began, which name its registration
   * `<dir>/sessions/<host>@<id>`. Recorded so that end and recover find
   * the registration whatever the configuration says by then. Absent: a
   * session of this host alone.
   */
  shared?: SessionShared;
}

export interface SessionShared {
  dir: string;
  host: string;
}

/** A session's profile: absolute paths of its files (any absent), and whether the hooks dir's .fstab and .copyfiles still apply. */
export interface SessionProfile {
  fstab?: string;
  copyfiles?: string;
  nssdatabases?: string;
  /** True: the hooks dir's declarative hooks are skipped (its executables still run). */
  replacesDeclarativeHooks: boolean;
}

/** The uid and gid a session belongs to. */
export interface SessionOwner {
  uid: number;
  gid: number;
}

/** What a state.json without `owner` (an older warden's) is taken to say: root's, so only root may end it. */
const LEGACY_OWNER: Readonly<SessionOwner> = Object.freeze({ uid: 0, gid: 0 });

/** The owner of a session; a state.json that records none belongs to root. */
export function sessionOwner(state: SessionState): SessionOwner {
  return state.owner ?? LEGACY_OWNER;
}

export type SessionLayout = 1 | 2;
/** What a begin makes now. */
export const SESSION_LAYOUT: SessionLayout = 2;

let readBuffer: Buffer | undefined;

/** Reads and validates `<dir>/state.json`; throws an Error whose message is the reason. */
export function readState(dir: string): SessionState {
  const path = join(dir, STATE_FILE);
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new Error(code === 'ENOENT' ? 'state.json is missing' : code === 'ELOOP' ? 'state.json is a symbolic link' : `state.json: ${(e as Error).message}`);
  }
  let text: string;
  try {
    // One buffer for every read (reads are synchronous): zero-filling 64 KiB
    // per session was half the cost of listing thousands of sessions.
    const buf = (readBuffer ??= Buffer.allocUnsafe(MAX_STATE_BYTES + 1));
    let n = 0;
    for (;;) {
      const r = readSync(fd, buf, n, buf.length - n, null);
      if (r === 0) break;
      n += r;
      if (n > MAX_STATE_BYTES) throw new Error(`state.json is larger than ${MAX_STATE_BYTES} bytes`);
    }
    text = buf.subarray(0, n).toString('utf8');
  } catch (e) {
    throw new Error((e as Error).message.startsWith('state.json') ? (e as Error).message : `state.json: ${(e as Error).message}`);
  } finally {
    closeSync(fd);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new Error(text.length === 0 ? 'state.json is empty' : 'state.json is not valid JSON (truncated or garbage)');
  }
  return validateState(raw);
}

function validateState(raw: unknown): SessionState {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('state.json is not an object');
  const o = raw as Record<string, unknown>;
  if (o.version !== STATE_VERSION) throw new Error(`state.json has version ${JSON.stringify(o.version)}, expected ${STATE_VERSION}`);
  const str = (k: string): string => {
    if (typeof o[k] !== 'string' || o[k] === '') throw new Error(`state.json: field "${k}" is missing or not a string`);
    return o[k] as string;
  };
  const num = (k: string): number => {
    if (typeof o[k] !== 'number' || !Number.isFinite(o[k])) throw new Error(`state.json: field "${k}" is missing or not a number`);
    return o[k] as number;
  };
  const id = str('id');
  if (!ID_PATTERN.test(id)) throw new Error(`state.json: id ${JSON.stringify(id)} is not a valid session id`);
  const status = str('status') as SessionStatus;
  if (!STATUSES.includes(status)) throw new Error(`state.json: unknown status ${JSON.stringify(status)}`);
  const unionType = str('unionType') as UnionType;
  if (!UNION_TYPES.includes(unionType)) throw new Error(`state.json: unknown union type ${JSON.stringify(unionType)}`);
  const source = str('source');
  const hooksDir = str('hooksDir');
  if (!source.startsWith('/') || !hooksDir.startsWith('/')) throw new Error('state.json: source and hooksDir must be absolute paths');
  const state: SessionState = {
    version: STATE_VERSION,
    id,
    chroot: str('chroot'),
    source,
    unionType,
    status,
    hooksDir,
    hookTimeoutMs: num('hookTimeoutMs'),
    createdAt: str('createdAt'),
    updatedAt: str('updatedAt'),
    beganBy: num('beganBy'),
    layout: o.layout === undefined ? 1 : layoutOf(o.layout),
  };
  if (o.owner !== undefined) state.owner = validOwner(o.owner);
  if (o.profile !== undefined) state.profile = validProfile(o.profile);
  if (o.shared !== undefined) state.shared = validShared(o.shared);
  return state;
}

function validShared(raw: unknown): SessionShared {
  const o = raw as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || typeof o.dir !== 'string' || !o.dir.startsWith('/') || typeof o.host !== 'string' || o.host === '') {
    throw new Error('state.json: field "shared" must name an absolute dir and a host');
  }
  return { dir: o.dir, host: o.host };
}

function validProfile(raw: unknown): SessionProfile {
  const o = raw as Record<string, unknown> | null;
  const bad = (why: string) => new Error(`state.json: field "profile" ${why}`);
  if (typeof o !== 'object' || o === null || Array.isArray(o)) throw bad('must be an object');
  if (typeof o.replacesDeclarativeHooks !== 'boolean') throw bad('must say replacesDeclarativeHooks (true or false)');
  const p: SessionProfile = { replacesDeclarativeHooks: o.replacesDeclarativeHooks };
  for (const k of ['fstab', 'copyfiles', 'nssdatabases'] as const) {
    const v = o[k];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !v.startsWith('/')) throw bad(`has a ${k} that is not an absolute path`);
    p[k] = v;
  }
  return p;
}

const isId = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x <= 0xfffffffe;

function validOwner(raw: unknown): SessionOwner {
  const o = raw as Record<string, unknown> | null;
  if (typeof o !== 'object' || o === null || Array.isArray(o) || !isId(o.uid) || !isId(o.gid)) {
    throw new Error('state.json: field "owner" must be an object with a numeric uid and gid');
  }
  return { uid: o.uid, gid: o.gid };
}

function layoutOf(v: unknown): SessionLayout {
  if (v !== 1 && v !== 2) throw new Error(`state.json: unknown layout ${JSON.stringify(v)}`);
  return v;
}

/**
 * Replaces `<dir>/state.json` atomically and durably. The file's data is
 * always on disk before the rename (else a power loss could leave the new
 * name on an empty file); `syncRename: false` leaves the rename itself to
 * the next journal commit, for a status whose loss in a power cut is
 * harmless (after a reboot the session is stale either way).
 * Preconditions: the caller holds the session's metadata lock (byte 1) exclusively.
 */
export function writeStateLocked(dir: string, state: SessionState, { syncRename = true } = {}): void {
  const tmp = join(dir, `.${STATE_FILE}.tmp`);
  const path = join(dir, STATE_FILE);
  // O_EXCL after an unlink: a planted tmp symlink is removed, never followed.
  try {
    unlinkSync(tmp);
  } catch {
    // usually absent
  }
  const fd = openSync(tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o644);
  try {
    writeSync(fd, `${JSON.stringify(state, null, 2)}\n`);
    crashPoint('state:written');
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  crashPoint('state:renamed');
  if (syncRename) syncDir(dir);
}

/** fsync(2) of a directory: makes a rename or unlink in it durable. */
export function syncDir(dir: string): void {
  const fd = openSync(dir, fsc.O_RDONLY | fsc.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
