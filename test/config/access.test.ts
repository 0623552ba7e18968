// authorize() over real configuration files and a passwd/group pair of our
// own in a temp dir: each access key admits and refuses whom it should, by
// name or numeric id, through the primary group, a supplementary group or
// the group file's member list; root always gets in; refusals name the
// user, the chroot, the rule and where the chroot is defined.
import test, { type ExecutionContext } from 'ava';
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  accessToRun,
  accessToSource,
  authorize,
  loadConfig,
  PermissionDeniedError,
  type Access,
  type AccountFiles,
  type ChrootDef,
  type Credentials,
} from '../../src/config/index.js';
import { lines, tree } from './tree.js';

const PASSWD = lines(
  'root:x:0:0:root:/root:/bin/sh',
  'toor:x:0:0:root again:/root:/bin/sh',
  'alice:x:1000:1000:Alice:/home/alice:/bin/sh',
  'bob:x:1001:1001::/home/bob:/bin/sh',
  'carol:x:1002:100::/home/carol:/bin/sh',
  '# a comment, and NIS compat entries: none of them is an account',
  '+mallory::1003:1003:::',
  '-',
  'broken:x:notanumber:1::/:/bin/sh',
);
const GROUP = lines(
  'root:x:0:',
  'users:x:100:',
  'alice:x:1000:',
  'bob:x:1001:',
  'devs:x:2000:carol, bob',
  'admins:x:2001:',
  '+nisgroup::2002:alice',
);

const root: Credentials = { uid: 0, gid: 0, groups: [] };
const alice: Credentials = { uid: 1000, gid: 1000, groups: [] };
const aliceAdmin: Credentials = { uid: 1000, gid: 1000, groups: [2001] };
const bob: Credentials = { uid: 1001, gid: 1001, groups: [] }; // in devs only through the group file
const carol: Credentials = { uid: 1002, gid: 100, groups: [] }; // primary group users
const ghost: Credentials = { uid: 4242, gid: 4242, groups: [] }; // no passwd entry

/** The chroot [demo] (header on line 3 of warden.conf) with `keys`, plus the account files. */
function setup(t: ExecutionContext, keys: string[]): { def: ChrootDef; files: AccountFiles; conf: string } {
  const dir = tree(t, {
    'warden.conf': lines('# access tests', '', '[demo]', 'type=directory', 'directory=/', ...keys),
    passwd: PASSWD,
    group: GROUP,
  });
  const conf = join(dir, 'warden.conf');
  const def = loadConfig({ config: conf, env: {}, cwd: dir }).lookup('demo')!;
  return { def, files: { passwd: join(dir, 'passwd'), group: join(dir, 'group') }, conf };
}

interface Case {
  keys: string[];
  who: Credentials;
  access: Access;
}

const allows = test.macro({
  exec(t: ExecutionContext, c: Case) {
    const { def, files } = setup(t, c.keys);
    t.notThrows(() => authorize(def, c.who, c.access, files));
  },
  title: (provided = '') => `allows ${provided}`,
});

const refuses = test.macro({
  exec(t: ExecutionContext, c: Case & { rule: string; user?: string }) {
    const { def, files, conf } = setup(t, c.keys);
    const e = t.throws(() => authorize(def, c.who, c.access, files), { instanceOf: PermissionDeniedError });
    t.is(e.name, 'PermissionDeniedError');
    t.is(e.chroot, 'demo');
    t.is(e.uid, c.who.uid);
    t.is(e.user, c.user);
    t.is(e.access, c.access);
    t.is(e.rule, c.rule);
    t.deepEqual({ ...e.place }, { file: conf, line: 3 });
    t.true(e.message.endsWith(`: ${c.rule} (${conf}:3)`), e.message);
    t.true(e.message.includes(c.user === undefined ? `uid ${c.who.uid} ` : `user "${c.user}" (uid ${c.who.uid})`), e.message);
    t.true(e.message.includes('chroot "demo"'), e.message);
  },
  title: (provided = '') => `refuses ${provided}`,
});

const NOT_SESSION = 'not in users=, groups=, root-users= or root-groups=';
const NO_SESSION = 'users=, groups=, root-users= and root-groups= are empty, so only root may';
const NOT_ROOT = 'not in root-users= or root-groups=';
const NO_ROOT = 'root-users= and root-groups= are empty, so only root may';
const NOT_SOURCE = 'not in source-users=, source-groups=, source-root-users= or source-root-groups=';
const NO_SOURCE = 'source-users=, source-groups=, source-root-users= and source-root-groups= are empty, so only root may';
const NOT_SOURCE_ROOT = 'not in source-root-users= or source-root-groups=';
const NO_SOURCE_ROOT = 'source-root-users= and source-root-groups= are empty, so only root may';

