// Just enough of an ELF reader to know what the dynamic loader will map for
// a binary: its program interpreter (PT_INTERP) and the DT_NEEDED, DT_SONAME,
// DT_RPATH and DT_RUNPATH entries of its dynamic section (elf(5)). A few positional
// reads per file: no process is started, nothing of the file is executed.
import { closeSync, openSync, readSync } from 'node:fs';

export interface ElfInfo {
  /** EI_CLASS: the loader only accepts libraries of the same class and machine. */
  bits: 32 | 64;
  /** e_machine. */
  machine: number;
  /** PT_INTERP: the loader's path, as the kernel will open it. */
  interpreter: string | undefined;
  /** DT_SONAME: the name other objects' DT_NEEDED match it by. */
  soname: string | undefined;
  /** DT_NEEDED sonames, in order. */
  needed: string[];
  /** DT_RPATH and DT_RUNPATH directories, `$ORIGIN` not yet expanded. */
  rpath: string[];
  runpath: string[];
}

/** The file is an ELF file, but not one we can read (truncated, inconsistent, exotic). */
export class ElfFormatError extends Error {
  override name = 'ElfFormatError';
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const PT_INTERP = 3;
const DT_NULL = 0;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
const PN_XNUM = 0xffff;
const HEAD_BYTES = 4096;

interface Segment {
  type: number;
  offset: number;
  vaddr: number;
  filesz: number;
}

/** Reads the headers of `path` (following symlinks); undefined when it is not ELF (a script, say). */
export function readElf(path: string): ElfInfo | undefined {
  const fd = openSync(path, 'r');
  try {
    // The first page holds the ELF header, and usually the program headers and PT_INTERP.
    const head = Buffer.alloc(HEAD_BYTES);
    const n = readSync(fd, head, 0, HEAD_BYTES, 0);
    if (n < 4 || head.readUInt32BE(0) !== 0x7f454c46) return undefined;
    if (n < 64) throw new ElfFormatError(`${path}: truncated ELF header`);
    return parse(fd, head.subarray(0, n), path);
  } finally {
    closeSync(fd);
  }
}

function parse(fd: number, head: Buffer, path: string): ElfInfo {
  const bits = head[4] === 1 ? 32 : head[4] === 2 ? 64 : undefined;
  const le = head[5] === 1 ? true : head[5] === 2 ? false : undefined;
  if (bits === undefined || le === undefined) throw new ElfFormatError(`${path}: unknown ELF class or byte order`);
  const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  // Two 32-bit halves rather than a BigInt: offsets in a file fit a double exactly.
  const u64 = (b: Buffer, o: number) => (le ? u32(b, o + 4) * 2 ** 32 + u32(b, o) : u32(b, o) * 2 ** 32 + u32(b, o + 4));
  const word = bits === 64 ? u64 : u32;

  const read = (offset: number, length: number): Buffer => {
    if (offset + length <= head.length) return head.subarray(offset, offset + length);
    const buf = Buffer.alloc(length);
    if (length > 0 && readSync(fd, buf, 0, length, offset) !== length) throw new ElfFormatError(`${path}: truncated at offset ${offset}`);
    return buf;
  };

  const phoff = word(head, bits === 64 ? 32 : 28);
  const phentsize = u16(head, bits === 64 ? 54 : 42);
  const phnum = u16(head, bits === 64 ? 56 : 44);
  if (phnum === PN_XNUM) throw new ElfFormatError(`${path}: extended program header numbering is not supported`);
  const table = read(phoff, phentsize * phnum);
  const segments: Segment[] = [];
  for (let i = 0; i < phnum; i++) {
    const p = i * phentsize;
    segments.push(
      bits === 64
        ? { type: u32(table, p), offset: u64(table, p + 8), vaddr: u64(table, p + 16), filesz: u64(table, p + 32) }
        : { type: u32(table, p), offset: u32(table, p + 4), vaddr: u32(table, p + 8), filesz: u32(table, p + 16) },
    );
  }

  const info: ElfInfo = { bits, machine: u16(head, 18), interpreter: undefined, soname: undefined, needed: [], rpath: [], runpath: [] };
  const interp = segments.find((s) => s.type === PT_INTERP);
  if (interp) info.interpreter = cString(read(interp.offset, interp.filesz), 0);

  const dynamic = segments.find((s) => s.type === PT_DYNAMIC);
  if (!dynamic) return info; // statically linked
  const dyn = read(dynamic.offset, dynamic.filesz);
  const entsize = bits === 64 ? 16 : 8;
  const entries: [number, number][] = [];
  let strtab: number | undefined;
  let strsz: number | undefined;
  for (let o = 0; o + entsize <= dyn.length; o += entsize) {
    const tag = word(dyn, o);
    const val = word(dyn, o + entsize / 2);
    if (tag === DT_NULL) break;
    if (tag === DT_STRTAB) strtab = val;
    else if (tag === DT_STRSZ) strsz = val;
    else if (tag === DT_NEEDED || tag === DT_SONAME || tag === DT_RPATH || tag === DT_RUNPATH) entries.push([tag, val]);
  }
  if (entries.length === 0) return info;
  if (strtab === undefined || strsz === undefined) throw new ElfFormatError(`${path}: dynamic section without a string table`);
  // DT_STRTAB is a virtual address: find the loaded segment that maps it.
  const seg = segments.find((s) => s.type === PT_LOAD && s.vaddr <= strtab && strtab < s.vaddr + s.filesz);
  if (!seg) throw new ElfFormatError(`${path}: string table at 0x${strtab.toString(16)} is in no loaded segment`);
  const strings = read(seg.offset + (strtab - seg.vaddr), strsz);
  for (const [tag, off] of entries) {
    const s = cString(strings, off);
    if (tag === DT_NEEDED) info.needed.push(s);
    else if (tag === DT_SONAME) info.soname = s;
    else (tag === DT_RPATH ? info.rpath : info.runpath).push(...s.split(':').filter((d) => d !== ''));
  }
  return info;
}

function cString(buf: Buffer, offset: number): string {
  const end = buf.indexOf(0, offset);
  return buf.toString('utf8', offset, end < 0 ? buf.length : end);
}
