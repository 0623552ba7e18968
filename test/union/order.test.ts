// The order unmountAll takes mounts down in, where path depth and mount ids
// mislead: ids are reused, and a later mount on a directory above a mount
// hides it from every path.
import { mkdirSync, openSync, closeSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { isMountPoint, mountUnion, mountsUnder, unmountAll } from '../../src/union/index.js';
import { checkAllFds } from './fds.js';
import { makeLayout, makeSource, rootTest, run, scratch } from './support.js';

checkAllFds();

/** The id of the mount `path` resolves to now (fdinfo's mnt_id, proc(5)). */
function visibleMountId(path: string): number {
  const fd = openSync(path, 'r');
  try {
    return Number(/^mnt_id:\s*(\d+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))![1]);
  } finally {
    closeSync(fd);
  }
}

rootTest('stacked mounts: the one on top comes first even when it has the smaller (reused) id', async (t) => {
  const tmp = scratch(t);
  const point = join(tmp, 'point');
  const spare = join(tmp, 'spare');
  mkdirSync(point);
  mkdirSync(spare);
  run('mount', '-t', 'tmpfs', 'spare', spare);
  run('mount', '-t', 'tmpfs', 'below', point);
  const spareId = mountsUnder(spare)[0]!.id;
  const belowId = mountsUnder(point)[0]!.id;
  // Free an id, then stack: the kernel hands out the lowest free id.
  unmountAll(spare);
  run('mount', '-t', 'tmpfs', 'top', point);
  const order = mountsUnder(point);
  t.log(`ids: spare ${spareId}, below ${belowId}, top ${order.find((m) => m.source === 'top')!.id}`);
  t.deepEqual(order.map((m) => m.source), ['top', 'below']);
  t.is(order[0]!.id, visibleMountId(point), 'first is the one a path reaches');
  unmountAll(point);
  t.deepEqual(mountsUnder(tmp), []);
});

rootTest('unmountAll takes down a mount hidden by a later mount on a directory above it', async (t) => {
  // A hook mounts a tmpfs at /run/lock, then another at /run: /run/lock
  // (still mounted, on the overlay's /run dir) is out of reach of every
  // path until the /run tmpfs is gone. Plain deepest-path-first would ask
  // for /run/lock first, get ENOENT, and the session could never be ended.
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'overlay', makeSource(tmp));
  await mountUnion(l);
  mkdirSync(join(l.root, 'run', 'lock'), { recursive: true });
  run('mount', '-t', 'tmpfs', 'lock', join(l.root, 'run', 'lock'));
  run('mount', '-t', 'tmpfs', 'run', join(l.root, 'run'));
  t.deepEqual(mountsUnder(tmp).map((m) => m.source), ['run', 'lock', 'overlay']);
  t.is(mountsUnder(tmp)[0]!.id, visibleMountId(join(l.root, 'run')), 'first is the one a path reaches');

  unmountAll(l.root);
  t.deepEqual(mountsUnder(tmp), []);
  t.false(isMountPoint(l.root));
});
