// Throwaway unprivileged users for the security tests: created with
// useradd(8) by the test that needs one, removed with userdel(8) in its
// teardown, so nothing is left in /etc/passwd or /etc/group.
import { spawnSync } from 'node:child_process';
import type { ExecutionContext } from 'ava';

export interface TestUser {
  name: string;
  uid: number;
  gid: number;
}

let made = 0;

// shadow's tools take a lock on /etc/passwd and fail at once while another
// test process holds it (exit 1 "cannot lock /etc/passwd", 10 for
// /etc/group), and userdel refuses (8) while a just-killed process of the
// user is still exiting: ava runs two test files at a time, so retry briefly.
const RETRY = new Set([1, 8, 10]);

function shadow(cmd: string, args: string[]): void {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const r = spawnSync(cmd, args, { encoding: 'utf8' });
    if (r.status === 0) return;
    if (!RETRY.has(r.status ?? -1) || Date.now() > deadline) {
      throw new Error(`${cmd} ${args.join(' ')}: exit ${r.status}: ${r.stderr.trim()}`);
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  }
}

function ids(name: string): { uid: number; gid: number } {
  const r = spawnSync('id', [name], { encoding: 'utf8' });
  const m = /uid=(\d+).*gid=(\d+)/.exec(r.stdout);
  if (!m) throw new Error(`id ${name}: ${r.stderr.trim()}`);
  return { uid: Number(m[1]), gid: Number(m[2]) };
}

/**
 * A new user (and its own group) with /bin/sh, removed when the test ends.
 * `groups`: supplementary groups to add it to. `home`: give it a home
 * directory /home/NAME (made by useradd, removed by userdel --remove) for
 * tools that read their configuration there (sbuild's ~/.sbuildrc); by
 * default it has none (/nonexistent). Needs root.
 */
export function makeUser(t: ExecutionContext, { groups = [] as string[], home = false } = {}): TestUser & { home: string } {
  const name = `wdnt${process.pid % 100000}x${made++}`;
  const dir = home ? `/home/${name}` : '/nonexistent';
  const args = [home ? '--create-home' : '--no-create-home', '--home-dir', dir, '--shell', '/bin/sh', '--user-group'];
  if (groups.length > 0) args.push('--groups', groups.join(','));
  shadow('useradd', [...args, name]);
  t.teardown(() => removeUser(name, { home }));
  return { name, home: dir, ...ids(name) };
}

/** A new group removed when the test ends. */
export function makeGroup(t: ExecutionContext): { name: string; gid: number } {
  const name = `wdng${process.pid % 100000}x${made++}`;
  shadow('groupadd', [name]);
  t.teardown(() => shadow('groupdel', [name]));
  const r = spawnSync('getent', ['group', name], { encoding: 'utf8' });
  return { name, gid: Number(r.stdout.split(':')[2]) };
}

/**
 * Removes the user and its group (and its home directory, which useradd made
 * for it, with `home`); processes it left are killed first.
 */
export function removeUser(name: string, { home = false } = {}): void {
  spawnSync('pkill', ['-KILL', '-u', name]);
  shadow('userdel', home ? ['--remove', name] : [name]);
}
