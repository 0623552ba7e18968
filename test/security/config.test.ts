// A root process reads configuration only from files root owns and nobody
// else can write (schroot's rule), and the ./etc/warden.conf lookup only
// where the whole path is root's: otherwise another user decides which
// directory root chroots into and what runs there.
import test, { type ExecutionContext } from 'ava';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { makeUser } from '../helpers/users.js';
import { lines, ROOT, tree } from '../config/tree.js';

const isRoot = process.getuid!() === 0;
const asRoot = isRoot ? test : test.skip;
const NEEDS_ROOT = isRoot ? '' : ' (skipped: needs root to make files another user owns)';

const files = {
  'etc/warden.conf': lines('[main]', `directory=${ROOT}`),
  'etc/chroot.d/extra.conf': lines('[extra]', `directory=${ROOT}`),
};

function refused(t: ExecutionContext, load: () => unknown, file: string, reason: RegExp): void {
  const err = t.throws(load, { instanceOf: ConfigError });
  t.is(err!.file, file);
  t.regex(err!.message, reason);
}

asRoot(`a config file another user owns is refused, naming the file and its owner${NEEDS_ROOT}`, (t) => {
  const root = tree(t, files);
  const user = makeUser(t);
  const file = join(root, 'etc/warden.conf');
  chownSync(file, user.uid, user.gid);
  refused(t, () => loadConfig({ config: file }), file, new RegExp(`refusing to read the config file: it is owned by uid ${user.uid}, not root`));
});

for (const [mode, why] of [[0o664, 'group-writable \\(mode 0664\\)'], [0o646, 'world-writable \\(mode 0646\\)']] as const) {
  asRoot(`a root-owned config file that is ${why.split(' ')[0]} is refused${NEEDS_ROOT}`, (t) => {
    const root = tree(t, files);
    const file = join(root, 'etc/warden.conf');
    chmodSync(file, mode);
    refused(t, () => loadConfig({ config: file }), file, new RegExp(why));
  });
}

asRoot(`a chroot.d entry another user owns, or a chroot.d others may write to, is refused${NEEDS_ROOT}`, (t) => {
  const root = tree(t, files);
  const user = makeUser(t);
  const entry = join(root, 'etc/chroot.d/extra.conf');
  chownSync(entry, user.uid, user.gid);
  refused(t, () => loadConfig({ config: join(root, 'etc/warden.conf') }), entry, /owned by uid/);
  chownSync(entry, 0, 0);
  t.deepEqual([...loadConfig({ config: join(root, 'etc/warden.conf') }).chroots.keys()], ['main', 'extra']);
  chmodSync(join(root, 'etc/chroot.d'), 0o777);
  refused(t, () => loadConfig({ config: join(root, 'etc/warden.conf') }), join(root, 'etc/chroot.d'), /refusing to read the drop-in directory: it is world-writable \(mode 0777\)/);
});

asRoot(`./etc/warden.conf in a directory another user owns is refused, even when the file is root's${NEEDS_ROOT}`, (t) => {
  const root = tree(t, files);
  const user = makeUser(t);
  const home = join(root, 'home');
  mkdirSync(join(home, 'etc'), { recursive: true });
  writeFileSync(join(home, 'etc/warden.conf'), lines('[planted]', `directory=${root}`));
  chownSync(home, user.uid, user.gid);
  refused(t, () => loadConfig({ env: {}, cwd: home }), join(home, 'etc/warden.conf'), new RegExp(`current directory: ${home} is owned by uid ${user.uid}, not root`));
  // The same tree owned by root is used; a sticky world-writable directory above it (/tmp) is fine.
  chownSync(home, 0, 0);
  t.deepEqual([...loadConfig({ env: {}, cwd: home }).chroots.keys()], ['planted']);
  chmodSync(join(home, 'etc'), 0o777);
  refused(t, () => loadConfig({ env: {}, cwd: home }), join(home, 'etc/warden.conf'), /current directory: .*\/etc is world-writable/);
  chmodSync(join(home, 'etc'), 0o1777);
  t.deepEqual([...loadConfig({ env: {}, cwd: home }).chroots.keys()], ['planted']);
});

asRoot(`a symlinked config is judged by the file it reaches, read through the fd that was checked${NEEDS_ROOT}`, (t) => {
  const root = tree(t, files);
  const user = makeUser(t);
  const theirs = mkdtempSync('/tmp/warden-theirs-');
  t.teardown(() => rmSync(theirs, { recursive: true, force: true }));
  const file = join(theirs, 'warden.conf');
  writeFileSync(file, lines('[theirs]', `directory=${root}`));
  chownSync(file, user.uid, user.gid);
  const link = join(root, 'etc/linked.conf');
  symlinkSync(file, link);
  refused(t, () => loadConfig({ config: link }), link, new RegExp(`owned by uid ${user.uid}`));
});
