// The architecture of DESIGN.md ("Suggested architecture"), checked on the
// sources: arrows point down only (cli, schroot -> supervisor -> sessions
// -> union, hooks, config, locks -> sys), the CLI is a client of the
// library (src/api) and the supervisor and nothing else, a layer is
// entered through its index, and nothing below the CLI prints or exits.
// Reads src/**/*.ts as text: every `from '...'` and `import('...')`,
// type-only imports included (a type from above is an arrow up too).
import test from 'ava';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

// dist/test/structure.test.js -> the repository.
const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const SRC = join(REPO, 'src');

/**
 * What each layer may import, besides itself: the arrows of DESIGN.md.
 * `api` is the library (src/api and the package's entry, src/index.ts);
 * bootstrap builds chroots with the sessions layer's lock table. union,
 * hooks, config and locks are one tier and may use each other (without a
 * cycle: see below).
 */
const BOTTOM = ['sys', 'exit-codes'];
const TIER = ['union', 'hooks', 'config', 'locks'];
const MAY_IMPORT: Record<string, readonly string[]> = {
  cli: ['api', 'supervisor', 'schroot', 'exit-codes'],
  schroot: ['supervisor', 'sessions', ...TIER, ...BOTTOM],
  api: ['bootstrap', 'sessions', ...TIER, ...BOTTOM],
  supervisor: ['sessions', ...TIER, ...BOTTOM],
  bootstrap: ['sessions', ...TIER, ...BOTTOM],
  sessions: [...TIER, ...BOTTOM],
  union: [...TIER, ...BOTTOM],
  hooks: [...TIER, ...BOTTOM],
  config: [...TIER, ...BOTTOM],
  locks: [...TIER, ...BOTTOM],
  sys: ['exit-codes'],
  'exit-codes': [],
  // A program of its own that drives the built CLI.
  demo: [],
};

/** The file through which other layers enter a layer. */
const INDEX: Record<string, string> = { api: 'index.ts', 'exit-codes': 'exit-codes.ts' };
const indexOf = (layer: string) => INDEX[layer] ?? `${layer}/index.ts`;

/**
 * Who may import a module of another layer that is not its index. The CLI
 * is bundled into one file (build.mjs) in which importing an index
 * evaluates every module of that layer, and every call pays for what it
 * evaluates (`info` through the sessions index: +4 ms). So its verbs load
 * the supervisor's modules one by one, and the library's side of the CLI
 * (src/api/internal, one module per concern) takes the one module of a
 * lower layer it needs.
 */
function mayBypassIndex(importer: string, targetLayer: string): boolean {
  if (importer.startsWith('cli/')) return targetLayer === 'api' || targetLayer === 'supervisor';
  return importer.startsWith('api/internal/');
}

function layerOf(rel: string): string {
  if (rel === 'index.ts') return 'api';
  if (!rel.includes('/')) return rel.replace(/\.ts$/, '');
  return rel.slice(0, rel.indexOf('/'));
}

function sources(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) return sources(p);
    return p.endsWith('.ts') ? [p] : [];
  });
}

/** The text without comments (a rough cut: enough for import specifiers and calls). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

interface Edge {
  from: string;
  to: string;
}

const edges: Edge[] = [];
const files = sources(SRC).map((f) => relative(SRC, f));
for (const rel of files) {
  const text = code(readFileSync(join(SRC, rel), 'utf8'));
  for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*)'(\.{1,2}\/[^']+)'/g)) {
    const target = relative(SRC, resolve(SRC, dirname(rel), m[1]!)).replace(/\.js$/, '.ts');
    edges.push({ from: rel, to: target });
  }
}

test('the import graph was read', (t) => {
  t.true(files.length > 100, `${files.length} source files`);
  t.true(edges.length > 300, `${edges.length} imports`);
  t.true(files.includes('cli/main.ts') && files.includes('sessions/locks.ts'));
});

test('every import names a file that exists', (t) => {
  const known = new Set(files);
  t.deepEqual(
    edges.filter((e) => !known.has(e.to) && !e.to.endsWith('.cjs')).map((e) => `${e.from} -> ${e.to}`),
    [],
  );
});

test('arrows point down only (DESIGN.md, "Suggested architecture")', (t) => {
  const up = edges.filter((e) => {
    const a = layerOf(e.from);
    const b = layerOf(e.to);
    return a !== b && !(MAY_IMPORT[a] ?? []).includes(b);
  });
  t.deepEqual(
    up.map((e) => `${e.from} -> ${e.to}`),
    [],
  );
  t.deepEqual(
    files.map(layerOf).filter((l) => !(l in MAY_IMPORT)),
    [],
    'a layer this test does not know: add it to MAY_IMPORT',
  );
});

test('the CLI is a client of the library (src/api) and the supervisor, and nothing else', (t) => {
  const outside = edges.filter((e) => e.from.startsWith('cli/') && !['cli', 'api', 'supervisor', 'schroot', 'exit-codes'].includes(layerOf(e.to)));
  t.deepEqual(
    outside.map((e) => `${e.from} -> ${e.to}`),
    [],
  );
  // The package's entry is for outside callers: the CLI takes what it needs from src/api/internal.
  t.deepEqual(
    edges.filter((e) => e.from.startsWith('cli/') && e.to === 'index.ts').map((e) => e.from),
    [],
  );
});

test("no layer imports past another layer's index (but for the CLI's lazy entries)", (t) => {
  const past = edges.filter((e) => {
    const a = layerOf(e.from);
    const b = layerOf(e.to);
    return a !== b && e.to !== indexOf(b) && !mayBypassIndex(e.from, b);
  });
  t.deepEqual(
    past.map((e) => `${e.from} -> ${e.to}`),
    [],
  );
});

test('the layers import each other without a cycle', (t) => {
  const graph = new Map<string, Set<string>>();
  for (const e of edges) {
    const a = layerOf(e.from);
    const b = layerOf(e.to);
    if (a !== b) graph.set(a, (graph.get(a) ?? new Set()).add(b));
  }
  const cycles = new Set<string>();
  const visit = (node: string, path: string[]) => {
    if (path.includes(node)) {
      cycles.add([...path.slice(path.indexOf(node)), node].join(' -> '));
      return;
    }
    for (const next of graph.get(node) ?? []) visit(next, [...path, node]);
  };
  for (const layer of graph.keys()) visit(layer, []);
  t.deepEqual([...cycles], []);
});

test('nothing below the CLI prints or exits', (t) => {
  const offenders = files
    .filter((rel) => !rel.startsWith('cli/') && rel !== 'demo.ts')
    .flatMap((rel) =>
      code(readFileSync(join(SRC, rel), 'utf8'))
        .split('\n')
        .filter((line) => /\bprocess\.(exit|stdout|stderr)\b|\bconsole\./.test(line))
        .map((line) => `${rel}: ${line.trim()}`),
    );
  t.deepEqual(offenders, []);
});
