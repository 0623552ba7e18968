// What a local user can reach of warden's files (issue 15, point 2): the
// state dir cannot be listed, a session's layers cannot be read or written
// from the host, and no lock file but the source's `.ref` (the flatpak
// convention: every user's shared lock) can be opened to hold a read lock
// that would stall begins or ends. Checked as a real unprivileged user.
import anyTest, { type TestFn } from 'ava';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beginSession, endSession, ensureStateDir, StateDirUntrustedError, type Session } from '../../src/sessions/index.js';
import { manageLockPath } from '../../src/sessions/lock-files.js';
import { mountsUnder, shutdownRemovalPool } from '../../src/union/index.js';
import { chrootDef, destroyFixture, isRoot, makeFixture, type Fixture } from '../helpers/chroots.js';
import { makeUser, type TestUser } from '../helpers/users.js';

const test = anyTest as TestFn;
const asRoot = isRoot ? test.serial : test.serial.skip;
const NEEDS_ROOT = isRoot ? '' : ' (skipped: needs root to mount sessions and switch users)';
let fx: Fixture;

test.before(async () => {
  if (isRoot) fx = await makeFixture('warden-modes-');
});
test.after.always(async () => {
  await shutdownRemovalPool();
  if (fx) destroyFixture(fx.tmp);
});

const mode = (p: string) => (lstatSync(p).mode & 0o7777).toString(8).padStart(4, '0');

/** What `user` gets trying each of `tries` (a JS expression over `p`) on each path: 'ok' or the errno code. */
function asUser(user: TestUser, tries: Record<string, string>): Record<string, string> {
  const script = `
    const fs = require('node:fs'); const out = {};
    for (const [name, [code, p]] of Object.entries(${JSON.stringify(Object.fromEntries(Object.entries(tries).map(([k, v]) => [k, v.split('|')])))})) {
      try { new Function('fs', 'p', code)(fs, p); out[name] = 'ok'; } catch (e) { out[name] = e.code ?? String(e); }
    }
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['-e', script], { uid: user.uid, gid: user.gid, encoding: 'utf8', cwd: '/' });
  if (r.status !== 0) throw new Error(`as ${user.name}: ${r.stderr}`);
  return JSON.parse(r.stdout) as Record<string, string>;
}

async function begin(): Promise<Session> {
  return beginSession({ stateDir: fx.stateDir, chroot: chrootDef(fx.source), hooksDir: fx.noHooks, hookTimeoutMs: 10_000 });
}

asRoot(`every file of a session has its documented mode${NEEDS_ROOT}`, async (t) => {
  const s = await begin();
  try {
    const d = s.paths.dir;
    t.deepEqual(
      {
        stateDir: mode(fx.stateDir),
        manageDir: mode(join(fx.stateDir, '.manage')),
        manageLock: mode(manageLockPath(fx.stateDir, 'fx')),
        sessionDir: mode(d),
        lock: mode(join(d, 'lock')),
        upper: mode(join(d, 'upper')),
        upperLayer: mode(s.paths.upper),
        work: mode(s.paths.work),
        ref: mode(join(fx.source, '.ref')),
      },
      { stateDir: '0711', manageDir: '0700', manageLock: '0600', sessionDir: '0711', lock: '0600', upper: '0700', upperLayer: '0755', work: '0700', ref: '0644' },
    );
    // overlayfs gives the view's / the mode of the upper layer's top: a 0700 layer would lock users out of their own chroot.
    t.is(mode(s.paths.root), '0755');
    t.is(s.state.layout, 2);
  } finally {
    await endSession(s);
  }
});

asRoot(`a local user can list no session, read or write no layer, and lock no file but .ref${NEEDS_ROOT}`, async (t) => {
  const user = makeUser(t);
  const s = await begin();
  try {
    writeFileSync(join(s.paths.root, 'tmp', 'secret'), 'root wrote this in the session\n');
    chmodSync(join(s.paths.root, 'tmp'), 0o1777);
    const d = s.paths.dir;
    const got = asUser(user, {
      listStateDir: `fs.readdirSync(p)|${fx.stateDir}`,
      listManage: `fs.readdirSync(p)|${join(fx.stateDir, '.manage')}`,
      openManageLock: `fs.openSync(p, 'r')|${manageLockPath(fx.stateDir, 'fx')}`,
      openLivenessLock: `fs.openSync(p, 'r')|${join(d, 'lock')}`,
      readUpper: `fs.readdirSync(p)|${s.paths.upper}`,
      writeUpperTmp: `fs.writeFileSync(p + '/planted', 'x')|${join(s.paths.upper, 'tmp')}`,
      readWork: `fs.readdirSync(p)|${s.paths.work}`,
      // What stays open, by design: the view by its name (as schroot's mount locations), and .ref for flatpak-style readers.
      statView: `fs.statSync(p)|${join(d, 'root', 'etc')}`,
      openRef: `fs.closeSync(fs.openSync(p, 'r'))|${join(fx.source, '.ref')}`,
    });
    t.deepEqual(got, {
      listStateDir: 'EACCES',
      listManage: 'EACCES',
      openManageLock: 'EACCES',
      openLivenessLock: 'EACCES',
      readUpper: 'EACCES',
      writeUpperTmp: 'EACCES',
      readWork: 'EACCES',
      statView: 'ok',
      openRef: 'ok',
    });
  } finally {
    await endSession(s);
  }
  t.deepEqual(mountsUnder(fx.tmp), []);
});

asRoot(`a state dir made by an older version (0755, lock files 0644) is narrowed on first use${NEEDS_ROOT}`, async (t) => {
  const stateDir = join(fx.tmp, 'old-state');
  mkdirSync(join(stateDir, '.manage'), { recursive: true, mode: 0o755 });
  chmodSync(stateDir, 0o755);
  chmodSync(join(stateDir, '.manage'), 0o755);
  writeFileSync(manageLockPath(stateDir, 'fx'), '', { mode: 0o644 });
  const s = await beginSession({ stateDir, chroot: chrootDef(fx.source), hooksDir: fx.noHooks, hookTimeoutMs: 10_000 });
  await endSession(s);
  t.deepEqual([mode(stateDir), mode(join(stateDir, '.manage')), mode(manageLockPath(stateDir, 'fx'))], ['0711', '0700', '0600']);
  t.deepEqual(readdirSync(stateDir), ['.manage']);
});

asRoot(`a state dir another user owns or may write to is refused (exit 3 in the CLI)${NEEDS_ROOT}`, (t) => {
  const user = makeUser(t);
  const theirs = join(fx.tmp, 'their-state');
  mkdirSync(theirs, { mode: 0o700 });
  chownSync(theirs, user.uid, user.gid);
  const err = t.throws(() => ensureStateDir(theirs), { instanceOf: StateDirUntrustedError });
  t.regex(err!.message, new RegExp(`state dir ${theirs}: refusing to use it: it is owned by uid ${user.uid}, not root`));
  const open = join(fx.tmp, 'open-state');
  mkdirSync(open);
  chmodSync(open, 0o777);
  t.throws(() => ensureStateDir(open), { instanceOf: StateDirUntrustedError, message: /world-writable \(mode 0777\)/ });
});
