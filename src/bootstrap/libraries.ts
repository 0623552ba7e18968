// Which host files the dynamic loader maps for a binary, found the way
// ld.so(8) finds them.
//
// Why not run `ldd`: it starts the loader once per binary (a process each,
// tens of binaries per build, most of the build's time budget), and it
// answers for this process's environment (LD_LIBRARY_PATH, LD_PRELOAD).
// Reading ELF headers (elf.ts) and /etc/ld.so.cache ourselves costs a few
// reads per file and follows the loader's order without the environment.
// test/bootstrap/libraries.test.ts holds our answer against ldd's.
//
// Search order for a DT_NEEDED name (ld.so(8), "Rules"):
//   1. DT_RPATH of the object, then of the executable, unless the object has DT_RUNPATH;
//   2. (LD_LIBRARY_PATH: ignored on purpose: the builder's shell must not matter);
//   3. DT_RUNPATH of the object;
//   4. /etc/ld.so.cache;
//   5. the default directories.
// Candidates of another ELF class or machine are skipped, as the loader does.
import { readFileSync, realpathSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { readElf, type ElfInfo } from './elf.js';

export const LD_SO_CACHE = '/etc/ld.so.cache';

/** A library or interpreter the loader needs and the host does not have. */
export class MissingLibraryError extends Error {
  override name = 'MissingLibraryError';
  readonly soname: string;
  readonly neededBy: string;
  constructor(soname: string, neededBy: string) {
    super(`${soname}, needed by ${neededBy}, is not on the host`);
    this.soname = soname;
    this.neededBy = neededBy;
  }
}

/** The binary is not ELF (a script) or not an ELF file we can read. */
export class NotElfError extends Error {
  override name = 'NotElfError';
}

// Debian-style multiarch directories: searched by default where the loader
// was built with them; harmless elsewhere (they do not exist).
const MULTIARCH: Partial<Record<NodeJS.Architecture, string>> = {
  x64: 'x86_64-linux-gnu',
  arm64: 'aarch64-linux-gnu',
  ia32: 'i386-linux-gnu',
  arm: 'arm-linux-gnueabihf',
  ppc64: 'powerpc64le-linux-gnu',
  riscv64: 'riscv64-linux-gnu',
  s390x: 's390x-linux-gnu',
};

function defaultDirs(): string[] {
  const triplet = MULTIARCH[process.arch];
  const multiarch = triplet ? [`/lib/${triplet}`, `/usr/lib/${triplet}`] : [];
  return [...multiarch, '/lib64', '/usr/lib64', '/lib', '/usr/lib'];
}

interface LoadedObject {
  /** The path the loader opens it by. */
  path: string;
  elf: ElfInfo;
  /** What `$ORIGIN` expands to in its RPATH/RUNPATH. */
  origin: string;
}

/** Resolves dependencies against the host; remembers what it read, so one instance serves a whole build. */
export class LibraryResolver {
  #elf = new Map<string, ElfInfo | null>();
  #cache: Map<string, string[]>;
  #defaults = defaultDirs();

  constructor(cachePath = LD_SO_CACHE) {
    this.#cache = readLdCache(cachePath);
  }

  /**
   * Host paths the loader maps for `binary` besides the binary itself: its
   * interpreter and every library, by the path the loader opens them.
   * Throws NotElfError or MissingLibraryError.
   */
  dependencies(binary: string): string[] {
    const exeElf = this.#read(binary);
    if (!exeElf) throw new NotElfError(`${binary} is not an ELF executable`);
    // $ORIGIN of the executable comes from /proc/self/exe: symlinks resolved.
    const exe: LoadedObject = { path: binary, elf: exeElf, origin: dirname(realpathSync(binary)) };
    const out = new Set<string>();
    // The loader maps each soname once and satisfies later DT_NEEDED by name.
    const bySoname = new Map<string, string>();
    // Only the executable's PT_INTERP counts (the kernel maps it); it is
    // already loaded when libc names it in DT_NEEDED. libc's own PT_INTERP
    // (it can run as a program) is not looked at.
    const interp = exeElf.interpreter;
    if (interp) {
      const elf = this.#read(interp);
      if (!elf) throw new MissingLibraryError(interp, binary);
      out.add(interp);
      bySoname.set(elf.soname ?? basename(interp), interp);
    }
    const queue = [exe];
    for (let i = 0; i < queue.length; i++) {
      const obj = queue[i];
      for (const name of obj.elf.needed) {
        if (bySoname.has(name)) continue;
        const found = this.#find(name, obj, exe);
        if (!found) throw new MissingLibraryError(name, obj.path);
        bySoname.set(name, found.path);
        if (out.has(found.path)) continue;
        out.add(found.path);
        queue.push(found);
      }
    }
    return [...out];
  }

  #find(name: string, obj: LoadedObject, exe: LoadedObject): LoadedObject | undefined {
    if (name.includes('/')) return this.#candidate(name, obj.elf);
    const dirs: string[] = [];
    if (obj.elf.runpath.length === 0) {
      dirs.push(...expand(obj.elf.rpath, obj.origin));
      if (obj !== exe && exe.elf.runpath.length === 0) dirs.push(...expand(exe.elf.rpath, exe.origin));
    }
    dirs.push(...expand(obj.elf.runpath, obj.origin));
    for (const d of dirs) {
      const hit = this.#candidate(join(d, name), obj.elf);
      if (hit) return hit;
    }
    for (const p of this.#cache.get(name) ?? []) {
      const hit = this.#candidate(p, obj.elf);
      if (hit) return hit;
    }
    for (const d of this.#defaults) {
      const hit = this.#candidate(join(d, name), obj.elf);
      if (hit) return hit;
    }
    return undefined;
  }

  #candidate(path: string, wanted: ElfInfo): LoadedObject | undefined {
    const elf = this.#read(path);
    if (!elf || elf.bits !== wanted.bits || elf.machine !== wanted.machine) return undefined;
    return { path, elf, origin: dirname(path) };
  }

  /** ELF headers of `path`, or undefined when it is missing, unreadable or not ELF. */
  #read(path: string): ElfInfo | undefined {
    let info = this.#elf.get(path);
    if (info === undefined) {
      try {
        info = readElf(path) ?? null;
      } catch {
        info = null;
      }
      this.#elf.set(path, info);
    }
    return info ?? undefined;
  }
}

