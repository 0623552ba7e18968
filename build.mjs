// Bundles the CLI after tsc has type-checked and compiled everything else.
//
// The CLI is one CommonJS file: Node 20 loads it ~30 ms faster than the
// same code as ES module chunks (measured per call, and every call pays it).
// Verbs stay lazy inside it (esbuild turns import() into deferred init), so a
// call runs only the code of its verb. The workers (lock waits, big
// deletions) are separate ES module files that piscina loads beside it.
//
// Two copies: dist/cli (shipped; crash points compiled out) and dist/crash
// (crash points read WARDEN_CRASH_AT; only the crash-injection tests use it).
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Script } from 'node:vm';

// The launcher's own wrapper, so that the cache is made from exactly what it compiles.
const { wrap } = createRequire(import.meta.url)('./src/cli/launcher.cjs');

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  external: ['koffi', 'piscina', 'yargs'],
};

// The executable is src/cli/launcher.cjs, which runs the bundle from the V8
// code cache written here (see that file for why). Two edits make the
// bundle a function body the launcher can compile:
//  - its shebang line goes (a syntax error inside a function);
//  - its dynamic import()s of ES-module-only packages call the launcher's
//    import instead: on Node 20 a function compiled from a code cache has no
//    dynamic-import callback (ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING), and
//    the launcher's own import() resolves from the same directory.
// The cache is compiled exactly as the launcher compiles the bundle (its
// wrap()), and its first line stamps the bundle's size and mtime, taken
// after the last write to the bundle. The launcher adds the code of each
// verb to it after that verb's first good run.
const DYNAMIC_IMPORT = /(?<![\w$.])import\((?=["'])/g;
function writeCodeCache(bundle) {
  const source = readFileSync(bundle, 'utf8').replace(/^#!.*/, '').replace(DYNAMIC_IMPORT, '__warden_import(');
  const left = /(?<![\w$.])import\(/.exec(source);
  if (left) throw new Error(`${bundle}: an import() the launcher cannot serve: ${source.slice(left.index, left.index + 60)}`);
  writeFileSync(bundle, source);
  const data = new Script(wrap(source), { filename: join(process.cwd(), bundle) }).createCachedData();
  if (data.length === 0) throw new Error(`V8 produced no code cache for ${bundle}`);
  const st = statSync(bundle);
  writeFileSync(`${bundle}.cache`, Buffer.concat([Buffer.from(`${st.size} ${st.mtimeMs}\n`, 'latin1'), data]));
}

for (const [outdir, crashPoints] of [['dist/cli', false], ['dist/crash', true]]) {
  rmSync(outdir, { recursive: true, force: true });
  await build({
    ...common,
    entryPoints: { 'warden-main': 'src/cli/main.ts' },
    outdir,
    outExtension: { '.js': '.cjs' },
    format: 'cjs',
    // The sources are ES modules and use import.meta.url to find files
    // beside them (hooks/, package.json, the worker).
    banner: { js: "'use strict'; const __bundle_url = require('node:url').pathToFileURL(__filename).href;" },
    define: { 'import.meta.url': '__bundle_url', WARDEN_CRASH_POINTS: String(crashPoints) },
  });
  await build({ ...common, entryPoints: { 'wait-worker': 'src/locks/wait-worker.ts', 'remove-worker': 'src/union/remove-worker.ts', 'readable-worker': 'src/supervisor/readable-worker.ts' }, outdir, format: 'esm' });
  writeCodeCache(join(outdir, 'warden-main.cjs'));
  copyFileSync('src/cli/launcher.cjs', join(outdir, 'warden.cjs'));
  chmodSync(join(outdir, 'warden.cjs'), 0o755);
}

// warden refuses to run hooks that are group- or world-writable (they run as
// root). A checkout made under umask 002 leaves warden's own hooks/ exactly
// that, so the build takes those write bits away.
function dropGroupWrite(path) {
  const st = lstatSync(path);
  if (st.isSymbolicLink()) return;
  if (st.mode & 0o022) chmodSync(path, st.mode & 0o7755);
  if (st.isDirectory()) for (const name of readdirSync(path)) dropGroupWrite(join(path, name));
}
dropGroupWrite('hooks');

// The relay (src/relay/warden.c): the small C client users call for run,
// begin, end, source and recover, so that those calls do not pay Node's
// start-up. -Werror: a warning in code that handles fds for root is a bug.
mkdirSync('dist/bin', { recursive: true });
execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', 'dist/bin/warden', 'src/relay/warden.c'], { stdio: 'inherit' });
// warden-attrs (src/relay/attrs.c): puts a client's umask, nice value and
// resource limits on the command the supervisor starts for it.
execFileSync('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', 'dist/bin/warden-attrs', 'src/relay/attrs.c'], { stdio: 'inherit' });
// The same binary as warden-schroot: it speaks schroot's command line when called by that name.
rmSync('dist/bin/warden-schroot', { force: true });
symlinkSync('warden', 'dist/bin/warden-schroot');
