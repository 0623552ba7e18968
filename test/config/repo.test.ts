// The example etc/warden.conf shipped in the repository parses cleanly. Its
// chroot is built later by `warden bootstrap`, so its directory is not checked.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../src/config/index.js';

// dist/test/config/ → the repository root
const file = fileURLToPath(new URL('../../../etc/warden.conf', import.meta.url));

test('etc/warden.conf defines [warden] and the [demo] chroot, with no warnings', (t) => {
  const config = loadConfig({ config: file, env: {}, checkDirectories: false });
  t.is(config.file, file);
  t.is(config.hookTimeout, 30);
  t.deepEqual([...config.chroots.keys()], ['demo']);
  t.like(config.lookup('demo'), {
    type: 'directory',
    directory: '/var/lib/warden/demo',
    unionType: 'overlay',
    description: 'Minimal chroot built from host binaries by warden bootstrap',
  });
  t.deepEqual(config.warnings, []);
  t.deepEqual(config.unsupported, []);
});

test('./etc/warden.conf is what a warden started in the repository finds', (t) => {
  const config = loadConfig({ env: {}, cwd: fileURLToPath(new URL('../../../', import.meta.url)), checkDirectories: false });
  t.is(config.file, file);
});