// users= and groups=
test('a user named in users=', allows, { keys: ['users=bob, alice'], who: alice, access: 'session' });
test('a user by numeric uid in users=', allows, { keys: ['users=1000'], who: alice, access: 'session' });
test('a user with no passwd entry by numeric uid', allows, { keys: ['users=4242'], who: ghost, access: 'session' });
test('a user not in users=', refuses, { keys: ['users=bob'], who: alice, access: 'session', rule: NOT_SESSION, user: 'alice' });
test('a name that is no account', refuses, { keys: ['users=nosuchuser'], who: alice, access: 'session', rule: NOT_SESSION, user: 'alice' });
test('a uid that only a NIS compat line names', refuses, { keys: ['users=+mallory'], who: { uid: 1003, gid: 1003, groups: [] }, access: 'session', rule: NOT_SESSION });
test('a user with no passwd entry, by uid alone', refuses, { keys: ['users=alice'], who: ghost, access: 'session', rule: NOT_SESSION });
test('the primary group by name', allows, { keys: ['groups=alice'], who: alice, access: 'session' });
test('the primary group by gid', allows, { keys: ['groups=1000'], who: alice, access: 'session' });
test('a primary group other users share', allows, { keys: ['groups=users'], who: carol, access: 'session' });
test('a supplementary group by name', allows, { keys: ['groups=admins'], who: aliceAdmin, access: 'session' });
test('a supplementary group by gid', allows, { keys: ['groups=2001'], who: aliceAdmin, access: 'session' });
test('a group without its supplementary gid', refuses, { keys: ['groups=admins'], who: alice, access: 'session', rule: NOT_SESSION, user: 'alice' });
test('a member listed in the group file', allows, { keys: ['groups=devs'], who: bob, access: 'session' });
test('a member listed in the group file, group by gid', allows, { keys: ['groups=2000'], who: bob, access: 'session' });
test('a member of a NIS compat group line', refuses, { keys: ['groups=+nisgroup'], who: alice, access: 'session', rule: NOT_SESSION, user: 'alice' });
test('a group nobody has', refuses, { keys: ['groups=nosuchgroup, 31337'], who: carol, access: 'session', rule: NOT_SESSION, user: 'carol' });
test('sessions when only root-users= names the user', allows, { keys: ['root-users=alice'], who: alice, access: 'session' });
test('sessions when only root-groups= names a group', allows, { keys: ['root-groups=devs'], who: bob, access: 'session' });
test('sessions when no list is set', refuses, { keys: [], who: alice, access: 'session', rule: NO_SESSION, user: 'alice' });
test('sessions when only source lists are set', refuses, { keys: ['source-users=alice'], who: alice, access: 'session', rule: NO_SESSION, user: 'alice' });

// root-users= and root-groups=
test('root for a user in root-users=', allows, { keys: ['root-users=alice'], who: alice, access: 'root' });
test('root for a uid in root-users=', allows, { keys: ['root-users=1000'], who: alice, access: 'root' });
test('root for a member of root-groups=', allows, { keys: ['root-groups=devs'], who: bob, access: 'root' });
test('root for a supplementary group in root-groups=', allows, { keys: ['root-groups=2001'], who: aliceAdmin, access: 'root' });
test('root for a user only in users=', refuses, { keys: ['users=alice'], who: alice, access: 'root', rule: NO_ROOT, user: 'alice' });
test('root for a user only in groups=', refuses, { keys: ['groups=devs', 'root-users=carol'], who: bob, access: 'root', rule: NOT_ROOT, user: 'bob' });

