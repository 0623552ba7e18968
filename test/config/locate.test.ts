// Which file is read: --config, else WARDEN_CONFIG, else ./etc/warden.conf,
// else /etc/warden/warden.conf (never written by tests).
import test from 'ava';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, loadConfig, SYSTEM_CONFIG } from '../../src/config/index.js';
import { lines, ROOT, tree } from './tree.js';

/** Three candidate files, each defining a chroot named after where it was found. */
const candidates = {
  'explicit.conf': lines('[from-explicit]', `directory=${ROOT}`),
  'env.conf': lines('[from-env]', `directory=${ROOT}`),
  'etc/warden.conf': lines('[from-cwd]', `directory=${ROOT}`),
};

test('--config wins over WARDEN_CONFIG and ./etc/warden.conf, relative to cwd', (t) => {
  const root = tree(t, candidates);
  const config = loadConfig({ config: 'explicit.conf', env: { WARDEN_CONFIG: join(root, 'env.conf') }, cwd: root });
  t.is(config.file, join(root, 'explicit.conf'));
  t.deepEqual([...config.chroots.keys()], ['from-explicit']);
});

test('WARDEN_CONFIG wins over ./etc/warden.conf', (t) => {
  const root = tree(t, candidates);
  const config = loadConfig({ env: { WARDEN_CONFIG: 'env.conf' }, cwd: root });
  t.is(config.file, join(root, 'env.conf'));
  t.deepEqual([...config.chroots.keys()], ['from-env']);
});

for (const env of [{}, { WARDEN_CONFIG: '' }]) {
  test(`./etc/warden.conf is used when it exists (env ${JSON.stringify(env)})`, (t) => {
    const root = tree(t, candidates);
    const config = loadConfig({ config: '', env, cwd: root });
    t.is(config.file, join(root, 'etc/warden.conf'));
    t.deepEqual([...config.chroots.keys()], ['from-cwd']);
  });
}

test('without ./etc/warden.conf the system file is the default, and its absence is an empty config', (t) => {
  const root = tree(t, { 'etc/': '' });
  const config = loadConfig({ env: {}, cwd: root, checkDirectories: false });
  if (existsSync(SYSTEM_CONFIG)) {
    t.is(config.file, SYSTEM_CONFIG);
    return;
  }
  t.is(config.file, undefined);
  t.is(config.chroots.size, 0);
  t.deepEqual(config.unsupported, []);
  t.deepEqual(config.warnings, []);
  t.is(config.stateDir, undefined);
  t.is(config.lookup('demo'), undefined);
});

const missing: [string, (root: string) => Parameters<typeof loadConfig>[0]][] = [
  ['--config', (root) => ({ config: join(root, 'nope.conf'), env: {}, cwd: root })],
  ['WARDEN_CONFIG', (root) => ({ env: { WARDEN_CONFIG: join(root, 'nope.conf') }, cwd: root })],
];
for (const [how, opts] of missing) {
  test(`a file named by ${how} must exist, even when ./etc/warden.conf does`, (t) => {
    const root = tree(t, candidates);
    const file = join(root, 'nope.conf');
    const e = t.throws(() => loadConfig(opts(root)), { instanceOf: ConfigError, message: `${file}: config file does not exist` });
    t.is(e.file, file);
    t.is(e.line, undefined);
  });
}

test('a config path that is a directory is an error', (t) => {
  const root = tree(t, { 'conf.d/': '' });
  const file = join(root, 'conf.d');
  t.throws(() => loadConfig({ config: file, env: {} }), { instanceOf: ConfigError, message: `${file}: config file is a directory` });
});
