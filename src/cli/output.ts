// Plain tables and JSON for the read-only verbs, and how the CLI writes
// stdout.
import { writeSync } from 'node:fs';

/**
 * Which of process.stdout and process.stderr this call has used. Node makes
 * each on first use, and on a terminal or a pipe that loads net and stream
 * (~3 ms), on a file stream (~3 ms): a verb that prints nothing, or only a
 * line (printLine), must not make them. Filled in by src/cli/main.ts.
 */
export const madeStdio = new Set<'stdout' | 'stderr'>();

/**
 * Writes a short text to stdout with write(2), without making
 * process.stdout (begin's id: ~3 ms of a 22 ms call). Whatever the kernel
 * does not take at once (a full non-blocking pipe), and anything once
 * process.stdout exists, goes through process.stdout, in order.
 */
export function printLine(text: string): void {
  if (!madeStdio.has('stdout')) {
    const b = Buffer.from(text);
    let off = 0;
    try {
      while (off < b.length) off += writeSync(1, b, off);
      return;
    } catch {
      // EAGAIN, EPIPE...: process.stdout reports it as it always has
    }
    process.stdout.write(b.subarray(off));
    return;
  }
  process.stdout.write(text);
}

/** Left-aligned columns separated by two spaces; the last column is not padded. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return `${[line(header), ...rows.map(line)].join('\n')}\n`;
}

export function json(value: unknown): string {
  return `${JSON.stringify(value, null, 2)}\n`;
}

/** "3 s", "5 min", "2 h", "4 d" since an ISO time. */
export function age(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '-';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return '-';
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  if (s < 172800) return `${Math.round(s / 3600)} h`;
  return `${Math.round(s / 86400)} d`;
}