// source-users= and source-groups=
test('the source for a user in source-users=', allows, { keys: ['source-users=carol'], who: carol, access: 'source' });
test('the source for a member of source-groups=', allows, { keys: ['source-groups=devs'], who: bob, access: 'source' });
test('the source for a primary group in source-groups=', allows, { keys: ['source-groups=100'], who: carol, access: 'source' });
test('the source for a user in users= and root-users=', refuses, {
  keys: ['users=alice', 'root-users=alice'],
  who: alice,
  access: 'source',
  rule: NO_SOURCE,
  user: 'alice',
});
test('the source for a user not in source-users=', refuses, { keys: ['source-users=bob'], who: alice, access: 'source', rule: NOT_SOURCE, user: 'alice' });
test('the source for a user only in source-root-users=', allows, { keys: ['source-root-users=alice'], who: alice, access: 'source' });
test('the source for a member of source-root-groups=', allows, { keys: ['source-root-groups=devs'], who: bob, access: 'source' });
test('the source for a user in root-users= of the sessions', refuses, { keys: ['root-users=alice'], who: alice, access: 'source', rule: NO_SOURCE, user: 'alice' });

// source-root-users= and source-root-groups=
test('root in the source for a user in source-root-users=', allows, { keys: ['source-root-users=alice'], who: alice, access: 'source-root' });
test('root in the source for a uid in source-root-users=', allows, { keys: ['source-root-users=1000'], who: alice, access: 'source-root' });
test('root in the source for a member of source-root-groups=', allows, { keys: ['source-root-groups=devs'], who: bob, access: 'source-root' });
test('root in the source for a supplementary group in source-root-groups=', allows, { keys: ['source-root-groups=2001'], who: aliceAdmin, access: 'source-root' });
test('root in the source for a user only in source-users=', refuses, {
  keys: ['source-users=alice'],
  who: alice,
  access: 'source-root',
  rule: NO_SOURCE_ROOT,
  user: 'alice',
});
test('root in the source for a user only in source-groups=', refuses, {
  keys: ['source-groups=devs', 'source-root-users=carol'],
  who: bob,
  access: 'source-root',
  rule: NOT_SOURCE_ROOT,
  user: 'bob',
});
test('root in the source for a user in root-users= and root-groups= of the sessions', refuses, {
  keys: ['source-users=alice', 'root-users=alice', 'root-groups=alice'],
  who: alice,
  access: 'source-root',
  rule: NO_SOURCE_ROOT,
  user: 'alice',
});

// root
for (const access of ['session', 'root', 'source', 'source-root', 'recover-stale'] as const) {
  test(`root, ${access} access with every list empty`, allows, { keys: [], who: root, access });
  test(`root, ${access} access with lists that do not name it`, allows, {
    keys: ['users=alice', 'root-users=alice', 'source-groups=devs'],
    who: { uid: 0, gid: 4242, groups: [] },
    access,
  });
}

test('the message names the user, the chroot, the rule and the place', (t) => {
  const { def, files, conf } = setup(t, ['users=bob']);
  t.throws(() => authorize(def, alice, 'session', files), {
    instanceOf: PermissionDeniedError,
    message: `user "alice" (uid 1000) may not begin or run in sessions of chroot "demo": ${NOT_SESSION} (${conf}:3)`,
  });
  t.throws(() => authorize(def, ghost, 'source', files), {
    message: `uid 4242 may not enter the source of chroot "demo": ${NO_SOURCE} (${conf}:3)`,
  });
  t.throws(() => authorize(def, alice, 'root', files), {
    message: `user "alice" (uid 1000) may not run commands as root or as another user in sessions of chroot "demo": ${NO_ROOT} (${conf}:3)`,
  });
  t.throws(() => authorize(def, alice, 'source-root', files), {
    message: `user "alice" (uid 1000) may not run commands as root or as another user in the source of chroot "demo": ${NO_SOURCE_ROOT} (${conf}:3)`,
  });
});

test('accounts added to the files later are seen without a restart', (t) => {
  const { def, files } = setup(t, ['users=dave', 'groups=late']);
  const dave: Credentials = { uid: 1500, gid: 1500, groups: [] };
  const erin: Credentials = { uid: 1501, gid: 1501, groups: [] };
  t.throws(() => authorize(def, dave, 'session', files), { instanceOf: PermissionDeniedError });
  t.throws(() => authorize(def, erin, 'session', files), { instanceOf: PermissionDeniedError });
  // As useradd and gpasswd do it: a new file renamed over the old one.
  writeFileSync(`${files.passwd}+`, PASSWD + lines('dave:x:1500:1500::/:/bin/sh', 'erin:x:1501:1501::/:/bin/sh'));
  renameSync(`${files.passwd}+`, files.passwd!);
  writeFileSync(`${files.group}+`, GROUP + lines('late:x:3000:erin'));
  renameSync(`${files.group}+`, files.group!);
  t.notThrows(() => authorize(def, dave, 'session', files));
  t.notThrows(() => authorize(def, erin, 'session', files));
});

