// Everything a build takes from the host, decided before DIR is touched: a
// host that lacks a required tool or library fails here, with the previous
// chroot (if any) still intact.
import { existsSync, realpathSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { BootstrapError } from './errors.js';
import { LD_SO_CACHE, LibraryResolver, MissingLibraryError, NotElfError } from './libraries.js';
import { ALL_TOOLS, HOST_BIN_DIRS, REQUIRED_TOOLS, busyboxApplets, findBusybox, findExecutable } from './tools.js';

export interface HostPlan {
  /** The host's busybox and the chroot paths of its applets. */
  busybox: { path: string; applets: string[] } | undefined;
  /** Tools busybox does not provide: name -> host path. */
  hostTools: Map<string, string>;
  /** Every tool of our list the chroot will have, busybox's or the host's. */
  tools: string[];
  /** Optional tools the host lacks (or cannot supply the libraries of). */
  skipped: string[];
  /** Interpreters and libraries, by the host path the loader opens them by. */
  libraries: string[];
  /** The host file /bin/sh will be (symlinks resolved). */
  shell: string;
  /** Copy the host's /etc/ld.so.cache: the layout is the host's, so its entries hold inside. */
  ldCache: boolean;
}

export interface PlanOptions {
  /** Busybox to use; false: never. Default: the host's, if it has one. */
  busybox?: string | false;
}

export function planHost(opts: PlanOptions = {}): HostPlan {
  const resolver = new LibraryResolver();
  const libraries = new Set<string>();
  const need = (path: string, required: boolean): boolean => {
    try {
      for (const lib of resolver.dependencies(path)) libraries.add(lib);
      return true;
    } catch (e) {
      if (!required) return false;
      if (e instanceof MissingLibraryError) throw new BootstrapError('missing-library', path, `needs ${e.soname} (through ${e.neededBy}), which the host lacks`, { cause: e });
      if (e instanceof NotElfError) throw new BootstrapError('missing-tool', path, 'is not an ELF executable', { cause: e });
      throw e;
    }
  };

  const busybox = findBusyboxFor(opts);
  const appletNames = new Set<string>();
  if (busybox) {
    need(busybox.path, true);
    for (const a of busybox.applets) appletNames.add(basename(a));
  }

  const hostTools = new Map<string, string>();
  const tools: string[] = [];
  const skipped: string[] = [];
  for (const name of ALL_TOOLS) {
    if (appletNames.has(name)) {
      tools.push(name);
      continue;
    }
    const required = REQUIRED_TOOLS.includes(name);
    const path = findExecutable(name);
    if (path && need(path, required)) {
      hostTools.set(name, path);
      tools.push(name);
    } else if (required) {
      throw new BootstrapError('missing-tool', name, `is not in ${HOST_BIN_DIRS.join(', ')}`);
    } else {
      skipped.push(name);
    }
  }

  // NSS modules are dlopen()ed, so no DT_NEEDED names them; `id` and
  // `whoami` need the files backend (a separate library before glibc 2.34).
  for (const lib of [...libraries]) {
    if (basename(lib) !== 'libc.so.6') continue;
    const nss = join(dirname(lib), 'libnss_files.so.2');
    if (existsSync(nss) && need(nss, false)) libraries.add(nss);
  }

  const sh = appletNames.has('sh') && busybox ? busybox.path : hostTools.get('sh')!;
  return {
    busybox,
    hostTools,
    tools,
    skipped,
    libraries: [...libraries].sort(),
    shell: realpathSync(sh),
    ldCache: libraries.size > 0 && existsSync(LD_SO_CACHE),
  };
}

function findBusyboxFor(opts: PlanOptions): HostPlan['busybox'] {
  if (opts.busybox === false) return undefined;
  const path = opts.busybox ?? findBusybox();
  if (path === undefined) return undefined;
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st?.isFile() || (st.mode & 0o111) === 0) throw new BootstrapError('missing-tool', path, 'is not an executable file');
  try {
    return { path, applets: busyboxApplets(path) };
  } catch (e) {
    throw new BootstrapError('missing-tool', path, `does not list its applets: ${(e as Error).message.split('\n')[0]}`, { cause: e });
  }
}
