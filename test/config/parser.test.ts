// The schroot keyfile dialect, line by line: table-driven, no files.
import test from 'ava';
import { parseKeyfile, type Keyfile } from '../../src/config/parser.js';
import { ConfigError } from '../../src/config/index.js';
import { lines } from './tree.js';

const F = '/etc/warden/warden.conf';

test('groups, keys, comments and blank lines, with their line numbers', (t) => {
  const text = lines(
    '# a comment',
    '',
    '[sid]',
    '  type = directory  ',
    'description=C# tools # and more', // '#' inside a value is text, as in schroot
    '\t# indented comment',
    'description[de_DE]=Werkzeuge',
    'aliases=',
    'union-overlay-directory=/var/lib/a=b',
    '',
    '[warden]',
    'hook-timeout=5',
  );
  const want: Keyfile = {
    file: F,
    groups: [
      {
        name: 'sid',
        line: 3,
        entries: [
          { key: 'type', value: 'directory', line: 4 },
          { key: 'description', value: 'C# tools # and more', line: 5 },
          { key: 'description[de_DE]', value: 'Werkzeuge', line: 7 },
          { key: 'aliases', value: '', line: 8 },
          { key: 'union-overlay-directory', value: '/var/lib/a=b', line: 9 },
        ],
      },
      { name: 'warden', line: 11, entries: [{ key: 'hook-timeout', value: '5', line: 12 }] },
    ],
  };
  t.deepEqual(parseKeyfile(text, F), want);
});

test('CRLF line ends, a byte-order mark and a missing final newline', (t) => {
  t.deepEqual(parseKeyfile('\uFEFF[a]\r\nx=1\r\n\r\ny=2', F), {
    file: F,
    groups: [{ name: 'a', line: 1, entries: [{ key: 'x', value: '1', line: 2 }, { key: 'y', value: '2', line: 4 }] }],
  });
});

test('an empty file has no groups', (t) => {
  t.deepEqual(parseKeyfile('', F), { file: F, groups: [] });
  t.deepEqual(parseKeyfile('# nothing\n\n', F), { file: F, groups: [] });
});

test('a group may appear twice (the loader names both places)', (t) => {
  t.deepEqual(
    parseKeyfile('[a]\n[a]\n', F).groups.map((g) => g.line),
    [1, 2],
  );
});

// [text, line, reason]
const bad: [string, number, string][] = [
  ['[sid]\n[bad\n', 2, 'invalid group header "[bad": expected [name] alone on the line'],
  ['[sid] # comment\n', 1, 'invalid group header "[sid] # comment": expected [name] alone on the line'],
  ['[a]b]\n', 1, 'invalid group header "[a]b]": expected [name] alone on the line'],
  ['[]\n', 1, 'invalid group name "": is empty'],
  ['[a/b]\n', 1, 'invalid group name "a/b": must start with a letter or digit and contain only letters, digits, ".", "_" and "-"'],
  ['[sid:amd64]\n', 1, 'invalid group name "sid:amd64": must start with a letter or digit and contain only letters, digits, ".", "_" and "-"'],
  ['[.hidden]\n', 1, 'invalid group name ".hidden": must start with a letter or digit and contain only letters, digits, ".", "_" and "-"'],
  ['[ sid ]\n', 1, 'invalid group name " sid ": must start with a letter or digit and contain only letters, digits, ".", "_" and "-"'],
  [`[${'x'.repeat(65)}]\n`, 1, `invalid group name "${'x'.repeat(65)}": is longer than 64 characters`],
  ['[sid]\ntype=directory\ndirectory /srv/sid\n', 3, 'expected [group], key=value or a # comment, got "directory /srv/sid"'],
  ['[sid]\n; ini comment\n', 2, 'expected [group], key=value or a # comment, got "; ini comment"'],
  ['[sid]\n=value\n', 2, 'invalid key "" in "=value"'],
  ['[sid]\nroot users=alice\n', 2, 'invalid key "root users" in "root users=alice"'],
  ['# header\ntype=directory\n[sid]\n', 2, 'key "type" appears before any [group]'],
  ['[sid]\ntype=directory\nusers=a\n\nusers=b\n', 5, 'duplicate key "users" in [sid] (first set at line 3)'],
];
for (const [text, line, reason] of bad) {
  test(`refuses ${JSON.stringify(text)} at line ${line}`, (t) => {
    const e = t.throws(() => parseKeyfile(text, F), { instanceOf: ConfigError, message: `${F}:${line}: ${reason}` });
    t.is(e.file, F);
    t.is(e.line, line);
    t.is(e.reason, reason);
  });
}

test('duplicate keys are per group', (t) => {
  t.is(parseKeyfile('[a]\nx=1\n[b]\nx=2\n', F).groups.length, 2);
});
