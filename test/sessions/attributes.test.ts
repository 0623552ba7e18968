// The client's umask, nice value and limits for its command (attributes.ts):
// never more than the supervisor has, and warden-attrs only where something
// differs. The pass-through with a real client is test/security/broker.test.ts.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { boundedBy, readProcessAttributes, type ProcessAttributes } from '../../src/sessions/index.js';
import { withAttributes } from '../../src/sessions/attributes.js';

const NOFILE = 7;
const CORE = 4;
const attrs = (umask: number, nice: number, limits: [number, [number, number]][]): ProcessAttributes => ({ umask, nice, limits: new Map(limits) });

test('this process: its umask, nice value and limits as /proc shows them', (t) => {
  const own = readProcessAttributes()!;
  t.is(own.umask, process.umask());
  const sh = spawnSync('/bin/sh', ['-c', 'ulimit -S -n; ulimit -H -n'], { encoding: 'utf8' }).stdout.trim().split('\n').map(Number);
  t.deepEqual(own.limits.get(NOFILE), [sh[0]!, sh[1]!]);
  t.is(own.limits.size, 16);
  t.is(readProcessAttributes(2 ** 22 + 7), undefined, 'a pid that does not exist');
});

test('bounded by the supervisor: the lower hard limit, soft at most that, the higher nice value', (t) => {
  const own = attrs(0o022, 0, [[NOFILE, [20000, 20000]], [CORE, [0, Infinity]]]);
  const b = boundedBy(attrs(0o002, -5, [[NOFILE, [1024, 524288]], [CORE, [Infinity, Infinity]], [99, [1, 1]]]), own);
  t.deepEqual(b, attrs(0o002, 0, [[NOFILE, [1024, 20000]], [CORE, [Infinity, Infinity]]]));
  t.deepEqual(boundedBy(attrs(0o077, 10, [[NOFILE, [30000, 30000]]]), own), attrs(0o077, 10, [[NOFILE, [20000, 20000]]]));
});

test('warden-attrs in front only where something differs, with what differs', (t) => {
  const own = attrs(0o022, 0, [[NOFILE, [20000, 20000]], [CORE, [0, Infinity]]]);
  t.deepEqual(withAttributes(['/usr/bin/unshare', 'x'], own, own), ['/usr/bin/unshare', 'x']);
  const argv = withAttributes(['/usr/bin/unshare', 'x'], attrs(0o002, 3, [[NOFILE, [1024, 20000]], [CORE, [0, Infinity]]]), own);
  t.regex(argv[0]!, /\/bin\/warden-attrs$/);
  t.deepEqual(argv.slice(1), ['0002', '3', '7=1024:20000', '--', '/usr/bin/unshare', 'x']);
  t.deepEqual(withAttributes(['p'], attrs(0o022, 0, [[CORE, [Infinity, Infinity]]]), own).slice(1), ['0022', '0', '4=inf:inf', '--', 'p']);
});

test('warden-attrs applies them and execs, and refuses what it cannot parse with 125', (t) => {
  const helper = withAttributes(['x'], attrs(0o027, 0, []), attrs(0o022, 0, []))[0]!;
  const r = spawnSync(helper, ['0027', '4', '7=100:200', '--', '/bin/sh', '-c', 'umask; ulimit -S -n; ulimit -H -n; read -r s < /proc/self/stat; set -- $s; shift 18; echo $1'], { encoding: 'utf8' });
  t.is(r.stdout, '0027\n100\n200\n4\n', r.stderr);
  for (const bad of [['0899', '0', '--', '/bin/true'], ['022', '40', '--', '/bin/true'], ['022', '0', '7=5:1', '--', '/bin/true'], ['022', '0', '77=1:1', '--', '/bin/true'], ['022', '0', '7=x:1', '--', '/bin/true'], ['022', '0', '7=1:1']]) {
    const b = spawnSync(helper, bad, { encoding: 'utf8' });
    t.is(b.status, 125, `${bad.join(' ')}: ${b.stderr}`);
    t.regex(b.stderr, /^warden-attrs: /);
  }
  t.is(spawnSync(helper, ['022', '0', '--', '/no/such/program']).status, 127);
});
