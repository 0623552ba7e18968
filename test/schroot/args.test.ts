// parseSchrootArgs against schroot 1.6 itself: for each refused command line,
// the same `E:`/`I:` lines and exit status as /usr/bin/schroot prints.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseSchrootArgs, SchrootUsageError, usageErrorText } from '../../src/schroot/index.js';

const SCHROOT = '/usr/bin/schroot';
const haveSchroot = existsSync(SCHROOT);

/** What real schroot prints for argv: its status and its E:/I: lines (config warnings aside). */
function real(argv: string[]): { status: number | null; stderr: string } {
  const r = spawnSync(SCHROOT, argv, { argv0: SCHROOT, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, LANG: 'C.UTF-8' } });
  return { status: r.status, stderr: r.stderr };
}

const refused = test.macro({
  exec(t, argv: string[], message: string, hint: boolean = false) {
    const e = t.throws(() => parseSchrootArgs(argv), { instanceOf: SchrootUsageError });
    t.is(e?.message, message);
    t.is(e?.hint, hint);
    t.is(e?.exitCode, 1);
    if (!haveSchroot) {
      t.log(`${SCHROOT} not installed: not compared with schroot`);
      return;
    }
    const r = real(argv);
    t.is(r.status, 1);
    t.is(r.stderr, usageErrorText(e!, SCHROOT));
  },
  title: (_, argv: string[]) => `refused like schroot: ${JSON.stringify(argv)}`,
});

test(refused, ['--bad-option'], "unrecognised option '--bad-option'");
test(refused, ['-Z'], "unrecognised option '-Z'");
test(refused, ['-lz'], "unrecognised option '-lz'");
test(refused, ['---x'], "unrecognised option '---x'");
test(refused, ['-c'], "the required argument for option '--chroot' is missing");
test(refused, ['--chroot'], "the required argument for option '--chroot' is missing");
test(refused, ['-c', '-l'], "the required argument for option '--chroot' is missing");
test(refused, ['-u', '-v'], "the required argument for option '--user' is missing");
test(refused, ['--chroot='], "the argument for option '--chroot' should follow immediately after the equal sign");
test(refused, ['-l', '--version='], "the argument for option '--version' should follow immediately after the equal sign");
test(refused, ['--list=3'], "option '--list' does not take any arguments");
test(refused, ['-l', '-l'], "option '--list' cannot be specified more than once");
test(refused, ['-u', 'a', '--user=b'], "option '--user' cannot be specified more than once");
test(refused, ['--al'], "option '--al' is ambiguous and matches '--all', '--all-chroots', '--all-sessions', and '--all-source-chroots'");
test(refused, ['--c', 'x'], "option '--c' is ambiguous and matches '--chroot', '--command', and '--config'");
test(refused, ['--all-s'], "option '--all-s' is ambiguous and matches '--all-sessions', and '--all-source-chroots'");
test(refused, ['-b', '-r'], 'Only one action may be specified', true);
test(refused, ['-h', '-V'], 'Only one action may be specified', true);
test(refused, ['--automatic-session', '-l'], 'Only one action may be specified', true);
test(refused, ['-c', 'x', 'ls', '-i', '-e'], 'Only one action may be specified', true);
test(refused, ['-b'], 'Exactly one chroot must be specified when beginning a session', true);
test(refused, ['-b', '-a'], 'Exactly one chroot must be specified when beginning a session', true);
test(refused, ['-b', '-c', 'a', '-c', 'b'], 'Exactly one chroot must be specified when beginning a session', true);
test(refused, ['-n', 'foo'], '--session-name is not permitted for the specified action', true);
test(refused, ['-l', '-n', 'foo'], '--session-name is not permitted for the specified action', true);
test(refused, ['-r', '-c', 'x', '-n', 'foo'], '--session-name is not permitted for the specified action; did you mean to use --chroot?', true);
test(refused, ['-b', '-c', 'x', '-n', 'a/b'], 'Invalid session name', true);
test(refused, ['-b', '-c', 'x', '-n', 'session:y'], 'Invalid session name', true);
test(refused, ['-b', '-c', 'x', '-n', '.x'], 'Invalid session name', true);
test(refused, ['-b', '-c', 'x', '-n', 'x.dpkg-old'], 'Invalid session name', true);
test(refused, ['-b', '-c', 'x', '-n', 'x~'], 'Invalid session name', true);

// Options schroot has and warden-schroot does not honour: refused by name, never ignored.
const unsupported = test.macro({
  exec(t, argv: string[], option: string) {
    const e = t.throws(() => parseSchrootArgs(argv), { instanceOf: SchrootUsageError });
    t.is(e?.option, option);
    t.true(e!.message.startsWith(`${option} is not supported by warden-schroot: `), e!.message);
    t.is(e?.exitCode, 1);
  },
  title: (_, argv: string[]) => `unsupported: ${JSON.stringify(argv)}`,
});
test(unsupported, ['-o', 'a=b', '-c', 'x'], '-o');
test(unsupported, ['--option=a=b'], '--option');
test(unsupported, ['--opt', 'a=b'], '--option');
test(unsupported, ['-s', '/bin/zsh'], '-s');
test(unsupported, ['--shell', '/bin/zsh'], '--shell');
test(unsupported, ['--debug=notice'], '--debug');
test(unsupported, ['-lo', 'x=y'], '-o');

