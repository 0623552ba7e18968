// The `warden` executable is a launcher (src/cli/launcher.cjs) that runs the
// CLI bundle from the V8 code cache the build wrote. The cache must be one
// this Node accepts (or the start-up gain is gone without a sound), and a
// cache that is missing, stamped for another bundle, or from another build
// must cost only the compile: the CLI works the same.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';
import { REPO } from '../helpers/chroots.js';

const CLI_DIR = join(REPO, 'dist', 'cli');
const BUNDLE = join(CLI_DIR, 'warden-main.cjs');
const { wrap } = createRequire(import.meta.url)(join(CLI_DIR, 'warden.cjs')) as { wrap: (source: string) => string };

/** Would V8 take `data` as the code cache of the bundle at `bundle`? */
const accepted = (bundle: string, data: Buffer) => !new Script(wrap(readFileSync(bundle, 'utf8')), { filename: bundle, cachedData: data }).cachedDataRejected;

/** The cache file split into its stamp line and V8's data. */
function readCache(path: string): { stamp: string; data: Buffer } {
  const buf = readFileSync(path);
  const eol = buf.indexOf(10);
  return { stamp: buf.toString('latin1', 0, eol), data: buf.subarray(eol + 1) };
}

test('the code cache is stamped for the bundle beside it, and this Node accepts the cache', (t) => {
  const st = statSync(BUNDLE);
  const { stamp, data } = readCache(`${BUNDLE}.cache`);
  // Other tests' calls may have taught it verbs already (a third field).
  t.is(stamp.split(' ').slice(0, 2).join(' '), `${st.size} ${st.mtimeMs}`);
  t.true(accepted(BUNDLE, data), 'V8 rejected the code cache');
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

test('the cache learns the code of each verb from its first good run, once, and never from a failed one', (t) => {
  const dir = copyCli(t);
  const cache = join(dir, 'warden-main.cjs.cache');
  const bundle = join(dir, 'warden-main.cjs');
  const st = statSync(bundle);
  const warden = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
    // A config of the test's own, in the copy's dir: the repo's names
    // /var/lib/warden/demo, which exists only once `npm run demo` has run.
    spawnSync(process.execPath, [join(dir, 'warden.cjs'), ...args], { encoding: 'utf8', timeout: 30_000, env: { WARDEN_CONFIG: config, ...env }, cwd: dir });
  const config = join(dir, 'warden.conf');
  writeFileSync(config, '[demo]\ntype=directory\ndirectory=/\naliases=sid,unstable\n');
  // Start from the cache as the build wrote it: no verbs.
  const built = readCache(cache);
  writeFileSync(cache, Buffer.concat([Buffer.from(`${st.size} ${st.mtimeMs}\n`), built.data]));

  t.is(warden(['frobnicate']).status, 2);
  t.is(readCache(cache).stamp, `${st.size} ${st.mtimeMs}`, 'a failed call teaches nothing');
  t.is(warden(['list'], { ...process.env, WARDEN_CODE_CACHE: 'read-only' }).status, 0);
  t.is(readCache(cache).stamp, `${st.size} ${st.mtimeMs}`, 'WARDEN_CODE_CACHE=read-only writes nothing');

  t.is(warden(['list']).status, 0);
  const learned = readCache(cache);
  t.is(learned.stamp, `${st.size} ${st.mtimeMs} list`);
  t.true(learned.data.length > built.data.length, 'the new cache holds the code list ran');
  t.true(accepted(bundle, learned.data), 'V8 rejected the learned cache');
  const written = statSync(cache).mtimeMs;

  t.is(warden(['list']).status, 0);
  t.is(statSync(cache).mtimeMs, written, 'a verb already learned is not written again');
  t.is(warden(['--config', '/dev/null', 'list', '--json']).status, 0);
  t.is(statSync(cache).mtimeMs, written, 'global options before the verb are no other verb');
  t.is(warden(['--version']).status, 0);
  t.is(readCache(cache).stamp, `${st.size} ${st.mtimeMs} list,--version`);
  t.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file is left');
  runs(t, dir, 'with a learned cache');
});
