// /proc/self/mountinfo reading: escapes, "at or under", and unmount order.
import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { isMountPoint, mountsUnder, readMountInfo, unmountAll } from '../../src/union/index.js';
import { statxMountRoot } from '../../src/sys/native.js';
import { rootTest, run, scratch, test } from '../union/support.js';

test.serial('readMountInfo parses this process\'s mounts', (t) => {
  const all = readMountInfo();
  const root = all.find((m) => m.mountPoint === '/');
  t.truthy(root);
  t.true(Number.isInteger(root!.id) && Number.isInteger(root!.parent));
  t.true(isMountPoint('/proc'));
  t.is(all.find((m) => m.mountPoint === '/proc')!.fsType, 'proc');
});

rootTest('isMountPoint and mountsUnder: at or under, never beside, through symlinks and trailing slashes', (t) => {
  const tmp = scratch(t);
  for (const d of ['a', 'ab', 'a/x']) mkdirSync(join(tmp, d));
  run('mount', '-t', 'tmpfs', 'tmpfs', join(tmp, 'a'));
  mkdirSync(join(tmp, 'a', 'x'));
  symlinkSync(join(tmp, 'a'), join(tmp, 'link'));
  t.true(isMountPoint(join(tmp, 'a')));
  t.true(isMountPoint(`${join(tmp, 'a')}/`));
  t.true(isMountPoint(join(tmp, 'link')), 'a symlink to a mount point is resolved like mountinfo spells it');
  t.false(isMountPoint(join(tmp, 'a', 'x')));
  t.false(isMountPoint(join(tmp, 'ab')));
  t.false(isMountPoint(join(tmp, 'missing')));
  t.deepEqual(mountsUnder(tmp).map((m) => m.mountPoint), [join(tmp, 'a')]);
  t.deepEqual(mountsUnder(join(tmp, 'a')).map((m) => m.fsType), ['tmpfs']);
  t.deepEqual(mountsUnder(join(tmp, 'ab')), [], '"ab" is beside "a", not under it');
  t.deepEqual(mountsUnder(join(tmp, 'a', 'x')), []);
  unmountAll(tmp);
  t.false(isMountPoint(join(tmp, 'a')));
});

rootTest('octal escapes in mount points are decoded (space, tab, newline, backslash)', (t) => {
  const tmp = scratch(t);
  const names = ['with space', 'tab\there', 'new\nline', 'back\\slash'];
  for (const n of names) {
    mkdirSync(join(tmp, n));
    run('mount', '-t', 'tmpfs', 'tmpfs', join(tmp, n));
  }
  t.deepEqual(mountsUnder(tmp).map((m) => m.mountPoint).sort(), names.map((n) => join(tmp, n)).sort());
  for (const n of names) t.true(isMountPoint(join(tmp, n)), JSON.stringify(n));
  // A read narrowed to a path finds the path in the kernel's escaped text.
  for (const n of names) t.deepEqual(mountsUnder(join(tmp, n)).map((m) => m.mountPoint), [join(tmp, n)], JSON.stringify(n));
  const narrowed = readMountInfo(tmp).filter((m) => m.mountPoint.startsWith(`${tmp}/`));
  t.deepEqual(narrowed, readMountInfo().filter((m) => m.mountPoint.startsWith(`${tmp}/`)));
  unmountAll(tmp);
  t.deepEqual(mountsUnder(tmp), []);
});

rootTest('order: deepest first, stacked mounts newest first', (t) => {
  const tmp = scratch(t);
  const at = (p: string) => join(tmp, p);
  mkdirSync(at('r'));
  run('mount', '-t', 'tmpfs', 'r', at('r'));
  mkdirSync(at('r/proc'));
  mkdirSync(at('r/tmp'));
  run('mount', '--bind', '/proc', at('r/proc'));
  run('mount', '-t', 'tmpfs', 'tmp1', at('r/tmp'));
  mkdirSync(at('r/tmp/inner'));
  run('mount', '-t', 'tmpfs', 'inner', at('r/tmp/inner'));
  run('mount', '-t', 'tmpfs', 'tmp2', at('r/tmp/inner'));
  const order = mountsUnder(at('r')).map((m) => `${m.source}@${m.mountPoint.slice(tmp.length)}`);
  t.deepEqual(order.slice(0, 2), ['tmp2@/r/tmp/inner', 'inner@/r/tmp/inner']);
  t.deepEqual(order.slice(2, 4).sort(), ['proc@/r/proc', 'tmp1@/r/tmp']);
  t.is(order[4], 'r@/r');
  unmountAll(tmp);
});

rootTest('order: a mount stacked over its parent\'s own point comes before the mounts it hides', (t) => {
  const tmp = scratch(t);
  const at = (p: string) => join(tmp, p);
  mkdirSync(at('t'));
  run('mount', '-t', 'tmpfs', 'lower', at('t'));
  mkdirSync(at('t/a'));
  run('mount', '-t', 'tmpfs', 'hidden', at('t/a'));
  // Covers 'lower' and, with it, 'hidden' below it: t/a now names nothing.
  run('mount', '-t', 'tmpfs', 'cover', at('t'));
  t.deepEqual(mountsUnder(tmp).map((m) => m.source), ['cover', 'hidden', 'lower']);
  unmountAll(tmp);
  t.deepEqual(mountsUnder(tmp), []);
});

test.serial('mountsUnder("/") lists every mount, the namespace root last; unmountAll("/") is refused', (t) => {
  // Other processes mount and unmount meanwhile: compare with what is stable.
  const all = mountsUnder('/');
  t.true(all.some((m) => m.mountPoint === '/proc') && all.some((m) => m.mountPoint === '/sys'));
  t.is(all.at(-1)!.mountPoint, '/');
  t.throws(() => unmountAll('/'), { message: /refusing to unmount everything/ });
});

rootTest('statx says what mountinfo says: a bind of the same filesystem, a tmpfs, plain and missing paths, the last component not followed', (t) => {
  const tmp = scratch(t);
  for (const d of ['src', 'bound', 'fs', 'plain']) mkdirSync(join(tmp, d));
  run('mount', '--bind', join(tmp, 'src'), join(tmp, 'bound'));
  run('mount', '-t', 'tmpfs', 'tmpfs', join(tmp, 'fs'));
  symlinkSync(join(tmp, 'fs'), join(tmp, 'link'));
  const fromMountinfo = (p: string) => readMountInfo(p).some((m) => m.mountPoint === p);
  for (const p of ['/', '/proc', join(tmp, 'bound'), join(tmp, 'fs'), join(tmp, 'plain'), join(tmp, 'src'), tmp]) {
    t.is(statxMountRoot(p), fromMountinfo(p), p);
  }
  t.is(statxMountRoot(join(tmp, 'missing')), undefined, 'statx fails: the caller asks mountinfo');
  t.false(statxMountRoot(join(tmp, 'link')), 'the link itself, not what it points to');
  t.true(isMountPoint(join(tmp, 'link')), 'isMountPoint resolves it first');
  unmountAll(tmp);
});
