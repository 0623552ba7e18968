// The supervisor's limits as resolved from [warden] settings and the fd
// limit, the owner check, and the once-a-minute log of repeated refusals.
import test from 'ava';
import { assertSessionOwner, DEFAULT_LIMITS, limitsFromSettings, resolveLimits, SessionAccessError } from '../../src/supervisor/index.js';
import { QuietLog } from '../../src/supervisor/limits.js';
import type { SessionState } from '../../src/sessions/index.js';

test('defaults: 64 per user, 1024 in all (a quarter of a small fd limit), 60 s idle, 1 MiB of replies, 16 queued requests', (t) => {
  t.deepEqual(resolveLimits({}, 1_048_576).limits, { connectionsPerUser: 64, connections: 1024, idleMs: 60_000, replyBufferBytes: 1024 * 1024, queuedRequests: 16 });
  t.is(resolveLimits({}, 1024).limits.connections, 256);
  t.deepEqual(resolveLimits({}, 1024).notes, []);
  t.deepEqual(DEFAULT_LIMITS.connectionsPerUser, 64);
});

test('max-connections above half the fd limit is lowered, and says so', (t) => {
  const r = resolveLimits({ connections: 5000 }, 4096);
  t.is(r.limits.connections, 2048);
  t.deepEqual(r.notes, ['max-connections=5000 lowered to 2048: half of this process\'s open-file limit (4096)']);
  t.is(resolveLimits({ connections: 5000 }, 20_000).limits.connections, 5000);
});

test('[warden] settings in the supervisor\'s units', (t) => {
  t.deepEqual(limitsFromSettings({ idleTimeout: 2.5, replyBuffer: 4096, connectionsPerUser: 3 }), { idleMs: 2500, replyBufferBytes: 4096, connectionsPerUser: 3 });
  t.deepEqual(limitsFromSettings({}), {});
});

test('a repeated line is logged once per interval, then with the count it kept quiet about', (t) => {
  const lines: string[] = [];
  const q = new QuietLog((l) => lines.push(l), 1000);
  for (let i = 0; i < 5; i++) q.note('uid 7', 'refused uid 7', 100 + i);
  q.note('uid 8', 'refused uid 8', 200);
  q.note('uid 7', 'refused uid 7', 1200);
  t.deepEqual(lines, ['refused uid 7', 'refused uid 8', 'refused uid 7 (and 4 more like it since the last such line)']);
});

const state = (owner?: { uid: number; gid: number }) => ({ id: 's1', ...(owner ? { owner } : {}) }) as SessionState;

test('the owner check: root always, the owner, nobody else; no recorded owner means root only', (t) => {
  t.notThrows(() => assertSessionOwner(state({ uid: 1000, gid: 1000 }), { uid: 0 }, 'end'));
  t.notThrows(() => assertSessionOwner(state({ uid: 1000, gid: 1000 }), { uid: 1000 }, 'end'));
  t.throws(() => assertSessionOwner(state({ uid: 1000, gid: 1000 }), { uid: 1001 }, 'run in'), {
    instanceOf: SessionAccessError,
    message: 'uid 1001 may not run in session s1: it belongs to uid 1000; only its owner and root may',
  });
  t.notThrows(() => assertSessionOwner(state(), { uid: 0 }, 'end'));
  t.throws(() => assertSessionOwner(state(), { uid: 1000 }, 'end'), {
    message: 'uid 1000 may not end session s1: its state.json records no owner (begun by an older warden), so only root may',
  });
});
