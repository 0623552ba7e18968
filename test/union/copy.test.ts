// union-type=copy: a private copy made by cp -a, and no mount.
import { spawnSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CopyInterruptedError, UnionError, mountUnion, mountsUnder, unmountAll } from '../../src/union/index.js';
import { until } from '../helpers/wait.js';
import { childPids, digest, isRoot, makeLayout, makeSource, rootTest, run, scratch, test } from './support.js';

test.serial('copy: the data is copied, no mount is made, writes do not reach the source', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'copy', makeSource(tmp));
  const before = digest(l.source);
  await mountUnion(l);
  t.deepEqual(mountsUnder(tmp), []);
  t.is(digest(l.root), before, 'same tree: paths, types, modes, owners, link targets, contents');
  writeFileSync(join(l.root, 'etc', 'hostname'), 'session\n');
  writeFileSync(join(l.root, 'hard1'), 'changed\n');
  rmSync(join(l.root, 'etc', 'deep'), { recursive: true });
  t.is(digest(l.source), before);
  t.deepEqual(readdirSync(l.upper), [], 'upper is not used');
});

test.serial('copy keeps hard links, modes (setuid too), owners, times, symlinks and special files', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'copy', makeSource(tmp));
  await mountUnion(l);
  const h1 = lstatSync(join(l.root, 'hard1'));
  t.is(h1.ino, lstatSync(join(l.root, 'hard2')).ino, 'still one inode');
  t.is(h1.nlink, 2);
  t.not(h1.ino, lstatSync(join(l.source, 'hard1')).ino, 'a copy, not the source inode');
  const shadow = lstatSync(join(l.root, 'etc', 'shadow'));
  t.is(shadow.mode & 0o7777, 0o640);
  if (isRoot) t.deepEqual([shadow.uid, shadow.gid], [1234, 5678]);
  t.is(readlinkSync(join(l.root, 'rel-link')), 'etc/hostname');
  t.is(readlinkSync(join(l.root, 'abs-link')), '/nonexistent/target', 'dangling links are copied as links');
  t.true(lstatSync(join(l.root, 'fifo')).isFIFO());
  t.is(lstatSync(join(l.root, 'setuid')).mode & 0o7777, 0o4755);
  t.is(lstatSync(join(l.root, 'private')).mode & 0o7777, 0o700);
  const mtime = (p: string) => lstatSync(p, { bigint: true }).mtimeNs;
  t.is(mtime(join(l.root, 'etc', 'deep', 'er', 'leaf')), mtime(join(l.source, 'etc', 'deep', 'er', 'leaf')));
  t.is(readFileSync(join(l.root, 'etc', 'deep', 'er', 'leaf'), 'utf8'), 'leaf\n');
});

rootTest('copy leaves out what is mounted inside the source, like overlay', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'copy', makeSource(tmp));
  run('mount', '-t', 'tmpfs', 'tmpfs', join(l.source, 'tmp'));
  writeFileSync(join(l.source, 'tmp', 'from-a-mount'), 'x');
  await mountUnion(l);
  t.deepEqual(readdirSync(join(l.root, 'tmp')), []);
  t.deepEqual(mountsUnder(l.root), []);
  unmountAll(tmp);
});

test.serial('a failing cp throws UnionError with cp\'s first stderr line', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'copy', join(tmp, 'no-such-source'));
  const e = await t.throwsAsync(mountUnion(l), { instanceOf: UnionError });
  t.is(e!.path, l.root);
  t.regex(e!.message, /copy of .*no-such-source failed: cp: cannot stat '.*no-such-source\/\.': No such file or directory$/);
});

test.serial('copy refuses a root that is not empty', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'copy', makeSource(tmp));
  mkdirSync(join(l.root, 'stray'));
  t.regex((await t.throwsAsync(mountUnion(l), { instanceOf: UnionError }))!.message, /not empty/);
});

test.serial('copy: an aborted signal stops cp (SIGKILL) and says so; one aborted before starts nothing', async (t) => {
  const tmp = scratch(t);
  const l = makeLayout(tmp, 'copy', makeSource(tmp));
  const early = new AbortController();
  early.abort(new Error('gone'));
  const before = await t.throwsAsync(mountUnion(l, { signal: early.signal }), { instanceOf: CopyInterruptedError });
  t.regex(before!.message, /interrupted before it started$/);
  t.deepEqual(readdirSync(l.root), []);
  // 5,000 files keep cp busy long enough to be found; then it is stopped
  // (SIGSTOP) so it cannot finish first, and SIGKILL ends it all the same.
  // +T: their inodes spread over ext4's block groups (see markTopDirectory), fast even in a churned /tmp.
  mkdirSync(join(l.source, 'many'));
  spawnSync('chattr', ['+T', join(l.source, 'many')], { stdio: 'ignore' });
  for (let d = 0; d < 5; d++) {
    mkdirSync(join(l.source, 'many', `d${d}`), { recursive: true });
    for (let f = 0; f < 1000; f++) writeFileSync(join(l.source, 'many', `d${d}`, `f${f}`), '');
  }
  const abort = new AbortController();
  const copying = mountUnion(l, { signal: abort.signal });
  const cp = () => childPids().find((pid) => readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'cp');
  await until(() => cp() !== undefined, 'cp to start');
  process.kill(cp()!, 'SIGSTOP');
  abort.abort(new Error('the client disconnected'));
  const e = await t.throwsAsync(copying, { instanceOf: CopyInterruptedError });
  t.true(e!.interrupted);
  t.regex(e!.message, /copy of .* interrupted: cp stopped$/);
  t.deepEqual(childPids(), [], 'cp is gone');
});
