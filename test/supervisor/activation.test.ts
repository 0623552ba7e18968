// Socket activation (etc/systemd/warden.socket): a listening socket passed
// as systemd passes it (LISTEN_FDS, LISTEN_PID; here by
// systemd-socket-activate(1), which binds it and starts the supervisor at
// the first connection) is served as the supervisor's own: the call that
// woke it up is answered, and the socket, being systemd's, is left in place
// when the supervisor stops.
import anyTest, { type TestFn } from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { destroyFixture, isRoot, makeFixture, REPO, type Fixture } from '../helpers/chroots.js';
import { WARDEN, writeConfig, type CliEnv } from '../helpers/cli.js';
import { until } from '../helpers/wait.js';

const test = anyTest as TestFn;
const ACTIVATE = ['/usr/bin/systemd-socket-activate', '/bin/systemd-socket-activate'].find((p) => existsSync(p));
const why = !isRoot ? 'needs root to mount sessions' : !ACTIVATE ? 'systemd-socket-activate(1) is not installed (package systemd)' : '';
const maybe = why ? test.serial.skip : test.serial;
const RELAY = join(REPO, 'dist', 'bin', 'warden');

let fx: Fixture;
let env: CliEnv;
test.before(async () => {
  if (why) return;
  fx = await makeFixture('warden-activation-');
  env = writeConfig(fx.tmp, `[warden]\nhooks-dir=${fx.noHooks}\n\n[fx]\ntype=directory\ndirectory=${fx.source}\nunion-type=overlay\n`);
});
test.after.always(() => {
  if (fx) destroyFixture(fx.tmp);
});

maybe(`the first call starts the supervisor on the socket it is passed, which serves it and leaves the socket to its owner${why ? ` (skipped: ${why})` : ''}`, async (t) => {
  mkdirSync(env.stateDir, { mode: 0o711 });
  const sock = join(env.stateDir, 'supervisor.sock');
  const act = spawn(ACTIVATE!, ['-l', sock, '-E', `WARDEN_CONFIG=${env.config}`, '-E', `WARDEN_STATE_DIR=${env.stateDir}`, process.execPath, WARDEN, 'supervise'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  act.stderr!.setEncoding('utf8').on('data', (d: string) => (log += d));
  const exited = new Promise<number | null>((resolve) => act.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    act.kill('SIGKILL');
    rmSync(sock, { force: true });
  });
  // Listening, not just bound: a connect between its bind and its listen is refused (and the relay
  // would then hand the call to the Node CLI, which reads this checkout's configuration).
  await until(() => /Listening on /.test(log), 'the socket listening');
  t.true(statSync(sock).isSocket());
  const relayEnv = { PATH: '/usr/bin:/bin', WARDEN_STATE_DIR: env.stateDir };
  const b = spawnSync(RELAY, ['begin', '-c', 'fx'], { env: relayEnv, encoding: 'utf8', timeout: 60_000 });
  t.is(b.status, 0, `${b.stderr}\n${log}`);
  const id = b.stdout.trim();
  t.regex(id, /^fx-/);
  await until(() => /supervising /.test(log), 'the supervisor logged its start');
  t.regex(log, new RegExp(`supervising ${env.stateDir} \\(pid ${act.pid}`), 'started in place by the activation, once');
  const r = spawnSync(RELAY, ['run', '-s', id, '--', '/bin/echo', 'served'], { env: relayEnv, encoding: 'utf8' });
  t.is(r.stdout, 'served\n', r.stderr);
  t.is(spawnSync(RELAY, ['end', '-s', id], { env: relayEnv, encoding: 'utf8' }).status, 0);
  act.kill('SIGTERM');
  t.is(await exited, 0, log);
  t.true(existsSync(sock), 'the socket is systemd\'s: the supervisor leaves it');
});
