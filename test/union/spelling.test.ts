// Paths spelled otherwise than mountinfo spells them (through a symlinked
// state dir, with '..', '//', relative): the mount checks must still see
// the mounts, or a session's end deletes through its bind mount.
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { UnionError, isMountPoint, mountUnion, mountsUnder, removeTree, unmountAll } from '../../src/union/index.js';
import { checkAllFds } from './fds.js';
import { digest, makeSource, rootTest, run, scratch, test } from './support.js';

checkAllFds();

rootTest('union-type=none through a symlinked state dir: unmountAll unmounts, and ending never deletes the source', async (t) => {
  const tmp = scratch(t);
  const source = makeSource(tmp);
  const before = digest(source);
  mkdirSync(join(tmp, 'real-state'));
  symlinkSync(join(tmp, 'real-state'), join(tmp, 'state'));
  // Session paths as the caller spells them: through the link.
  const dir = join(tmp, 'state', 's1');
  const l = { type: 'none' as const, source, upper: join(dir, 'upper'), work: join(dir, 'work'), root: join(dir, 'root') };
  for (const d of [dir, l.upper, l.work, l.root]) mkdirSync(d);
  await mountUnion(l);
  t.true(isMountPoint(l.root));
  t.deepEqual(mountsUnder(dir).map((m) => m.mountPoint), [join(tmp, 'real-state', 's1', 'root')]);

  // A session's end: removeTree first refuses while mounted ...
  t.throws(() => removeTree(dir), { instanceOf: UnionError, message: /still mounted/ });
  // ... then unmountAll and removeTree, as sessions/end does.
  unmountAll(l.root);
  t.false(isMountPoint(l.root));
  removeTree(dir);
  t.false(existsSync(join(tmp, 'real-state', 's1')));
  t.is(digest(source), before, 'the source is untouched');
});

const spelled = test.macro({
  async exec(t, spell: (tmp: string) => string) {
    const tmp = scratch(t);
    const tree = join(tmp, 'real', 'tree');
    const mnt = join(tree, 'mnt');
    mkdirSync(mnt, { recursive: true });
    mkdirSync(join(tmp, 'real', 'x'));
    symlinkSync(join(tmp, 'real'), join(tmp, 'link'));
    run('mount', '-t', 'tmpfs', 'tmpfs', mnt);
    writeFileSync(join(mnt, 'data'), 'precious\n');
    const path = spell(tmp);
    t.true(mountsUnder(path).length === 1, `mountsUnder(${path})`);
    t.throws(() => removeTree(path), { instanceOf: UnionError, message: /still mounted/ });
    t.is(readFileSync(join(mnt, 'data'), 'utf8'), 'precious\n', 'nothing deleted through the mount');
    unmountAll(path);
    t.false(isMountPoint(mnt));
    removeTree(path);
    t.false(existsSync(tree));
  },
  title: (name) => `removeTree and unmountAll see a mount inside a tree named ${name ?? ''}`,
});

rootTest('through a symlinked parent', spelled, (tmp) => join(tmp, 'link', 'tree'));
rootTest('with a .. segment', spelled, (tmp) => `${tmp}/real/x/../tree`);
rootTest('with a doubled and a trailing slash', spelled, (tmp) => `${tmp}/real//tree/`);
rootTest('by a relative path', spelled, (tmp) => relative(process.cwd(), join(tmp, 'real', 'tree')));
