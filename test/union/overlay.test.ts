// union-type=overlay: a real overlayfs over a hand-made source tree.
import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { UnionError, isMountPoint, mountUnion, mountsUnder, unmountAll } from '../../src/union/index.js';
import { digest, makeLayout, makeShared, makeSource, rootTest, run, scratch, test } from './support.js';

rootTest('overlay mount shows the source, as a private overlay mount even under a shared parent', async (t) => {
  const tmp = scratch(t);
  makeShared(tmp);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  await mountUnion(l);
  t.true(isMountPoint(l.root));
  const [m] = mountsUnder(l.root);
  t.is(m!.fsType, 'overlay');
  t.deepEqual(m!.propagation, [], 'a shared mount would pass hook mounts on to its peers');
  t.is(readFileSync(join(l.root, 'etc', 'deep', 'er', 'leaf'), 'utf8'), 'leaf\n');
  t.deepEqual(readdirSync(l.root).sort(), readdirSync(l.source).sort());
  unmountAll(tmp);
  t.false(isMountPoint(l.root));
});

rootTest('a write in root lands in upper and never in the source', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  const before = digest(l.source);
  await mountUnion(l);
  writeFileSync(join(l.root, 'new-file'), 'session\n');
  writeFileSync(join(l.root, 'etc', 'hostname'), 'session\n');
  mkdirSync(join(l.root, 'etc', 'new-dir'));
  t.is(readFileSync(join(l.upper, 'new-file'), 'utf8'), 'session\n');
  t.is(readFileSync(join(l.upper, 'etc', 'hostname'), 'utf8'), 'session\n', 'copied up');
  t.true(lstatSync(join(l.upper, 'etc', 'new-dir')).isDirectory());
  t.is(digest(l.source), before);
  unmountAll(l.root);
});

rootTest('deleting a source file or dir in root leaves a whiteout in upper and the source intact', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  const before = digest(l.source);
  await mountUnion(l);
  unlinkSync(join(l.root, 'etc', 'hostname'));
  rmSync(join(l.root, 'etc', 'deep'), { recursive: true });
  t.false(existsSync(join(l.root, 'etc', 'hostname')));
  t.false(existsSync(join(l.root, 'etc', 'deep')));
  // overlayfs(5): a whiteout is a character device with device number 0/0.
  for (const name of ['hostname', 'deep']) {
    const w = lstatSync(join(l.upper, 'etc', name));
    t.true(w.isCharacterDevice() && w.rdev === 0, `${name}: whiteout in upper`);
  }
  t.is(digest(l.source), before);
  unmountAll(l.root);
  t.is(readFileSync(join(l.source, 'etc', 'hostname'), 'utf8'), 'source\n');
});

rootTest('mounting a root that is mounted already is refused', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  await mountUnion(l);
  const e = await t.throwsAsync(mountUnion(l), { instanceOf: UnionError });
  t.is(e!.path, l.root);
  t.regex(e!.message, /already a mount point/);
  t.is(mountsUnder(l.root).length, 1, 'nothing stacked');
  unmountAll(l.root);
});

rootTest('upper and work on different filesystems are refused before mount(2), with the reason', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  run('mount', '-t', 'tmpfs', 'tmpfs', l.work);
  const e = await t.throwsAsync(mountUnion(l), { instanceOf: UnionError });
  t.is(e!.path, l.work);
  t.regex(e!.message, /another filesystem than the upper directory/);
  t.false(isMountPoint(l.root));
  unmountAll(tmp);
});

rootTest('an overlay the kernel refuses (work inside upper) maps EINVAL to a hint', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  const work = join(l.upper, 'work');
  mkdirSync(work);
  const e = await t.throwsAsync(mountUnion({ ...l, work }), { instanceOf: UnionError });
  t.is(e!.path, l.root);
  t.regex(e!.message, /EINVAL.*same filesystem/);
  t.notRegex(e!.message, /\n/);
  t.false(isMountPoint(l.root));
});

rootTest('a missing upper directory maps ENOENT to a clear message', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  rmSync(l.upper, { recursive: true });
  const e = await t.throwsAsync(mountUnion(l), { instanceOf: UnionError });
  t.regex(e!.message, /ENOENT.*missing/);
  t.false(isMountPoint(l.root));
});

// Checked before any mount: runs without root too.
const refused = test.macro({
  async exec(t, which: 'source' | 'upper' | 'work', bad: string) {
    const tmp = scratch(t);
    const l = makeLayout(tmp, 'overlay', makeSource(tmp));
    const odd = join(tmp, `odd${bad}dir`);
    mkdirSync(odd);
    const layout = { ...l, [which]: odd };
    const e = await t.throwsAsync(mountUnion(layout), { instanceOf: UnionError });
    t.is(e!.path, odd);
    t.regex(e!.message, /overlay mount options cannot carry/);
    t.notRegex(e!.message, /\n/, 'one line, even for a path with a newline');
    t.false(isMountPoint(l.root));
  },
  title: (_, which, bad) => `a ${which} path containing ${JSON.stringify(bad)} is refused, not escaped`,
});
test.serial(refused, 'source', ',');
test.serial(refused, 'source', ':');
test.serial(refused, 'upper', '\\');
test.serial(refused, 'work', '\n');
test.serial(refused, 'work', ',lowerdir=x');

test.serial('relative paths and unknown types are refused', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  t.is((await t.throwsAsync(mountUnion({ ...l, source: 'source' }), { instanceOf: UnionError }))!.path, 'source');
  t.regex((await t.throwsAsync(mountUnion({ ...l, type: 'bogus' as 'none' }), { instanceOf: UnionError }))!.message, /unknown union type "bogus"/);
  t.false(isMountPoint(l.root));
});
