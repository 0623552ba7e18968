#!/usr/bin/env node
// The `warden` executable (the build copies this file to dist/cli/warden.cjs):
// it runs the CLI bundle beside it, warden-main.cjs, compiled from a V8 code
// cache, warden-main.cjs.cache.
//
// Why by hand: compiling the 280 KB bundle costs ~10 ms of every call, and
// every call pays Node's start-up already; loading its code cache costs
// ~1.5 ms. Node 22 has this built in (module.enableCompileCache), Node 20
// has not.
//
// The build writes a cache made right after compiling, which holds only the
// code V8 compiles eagerly; the functions a call runs are compiled lazily,
// ~9 ms more for `run -c`. So the cache learns: a call that ends well
// (exit 0) running a verb the cache has not seen yet rewrites it, from
// V8's state after the run (Script#createCachedData), which then holds the
// code that call needed as well as everything the old cache held. The
// verbs seen are listed on the first line; after one good call of each
// verb the cache is no longer written. Written to a temporary file and
// renamed over the cache, so a reader never sees half of one; where the
// directory is not writable, or WARDEN_CODE_CACHE=read-only, it is not.
//
// The cache is used only for the bundle it was made from: its first line
// holds the bundle's size and mtime, and V8 checks its own version, flags
// and the source. A cache that is missing, stale or rejected costs the
// compile, nothing else. This file is plain CommonJS and is not bundled.
'use strict';
const { closeSync, fstatSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { join } = require('node:path');
const { Script } = require('node:vm');

/** The bundle as one function expression, as the build and this file both compile it. */
function wrap(source) {
  return `(function (exports, require, module, __filename, __dirname, __warden_import) {${source}\n})`;
}

// Required by the build (for wrap), not run.
if (require.main !== module) {
  module.exports = { wrap };
  return;
}

const bundle = join(__dirname, 'warden-main.cjs');
const cachePath = `${bundle}.cache`;
const fd = openSync(bundle, 'r');
let source;
let stamp;
try {
  const st = fstatSync(fd);
  stamp = `${st.size} ${st.mtimeMs}`;
  source = readFileSync(fd, 'utf8');
} finally {
  closeSync(fd);
}

let cachedData;
let seen = [];
try {
  const cache = readFileSync(cachePath);
  const eol = cache.indexOf(10);
  const [size, mtime, verbs] = cache.toString('latin1', 0, Math.max(eol, 0)).split(' ');
  if (eol > 0 && `${size} ${mtime}` === stamp) {
    cachedData = cache.subarray(eol + 1);
    seen = verbs ? verbs.split(',') : [];
  }
} catch {
  // No cache (a build without one, or a copied dist): compile from source.
}

const script = new Script(wrap(source), { filename: bundle, cachedData });
if (script.cachedDataRejected) seen = [];

/**
 * What this call runs, as the cache counts it: the verb after any global
 * options, with `:s` or `:c` when -s or -c picks another path through it
 * (run -s starts a command in a session, run -c also begins and ends one).
 */
function verbOf(argv) {
  let i = 0;
  for (;;) {
    const a = argv[i];
    if (a === '--config' || a === '--state-dir') i += 2;
    else if (a !== undefined && /^--(config|state-dir)=/.test(a)) i += 1;
    else break;
  }
  const verb = argv[i];
  if (verb === undefined || !/^-{0,2}[a-z][a-z-]*$/.test(verb)) return undefined;
  // Only the option right after the verb: further on it may be the command's own.
  const next = argv[i + 1] ?? '';
  if (/^(-s|--session(=|$))/.test(next)) return `${verb}:s`;
  if (/^(-c|--chroot(=|$))/.test(next)) return `${verb}:c`;
  return verb;
}

const verb = verbOf(process.argv.slice(2));
if (verb !== undefined && !seen.includes(verb) && process.env.WARDEN_CODE_CACHE !== 'read-only') {
  // Called by the CLI just before it exits (src/cli/main.ts, quickExit).
  globalThis.__wardenBeforeExit = (code) => {
    if (code !== 0) return;
    const tmp = `${cachePath}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, Buffer.concat([Buffer.from(`${stamp} ${[...seen, verb].join(',')}\n`, 'latin1'), script.createCachedData()]), { mode: 0o644 });
      renameSync(tmp, cachePath);
    } catch {
      // Not writable (an installed copy, a read-only tree): the cache stays as it is.
      try {
        unlinkSync(tmp);
      } catch {
        // never made
      }
    }
  };
}

// The bundle's import()s of ES-module-only packages (yargs, piscina) come
// here (the build rewrites them): code compiled from a code cache cannot
// import() on Node 20, and this file resolves the same node_modules as the
// bundle beside it.
const importHere = (specifier) => import(specifier);
const main = script.runInThisContext();
const mod = { exports: {}, filename: bundle, id: '.', loaded: false };
main.call(mod.exports, mod.exports, createRequire(bundle), mod, bundle, __dirname, importHere);
