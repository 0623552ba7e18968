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
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

type Koffi = typeof import('koffi');

let loaded: Koffi | undefined;

export function koffi(): Koffi {
  return (loaded ??= load());
}

function load(): Koffi {
  const require = createRequire(import.meta.url);
  return direct(require) ?? (require('koffi') as Koffi);
}

function direct(require: NodeJS.Require): Koffi | undefined {
  if (process.platform !== 'linux' || process.env.WARDEN_KOFFI_DIRECT === '0') return undefined;
  try {
    // The same places koffi's entry looks: its package.json for the version
    // and the per-platform package installed beside it.
    const top = dirname(require.resolve('koffi'));
    const { version } = require(join(top, 'package.json')) as { version: string };
    const file = join(top, '..', '@koromix', `koffi-linux-${process.arch}`, `linux_${process.arch}`, 'koffi.node');
    const mod = { exports: {} as Koffi & { version?: string } };
    process.dlopen(mod, file);
    return mod.exports.version === version ? mod.exports : undefined;
  } catch {
    // Not there, or not loadable here (a musl system): koffi's entry decides.
    return undefined;
  }
}
