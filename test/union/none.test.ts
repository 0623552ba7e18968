// union-type=none: the session is the source itself, through a private bind mount.
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMountPoint, mountUnion, mountsUnder, unmountAll } from '../../src/union/index.js';
import { makeLayout, makeShared, makeSource, rootTest, run, scratch } from './support.js';

rootTest('none: root is the source, and writes in root reach the source', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'none', makeSource(tmp));
  await mountUnion(l);
  t.true(isMountPoint(l.root));
  t.deepEqual(readdirSync(l.root).sort(), readdirSync(l.source).sort());
  writeFileSync(join(l.root, 'etc', 'hostname'), 'written in the session\n');
  t.is(readFileSync(join(l.source, 'etc', 'hostname'), 'utf8'), 'written in the session\n');
  unmountAll(l.root);
  t.false(isMountPoint(l.root));
  t.deepEqual(readdirSync(l.root), [], 'the mount point is empty again');
  t.true(existsSync(join(l.source, 'etc', 'hostname')));
});

rootTest('none: a mount under root does not appear in the source, even when the parent mount is shared', async (t) => {
  const tmp = scratch(t);
  // Without MS_PRIVATE the bind would join the peer group of this shared
  // mount, and the tmpfs below would propagate to <source>/tmp.
  makeShared(tmp);
  const l = makeLayout(tmp, 'none', makeSource(tmp));
  await mountUnion(l);
  t.deepEqual(mountsUnder(l.root)[0]!.propagation, []);
  run('mount', '-t', 'tmpfs', 'tmpfs', join(l.root, 'tmp'));
  mkdirSync(join(l.root, 'tmp', 'hook-dir'));
  t.false(existsSync(join(l.source, 'tmp', 'hook-dir')));
  t.false(isMountPoint(join(l.source, 'tmp')));
  t.deepEqual(mountsUnder(l.source), []);
  unmountAll(tmp);
});
