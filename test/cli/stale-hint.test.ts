// The hint under a StaleSessionsError: --recover-stale ends this host's
// stale sessions, never another host's (build farms), so the hint says so.
import test from 'ava';
import { formatError } from '../../src/cli/errors.js';
import { StaleSessionsError } from '../../src/sessions/errors.js';

const remote = [{ host: 'host-a', id: 'fx-1', pids: [12], since: '2026-12-06T09:00:00.000Z' }];

const cases: [string, StaleSessionsError, RegExp, RegExp | undefined][] = [
  ['this host only', new StaleSessionsError('fx', ['fx-2']), /^hint: .*`--recover-stale` ends them/m, /other host|cannot end/],
  ['another host only', new StaleSessionsError('fx', [], remote), /^hint: only the host a session is on can end it .*`--recover-stale` cannot end them from here$/m, /`--recover-stale` ends them/],
  ['both', new StaleSessionsError('fx', ['fx-2'], remote), /^hint: only the host .*`--recover-stale` ends this host's stale sessions alone/m, /cannot end them/],
];

for (const [name, e, hint, not] of cases) {
  test(`StaleSessionsError hint: ${name}`, (t) => {
    const text = formatError('source -c fx', e);
    t.regex(text, hint);
    if (not) t.notRegex(text, not);
  });
}
