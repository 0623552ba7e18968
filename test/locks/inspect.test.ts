// Parsing the kernel's lock tables and choosing the lock mode: table-driven.
import test from 'ava';
import { parseLockLine, fileKey } from '../../src/locks/inspect.js';
import { requestedMode } from '../../src/locks/mode.js';
import { LockUnsupportedError } from '../../src/locks/index.js';

const lines: [string, ReturnType<typeof parseLockLine>][] = [
  ['1: OFDLCK ADVISORY  READ -1 fe:00:2146433 0 0', { family: 'OFD', kind: 'shared', pid: -1, key: 'fe:00:2146433', range: { start: 0, len: 1 }, waiting: false }],
  ['2: POSIX  ADVISORY  WRITE 2133 fe:00:2146433 5 EOF', { family: 'POSIX', kind: 'exclusive', pid: 2133, key: 'fe:00:2146433', range: { start: 5, len: 0 }, waiting: false }],
  ['2: -> POSIX  ADVISORY  WRITE 77 08:01:12 1 1', { family: 'POSIX', kind: 'exclusive', pid: 77, key: '08:01:12', range: { start: 1, len: 1 }, waiting: true }],
  ['3: FLOCK  ADVISORY  READ 2133 fe:00:9 0 EOF', { family: 'FLOCK', kind: 'shared', pid: 2133, key: 'fe:00:9', range: { start: 0, len: 0 }, waiting: false }],
  ['4: LEASE  ACTIVE    READ 1 fe:00:9 0 EOF', undefined],
  ['', undefined],
  ['garbage', undefined],
];

for (const [line, want] of lines) {
  test(`parses ${JSON.stringify(line)}`, (t) => {
    t.deepEqual(parseLockLine(line), want);
  });
}

test('fileKey encodes major:minor as /proc/locks prints them', (t) => {
  t.is(fileKey({ dev: 65024n, ino: 2146433n }), 'fe:00:2146433');
  t.is(fileKey({ dev: 2049n, ino: 12n }), '08:01:12');
  // a large minor (e.g. a device-mapper or overlay volume) uses the split encoding
  t.is(fileKey({ dev: (0x103n << 8n) | 0x45n | (0x1n << 20n), ino: 1n }), '103:145:1');
});

const modes: [string | undefined, ReturnType<typeof requestedMode> | Error][] = [
  [undefined, 'auto'],
  ['', 'auto'],
  ['auto', 'auto'],
  ['ofd', 'ofd'],
  ['posix', 'posix'],
  ['flock', new LockUnsupportedError('WARDEN_LOCK_MODE=flock is not one of ofd, posix, auto')],
];
for (const [value, want] of modes) {
  test(`WARDEN_LOCK_MODE=${value ?? '(unset)'}`, (t) => {
    const env = value === undefined ? {} : { WARDEN_LOCK_MODE: value };
    if (want instanceof Error) t.throws(() => requestedMode(env), { instanceOf: LockUnsupportedError, message: want.message });
    else t.is(requestedMode(env), want);
  });
}
