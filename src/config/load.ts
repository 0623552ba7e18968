// Reads the main file and chroot.d/ into one validated Config.
//
// Synchronous on purpose: the files are a few kilobytes, every CLI verb needs
// the result before it can do anything else, and nothing runs concurrently at
// start-up, so async reads would only add ticks and make "first error wins,
// in file order" harder to see in the code.
import { closeSync, constants as fsc, fstatSync, openSync, readFileSync, statSync } from 'node:fs';
import { untrusted } from '../sys/index.js';
import { basename, dirname, join } from 'node:path';
import { readChroot } from './chroot.js';
import { ConfigError, describePlace, quote, type ConfigWarning, type Place } from './errors.js';
import { readGlobals, type Globals } from './globals.js';
import { dropInFiles, locateConfig, type LocateOptions } from './locate.js';
import { GLOBAL_GROUP } from './names.js';
import { parseKeyfile } from './parser.js';
import type { ChrootDef, Config, UnsupportedChroot } from './types.js';

export interface LoadOptions extends LocateOptions {
  /**
   * Check that each `directory=` exists and is a directory (default true).
   * Off only to validate a file meant for another machine, such as the
   * example etc/warden.conf before bootstrap has built its chroot.
   */
  checkDirectories?: boolean | undefined;
}

/** Who owns a name: a chroot (by its header) or one of its aliases. */
interface Claim {
  chroot: string;
  alias: boolean;
  place: Place;
}

/**
 * Loads the configuration. Throws ConfigError at the first error, in file
 * order (main file, then chroot.d/ in lexical order); chroots of unsupported
 * types and ignored keys are collected instead.
 */
export function loadConfig(opts: LoadOptions = {}): Config {
  const location = locateConfig(opts);
  const mainText = readConfigFile(location.file, !location.explicit);
  if (mainText === undefined) return makeConfig(undefined, noGlobals(), [], [], []);

  const checkDirectories = opts.checkDirectories ?? true;
  const warnings: ConfigWarning[] = [];
  const unsupported: UnsupportedChroot[] = [];
  const chroots: ChrootDef[] = [];
  const claims = new Map<string, Claim>();
  /** shared-dir= paths taken, by the chroot and place that took them. */
  const sharedDirs = new Map<string, { chroot: string; place: Place }>();
  let globals = noGlobals();
  let globalsPlace: Place | undefined;

  const defaultProfile = defaultProfileOf(location.file);
  const files = [location.file, ...dropInFiles(join(dirname(location.file), 'chroot.d'))];
  for (const [index, file] of files.entries()) {
    const text = index === 0 ? mainText : readConfigFile(file);
    for (const group of parseKeyfile(text, file).groups) {
      const place = { file, line: group.line };
      if (group.name === GLOBAL_GROUP) {
        // Host-wide settings live in one place; a drop-in must not move the state dir.
        if (index !== 0) {
          throw new ConfigError(file, group.line, `[${GLOBAL_GROUP}] belongs in the main file ${location.file}, not in chroot.d/`);
        }
        if (globalsPlace !== undefined) {
          throw new ConfigError(file, group.line, `[${GLOBAL_GROUP}] is already defined at ${describePlace(globalsPlace)}`);
        }
        globalsPlace = place;
        globals = readGlobals(group, file, warnings);
        continue;
      }

      claim(claims, group.name, { chroot: group.name, alias: false, place });
      const read = readChroot(group, file, { checkDirectories, profileBase: dirname(location.file), defaultProfile }, warnings);
      if (read.kind === 'runnable') checkProfileFiles(file, group.line, read.def);
      const aliases = read.kind === 'runnable' ? read.def.aliases : read.aliases;
      const aliasPlace = { file, line: read.aliasesLine };
      for (const alias of aliases) claim(claims, alias, { chroot: group.name, alias: true, place: aliasPlace });
      if (read.kind === 'runnable' && read.def.sharedDir !== undefined) {
        // Its lock files have fixed names in it: two chroots there would share one manage lock.
        const { path, line } = read.def.sharedDir;
        const prev = sharedDirs.get(path);
        if (prev !== undefined) {
          throw new ConfigError(file, line, `shared-dir=${path} of [${group.name}] is already the shared-dir of [${prev.chroot}] at ${describePlace(prev.place)}`);
        }
        sharedDirs.set(path, { chroot: group.name, place: { file, line } });
      }
      if (read.kind === 'runnable') chroots.push(read.def);
      else unsupported.push(read.entry);
    }
  }
  return makeConfig(location.file, globals, chroots, unsupported, warnings);
}