/** RPATH/RUNPATH entries with `$ORIGIN` expanded; entries with other tokens ($LIB, $PLATFORM) are dropped. */
function expand(entries: readonly string[], origin: string): string[] {
  return entries.map((e) => e.replace(/\$(ORIGIN\b|\{ORIGIN\})/g, origin)).filter((e) => !e.includes('$') && e.startsWith('/'));
}

const OLD_MAGIC = 'ld.so-1.7.0';
const NEW_MAGIC = 'glibc-ld.so.cache1.1';
const NEW_HEADER = 48;
const NEW_ENTRY = 24;
const FLAG_TYPE_MASK = 0xff;
const FLAG_ELF_LIBC6 = 3;
const HOST_LE = endianness() === 'LE';

/**
 * soname -> paths, in cache order, from glibc's ld.so.cache (the layout of
 * glibc's sysdeps/generic/dl-cache.h, in host byte order). Only plain libc6
 * entries: glibc-hwcaps variants (hwcap != 0) are optional and skipped.
 * An absent or unreadable cache yields an empty map (musl hosts have none).
 */
export function readLdCache(path = LD_SO_CACHE): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch {
    return out;
  }
  const u32 = (o: number) => (HOST_LE ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
  let base = 0;
  if (buf.toString('latin1', 0, OLD_MAGIC.length) === OLD_MAGIC && buf.length >= 16) {
    // "compat" format: an old table first, then the new one at the next 8-byte boundary.
    base = (16 + 12 * u32(12) + 7) & ~7;
  }
  if (buf.length < base + NEW_HEADER || buf.toString('latin1', base, base + NEW_MAGIC.length) !== NEW_MAGIC) return out;
  // One typed-array view and one decoded string instead of a Buffer call per
  // field: this runs once per build, in a cold process, on ~1000 entries.
  // Sonames are ASCII, so latin1 offsets are byte offsets; paths are decoded as UTF-8.
  const nlibs = Math.min(u32(base + 20), Math.floor((buf.length - base - NEW_HEADER) / NEW_ENTRY));
  const table = buf.subarray(base + NEW_HEADER, base + NEW_HEADER + nlibs * NEW_ENTRY);
  // A Uint32Array needs 4-byte alignment; copy in the (unseen) case the Buffer lacks it.
  const bytes = table.byteOffset % 4 === 0 ? table : new Uint8Array(table);
  const words = new Uint32Array(bytes.buffer, bytes.byteOffset, nlibs * 6);
  const text = buf.toString('latin1', base);
  const end = (o: number) => {
    const nul = text.indexOf('\0', o);
    return nul < 0 ? text.length : nul;
  };
  for (let i = 0; i < nlibs; i++) {
    const w = i * 6; // flags, key, value, osversion, hwcap (two words)
    if ((words[w] & FLAG_TYPE_MASK) !== FLAG_ELF_LIBC6 || words[w + 4] !== 0 || words[w + 5] !== 0) continue;
    const key = text.slice(words[w + 1], end(words[w + 1]));
    const value = buf.toString('utf8', base + words[w + 2], base + end(words[w + 2]));
    const list = out.get(key);
    if (list) list.push(value);
    else out.set(key, [value]);
  }
  return out;
}
