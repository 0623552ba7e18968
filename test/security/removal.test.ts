// Removal that cannot be redirected (STYLE.md practice 11): a real attacker
// process (test/c/racer.c) swaps a directory the deleting walk is inside for
// a symbolic link to a directory outside, in a tight loop, hundreds of times,
// while root deletes the tree: plainly (removeTree, removeTreeOffThread) and
// by ending real overlay and copy sessions. Outside sits a root-only 0600
// canary of the same name as a file in the swapped directory; a walk that
// re-resolves paths (`lstat`, then `unlink(path)`) deletes it within a few
// trials. It must survive every one, and nothing outside may change.
//
// WARDEN_REMOVAL_TRIALS scales every trial count (default 1).
// WARDEN_REMOVAL_MODULE replaces the removeTree under test by another build
// of it (a path to a .js file exporting removeTree), to show that the plain
// tree trials catch a path-based walk.
import { chmodSync, closeSync, existsSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beginSession, endSession } from '../../src/sessions/index.js';
import { UPPER_DIR, UPPER_LAYER } from '../../src/sessions/session.js';
import { shutdownRemovalPool, TreeInUseError, UnionError } from '../../src/union/index.js';
import * as removal from '../../src/union/remove.js';
import { chrootDef, destroyFixture, makeFixture, stateEntries, type Fixture } from '../helpers/chroots.js';
import { Racer } from '../helpers/racer.js';
import { until } from '../helpers/wait.js';
import { isRoot, scratch, startChild, stop, test, type Ctx } from '../union/support.js';
import type { ExecutionContext } from 'ava';

const SCALE = Number(process.env.WARDEN_REMOVAL_TRIALS ?? 1);
const trials = (n: number) => Math.max(1, Math.round(n * SCALE));
/** The removeTree the plain trials race (tests must be declared before any await). */
async function underTest(): Promise<(dir: string) => void> {
  const other = process.env.WARDEN_REMOVAL_MODULE;
  return other ? ((await import(pathToFileURL(other).href)) as typeof removal).removeTree : removal.removeTree;
}

// Sessions need root; the reason shows in the skipped tests' titles.
const asRoot = isRoot ? test.serial : test.serial.skip;
const NEEDS_ROOT = isRoot ? '' : ' (skipped: sessions need root)';
const CANARY = 'canary';

/** Files in the swapped directory, and as many of the same names outside. */
const FILES = 100;

/** outside/: the canary (0600, root's when we are root) and files named as the victim's (f0...). */
function makeOutside(tmp: string): string {
  const outside = join(tmp, 'outside');
  mkdirSync(outside, { mode: 0o755 });
  writeFileSync(join(outside, CANARY), 'precious\n', { mode: 0o600 });
  chmodSync(join(outside, CANARY), 0o600);
  for (let i = 0; i < FILES; i++) writeFileSync(join(outside, `f${i}`), 'also precious\n');
  return outside;
}

/** Where the racer keeps the directory while the link is in place, outside the tree; anything left there is deleted. */
function stashOf(tmp: string): { stash: string; clear: () => void } {
  const stash = join(tmp, 'stash');
  return { stash, clear: () => readdirSync(tmp).filter((n) => n.startsWith('stash.')).forEach((n) => removal.removeTree(join(tmp, n))) };
}

/** Names, modes, owners and contents of what is in `outside`: must never change. */
function outsideState(outside: string): string[] {
  return readdirSync(outside)
    .sort()
    .map((n) => {
      const st = lstatSync(join(outside, n));
      return `${n} ${st.mode.toString(8)} ${st.uid} ${readFileSync(join(outside, n), 'utf8').trim()}`;
    });
}

/** `dir`/a holding the canary's name and `files` more (f0...), a dir in it, and a sibling dir. */
function fillVictim(dir: string, files = FILES): void {
  mkdirSync(join(dir, 'a', 'deeper'), { recursive: true });
  mkdirSync(join(dir, 'b'), { recursive: true });
  closeSync(openSync(join(dir, 'a', CANARY), 'w'));
  for (let i = 0; i < files; i++) closeSync(openSync(join(dir, 'a', `f${i}`), 'w'));
  for (let i = 0; i < 10; i++) closeSync(openSync(join(dir, 'a', 'deeper', `f${i}`), 'w'));
  for (let i = 0; i < 10; i++) closeSync(openSync(join(dir, 'b', `f${i}`), 'w'));
}

interface Tally {
  trials: number;
  swaps: number;
  refused: number;
}

/**
 * One trial: the racer runs while `remove` deletes; the canary and the rest
 * of outside must be intact afterwards. A removal may be refused (a
 * UnionError: the racer kept a directory changing), never anything else;
 * what it left is then deleted without the racer.
 */
async function trial(t: ExecutionContext<Ctx>, tally: Tally, racer: () => Promise<Racer>, remove: () => Promise<void>, outside: string, cleanup: () => Promise<void>): Promise<void> {
  const before = outsideState(outside);
  const r = await racer();
  try {
    await remove();
  } catch (e) {
    if (!(e instanceof UnionError)) throw e;
    tally.refused++;
  } finally {
    tally.swaps += await r.stop();
  }
  tally.trials++;
  t.deepEqual(outsideState(outside), before, `trial ${tally.trials}: something outside the tree was deleted or changed`);
  await cleanup();
}

