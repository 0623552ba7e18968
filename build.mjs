// Bundles the CLI after tsc has type-checked and compiled everything else.
//
// The CLI is one CommonJS file: Node 20 loads it ~30 ms faster than the
// same code as ES module chunks (measured per call, and every call pays it).
// Verbs stay lazy inside it (esbuild turns import() into deferred init), so a
// call runs only the code of its verb. The lock-wait worker is a separate
// ES module file that piscina loads beside the bundle.
//
// Two copies: dist/cli (shipped; crash points compiled out) and dist/crash
// (crash points read WARDEN_CRASH_AT; only the crash-injection tests use it).
import { build } from 'esbuild';
import { chmodSync, lstatSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const common = {
  bundle: true,
  platform: 'node',
  target: 'node20',
  logLevel: 'warning',
  external: ['koffi', 'piscina', 'yargs', 'chokidar'],
};

for (const [outdir, crashPoints] of [['dist/cli', false], ['dist/crash', true]]) {
  rmSync(outdir, { recursive: true, force: true });
  await build({
    ...common,
    entryPoints: { warden: 'src/cli/main.ts' },
    outdir,
    outExtension: { '.js': '.cjs' },
    format: 'cjs',
    // The sources are ES modules and use import.meta.url to find files
    // beside them (hooks/, package.json, the worker).
    banner: { js: "'use strict'; const __bundle_url = require('node:url').pathToFileURL(__filename).href;" },
    define: { 'import.meta.url': '__bundle_url', WARDEN_CRASH_POINTS: String(crashPoints) },
  });
  await build({ ...common, entryPoints: { 'wait-worker': 'src/locks/wait-worker.ts' }, outdir, format: 'esm' });
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