test('missing account files: numeric ids still work, names admit nobody', (t) => {
  const { def } = setup(t, ['users=alice, 1001']);
  const files = { passwd: '/nonexistent/passwd', group: '/nonexistent/group' };
  t.notThrows(() => authorize(def, bob, 'session', files));
  const e = t.throws(() => authorize(def, alice, 'session', files), { instanceOf: PermissionDeniedError });
  t.is(e.user, undefined);
});

const runs = test.macro({
  exec(t: ExecutionContext, who: Credentials, user: string | undefined, expected: Access[]) {
    const { files } = setup(t, []);
    t.deepEqual(accessToRun(who, user, files), expected);
  },
  title: (provided = '', _who, user: string | undefined, expected: Access[]) => `-u ${user ?? '(none)'} ${provided} needs ${expected.join(' and ')}`,
});

test('as the caller', runs, alice, undefined, ['session']);
test('by name, as the caller', runs, alice, 'alice', ['session']);
test('by uid, as the caller', runs, alice, '1000', ['session']);
test('by uid, with no passwd entry', runs, ghost, '4242', ['session']);
test('as root', runs, alice, 'root', ['session', 'root']);
test('as root by uid', runs, alice, '0', ['session', 'root']);
test('as root by another name', runs, alice, 'toor', ['session', 'root']);
test('as another user', runs, alice, 'bob', ['session', 'root']);
test('as a user with no passwd entry', runs, alice, 'nosuchuser', ['session', 'root']);

const sources = test.macro({
  exec(t: ExecutionContext, who: Credentials, o: { user?: string; recoverStale?: boolean }, expected: Access[]) {
    const { files } = setup(t, []);
    t.deepEqual(accessToSource(who, o, files), expected);
  },
  title: (provided = '', _who, o: { user?: string; recoverStale?: boolean }, expected: Access[]) =>
    `source -u ${o.user ?? '(none)'}${o.recoverStale ? ' --recover-stale' : ''} ${provided} needs ${expected.join(' and ')}`,
});

test('as the caller', sources, alice, {}, ['source']);
test('by name, as the caller', sources, alice, { user: 'alice' }, ['source']);
test('by uid, as the caller', sources, alice, { user: '1000' }, ['source']);
test('by uid, with no passwd entry', sources, ghost, { user: '4242' }, ['source']);
test('as root', sources, alice, { user: 'root' }, ['source', 'source-root']);
test('as root by uid', sources, alice, { user: '0' }, ['source', 'source-root']);
test('as root by another name', sources, alice, { user: 'toor' }, ['source', 'source-root']);
test('as another user', sources, alice, { user: 'bob' }, ['source', 'source-root']);
test('as a user with no passwd entry', sources, alice, { user: 'nosuchuser' }, ['source', 'source-root']);
test('as the caller', sources, alice, { recoverStale: true }, ['source', 'recover-stale']);
test('as root', sources, alice, { user: 'root', recoverStale: true }, ['source', 'source-root', 'recover-stale']);

// --recover-stale ends other users' sessions: source-root-users= and source-root-groups= only
const NO_RECOVER = NO_SOURCE_ROOT;
test('ending stale sessions for a user in source-root-users=', allows, { keys: ['source-root-users=alice'], who: alice, access: 'recover-stale' });
test('ending stale sessions for a member of source-root-groups=', allows, { keys: ['source-root-groups=devs'], who: bob, access: 'recover-stale' });
test('ending stale sessions for a user only in source-users=', refuses, { keys: ['source-users=alice'], who: alice, access: 'recover-stale', rule: NO_RECOVER, user: 'alice' });
test('ending stale sessions for a user in root-users=', refuses, {
  keys: ['root-users=alice', 'source-root-users=bob'],
  who: alice,
  access: 'recover-stale',
  rule: NOT_SOURCE_ROOT,
  user: 'alice',
});
test('the --recover-stale refusal names it', (t) => {
  const { def, files, conf } = setup(t, ['source-users=alice']);
  t.throws(() => authorize(def, alice, 'recover-stale', files), {
    message: `user "alice" (uid 1000) may not end the stale sessions (--recover-stale) of chroot "demo": ${NO_SOURCE_ROOT} (${conf}:3)`,
  });
});
