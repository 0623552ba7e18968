// koffi, loaded on first use. Every CLI call that touches a lock or a mount
// pays for it, and verbs that do neither (list of chroots, --help) must not.
//
// koffi's own entry (require('koffi')) costs ~11 ms on these machines before
// its first call: it loads node:util, reads the ELF header of the node binary
// to choose between its glibc and musl builds, probes several directories and
// wraps deprecated functions. Its native module alone loads in ~2 ms, so on
// glibc Linux we dlopen the prebuilt module of koffi's own per-platform
// package directly, check that it is the version koffi expects, and fall back
// to require('koffi') whenever anything about that differs (musl, another
// layout, a locally built koffi).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

type Koffi = typeof import('koffi');

let loaded: Koffi | undefined;
let how: 'direct' | 'entry' | undefined;

export function koffi(): Koffi {
  return (loaded ??= load());
}

let libcHandle: ReturnType<Koffi['load']> | undefined;

/**
 * glibc through koffi, one handle for the thread: locks, mounts, renames and
 * spawning all call into it, and every koffi load() of it costs 0.1-2 ms.
 */
export function libc(): ReturnType<Koffi['load']> {
  return (libcHandle ??= koffi().load('libc.so.6'));
}

/** How koffi was loaded in this thread, once it has been (for tests and diagnostics). */
export function koffiLoadedBy(): 'direct' | 'entry' | undefined {
  return how;
}

function load(): Koffi {
  const mod = direct();
  how = mod ? 'direct' : 'entry';
  return mod ?? (createRequire(import.meta.url)('koffi') as Koffi);
}

function direct(): Koffi | undefined {
  if (process.platform !== 'linux' || process.env.WARDEN_KOFFI_DIRECT === '0') return undefined;
  try {
    // The same places koffi's entry looks: its package.json for the version
    // and the per-platform package installed beside it.
    const top = koffiDir();
    if (top === undefined) return undefined;
    const { version } = JSON.parse(readFileSync(join(top, 'package.json'), 'utf8')) as { version: string };
    const file = join(top, '..', '@koromix', `koffi-linux-${process.arch}`, `linux_${process.arch}`, 'koffi.node');
    const mod = { exports: {} as Koffi & { version?: string } };
    process.dlopen(mod, file);
    return mod.exports.version === version ? mod.exports : undefined;
  } catch {
    // Not there, or not loadable here (a musl system): koffi's entry decides.
    return undefined;
  }
}

/**
 * node_modules/koffi in this file's directory or the nearest parent, as
 * require() would find it. By hand because require.resolve('koffi') costs
 * ~3 ms the first time (package exports resolution), more than the dlopen.
 */
function koffiDir(): string | undefined {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; ) {
    const candidate = join(dir, 'node_modules', 'koffi');
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    const up = dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
}
