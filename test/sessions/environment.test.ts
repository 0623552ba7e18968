// commandEnvironment: what a command sees of the caller's environment, by
// the rules schroot 1.6 uses (minimal by default, filtered with -p).
import test from 'ava';
import type { Account } from '../../src/config/index.js';
import { commandEnvironment, ENVIRONMENT_FILTER, type EnvironmentOptions } from '../../src/sessions/environment.js';

const ROOT: Account = { name: 'root', uid: 0, gid: 0, home: '/root', shell: '/bin/bash' };
const ALICE: Account = { name: 'alice', uid: 1000, gid: 1000, home: '/home/alice', shell: '/bin/zsh' };
const CALLER = {
  TERM: 'xterm-256color',
  PATH: '/root/bin:/usr/bin',
  HOME: '/root',
  USER: 'root',
  LOGNAME: 'root',
  SHELL: '/bin/bash',
  SECRET_TOKEN: 's3cr3t',
  LANG: 'C.UTF-8',
  LD_PRELOAD: '/tmp/evil.so',
  LD_LIBRARY_PATH: '/tmp',
  IFS: ':',
  BASH_ENV: '/tmp/rc',
  WARDEN_SESSION_ID: 'stale-from-caller',
};
const WARDEN = { WARDEN_SESSION_ID: 's1', WARDEN_CHROOT: 'demo', WARDEN_LOCK_FDS: '3,4' };

const build = (o: Partial<EnvironmentOptions>) =>
  commandEnvironment({ caller: CALLER, account: ROOT, switched: false, preserve: false, warden: WARDEN, ...o });

const env = test.macro({
  exec(t, o: Partial<EnvironmentOptions>, expected: Record<string, string>) {
    t.deepEqual(build(o), expected);
  },
  title: (provided = '') => provided,
});

test('minimal, as root: TERM, root PATH, root account, warden variables', env, {}, {
  TERM: 'xterm-256color',
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  HOME: '/root',
  USER: 'root',
  LOGNAME: 'root',
  SHELL: '/bin/bash',
  ...WARDEN,
});

test('minimal, as another user: its HOME, USER, LOGNAME, SHELL and the user PATH; nothing else of the caller', env, { account: ALICE, switched: true }, {
  TERM: 'xterm-256color',
  PATH: '/usr/local/bin:/usr/bin:/bin:/usr/games',
  HOME: '/home/alice',
  USER: 'alice',
  LOGNAME: 'alice',
  SHELL: '/bin/zsh',
  ...WARDEN,
});

test('minimal without TERM in the caller: no TERM; an empty home and shell become / and /bin/sh', env, {
  caller: { SECRET_TOKEN: 'x' },
  account: { name: 'n', uid: 5, gid: 5, home: '', shell: '' },
  switched: true,
}, {
  PATH: '/usr/local/bin:/usr/bin:/bin:/usr/games',
  HOME: '/',
  USER: 'n',
  LOGNAME: 'n',
  SHELL: '/bin/sh',
  ...WARDEN,
});

test('preserved, same user: the caller environment minus the filter, warden variables on top', env, { preserve: true }, {
  TERM: 'xterm-256color',
  PATH: '/root/bin:/usr/bin',
  HOME: '/root',
  USER: 'root',
  LOGNAME: 'root',
  SHELL: '/bin/bash',
  SECRET_TOKEN: 's3cr3t',
  LANG: 'C.UTF-8',
  ...WARDEN,
});

test('preserved, another user: HOME, USER, LOGNAME become that user\'s', env, { preserve: true, account: ALICE, switched: true }, {
  TERM: 'xterm-256color',
  PATH: '/root/bin:/usr/bin',
  HOME: '/home/alice',
  USER: 'alice',
  LOGNAME: 'alice',
  SHELL: '/bin/bash',
  SECRET_TOKEN: 's3cr3t',
  LANG: 'C.UTF-8',
  ...WARDEN,
});

test('a warden variable given as undefined is removed (a source entry has no session id)', env, {
  preserve: true,
  caller: { WARDEN_SESSION_ID: 'inherited', A: '1' },
  warden: { WARDEN_SESSION_ID: undefined, WARDEN_CHROOT: 'demo' },
}, { A: '1', WARDEN_CHROOT: 'demo' });

const filtered = test.macro({
  exec(t, name: string, dropped: boolean) {
    t.is(ENVIRONMENT_FILTER.test(name), dropped);
    t.is(name in build({ preserve: true, caller: { [name]: 'v' }, warden: {} }), !dropped);
  },
  title: (_, name: string, dropped: boolean) => `-p ${dropped ? 'drops' : 'keeps'} ${name}`,
});

for (const name of ['BASH_ENV', 'CDPATH', 'ENV', 'HOSTALIASES', 'IFS', 'KRB5_CONFIG', 'KRBCONFDIR', 'KRBTKFILE', 'KRB_CONF', 'LD_PRELOAD', 'LD_LIBRARY_PATH', 'LD_AUDIT', 'LOCALDOMAIN', 'NLSPATH', 'PATH_LOCALE', 'RES_OPTIONS', 'TERMINFO', 'TERMINFO_DIRS', 'TERMPATH']) {
  test(filtered, name, true);
}
for (const name of ['PATH', 'TERM', 'LANG', 'XLD_PRELOAD', 'ENVX', 'MY_IFS', 'TERMINFO_X', 'DISPLAY']) {
  test(filtered, name, false);
}
