// The `warden` executable is a launcher (src/cli/launcher.cjs) that runs the
// CLI bundle from the V8 code cache the build wrote. The cache must be one
// this Node accepts (or the start-up gain is gone without a sound), and a
// cache that is missing, stamped for another bundle, or from another build
// must cost only the compile: the CLI works the same.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { compileFunction } from 'node:vm';
import { REPO } from '../helpers/chroots.js';

const CLI_DIR = join(REPO, 'dist', 'cli');
const BUNDLE = join(CLI_DIR, 'warden-main.cjs');
const PARAMS = ['exports', 'require', 'module', '__filename', '__dirname', '__warden_import'];

/** The cache file split into its stamp line and V8's data. */
function readCache(path: string): { stamp: string; data: Buffer } {
  const buf = readFileSync(path);
  const eol = buf.indexOf(10);
  return { stamp: buf.toString('latin1', 0, eol), data: buf.subarray(eol + 1) };
}

test('the build stamps its code cache for the bundle beside it, and this Node accepts the cache', (t) => {
  const st = statSync(BUNDLE);
  const { stamp, data } = readCache(`${BUNDLE}.cache`);
  t.is(stamp, `${st.size} ${st.mtimeMs}`);
  const fn = compileFunction(readFileSync(BUNDLE, 'utf8'), PARAMS, { filename: BUNDLE, cachedData: data });
  t.false(fn.cachedDataRejected, 'V8 rejected the code cache the build wrote');
});

test('the bundle has no import() of its own left: the launcher serves them', (t) => {
  const source = readFileSync(BUNDLE, 'utf8');
  t.false(/(?<![\w$.])import\(/.test(source));
  t.true(source.includes('__warden_import("yargs")'));
});

// A copy of dist/cli inside dist/, so that it resolves the same node_modules.
function copyCli(t: { teardown: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(REPO, 'dist', 'launcher-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of ['warden.cjs', 'warden-main.cjs', 'warden-main.cjs.cache', 'wait-worker.js']) copyFileSync(join(CLI_DIR, f), join(dir, f));
  // copyFileSync sets a new mtime: give the copy the original's, so its cache stamp holds.
  const st = statSync(BUNDLE);
  utimesSync(join(dir, 'warden-main.cjs'), st.atime, st.mtime);
  return dir;
}

// --help imports yargs (an ES module) through the launcher; --version does not.
function runs(t: { is: (a: unknown, b: unknown, m?: string) => void; regex: (s: string, r: RegExp) => void }, dir: string, what: string): void {
  for (const [args, expect] of [
    [['--version'], /^warden \d+\.\d+\.\d+\n$/],
    [['--help'], /^warden VERB/],
  ] as const) {
    const r = spawnSync(process.execPath, [join(dir, 'warden.cjs'), ...args], { encoding: 'utf8', timeout: 30_000 });
    t.is(r.status, 0, `${what}: warden ${args.join(' ')}: ${r.stderr}`);
    t.is(r.stderr, '', `${what}: warden ${args.join(' ')} wrote to stderr`);
    t.regex(r.stdout, expect);
  }
}

test('the launcher runs the CLI with its cache, without it, and with a stale or foreign one', (t) => {
  const dir = copyCli(t);
  const cache = join(dir, 'warden-main.cjs.cache');
  const bundle = join(dir, 'warden-main.cjs');
  runs(t, dir, 'with its cache');

  const { stamp, data } = readCache(cache);
  // Stamped for another bundle: ignored.
  writeFileSync(cache, Buffer.concat([Buffer.from('1 2\n'), data]));
  runs(t, dir, 'with a cache stamped for another bundle');
  // The bundle rewritten after the build (its mtime moves): ignored.
  writeFileSync(cache, Buffer.concat([Buffer.from(`${stamp}\n`), data]));
  const later = new Date(Date.now() + 5_000);
  utimesSync(bundle, later, later);
  runs(t, dir, 'with a bundle newer than its cache');
  // Right stamp, data that is not a code cache: V8 rejects it.
  const st = statSync(bundle);
  writeFileSync(cache, `${st.size} ${st.mtimeMs}\nnot a code cache`);
  runs(t, dir, 'with garbage under a matching stamp');
  rmSync(cache);
  runs(t, dir, 'without a cache');
});
