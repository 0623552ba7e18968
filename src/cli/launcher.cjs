#!/usr/bin/env node
// The `warden` executable (the build copies this file to dist/cli/warden.cjs):
// it runs the CLI bundle beside it, warden-main.cjs, compiled from the V8
// code cache that the build wrote for that bundle.
//
// Why by hand: compiling the 280 KB bundle costs ~10 ms of every call, and
// every call pays Node's start-up already; loading its code cache costs
// ~1.5 ms. Node 22 has this built in (module.enableCompileCache), Node 20
// has not, and no package does it without a runtime write into a cache dir.
//
// The cache is used only for the bundle it was made from: its first line
// holds the bundle's size and mtime as the build saw them, and V8 checks its
// own version and flags. A cache that is missing, stale or rejected costs
// the compile, nothing else. This file is plain CommonJS and is not bundled.
'use strict';
const { closeSync, fstatSync, openSync, readFileSync } = require('node:fs');
const { createRequire } = require('node:module');
const { join } = require('node:path');
const { compileFunction } = require('node:vm');

const bundle = join(__dirname, 'warden-main.cjs');
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
try {
  const cache = readFileSync(`${bundle}.cache`);
  const eol = cache.indexOf(10);
  if (eol > 0 && cache.toString('latin1', 0, eol) === stamp) cachedData = cache.subarray(eol + 1);
} catch {
  // No cache (a build without one, or a copied dist): compile from source.
}

// The bundle's import()s of ES-module-only packages (yargs, chokidar,
// piscina) come here (the build rewrites them): a function compiled from a
// code cache cannot import() on Node 20, and this file resolves the same
// node_modules as the bundle beside it.
const importHere = (specifier) => import(specifier);
const main = compileFunction(source, ['exports', 'require', 'module', '__filename', '__dirname', '__warden_import'], { filename: bundle, cachedData });
const mod = { exports: {}, filename: bundle, id: '.', loaded: false };
main.call(mod.exports, mod.exports, createRequire(bundle), mod, bundle, __dirname, importHere);
