// Config files in a throw-away directory, removed after the test, with a
// check that loading left no fd open on any of them.
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { ExecutionContext } from 'ava';

/** Marks where the temp dir's path goes in file contents (directory= values need absolute paths). */
export const ROOT = '@ROOT@';

/**
 * Writes `files` (relative path → contents, `@ROOT@` replaced; a path ending
 * in '/' makes a directory) under a new temp dir and returns the dir.
 */
export function tree(t: ExecutionContext, files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'warden-config-'));
  t.teardown(() => {
    const open = fdsUnder(root);
    rmSync(root, { recursive: true, force: true });
    if (open.length > 0) throw new Error(`fds left open under ${root}: ${open.join(', ')}`);
  });
  for (const [rel, text] of Object.entries(files)) {
    const path = join(root, rel);
    if (rel.endsWith('/')) {
      mkdirSync(path, { recursive: true });
      continue;
    }
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, text.replaceAll(ROOT, root));
  }
  return root;
}

function fdsUnder(dir: string): string[] {
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target === dir || target.startsWith(`${dir}/`)) out.push(`${fd}->${target}`);
    } catch {
      // the fd readdir itself used, already closed
    }
  }
  return out;
}

/** Lines joined with '\n', so a test's line numbers can be counted from the array index + 1. */
export function lines(...l: string[]): string {
  return `${l.join('\n')}\n`;
}
