// removeTree: deletes a session dir, never into a mount, never through a link.
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { UnionError, mountUnion, mountsUnder, removeTree, unmountAll } from '../../src/union/index.js';
import { isRoot, makeLayout, makeSource, rootTest, run, scratch, test } from './support.js';

test.serial('removeTree deletes files, dirs, links, fifos, unreadable dirs and non-UTF-8 names', (t) => {
  const tmp = scratch(t);
  const dir = join(tmp, 'session');
  makeSource(dir);
  mkdirSync(join(dir, 'locked', 'inside'), { recursive: true });
  writeFileSync(join(dir, 'locked', 'inside', 'f'), 'x');
  chmodSync(join(dir, 'locked'), 0o000);
  writeFileSync(Buffer.concat([Buffer.from(`${dir}/latin1-`), Buffer.from([0xe9, 0xff])]), 'x');
  removeTree(dir);
  t.false(existsSync(dir));
  t.notThrows(() => removeTree(dir), 'a missing dir is not an error');
});

test.serial('removeTree removes a symlink to a dir outside, not what it points to', (t) => {
  const tmp = scratch(t);
  const outside = join(tmp, 'outside');
  mkdirSync(join(outside, 'sub'), { recursive: true });
  writeFileSync(join(outside, 'keep'), 'keep\n');
  const dir = join(tmp, 'session');
  mkdirSync(join(dir, 'root'), { recursive: true });
  symlinkSync(outside, join(dir, 'root', 'to-outside'));
  symlinkSync(join(outside, 'keep'), join(dir, 'to-file'));
  removeTree(dir);
  t.false(existsSync(dir));
  t.is(readFileSync(join(outside, 'keep'), 'utf8'), 'keep\n');
  t.true(existsSync(join(outside, 'sub')));
});

test.serial('removeTree refuses a dir that is itself a symlink', (t) => {
  const tmp = scratch(t);
  mkdirSync(join(tmp, 'real'));
  writeFileSync(join(tmp, 'real', 'keep'), 'keep\n');
  symlinkSync(join(tmp, 'real'), join(tmp, 'link'));
  const e = t.throws(() => removeTree(join(tmp, 'link')), { instanceOf: UnionError });
  t.regex(e!.message, /symbolic link/);
  t.true(existsSync(join(tmp, 'real', 'keep')));
});

rootTest('removeTree refuses while anything is mounted inside, and deletes nothing', (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'none', makeSource(tmp));
  const dir = join(tmp, 'session');
  mountUnion(l);
  const e = t.throws(() => removeTree(dir), { instanceOf: UnionError });
  t.is(e!.path, dir);
  t.regex(e!.message, new RegExp(`refusing to delete: still mounted at ${l.root}$`));
  t.true(existsSync(join(l.source, 'etc', 'hostname')), 'the source behind the bind mount is intact');
  t.true(existsSync(l.upper));
  unmountAll(l.root);
  removeTree(dir);
  t.false(existsSync(dir));
  t.true(existsSync(join(l.source, 'etc', 'hostname')));
});

rootTest('removeTree refuses a dir that is itself a mount point', (t) => {
  const tmp = scratch(t);
  const dir = join(tmp, 'session');
  mkdirSync(dir);
  run('mount', '-t', 'tmpfs', 'tmpfs', dir);
  writeFileSync(join(dir, 'data'), 'precious\n');
  t.throws(() => removeTree(dir), { instanceOf: UnionError, message: /still mounted/ });
  t.is(readFileSync(join(dir, 'data'), 'utf8'), 'precious\n');
  unmountAll(dir);
});

// The mount is inside the tree, but the tree is named by a path that is
// not spelled the way mountinfo spells it.
const otherSpelling = test.macro({
  exec(t, spell: (tmp: string) => string) {
    const tmp = scratch(t);
    const mnt = join(tmp, 'state', 's', 'root');
    mkdirSync(mnt, { recursive: true });
    mkdirSync(join(tmp, 'state', 'x'));
    symlinkSync(join(tmp, 'state'), join(tmp, 'state-link'));
    run('mount', '-t', 'tmpfs', 'tmpfs', mnt);
    writeFileSync(join(mnt, 'data'), 'precious\n');
    t.throws(() => removeTree(spell(tmp)), { instanceOf: UnionError, message: /still mounted/ });
    t.is(readFileSync(join(mnt, 'data'), 'utf8'), 'precious\n', 'nothing deleted through the mount');
    unmountAll(tmp);
    removeTree(spell(tmp));
    t.false(existsSync(join(tmp, 'state', 's')));
  },
  title: (name) => `removeTree sees the mounts of a tree named ${name ?? ''}`,
});
const root = isRoot ? test.serial : test.serial.skip;
root('through a symlinked parent', otherSpelling, (tmp) => join(tmp, 'state-link', 's'));
root('with a .. segment', otherSpelling, (tmp) => `${tmp}/state/x/../s`);
root('with a doubled and a trailing slash', otherSpelling, (tmp) => `${tmp}/state//s/`);
root('relative to the cwd', otherSpelling, (tmp) => relative(process.cwd(), join(tmp, 'state', 's')));

rootTest('an ended overlay session dir is removed whole (work/work is mode 000)', (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  mountUnion(l);
  writeFileSync(join(l.root, 'new'), 'x');
  run('rm', '-f', join(l.root, 'etc', 'hostname'));
  unmountAll(l.root);
  removeTree(join(tmp, 'session'));
  t.false(existsSync(join(tmp, 'session')));
  t.deepEqual(mountsUnder(tmp), []);
  t.true(existsSync(join(l.source, 'etc', 'hostname')));
});
