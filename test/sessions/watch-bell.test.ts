// The doorbell's log (watch-bell.ts): what a reader gets when the log is
// renamed aside under it, and lines of concurrent ringers kept whole.
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { appendFileSync } from 'node:fs';
import { BELL_DIR, BellReader, ringBegun, ringEnded, type Ring } from '../../src/sessions/watch-bell.js';

const ids = (rings: Ring[] | undefined) => rings?.map((r) => r.id);
import { allFds } from '../helpers/leaks.js';

function stateDir(t: { teardown: (f: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'warden-bell-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Rings until the log has been renamed aside `times` times; the ids rung. */
function ringPastBound(dir: string, times: number, prefix: string): string[] {
  const ids: string[] = [];
  const old = () => {
    try {
      return statSync(join(dir, BELL_DIR, 'rings.old')).ino;
    } catch {
      return undefined;
    }
  };
  for (let k = 0; k < times; k++) {
    const before = old();
    while (old() === before) {
      const id = `${prefix}-${ids.length}`;
      ringEnded(dir, id);
      ids.push(id);
    }
  }
  return ids;
}

test('a reader starts at the end of the log, and reads each ring once, in order', (t) => {
  const dir = stateDir(t);
  const before = allFds();
  ringEnded(dir, 'before');
  const r = new BellReader(dir);
  t.deepEqual(r.read(), []);
  ringEnded(dir, 'a');
  ringEnded(dir, 'b');
  ringEnded(dir, 'a');
  t.deepEqual(r.read(), [{ id: 'a' }, { id: 'b' }, { id: 'a' }]);
  t.deepEqual(r.read(), []);
  r.close();
  r.close();
  t.deepEqual(allFds(), before);
});

test('a reader started before the first ring reads the log from its start', (t) => {
  const dir = stateDir(t);
  const r = new BellReader(dir);
  t.deepEqual(r.read(), []);
  ringEnded(dir, 'first');
  t.deepEqual(ids(r.read()), ['first']);
  r.close();
});

test('the log renamed aside once under a reader: every ring still read; twice: the reader says some are lost', (t) => {
  const dir = stateDir(t);
  ringEnded(dir, 'x');
  const r = new BellReader(dir);
  const once = ringPastBound(dir, 1, 'one');
  t.true(once.length > 1_000, `${once.length} rings to the bound`);
  t.deepEqual(ids(r.read()), once);
  const twice = ringPastBound(dir, 2, 'two');
  t.is(r.read(), undefined, 'a whole log went by unread');
  // Back in step: the rings after that are read again.
  ringEnded(dir, 'after');
  t.deepEqual(ids(r.read()), ['after']);
  t.true(twice.length > 2_000);
  t.deepEqual(readdirSync(join(dir, BELL_DIR)).sort(), ['rings', 'rings.old']);
  r.close();
});

test('four processes ringing at once: every line whole, none lost', async (t) => {
  const dir = stateDir(t);
  ringEnded(dir, 'x');
  const r = new BellReader(dir);
  const url = new URL('../../src/sessions/watch-bell.js', import.meta.url).href;
  const body = (p: number) => `const { ringEnded } = await import(${JSON.stringify(url)}); for (let i = 0; i < 500; i++) ringEnded(${JSON.stringify(dir)}, 'p${p}-' + i);`;
  await Promise.all(
    [0, 1, 2, 3].map(
      (p) =>
        new Promise<void>((resolve, reject) => {
          const c = spawn(process.execPath, ['--input-type=module', '-e', body(p)], { stdio: 'inherit' });
          c.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`ringer ${p}: exit ${code}`))));
        }),
    ),
  );
  const got = ids(r.read());
  t.truthy(got);
  t.is(got!.length, 2_000);
  for (let p = 0; p < 4; p++) t.deepEqual(got!.filter((id) => id.startsWith(`p${p}-`)), Array.from({ length: 500 }, (_, i) => `p${p}-${i}`));
  r.close();
});

test('begun rings carry the chroot; a line that is no ring is skipped', (t) => {
  const dir = stateDir(t);
  ringEnded(dir, 'x');
  const r = new BellReader(dir);
  ringBegun(dir, 's1', 'demo');
  appendFileSync(join(dir, BELL_DIR, 'rings'), '? s2\n+ s3\n- s4 extra\n+ s5 a b\n\n');
  ringEnded(dir, 's1');
  t.deepEqual(r.read(), [{ id: 's1', begun: 'demo' }, { id: 's1' }]);
  r.close();
});
