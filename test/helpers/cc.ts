// The tests' small C programs (test/c/NAME.c): compiled with cc on first use
// into test/.build/NAME, again when the source is newer, and atomically
// (a temp name, then rename), since ava runs test files in parallel.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/test/helpers -> repository root
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/** The path of test/c/`name`.c compiled. */
export function compiled(name: string): string {
  const source = join(root, 'test', 'c', `${name}.c`);
  const binary = join(root, 'test', '.build', name);
  if (existsSync(binary) && statSync(binary).mtimeMs >= statSync(source).mtimeMs) return binary;
  mkdirSync(dirname(binary), { recursive: true });
  const tmp = `${binary}.${process.pid}`;
  execFileSync('cc', ['-O2', '-Wall', '-o', tmp, source], { stdio: 'inherit' });
  renameSync(tmp, binary);
  return binary;
}