test('an unknown namespace is refused as schroot words it', (t) => {
  t.throws(() => parseSchrootArgs(['-i', '-c', 'bogus:x']), { instanceOf: SchrootUsageError, message: 'bogus: No such namespace' });
});

test('automatic session: the default chroot, options anywhere, -- ends them', (t) => {
  t.like(parseSchrootArgs([]), { action: 'automatic-session', command: [], selection: { chroots: [{ given: 'default', namespace: undefined, name: 'default' }] } });
  const c = parseSchrootArgs(['-c', 'sid', '-u', 'root', '-d', '/build', '-p', '--', 'ls', '-l', '--', 'x']);
  t.like(c, { action: 'automatic-session', user: 'root', directory: '/build', preserveEnvironment: true, command: ['ls', '-l', '--', 'x'] });
  // Without --, a word that looks like an option is one (boost keeps parsing after the command).
  t.like(parseSchrootArgs(['-c', 'sid', 'ls', '-l']), { action: 'list', selection: { chroots: [{ given: 'sid' }] } });
  t.like(parseSchrootArgs(['-csid', '-u-', 'echo', '-']), { action: 'automatic-session', user: '-', command: ['echo', '-'] });
  t.like(parseSchrootArgs(['--chro', 'sid', '--com=echo', 'hi']), { command: ['echo', 'hi'], selection: { chroots: [{ name: 'sid' }] } });
});

test('sbuild and autopkgtest command lines', (t) => {
  // sbuild: begin, run as the build user in a directory, end.
  t.like(parseSchrootArgs(['-c', 'sid-amd64-sbuild', '--begin-session']), { action: 'begin-session', chroot: { name: 'sid-amd64-sbuild' }, sessionName: undefined });
  t.like(parseSchrootArgs(['-d', '/build/x', '-c', 'sid-amd64-sbuild-abc', '--run-session', '-q', '-u', 'sbuild', '-p', '--', 'dpkg-buildpackage', '-us']), {
    action: 'run-session',
    quiet: true,
    user: 'sbuild',
    directory: '/build/x',
    preserveEnvironment: true,
    command: ['dpkg-buildpackage', '-us'],
    selection: { chroots: [{ given: 'sid-amd64-sbuild-abc', namespace: undefined }] },
  });
  t.like(parseSchrootArgs(['-c', 'sid-amd64-sbuild-abc', '--end-session', '-f']), { action: 'end-session', force: true });
  // sbuild-update: a persistent source session.
  t.like(parseSchrootArgs(['-c', 'source:sid', '-b', '-n', 'upd']), { action: 'begin-session', chroot: { namespace: 'source', name: 'sid' }, sessionName: 'upd' });
  // sbuild's chroot lookup: schroot -l --all-source-chroots, -i -c chroot:NAME
  t.like(parseSchrootArgs(['-l', '--all-source-chroots']), { action: 'list', selection: { chroots: [], allChroots: false, allSourceChroots: true, allSessions: false } });
  t.like(parseSchrootArgs(['--info', '--chroot', 'chroot:sid']), { action: 'info', selection: { chroots: [{ namespace: 'chroot', name: 'sid' }] } });
  // autopkgtest: -b -c CHROOT; -r -q -c SESSION -- sh -c ...; -e
  t.like(parseSchrootArgs(['--recover-session', '-c', 'session:x']), { action: 'recover-session', selection: { chroots: [{ namespace: 'session', name: 'x' }] } });
});

test('-l, -i, --config, --location default to all chroots as schroot does', (t) => {
  t.like(parseSchrootArgs(['-l']), { selection: { allChroots: true, allSourceChroots: true, allSessions: false } });
  t.like(parseSchrootArgs(['-i']), { selection: { allChroots: true, allSourceChroots: true, allSessions: false } });
  t.like(parseSchrootArgs(['--config']), { selection: { allChroots: true, allSourceChroots: false } });
  t.like(parseSchrootArgs(['--location']), { selection: { allChroots: true, allSourceChroots: false } });
  t.like(parseSchrootArgs(['-la']), { selection: { allChroots: true, allSourceChroots: true, allSessions: true } });
  t.like(parseSchrootArgs(['-l', '--all-sessions', '--exclude-aliases']), { selection: { allChroots: false, allSessions: true, excludeAliases: true } });
  t.like(parseSchrootArgs(['-V']), { action: 'version' });
  t.like(parseSchrootArgs(['--help']), { action: 'help' });
});

test('warnings schroot prints and carries on after', (t) => {
  t.deepEqual(parseSchrootArgs(['-q', '-v', '-l']).notices, [
    { level: 'W', text: '--quiet and --verbose may not be used at the same time' },
    { level: 'I', text: 'Using verbose output' },
  ]);
  const c = parseSchrootArgs(['-b', '-c', 'x', '-a', '-n', 'y']);
  t.like(c, { action: 'begin-session', chroot: { name: 'x' }, sessionName: 'y' });
  t.deepEqual(c.notices, [
    { level: 'W', text: '--chroot and --all may not be used at the same time' },
    { level: 'I', text: 'Using --chroots only' },
  ]);
  // An empty --session-name is none, as in schroot.
  t.like(parseSchrootArgs(['-b', '-c', 'x', '-n', '']), { sessionName: undefined });
});
