// removeTree: deletes a session dir, never into a mount, never through a link.
// removeTreeOffThread: the same, with a big tree's deletion in a worker.
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { UnionError, mountUnion, mountsUnder, removeTree, removeTreeOffThread, shutdownRemovalPool, unmountAll } from '../../src/union/index.js';
import { INLINE_ENTRIES } from '../../src/union/remove.js';
import { isRoot, makeLayout, makeSource, rootTest, run, scratch, startChild, test } from './support.js';

test.serial('removeTree deletes files, dirs, links, fifos, unreadable dirs and non-UTF-8 names', async (t) => {
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

test.serial('removeTree removes a symlink to a dir outside, not what it points to', async (t) => {
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

test.serial('removeTree refuses a dir that is itself a symlink', async (t) => {
  const tmp = scratch(t);
  mkdirSync(join(tmp, 'real'));
  writeFileSync(join(tmp, 'real', 'keep'), 'keep\n');
  symlinkSync(join(tmp, 'real'), join(tmp, 'link'));
  const e = t.throws(() => removeTree(join(tmp, 'link')), { instanceOf: UnionError });
  t.regex(e!.message, /symbolic link/);
  t.true(existsSync(join(tmp, 'real', 'keep')));
});

rootTest('removeTree refuses while anything is mounted inside, and deletes nothing', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'none', makeSource(tmp));
  const dir = join(tmp, 'session');
  await mountUnion(l);
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

rootTest('removeTree refuses a dir that is itself a mount point', async (t) => {
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
  async exec(t, spell: (tmp: string) => string) {
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

rootTest('an ended overlay session dir is removed whole (work/work is mode 000)', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  await mountUnion(l);
  writeFileSync(join(l.root, 'new'), 'x');
  run('rm', '-f', join(l.root, 'etc', 'hostname'));
  unmountAll(l.root);
  removeTree(join(tmp, 'session'));
  t.false(existsSync(join(tmp, 'session')));
  t.deepEqual(mountsUnder(tmp), []);
  t.true(existsSync(join(l.source, 'etc', 'hostname')));
});

/** `count` empty files in `dir`, named 0..count-1 (a build tree's object files). */
function fill(dir: string, count: number): void {
  mkdirSync(dir, { recursive: true });
  for (let i = 0; i < count; i++) closeSync(openSync(join(dir, String(i)), 'w'));
}

test.after.always(() => shutdownRemovalPool());

test.serial('removeTreeOffThread deletes a tree too big to delete in place, with the event loop turning meanwhile; links are not followed', async (t) => {
  const tmp = scratch(t);
  const outside = join(tmp, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'keep'), 'keep\n');
  const dir = join(tmp, 'session');
  // Many small directories (the budget runs out among them) and one flat
  // directory too big to be listed in place at all.
  for (let d = 0; d < 20; d++) fill(join(dir, 'upper', 'obj', `d${d}`), 200);
  fill(join(dir, 'upper', 'flat'), 3 * INLINE_ENTRIES);
  symlinkSync(outside, join(dir, 'upper', 'obj', 'd19', 'to-outside'));
  writeFileSync(Buffer.concat([Buffer.from(`${dir}/upper/flat/latin1-`), Buffer.from([0xe9, 0xff])]), 'x');
  let ticks = 0;
  const timer = setInterval(() => ticks++, 1);
  try {
    await removeTreeOffThread(dir);
  } finally {
    clearInterval(timer);
  }
  t.false(existsSync(dir));
  t.true(ticks > 0, 'timers ran while the worker deleted (a removal in place allows none)');
  t.is(readFileSync(join(outside, 'keep'), 'utf8'), 'keep\n');
  await t.notThrowsAsync(removeTreeOffThread(dir), 'a missing dir is not an error');
});

test.serial('removeTreeOffThread deletes a small tree in place, without a worker', async (t) => {
  const tmp = scratch(t);
  const dir = join(tmp, 'session');
  fill(join(dir, 'upper'), 50);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 0);
  const done = removeTreeOffThread(dir);
  // Deleted before the promise is even awaited: nothing went to a thread.
  t.false(existsSync(dir));
  await done;
  clearInterval(timer);
  t.is(ticks, 0);
});

rootTest('removeTreeOffThread: a filesystem the worker meets is refused as a UnionError naming it, and its files are kept', async (t) => {
  const tmp = scratch(t);
  const dir = join(tmp, 'session');
  // Too big to be listed in place: the worker finds the mount in it.
  const big = join(dir, 'upper');
  fill(big, 3 * INLINE_ENTRIES);
  const mnt = join(big, 'mounted');
  mkdirSync(mnt);
  run('mount', '-t', 'tmpfs', 'tmpfs', mnt);
  writeFileSync(join(mnt, 'data'), 'precious\n');
  // As discardSessionDir does after its own mountinfo read: the mount came after it.
  const e = await t.throwsAsync(removeTreeOffThread(dir, { mountsChecked: true }), { instanceOf: UnionError });
  t.is(e!.path, mnt);
  t.regex(e!.message, /refusing to delete: another filesystem is mounted here$/);
  t.is(readFileSync(join(mnt, 'data'), 'utf8'), 'precious\n');
  unmountAll(mnt);
  await removeTreeOffThread(dir);
  t.false(existsSync(dir));
});

rootTest('removeTreeOffThread refuses while anything is mounted inside, before deleting anything', async (t) => {
  const tmp = scratch(t);
  const dir = join(tmp, 'session');
  fill(join(dir, 'upper'), 10);
  const mnt = join(dir, 'root');
  mkdirSync(mnt);
  run('mount', '-t', 'tmpfs', 'tmpfs', mnt);
  await t.throwsAsync(removeTreeOffThread(dir), { instanceOf: UnionError, message: /still mounted at .*root$/ });
  t.true(existsSync(join(dir, 'upper', '0')));
  unmountAll(mnt);
  await removeTreeOffThread(dir);
  t.false(existsSync(dir));
});

/** `dir` with a chain of `depth` directories in it, each holding one file. */
function chain(dir: string, depth: number): string {
  mkdirSync(dir);
  // Each level made relative to the one above (paths this deep exceed PATH_MAX): by a shell, in one go.
  run('sh', '-c', `cd "$1" && i=0; while [ $i -lt ${depth} ]; do : > f; mkdir d; cd d; i=$((i+1)); done; : > last`, 'sh', dir);
  return dir;
}

test.serial('removeTree deletes a tree deeper than PATH_MAX and than its fd window, with at most ~40 fds (run under ulimit -n 60)', async (t) => {
  const tmp = scratch(t);
  const dir = chain(join(tmp, 'session'), 2200); // 2,200 * "/d": 4,400 bytes, past PATH_MAX (4,096)
  const outside = join(tmp, 'outside');
  mkdirSync(outside);
  writeFileSync(join(outside, 'keep'), 'keep\n');
  // A separate node with few fds: the walk must not keep one per level.
  const script = `import('${new URL('../../src/union/remove.js', import.meta.url).href}').then((m) => m.removeTree(process.argv[1]))`;
  run('sh', '-c', 'ulimit -n 60 && exec "$0" -e "$1" "$2"', process.execPath, script, dir);
  t.false(existsSync(dir));
  t.is(readFileSync(join(outside, 'keep'), 'utf8'), 'keep\n');
});

test.serial('removeTree: two processes deleting the same tree at once both succeed (ENOENT is "already gone")', async (t) => {
  const tmp = scratch(t);
  const dir = join(tmp, 'session');
  for (let d = 0; d < 20; d++) fill(join(dir, 'upper', `d${d}`), 200);
  const script = `import('${new URL('../../src/union/remove.js', import.meta.url).href}').then((m) => m.removeTree(process.argv[1]))`;
  const other = await startChild(t, process.execPath, ['-e', script, dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  other.stderr!.on('data', (b) => (stderr += b));
  const exited = new Promise<number | null>((resolve) => other.once('exit', resolve));
  removeTree(dir);
  t.is(await exited, 0, stderr);
  t.false(existsSync(dir));
});

test.serial('removeTree unlinks a top that is a file, and leaves what a link at the top points to', async (t) => {
  const tmp = scratch(t);
  writeFileSync(join(tmp, 'file'), 'x');
  removeTree(join(tmp, 'file'));
  t.false(existsSync(join(tmp, 'file')));
  writeFileSync(join(tmp, 'target'), 'keep\n');
  symlinkSync(join(tmp, 'target'), join(tmp, 'link-to-file'));
  t.throws(() => removeTree(join(tmp, 'link-to-file')), { instanceOf: UnionError, message: /symbolic link/ });
  t.is(readFileSync(join(tmp, 'target'), 'utf8'), 'keep\n');
});

rootTest('removeTree refuses a bind mount of the same filesystem met inside the tree after the mountinfo check (statx mount root), and keeps its files', async (t) => {
  const tmp = scratch(t);
  const dir = join(tmp, 'session');
  const src = join(tmp, 'elsewhere');
  mkdirSync(src);
  writeFileSync(join(src, 'data'), 'precious\n');
  const mnt = join(dir, 'upper', 'bound');
  mkdirSync(mnt, { recursive: true });
  run('mount', '--bind', src, mnt);
  // As discardSessionDir does after its own mountinfo read: the bind came after it. Same device: only statx tells.
  const e = t.throws(() => removeTree(dir, { mountsChecked: true }), { instanceOf: UnionError });
  t.is(e!.path, mnt);
  t.regex(e!.message, /refusing to delete: another filesystem is mounted here$/);
  t.is(readFileSync(join(src, 'data'), 'utf8'), 'precious\n');
  unmountAll(mnt);
  removeTree(dir);
  t.false(existsSync(dir));
});