const plain = test.macro({
  async exec(t, how: 'removeTree' | 'removeTreeOffThread', count: number, files: number) {
    const tmp = scratch(t);
    const outside = makeOutside(tmp);
    const { stash, clear } = stashOf(tmp);
    const tree = join(tmp, 'tree');
    const removeTree = await underTest();
    const remove = how === 'removeTree' ? async () => removeTree(tree) : () => removal.removeTreeOffThread(tree);
    const tally: Tally = { trials: 0, swaps: 0, refused: 0 };
    for (let i = 0; i < count; i++) {
      fillVictim(tree, files);
      await trial(t, tally, () => Racer.start(tmp, 'tree', 'a', outside, stash), remove, outside, async () => {
        clear();
        removal.removeTree(tree);
        t.false(existsSync(tree));
      });
    }
    t.true(existsSync(join(outside, CANARY)));
    t.true(tally.swaps > 0, 'the racer swapped the directory for a link');
    t.log(`${tally.trials} trials, ${tally.swaps} swaps by the racer, ${tally.refused} removals refused`);
  },
  title: (_, how, count) => `${how}: a racer swapping a directory it is inside for a link outside never makes it delete outside (${count} trials)`,
});

test.after.always(() => shutdownRemovalPool());

test.serial(plain, 'removeTree', trials(300), FILES);
test.serial(plain, 'removeTreeOffThread', trials(30), removal.INLINE_ENTRIES + 100);

let fx: Fixture | undefined;
test.before(async () => {
  if (isRoot) fx = await makeFixture('warden-removal-');
});
test.after.always(() => {
  if (fx) destroyFixture(fx.tmp);
});

const session = test.macro({
  async exec(t, unionType: 'overlay' | 'copy', count: number, offThread: boolean) {
    const f = fx!;
    const tmp = scratch(t);
    const outside = makeOutside(tmp);
    const { stash, clear } = stashOf(tmp);
    const sub = unionType === 'overlay' ? join(UPPER_DIR, UPPER_LAYER, 'a') : 'root/a';
    const tally: Tally = { trials: 0, swaps: 0, refused: 0 };
    for (let i = 0; i < count; i++) {
      const id = `race-${unionType}-${i}`;
      const s = await beginSession({ stateDir: f.stateDir, chroot: chrootDef(f.source, 'fx', unionType), hooksDir: f.noHooks, hookTimeoutMs: 10_000, id });
      // Written through the session's root: for overlay it lands in the upper layer (upper/fs).
      fillVictim(s.paths.root);
      // The racer acts only on `.gone-<id>.*`: the dir end renames the session to and then deletes.
      await trial(t, tally, () => Racer.start(f.stateDir, `.gone-${id}.`, sub, outside, stash), () => endSession(s, { offThread }), outside, async () => {
        // A refused deletion leaves the session's locks with it (on the .gone-* dir).
        s.release();
        clear();
        for (const n of stateEntries(f.stateDir)) removal.removeTree(join(f.stateDir, n));
      });
    }
    t.deepEqual(stateEntries(f.stateDir), []);
    t.true(existsSync(join(outside, CANARY)));
    t.true(tally.swaps > 0, 'the racer swapped the directory for a link');
    t.log(`${tally.trials} sessions ended, ${tally.swaps} swaps by the racer, ${tally.refused} deletions refused`);
  },
  title: (_, unionType, count, offThread) =>
    `ending a${unionType === 'overlay' ? 'n' : ''} ${unionType} session${offThread ? ' off-thread' : ''} under the racer never deletes outside (${count} trials)${NEEDS_ROOT}`,
});

asRoot(session, 'overlay', trials(60), false);
asRoot(session, 'overlay', trials(30), true);
asRoot(session, 'copy', trials(40), false);

// A copy session has no mount whose EBUSY stops its end while processes
// work in it: end refuses by itself, and deletes nothing, until they exit.
const inUse = test.macro({
  async exec(t, how: 'cwd' | 'root') {
    const f = fx!;
    const s = await beginSession({ stateDir: f.stateDir, chroot: chrootDef(f.source, 'fx', 'copy'), hooksDir: f.noHooks, hookTimeoutMs: 10_000, id: `in-use-${how}` });
    t.teardown(() => endSession(s).catch(() => {}));
    fillVictim(s.paths.root);
    const child =
      how === 'cwd'
        ? await startChild(t, 'sleep', ['60'], { cwd: join(s.paths.root, 'a'), stdio: 'ignore' })
        : await startChild(t, 'chroot', [s.paths.root, '/bin/sleep', '60'], { cwd: '/', stdio: 'ignore' });
    // chroot(1) calls chroot(2), then execs sleep.
    if (how === 'root') await until(() => readlinkRoot(child.pid!) === s.paths.root, 'the child to enter the chroot');
    const e = await t.throwsAsync(endSession(s), { instanceOf: TreeInUseError });
    t.is(e!.path, s.paths.root);
    t.true(e!.holders.some((h) => h.pid === child.pid && h.how === how), e!.message);
    t.regex(e!.message, new RegExp(`refusing to delete: used by pid ${child.pid} \\(`));
    t.true(existsSync(join(s.paths.root, 'a', 'f0')), 'nothing deleted');
    t.is(s.state.status, 'active', 'the session is intact and endable again');
    await stop(child);
    await endSession(s);
    t.false(existsSync(s.paths.dir));
    t.deepEqual(stateEntries(f.stateDir), []);
  },
  title: (_, how) => `ending a copy session refuses while a process has its ${how} in the tree, and ends once it exits${NEEDS_ROOT}`,
});

function readlinkRoot(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/root`);
  } catch {
    return undefined;
  }
}

asRoot(inUse, 'cwd');
asRoot(inUse, 'root');
