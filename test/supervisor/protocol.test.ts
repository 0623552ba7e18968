// The control socket's protocol without a socket: request validation (table
// driven) and the line splitter's size cap and resynchronisation.
import test from 'ava';
import { LineSplitter, parseRequest, ProtocolError } from '../../src/supervisor/protocol.js';

const valid = test.macro({
  exec(t, line: string, op: string) {
    t.is(parseRequest(line).op as string, op);
  },
  title: (_p, line: string) => `valid: ${line}`,
});

const refused = test.macro({
  exec(t, line: string, message: RegExp) {
    const e = t.throws(() => parseRequest(line), { instanceOf: ProtocolError });
    t.regex(e!.message, message);
  },
  title: (_p, line: string) => `refused: ${line.length > 60 ? `${line.slice(0, 60)}...` : line}`,
});

test(valid, '{"v":1,"op":"hello"}', 'hello');
test(valid, '{"v":1,"op":"status","tag":"7"}', 'status');
test(valid, '{"v":1,"op":"begin","chroot":"demo"}', 'begin');
test(valid, '{"v":1,"op":"begin","chroot":"demo","id":"x","timeout":1.5,"wait":false}', 'begin');
test(valid, '{"v":1,"op":"end","id":"x","force":true}', 'end');

test(refused, '', /malformed request/);
test(refused, '{"v":1,"op":"hel', /malformed request/);
test(refused, '[1,2]', /not a JSON object/);
test(refused, 'null', /not a JSON object/);
test(refused, '"hello"', /not a JSON object/);
test(refused, '{"op":"hello"}', /unsupported protocol version undefined/);
test(refused, '{"v":2,"op":"hello"}', /unsupported protocol version 2 \(this supervisor speaks 1\)/);
test(refused, '{"v":1}', /unknown op undefined/);
test(refused, '{"v":1,"op":"destroy"}', /unknown op "destroy"/);
test(refused, '{"v":1,"op":"__proto__"}', /unknown op "__proto__"/);
test(refused, '{"v":1,"op":"toString"}', /unknown op "toString"/);
test(refused, '{"v":1,"op":"begin"}', /begin: field chroot is required/);
test(refused, '{"v":1,"op":"begin","chroot":7}', /field chroot must be a string/);
test(refused, '{"v":1,"op":"begin","chroot":"d","timeout":-1}', /timeout must be a finite number >= 0/);
test(refused, '{"v":1,"op":"begin","chroot":"d","timeout":"5"}', /timeout must be a number/);
test(refused, '{"v":1,"op":"begin","chroot":"d","user":"root"}', /unknown field "user"/);
test(refused, '{"v":1,"op":"end","id":"x","force":"yes"}', /force must be a boolean/);
test(refused, `{"v":1,"op":"hello","tag":"${'x'.repeat(200)}"}`, /tag must be a string of at most 128/);

test('a refused request keeps its tag for the reply', (t) => {
  const e = t.throws(() => parseRequest('{"v":1,"op":"nope","tag":"t1"}'), { instanceOf: ProtocolError });
  t.is(e!.tag, 't1');
});

test('lines split across chunks, several per chunk, blank lines skipped', (t) => {
  const got: string[] = [];
  const s = new LineSplitter(100, (l) => got.push(l), () => t.fail('nothing oversized'));
  s.push(Buffer.from('ab'));
  s.push(Buffer.from('c\nde\n\n  \nf'));
  s.push(Buffer.from('g\n'));
  t.deepEqual(got, ['abc', 'de', 'fg']);
  t.is(s.pending, 0);
});

test('an oversized line is reported once, dropped up to its newline, and the next line comes through', (t) => {
  const got: string[] = [];
  let oversized = 0;
  const s = new LineSplitter(8, (l) => got.push(l), () => oversized++);
  s.push(Buffer.from('12345'));
  s.push(Buffer.from('6789abc'));
  s.push(Buffer.from('defgh'));
  t.is(oversized, 1);
  t.is(s.pending, 0, 'nothing of it is kept');
  s.push(Buffer.from('ijk\nok\n'));
  t.deepEqual(got, ['ok']);
  s.push(Buffer.from('12345678\n'));
  t.deepEqual(got, ['ok', '12345678'], 'exactly the cap is accepted');
});

test('a multi-byte character split between chunks survives', (t) => {
  const got: string[] = [];
  const s = new LineSplitter(100, (l) => got.push(l), () => t.fail());
  const b = Buffer.from('é\n');
  s.push(b.subarray(0, 1));
  s.push(b.subarray(1));
  t.deepEqual(got, ['é']);
});
