// Our ELF reader and loader emulation against the real thing: ldd's answer
// for every host tool, ldconfig's view of ld.so.cache, and programs built
// here with DT_RUNPATH / DT_RPATH = $ORIGIN/../lib.
import test from 'ava';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readElf } from '../../src/bootstrap/elf.js';
import { LibraryResolver, MissingLibraryError, readLdCache } from '../../src/bootstrap/libraries.js';
import { planHost } from '../../src/bootstrap/plan.js';

/** ldd's list for `binary`: "soname => path" targets and the interpreter, without the vDSO. */
function ldd(binary: string): string[] {
  const out = execFileSync('ldd', [binary], { encoding: 'utf8', env: { PATH: '/usr/bin:/bin' } });
  const found: string[] = [];
  for (const line of out.split('\n')) {
    const arrow = /=>\s+(\/\S+)\s+\(/.exec(line);
    const bare = /^\s+(\/\S+)\s+\(/.exec(line);
    if (arrow) found.push(arrow[1]);
    else if (bare) found.push(bare[1]);
  }
  return found.sort();
}

const hasLdd = spawnSync('ldd', ['--version']).status === 0;
const plan = planHost({ busybox: false });
const resolver = new LibraryResolver();
for (const [name, path] of plan.hostTools) {
  (hasLdd ? test : test.skip)(`dependencies of ${name} (${path}) are what ldd says`, (t) => {
    t.deepEqual([...resolver.dependencies(path)].sort(), ldd(path));
  });
}

test('ld.so.cache reads as ldconfig -p prints it (plain libc6 entries)', (t) => {
  const r = spawnSync('ldconfig', ['-p'], { encoding: 'utf8', env: { PATH: '/usr/sbin:/sbin:/usr/bin:/bin' } });
  if (r.status !== 0) {
    t.pass('no ldconfig on this host');
    return;
  }
  const want = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^\s+(\S+) \((libc6[^)]*)\) => (\S+)$/.exec(line);
    if (m && !m[2].includes('hwcap')) want.add(`${m[1]} => ${m[3]}`);
  }
  const got = new Set<string>();
  for (const [soname, paths] of readLdCache()) for (const p of paths) got.add(`${soname} => ${p}`);
  t.true(want.size > 0);
  t.deepEqual([...got].sort(), [...want].sort());
});

test('a script is not ELF', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'warden-elf-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'script'), '#!/bin/sh\nexit 0\n');
  t.is(readElf(join(dir, 'script')), undefined);
  writeFileSync(join(dir, 'tiny'), '');
  t.is(readElf(join(dir, 'tiny')), undefined);
});

const hasCc = spawnSync('cc', ['--version']).status === 0;
const origin = test.macro({
  exec(t, dtags: '--enable-new-dtags' | '--disable-new-dtags') {
    const dir = mkdtempSync(join(tmpdir(), 'warden-elf-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'lib'));
    writeFileSync(join(dir, 'lib.c'), 'int wfoo(void) { return 42; }\n');
    writeFileSync(join(dir, 'main.c'), 'int wfoo(void);\nint main(void) { return wfoo() == 42 ? 0 : 1; }\n');
    const lib = join(dir, 'lib', 'libwfoo.so.1');
    const prog = join(dir, 'bin', 'prog');
    execFileSync('cc', ['-shared', '-fPIC', '-Wl,-soname,libwfoo.so.1', '-o', lib, join(dir, 'lib.c')]);
    execFileSync('cc', ['-o', prog, join(dir, 'main.c'), lib, `-Wl,${dtags}`, '-Wl,-rpath,$ORIGIN/../lib']);
    chmodSync(prog, 0o755);
    t.is(spawnSync(prog).status, 0, 'the program runs on the host');

    const elf = readElf(prog)!;
    const field = dtags === '--enable-new-dtags' ? 'runpath' : 'rpath';
    t.deepEqual(elf[field], ['$ORIGIN/../lib']);
    t.true(elf.needed.includes('libwfoo.so.1'));
    t.truthy(elf.interpreter);
    t.true(new LibraryResolver().dependencies(prog).includes(lib));

    unlinkSync(lib);
    const e = t.throws(() => new LibraryResolver().dependencies(prog), { instanceOf: MissingLibraryError });
    t.is(e?.soname, 'libwfoo.so.1');
    t.is(e?.neededBy, prog);
  },
  title: (_p, dtags: string) => `$ORIGIN in ${dtags === '--enable-new-dtags' ? 'DT_RUNPATH' : 'DT_RPATH'} is followed; a missing library is named`,
});
(hasCc ? test : test.skip)(origin, '--enable-new-dtags');
(hasCc ? test : test.skip)(origin, '--disable-new-dtags');
