// The session store without mounts: ids, state.json, listing with corrupt
// entries, symlink refusal. Liveness is held by a real second process (the
// C holder), never faked.
import anyTest, { type TestFn } from 'ava';
import { mkdirSync, mkdtempSync, realpathSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ensureStateDir,
  listSessions,
  newId,
  openSession,
  validateId,
  SessionCorruptError,
  SessionIdError,
  SessionNotFoundError,
  StateDirError,
  STATE_VERSION,
  type SessionState,
} from '../../src/sessions/index.js';
import { writeStateLocked, readState, sessionOwner } from '../../src/sessions/state.js';
import { markStateDir } from '../../src/sessions/store.js';
import { spawnSync } from 'node:child_process';
import { isRoot } from '../helpers/chroots.js';
import { Holder } from '../helpers/holder.js';
import { fileFds, ourLocks } from '../helpers/leaks.js';

const test = anyTest as TestFn<{ dir: string; fds: string[] }>;

test.beforeEach((t) => {
  t.context.dir = mkdtempSync(join(tmpdir(), 'warden-store-'));
  t.context.fds = fileFds();
});

test.afterEach.always((t) => {
  rmSync(t.context.dir, { recursive: true, force: true });
});

test.afterEach((t) => {
  t.deepEqual(fileFds(), t.context.fds, 'no fd left open');
  t.deepEqual(ourLocks(), [], 'no lock of ours left');
});

function state(id: string, over: Partial<SessionState> = {}): SessionState {
  const now = new Date().toISOString();
  return {
    version: STATE_VERSION,
    id,
    chroot: 'demo',
    source: '/srv/demo',
    unionType: 'overlay',
    status: 'active',
    hooksDir: '/etc/warden/hooks',
    hookTimeoutMs: 30_000,
    createdAt: now,
    updatedAt: now,
    beganBy: 1,
    layout: 2,
    ...over,
  };
}

/** A session directory as begin leaves it, without mounts. */
function makeSession(stateDir: string, id: string, over: Partial<SessionState> = {}): string {
  const dir = join(stateDir, id);
  mkdirSync(dir);
  writeFileSync(join(dir, 'lock'), '');
  writeStateLocked(dir, state(id, over));
  return dir;
}

const refused = test.macro({
  exec(t, id: string) {
    const err = t.throws(() => validateId(id), { instanceOf: SessionIdError });
    t.regex(err!.message, /^invalid session id /);
    // and before any file is touched
    t.throws(() => openSession(t.context.dir, id), { instanceOf: SessionIdError });
    t.deepEqual(readdirSync(t.context.dir), []);
  },
  title: (_p, id: string) => `hostile id ${JSON.stringify(id.length > 20 ? `${id.slice(0, 12)}...(${id.length})` : id)} is refused`,
});

for (const id of ['', '..', '.', 'a/b', '../etc', '/abs', '-rf', '.hidden', 'a b', 'a\nb', 'x'.repeat(65), 'x'.repeat(200), 'é', 'a:b', 'supervisor.log', 'supervisor.sock', 'supervisor.lock', 'supervisor.next']) {
  test(refused, id);
}

