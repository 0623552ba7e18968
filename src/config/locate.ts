// Which files make up the configuration: the main file (DESIGN.md, "Files")
// and the drop-ins in chroot.d/ beside it.
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { untrusted } from '../sys/index.js';
import { ConfigError } from './errors.js';

export const SYSTEM_CONFIG = '/etc/warden/warden.conf';

export interface ConfigLocation {
  /** Absolute path of the main file. */
  file: string;
  /** Named by --config or WARDEN_CONFIG: then a missing file is an error, not an empty config. */
  explicit: boolean;
}

export interface LocateOptions {
  config?: string | undefined;
  env?: NodeJS.ProcessEnv | undefined;
  cwd?: string | undefined;
}

/**
 * --config, else WARDEN_CONFIG, else ./etc/warden.conf when it exists, else
 * /etc/warden/warden.conf. The current directory is a place another user
 * may own: its etc/warden.conf is used only when every directory from `/`
 * down to it is root's and writable by nobody else (sticky ones such as
 * /tmp allowed), else ConfigError. The file itself is checked when read.
 */
export function locateConfig(opts: LocateOptions = {}): ConfigLocation {
  const cwd = opts.cwd ?? process.cwd();
  const env = opts.env ?? process.env;
  // An empty value counts as unset, as `WARDEN_CONFIG= warden list` means.
  if (opts.config) return { file: resolve(cwd, opts.config), explicit: true };
  if (env.WARDEN_CONFIG) return { file: resolve(cwd, env.WARDEN_CONFIG), explicit: true };
  const local = join(cwd, 'etc', 'warden.conf');
  if (existsSync(local)) {
    checkPathTrusted(local);
    return { file: local, explicit: false };
  }
  return { file: SYSTEM_CONFIG, explicit: false };
}

/** Throws ConfigError naming the first directory on `file`'s real path that root may not trust. */
function checkPathTrusted(file: string): void {
  let real: string;
  try {
    real = realpathSync.native(dirname(file));
  } catch (e) {
    throw new ConfigError(file, undefined, `cannot resolve its directory (${(e as NodeJS.ErrnoException).code ?? String(e)})`, { cause: e });
  }
  for (let dir = real; ; dir = dirname(dir)) {
    const reason = untrusted(statSync(dir), `${dir} is`, { stickyOk: true });
    if (reason !== undefined) {
      throw new ConfigError(file, undefined, `refusing the configuration in the current directory: ${reason} (name a file with --config, or run elsewhere)`);
    }
    if (dir === '/') return;
  }
}

// run-parts(8) names (what schroot reads from its chroot.d, e.g. the
// `sid-amd64-sbuild-Xf3k9a` files sbuild-createchroot writes), plus `*.conf`.
// Hidden files, editor backups (`x.conf~`, `#x#`) and dpkg leftovers
// (`x.conf.dpkg-old`) match neither and are skipped silently, as run-parts does.
const RUN_PARTS_NAME = /^[A-Za-z0-9_-]+$/;
const CONF_NAME = /^[A-Za-z0-9_-][A-Za-z0-9._-]*\.conf$/;

/** The drop-in files of `dir`, in byte order; none when the directory does not exist. */
export function dropInFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw new ConfigError(dir, undefined, `cannot list the directory (${code ?? String(e)})`, { cause: e });
  }
  // Whoever can add a file here defines chroots: the directory is held to the files' rule.
  const reason = untrusted(statSync(dir), 'it is');
  if (reason !== undefined) throw new ConfigError(dir, undefined, `refusing to read the drop-in directory: ${reason}`);
  return names
    .filter((name) => RUN_PARTS_NAME.test(name) || CONF_NAME.test(name))
    .sort() // names are ASCII, so code-unit order is byte order, as in run-parts
    .map((name) => join(dir, name))
    .filter((path) => isRegularFile(path));
}

// Follows symlinks; a dangling link or a subdirectory is not a drop-in.
function isRegularFile(path: string): boolean {
  try {
    return statSync(path).isFile();
  } catch {
    return false;
  }
}
