// The control socket's protocol: JSON lines, one request per line, replies
// as lines too. Every message carries the protocol version `v`; a request
// may carry a `tag` that its replies echo. A request gets zero or more
// progress lines (`wait`: what a lock wait is waiting for) and then exactly
// one final line, `ok: true` with the result or `ok: false` with an error.
//
// Parsing is strict: a line that is not an object of a known op with
// well-typed fields is refused with an error reply, never guessed at, and
// never crashes the supervisor.
import { EXIT } from '../exit-codes.js';
import type { WaitInfo } from '../sessions/index.js';

export const PROTOCOL_VERSION = 1;
/** Longest line accepted, newline excluded. A request is a few hundred bytes; anything near this is garbage. */
export const MAX_LINE_BYTES = 64 * 1024;

export type Request =
  | { v: 1; tag?: string; op: 'hello' }
  | { v: 1; tag?: string; op: 'begin'; chroot: string; id?: string; timeout?: number; wait?: boolean }
  | { v: 1; tag?: string; op: 'end'; id: string; wait?: boolean; force?: boolean; timeout?: number }
  | { v: 1; tag?: string; op: 'status' };

export type Op = Request['op'];

/** An error as it crosses the socket, with the exit code its class declares (the CLI's hints go by `name`). */
export interface WireError {
  name: string;
  message: string;
  /** A hook killed because the request was cancelled (HookFailedError.interrupted). */
  interrupted?: boolean;
  /** The exit code the error's class declares (exit-codes.ts), when it declares one. */
  exit?: number;
}

export type Reply =
  | { v: 1; tag?: string; wait: WaitInfo }
  | { v: 1; tag?: string; ok: true; result: Record<string, unknown> }
  | { v: 1; tag?: string; ok: false; error: WireError };

/** A line that is not a valid request; `tag` is echoed when the line had a readable one. */
export class ProtocolError extends Error {
  static readonly exit: number | undefined = EXIT.usage;
  override name = 'ProtocolError';
  readonly tag: string | undefined;
  constructor(message: string, tag?: string) {
    super(message);
    this.tag = tag;
  }
}

type FieldType = 'string' | 'number' | 'boolean';
const FIELDS: Record<Op, Record<string, { type: FieldType; required?: boolean }>> = {
  hello: {},
  status: {},
  begin: { chroot: { type: 'string', required: true }, id: { type: 'string' }, timeout: { type: 'number' }, wait: { type: 'boolean' } },
  end: { id: { type: 'string', required: true }, wait: { type: 'boolean' }, force: { type: 'boolean' }, timeout: { type: 'number' } },
};

/** Parses and validates one request line. Throws ProtocolError naming what is wrong. */
export function parseRequest(line: string): Request {
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    throw new ProtocolError(`malformed request: ${(e as Error).message}`);
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new ProtocolError('malformed request: not a JSON object');
  const m = msg as Record<string, unknown>;
  const tag = typeof m.tag === 'string' && m.tag.length <= 128 ? m.tag : undefined;
  if (m.tag !== undefined && tag === undefined) throw new ProtocolError('malformed request: tag must be a string of at most 128 characters');
  if (m.v !== PROTOCOL_VERSION) throw new ProtocolError(`unsupported protocol version ${JSON.stringify(m.v)} (this supervisor speaks ${PROTOCOL_VERSION})`, tag);
  if (typeof m.op !== 'string' || !Object.hasOwn(FIELDS, m.op)) throw new ProtocolError(`unknown op ${JSON.stringify(m.op)}`, tag);
  const fields = FIELDS[m.op as Op];
  for (const key of Object.keys(m)) {
    if (key === 'v' || key === 'op' || key === 'tag') continue;
    const f = fields[key];
    if (!f) throw new ProtocolError(`${m.op}: unknown field ${JSON.stringify(key)}`, tag);
    if (typeof m[key] !== f.type) throw new ProtocolError(`${m.op}: field ${key} must be a ${f.type}`, tag);
    if (f.type === 'number' && !(Number.isFinite(m[key]) && (m[key] as number) >= 0)) throw new ProtocolError(`${m.op}: field ${key} must be a finite number >= 0`, tag);
  }
  for (const [key, f] of Object.entries(fields)) {
    if (f.required && m[key] === undefined) throw new ProtocolError(`${m.op}: field ${key} is required`, tag);
  }
  return m as unknown as Request;
}

/** The wire form of any thrown value. */
export function wireError(e: unknown): WireError {
  if (!(e instanceof Error)) return { name: 'Error', message: String(e) };
  const out: WireError = { name: e.name, message: e.message };
  if ((e as { interrupted?: boolean }).interrupted === true) out.interrupted = true;
  // As the class declares it: the receiver applies the interrupt rule to `interrupted` itself.
  // (An error rebuilt from the wire passes its code on.)
  const exit = (e as { wireExit?: number }).wireExit ?? (e.constructor as { exit?: number }).exit;
  if (exit !== undefined) out.exit = exit;
  return out;
}

/** A wire error as an Error again, with the same name and the exit code its class declared. */
export function errorFromWire(w: WireError): Error {
  const e = new Error(w.message) as Error & { interrupted?: boolean; wireExit?: number };
  e.name = w.name;
  if (w.interrupted) e.interrupted = true;
  if (typeof w.exit === 'number') e.wireExit = w.exit;
  return e;
}

/**
 * Splits a byte stream into lines of at most `max` bytes. A longer line is
 * reported once through `onOversized` and its bytes are dropped up to the
 * next newline, so one bad message costs neither memory nor the lines after
 * it. (Hand-written: split2 and readline have no per-line cap that discards
 * and resynchronises; readline buffers without bound.)
 */
export class LineSplitter {
  readonly #max: number;
  readonly #onLine: (line: string) => void;
  readonly #onOversized: () => void;
  #parts: Buffer[] = [];
  #size = 0;
  #skipping = false;

  constructor(max: number, onLine: (line: string) => void, onOversized: () => void) {
    this.#max = max;
    this.#onLine = onLine;
    this.#onOversized = onOversized;
  }

  push(chunk: Buffer): void {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const end = nl === -1 ? chunk.length : nl;
      if (!this.#skipping) {
        const piece = chunk.subarray(start, end);
        if (this.#size + piece.length > this.#max) {
          this.#parts = [];
          this.#size = 0;
          this.#skipping = true;
          this.#onOversized();
        } else if (piece.length > 0) {
          this.#parts.push(piece);
          this.#size += piece.length;
        }
      }
      if (nl === -1) return;
      if (!this.#skipping) {
        const line = Buffer.concat(this.#parts, this.#size).toString('utf8');
        this.#parts = [];
        this.#size = 0;
        if (line.trim() !== '') this.#onLine(line);
      }
      this.#skipping = false;
      start = nl + 1;
    }
  }

  /** Bytes of an unfinished line (for a stream that ended mid-line). */
  get pending(): number {
    return this.#size;
  }
}
