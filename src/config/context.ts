// What every verb of the CLI and every library handle needs: the
// configuration, the state dir and the hooks dir, resolved once, the same
// way for both (--config/--state-dir or openWarden's options, then the
// environment, then the configuration itself).
import { existsSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, NoSuchChrootError } from './errors.js';
import { loadConfig } from './load.js';
import { checkSharedStorage, hostOf } from './shared.js';
import type { ChrootDef, Config } from './types.js';

/**
 * warden's own hooks/, at the top of the package: two levels above the CLI
 * bundle (dist/cli/), three above this file compiled (dist/src/config/).
 */
export const PACKAGE_HOOKS = ((here) => [resolve(here, '..', '..', 'hooks'), resolve(here, '..', '..', '..', 'hooks')].find((d) => existsSync(d)) ?? resolve(here, '..', '..', 'hooks'))(
  dirname(fileURLToPath(import.meta.url)),
);
export const SYSTEM_STATE_DIR = '/var/lib/warden/sessions';
export const DEFAULT_HOOK_TIMEOUT_S = 30;

export interface Context {
  config: Config;
  stateDir: string;
  /** `<top>` when the configuration is `<top>/etc/warden.conf` (a checkout or a prefix), else undefined. */
  top: string | undefined;
}

/** The directory that holds etc/, sessions/ and hooks/ for a config at `<top>/etc/<file>`; undefined for /etc/... */
function topOf(configFile: string | undefined): string | undefined {
  if (!configFile) return undefined;
  const etc = dirname(configFile);
  if (basename(etc) !== 'etc') return undefined;
  const top = dirname(etc);
  return top === '/' ? undefined : top;
}

export function loadContext(o: { config?: string; stateDir?: string }, env: NodeJS.ProcessEnv = process.env): Context {
  const config = loadConfig({ config: o.config, env });
  const top = topOf(config.file);
  // --state-dir, else $WARDEN_STATE_DIR, else [warden] state-dir=, else <top>/sessions, else the system one.
  const chosen = o.stateDir || env.WARDEN_STATE_DIR || config.stateDir || (top ? join(top, 'sessions') : SYSTEM_STATE_DIR);
  return { config, stateDir: isAbsolute(chosen) ? chosen : resolve(chosen), top };
}

/**
 * A chroot by name or alias; exit 4 when unknown, exit 3 when its type is
 * not supported, or when it is shared (shared-dir=) on storage whose locks
 * would not reach other hosts (checkSharedStorage).
 */
export function chrootOf(ctx: Context, name: string): ChrootDef {
  const def = ctx.config.lookup(name);
  if (def) {
    checkSharedStorage(ctx.config, def);
    // The sessions layer names this host in registrations: resolved here, once.
    return def.sharedDir === undefined ? def : { ...def, sharedDir: { ...def.sharedDir, host: hostOf(ctx.config) } };
  }
  const unsupported = ctx.config.unsupported.find((u) => u.name === name);
  if (unsupported) {
    throw new ConfigError(unsupported.file, unsupported.line, `chroot ${name}: ${unsupported.reason}`);
  }
  throw new NoSuchChrootError(name, [...ctx.config.chroots.keys()]);
}

/** A shared chroot (shared-dir=), resolved on demand: resolve() checks its storage as chrootOf does, and may throw. */
export interface SharedChroot {
  name: string;
  resolve(): ChrootDef;
}

/**
 * Every configured chroot with shared-dir= (recover --all removes this
 * host's leftover registrations there). Resolved one at a time by the
 * caller, so that one whose mount is down does not stop the others.
 */
export function sharedChrootsOf(ctx: Context): SharedChroot[] {
  return [...ctx.config.chroots.values()].filter((d) => d.sharedDir !== undefined).map((d) => ({ name: d.name, resolve: () => chrootOf(ctx, d.name) }));
}

/** Hooks of a chroot: its hooks=, else [warden] hooks-dir=, else <top>/hooks, else warden's own. */
export function hooksDirOf(ctx: Context, def: ChrootDef): string {
  if (def.hooks) return def.hooks;
  if (ctx.config.hooksDir) return ctx.config.hooksDir;
  if (ctx.top && existsSync(join(ctx.top, 'hooks'))) return join(ctx.top, 'hooks');
  return PACKAGE_HOOKS;
}

export function hookTimeoutMsOf(ctx: Context, def: ChrootDef): number {
  return (def.hookTimeout ?? ctx.config.hookTimeout ?? DEFAULT_HOOK_TIMEOUT_S) * 1000;
}