/** Device number of /dev/null (1, 3) as stat(2) encodes it. */
const DEV_NULL = (1 << 8) | 3;

/**
 * The file's text; with `missingOk`, undefined when it does not exist (a
 * default nobody asked for). Read through the fd that was checked: owned by
 * root and not writable by group or others (trust.ts), so a file swapped in
 * after the check is never what is read.
 */
/**
 * schroot gives a chroot that names no profile the `default` one
 * (/etc/schroot/default: its fstab binds /home and /tmp too, its
 * nssdatabases copy the host's users in), and users of schroot's
 * configuration rely on it. So a configuration file named schroot.conf
 * (what warden-schroot reads, and `--config /etc/schroot/schroot.conf`)
 * does the same when a `default` directory is beside it; warden.conf's
 * chroots get warden's default hooks instead.
 */
function defaultProfileOf(file: string): string | undefined {
  if (basename(file) !== 'schroot.conf') return undefined;
  try {
    return statSync(join(dirname(file), 'default')).isDirectory() ? 'default' : undefined;
  } catch {
    return undefined;
  }
}

function readConfigFile(file: string): string;
function readConfigFile(file: string, missingOk: boolean): string | undefined;
function readConfigFile(file: string, missingOk = false): string | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(file, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY);
    const st = fstatSync(fd);
    if (st.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
    // `--config /dev/null`, the usual way to say "no configuration", is empty, not world-writable.
    if (st.isCharacterDevice() && st.rdev === DEV_NULL) return '';
    if (!st.isFile()) throw new ConfigError(file, undefined, 'config file is not a regular file');
    const reason = untrusted(st, 'it is');
    if (reason !== undefined) throw new ConfigError(file, undefined, `refusing to read the config file: ${reason}`);
    return readFileSync(fd, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && missingOk) return undefined;
    const why =
      code === 'ENOENT' ? 'config file does not exist'
      : code === 'EISDIR' ? 'config file is a directory'
      : `cannot read config file (${code ?? String(e)})`;
    throw new ConfigError(file, undefined, why, { cause: e });
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The profile files root will read: each that exists must be root's and
 * writable by nobody else (schroot's rule for its configuration), else
 * exit 3 naming it. A missing one fails the session start instead, as in
 * schroot's setup scripts. The hooks layer checks again through the fd it reads.
 */
function checkProfileFiles(file: string, line: number, def: ChrootDef): void {
  for (const path of Object.values(def.profileFiles ?? {})) {
    if (path === undefined) continue;
    let st;
    try {
      st = statSync(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw new ConfigError(file, line, `cannot check profile file ${path} of [${def.name}] (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
    }
    const reason = untrusted(st, 'it is');
    if (reason !== undefined) throw new ConfigError(file, line, `refusing profile file ${path} of [${def.name}]: ${reason}`);
  }
}

/** Records that `name` is taken, or throws naming both places if it already was. */
function claim(claims: Map<string, Claim>, name: string, next: Claim): void {
  const prev = claims.get(name);
  if (prev === undefined) {
    claims.set(name, next);
    return;
  }
  const what = (c: Claim) => (c.alias ? `alias ${quote(name)} of [${c.chroot}]` : `chroot [${c.chroot}]`);
  const reason =
    !next.alias && !prev.alias ? `chroot [${name}] is already defined at ${describePlace(prev.place)}`
    : `${what(next)} clashes with ${what(prev)} at ${describePlace(prev.place)}`;
  throw new ConfigError(next.place.file, next.place.line, reason);
}

function noGlobals(): Globals {
  return { stateDir: undefined, hooksDir: undefined, hookTimeout: undefined, socketGroup: undefined, host: undefined, supervisorLimits: {} };
}

function makeConfig(
  file: string | undefined,
  globals: Globals,
  defs: ChrootDef[],
  unsupported: UnsupportedChroot[],
  warnings: ConfigWarning[],
): Config {
  const chroots = new Map(defs.map((d) => [d.name, d]));
  // Clashes were refused while loading, so each alias names exactly one chroot.
  const byAlias = new Map(defs.flatMap((d) => d.aliases.map((a) => [a, d] as const)));
  return {
    file,
    ...globals,
    chroots,
    unsupported,
    warnings,
    lookup: (nameOrAlias) => chroots.get(nameOrAlias) ?? byAlias.get(nameOrAlias),
  };
}