test('valid ids pass; the default id fits the limit even for long chroot names', (t) => {
  for (const id of ['a', 'demo-1', 'A.b_c-d', 'x'.repeat(64), 'supervisor', 'supervisors.x']) t.is(validateId(id), id);
  const id = newId('c'.repeat(64));
  t.true(id.length <= 64);
  // A version 4 UUID with the RFC 4122 variant bits, never the same twice.
  t.regex(newId('demo'), /^demo-[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const ids = new Set(Array.from({ length: 1000 }, () => newId('demo')));
  t.is(ids.size, 1000);
});

test('state.json round-trips, and the write leaves no temp file', (t) => {
  const dir = makeSession(t.context.dir, 's1');
  t.deepEqual(readState(dir), state('s1', { createdAt: readState(dir).createdAt, updatedAt: readState(dir).updatedAt }));
  t.deepEqual(readdirSync(dir).sort(), ['lock', 'state.json']);
});

test('the owner round-trips; a state.json without one (an older warden\'s) reads, and is root\'s', (t) => {
  const dir = makeSession(t.context.dir, 's1', { owner: { uid: 1000, gid: 100 } });
  t.deepEqual(readState(dir).owner, { uid: 1000, gid: 100 });
  t.deepEqual(sessionOwner(readState(dir)), { uid: 1000, gid: 100 });
  const old = makeSession(t.context.dir, 's2');
  t.false('owner' in readState(old));
  t.deepEqual(sessionOwner(readState(old)), { uid: 0, gid: 0 });
});

test('a planted symlink at the temp name is replaced, never written through', (t) => {
  const dir = makeSession(t.context.dir, 's1');
  const victim = join(t.context.dir, 'victim');
  writeFileSync(victim, 'precious');
  symlinkSync(victim, join(dir, '.state.json.tmp'));
  writeStateLocked(dir, state('s1', { status: 'ending' }));
  t.is(readFileSync(victim, 'utf8'), 'precious');
  t.is(readState(dir).status, 'ending');
});

const corrupt = test.macro({
  exec(t, content: string | null, reason: RegExp) {
    const good = makeSession(t.context.dir, 'good');
    const bad = makeSession(t.context.dir, 'bad');
    if (content === null) rmSync(join(bad, 'state.json'));
    else writeFileSync(join(bad, 'state.json'), content);
    const list = listSessions(t.context.dir);
    t.deepEqual(
      list.map((e) => [e.id, e.status]),
      [
        ['bad', 'corrupt'],
        ['good', 'stale'],
      ],
    );
    t.regex(list[0]!.reason!, reason);
    t.is(openSession(t.context.dir, 'good').id, 'good');
    const err = t.throws(() => openSession(t.context.dir, 'bad'), { instanceOf: SessionCorruptError });
    t.regex(err!.message, /^session bad is corrupt: /);
  },
  title: (p) => `listing survives ${p}`,
});

test('a truncated state.json', corrupt, '{"version": 1, "id": "ba', /not valid JSON/);
test('an empty state.json', corrupt, '', /empty/);
test('a garbage state.json', corrupt, '\u0000\u0001garbage', /not valid JSON/);
test('a state.json of another version', corrupt, JSON.stringify({ ...state('bad'), version: 99 }), /version 99/);
test('a state.json with a bad status', corrupt, JSON.stringify({ ...state('bad'), status: 'zombie' }), /unknown status "zombie"/);
test('a state.json naming another session', corrupt, JSON.stringify(state('other')), /names session "other"/);
test('a missing state.json', corrupt, null, /state.json is missing/);
test('a state.json with a malformed owner', corrupt, JSON.stringify({ ...state('bad'), owner: { uid: '0', gid: 0 } }), /field "owner" must be/);
test('a state.json with a negative owner', corrupt, JSON.stringify({ ...state('bad'), owner: { uid: -1, gid: 0 } }), /field "owner" must be/);
test('a huge state.json', corrupt, 'x'.repeat(100_000), /larger than/);

test('listing survives a directory without lock file, a stray file, a symlinked session and a symlinked lock file', (t) => {
  const sd = t.context.dir;
  makeSession(sd, 'good');
  mkdirSync(join(sd, 'nolock'));
  writeFileSync(join(sd, 'stray.txt'), 'hello');
  const elsewhere = makeSession(mkdtempSync(join(sd, '.x')), 'elsewhere');
  symlinkSync(elsewhere, join(sd, 'linked'));
  const ll = makeSession(sd, 'linklock');
  rmSync(join(ll, 'lock'));
  symlinkSync('/etc/passwd', join(ll, 'lock'));
  writeFileSync(join(sd, 'bad name!'), '');
  const list = listSessions(sd);
  t.deepEqual(
    list.map((e) => [e.id, e.status, e.reason ?? '']),
    [
      ['bad name!', 'corrupt', 'name is not a valid session id'],
      ['good', 'stale', ''],
      ['linked', 'corrupt', 'session directory is a symbolic link (refused)'],
      ['linklock', 'corrupt', 'lock file is a symbolic link (refused)'],
      ['nolock', 'corrupt', 'lock file is missing'],
      ['stray.txt', 'corrupt', 'not a directory'],
    ],
  );
  t.throws(() => openSession(sd, 'linked'), { instanceOf: SessionCorruptError, message: /symbolic link/ });
  t.throws(() => openSession(sd, 'linklock'), { instanceOf: SessionCorruptError, message: /symbolic link/ });
  t.throws(() => openSession(sd, 'missing'), { instanceOf: SessionNotFoundError });
  t.is(readFileSync('/etc/passwd', 'utf8').length > 0, true);
});

test('active or stale comes from the liveness lock held by another process, not from pids', async (t) => {
  const dir = makeSession(t.context.dir, 's1', { beganBy: 999_999_999 });
  t.is(listSessions(t.context.dir)[0]!.status, 'stale');
  const h = await Holder.start(join(dir, 'lock'));
  t.teardown(() => h.kill());
  t.is(await h.lock('ofd', 'r', 0, 1), 'ok');
  t.is(listSessions(t.context.dir)[0]!.status, 'active');
  // a lock on the metadata byte only is not liveness
  t.is(await h.unlock('ofd', 0, 1), 'ok');
  t.is(await h.lock('ofd', 'w', 1, 1), 'ok');
  t.is(listSessions(t.context.dir)[0]!.status, 'stale');
  t.is(await h.lock('posix', 'r', 0, 1), 'ok');
  const [e] = listSessions(t.context.dir, { holders: true });
  t.is(e!.status, 'active');
  t.deepEqual(e!.holders!.map((x) => x.pid), [h.pid]);
});

test('the state dir: created when missing, a symlink or a file refused', (t) => {
  const sd = join(t.context.dir, 'a', 'b');
  t.is(ensureStateDir(sd), sd);
  t.true(existsSync(sd));
  symlinkSync(sd, join(t.context.dir, 'link'));
  t.throws(() => ensureStateDir(join(t.context.dir, 'link')), { instanceOf: StateDirError, message: /symbolic link/ });
  writeFileSync(join(t.context.dir, 'file'), '');
  t.throws(() => ensureStateDir(join(t.context.dir, 'file')), { instanceOf: StateDirError, message: /not a directory/ });
  t.deepEqual(listSessions(join(t.context.dir, 'none')), []);
});

/**
 * The inode flags of `dir` read by python3 (FS_IOC_GETFLAGS), or with
 * `set` also set first; undefined when its filesystem refuses the ioctl.
 */
function inodeFlags(dir: string, set = 0): number | undefined {
  const py = [
    'import fcntl, os, struct, sys',
    'fd = os.open(sys.argv[1], os.O_RDONLY | os.O_DIRECTORY)',
    'try:',
    '  f = struct.unpack("i", fcntl.ioctl(fd, 0x80086601, bytes(4)))[0]',
    '  if int(sys.argv[2]): fcntl.ioctl(fd, 0x40086602, struct.pack("i", f | int(sys.argv[2])))',
    '  print(struct.unpack("i", fcntl.ioctl(fd, 0x80086601, bytes(4)))[0])',
    'except OSError: print("none")',
  ].join('\n');
  const r = spawnSync('python3', ['-c', py, dir, String(set)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`python3: ${r.stderr}`);
  return r.stdout.trim() === 'none' ? undefined : Number(r.stdout.trim());
}

const FS_TOPDIR_FL = 0x20000;

test('begin marks the state dir as a top directory (chattr +T) where its filesystem has the flag', (t) => {
  // Whether this filesystem keeps the flag at all, asked of a scratch dir by python3.
  const probe = join(t.context.dir, 'probe');
  mkdirSync(probe);
  const kept = inodeFlags(probe, FS_TOPDIR_FL);
  if (kept === undefined || (kept & FS_TOPDIR_FL) === 0) {
    t.log(`SKIPPED the flag check: ${t.context.dir} is on a filesystem without FS_TOPDIR_FL`);
    t.notThrows(() => markStateDir(ensureStateDir(join(t.context.dir, 'sd'))));
    return;
  }
  const created = ensureStateDir(join(t.context.dir, 'created', 'sd'));
  t.is(inodeFlags(created)! & FS_TOPDIR_FL, 0, 'ensureStateDir alone leaves it (readers and clients call it too)');
  markStateDir(created);
  t.truthy(inodeFlags(created)! & FS_TOPDIR_FL, 'a state dir warden creates');
  const existing = join(t.context.dir, 'existing');
  mkdirSync(existing);
  t.is(inodeFlags(existing)! & FS_TOPDIR_FL, 0);
  markStateDir(ensureStateDir(existing));
  t.truthy(inodeFlags(existing)! & FS_TOPDIR_FL, 'a state dir that was there already');
});

(isRoot ? test : test.skip)('a state dir on a filesystem without the top-directory flag (tmpfs) works all the same [needs root: mounts a tmpfs]', (t) => {
  const mnt = realpathSync(t.context.dir);
  const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'warden-test', mnt], { encoding: 'utf8' });
  if (m.status !== 0) throw new Error(`mount tmpfs: ${m.stderr}`);
  try {
    const sd = join(mnt, 'sd');
    t.is(ensureStateDir(sd), sd);
    t.notThrows(() => markStateDir(sd));
    t.is((inodeFlags(sd) ?? 0) & FS_TOPDIR_FL, 0, 'tmpfs does not keep it');
    mkdirSync(join(sd, 'x'));
    t.true(existsSync(join(sd, 'x')));
  } finally {
    const u = spawnSync('umount', [mnt], { encoding: 'utf8' });
    if (u.status !== 0) throw new Error(`umount: ${u.stderr}`);
  }
});
