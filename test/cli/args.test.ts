// The CLI's argument rules (src/cli/args.ts), table-driven: what each
// command line parses to, and the usage error each bad one gets.
import test from 'ava';
import { parseArgs } from '../../src/cli/args.js';
import { UsageError } from '../../src/cli/errors.js';

type Want = { verb?: string; options?: Record<string, unknown>; positional?: string[]; command?: string[]; help?: boolean };

const good: [string[], Want][] = [
  [['run', '-c', 'demo', '--', 'true'], { options: { chroot: 'demo' }, command: ['true'] }],
  [['run', '--chroot=demo', 'sh', '-c', 'echo -- x'], { options: { chroot: 'demo' }, command: ['sh', '-c', 'echo -- x'] }],
  // The command starts at the first positional: its own options and `--` are its own.
  [['run', '-cdemo', 'env', '--', '-c', 'x'], { options: { chroot: 'demo' }, command: ['env', '--', '-c', 'x'] }],
  [['run', '-c', 'demo', '--', '--', 'x'], { options: { chroot: 'demo' }, command: ['--', 'x'] }],
  [['run', '-s', 'id1', '-u', 'nobody', '-d', '/tmp', '--timeout', '2.5', '--no-wait', '--', 'id'], { options: { session: 'id1', user: 'nobody', directory: '/tmp', timeout: 2.5, 'no-wait': true }, command: ['id'] }],
  // -p (schroot's --preserve-environment) wherever a command runs.
  [['run', '-c', 'demo', '-p', '-u', 'nobody', '--', 'env'], { options: { chroot: 'demo', 'preserve-environment': true, user: 'nobody' }, command: ['env'] }],
  [['source', '-c', 'demo', '--preserve-environment', 'env'], { options: { chroot: 'demo', 'preserve-environment': true }, command: ['env'] }],
  [['recover', '-s', 'x', '-p', '--', 'sh'], { options: { session: 'x', 'preserve-environment': true }, command: ['sh'] }],
  // ... and the command's own -p stays its own.
  [['run', '-c', 'demo', 'ls', '-p'], { options: { chroot: 'demo' }, command: ['ls', '-p'] }],
  [['list', '--sessions', '--json'], { options: { sessions: true, json: true } }],
  [['info', 'demo', '--json'], { options: { json: true }, positional: ['demo'] }],
  [['info', '--', '-weird'], { positional: ['-weird'] }],
  [['end', '-s', 'x', '--wait', '--state-dir', '/tmp/s', '--config=/etc/w.conf'], { options: { session: 'x', wait: true, 'state-dir': '/tmp/s', config: '/etc/w.conf' } }],
  [['info', '--help'], { options: { help: true }, help: true }],
  [['run', '-h'], { options: { help: true }, help: true }],
  [['end', '-s', 'x', '--timeout', '0'], { options: { session: 'x', timeout: 0 } }],
  [['end', '--all', '-c', 'demo', '--force'], { options: { all: true, chroot: 'demo', force: true } }],
  // Global options with a value may come before the verb.
  [['--config', '/etc/w.conf', 'run', '-c', 'demo', 'true'], { verb: 'run', options: { config: '/etc/w.conf', chroot: 'demo' }, command: ['true'] }],
  [['--state-dir=/s', '--config', 'f', 'list', '--json'], { verb: 'list', options: { 'state-dir': '/s', config: 'f', json: true } }],
];

for (const [argv, want] of good) {
  test(`parses ${argv.join(' ')}`, (t) => {
    const p = parseArgs(argv);
    t.is<string, string>(p.verb.name, want.verb ?? argv[0]);
    t.deepEqual(p.options, want.options ?? {});
    t.deepEqual(p.positional, want.positional ?? []);
    t.deepEqual(p.command, want.command ?? []);
    t.is(p.help, want.help ?? false);
  });
}

const bad: [string[], RegExp][] = [
  [[], /no verb given/],
  [['frobnicate'], /unknown verb "frobnicate"/],
  [['list', '--bogus'], /unknown option --bogus/],
  [['list', '-z'], /unknown option -z/],
  [['begin', '-c', 'demo', '-p'], /unknown option -p/],
  [['run', '-c'], /option --chroot needs a value/],
  [['run', '-c', '--no-wait', '--', 'true'], /option --chroot needs a value/],
  [['run', '--id=', '-c', 'x', 'true'], /option --id needs a value/],
  [['run', '-c', 'x', '--timeout', 'soon', 'true'], /needs a non-negative number, got "soon"/],
  [['run', '-c', 'x', '--timeout=-1', 'true'], /needs a non-negative number, got "-1"/],
  [['run', '-c', 'x', '--timeout', '-1', 'true'], /needs a non-negative number, got "-1"/],
  [['source', '-c', 'x', '--timeout', '-0.5', 'true'], /needs a non-negative number, got "-0.5"/],
  [['end', '-s', 'x', '--timeout', 'NaN'], /needs a non-negative number, got "NaN"/],
  [['end', '-s', 'x', '--timeout', 'Infinity'], /needs a non-negative number, got "Infinity"/],
  [['list', '--json=yes'], /option --json takes no value/],
  [['info'], /missing NAME/],
  [['info', 'a', 'b'], /unexpected argument "b"/],
  [['--config'], /option --config needs a value/],
  [['--config', 'f'], /no verb given/],
  [['--json', 'list'], /unknown verb "--json"/],
];

for (const [argv, message] of bad) {
  test(`refuses ${JSON.stringify(argv.join(' '))}`, (t) => {
    const e = t.throws(() => parseArgs(argv), { instanceOf: UsageError });
    t.regex(e!.message, message);
  });
}
