// A non-root `warden run` that reached the Node CLI (the relay fell back:
// `--config`, `./etc/warden.conf`, no supervisor at the default place)
// cannot start its command itself: the locks and mounts are root's. Once
// the configuration has named the state dir, the CLI becomes the relay
// (execve(2), through koffi: Node 20 has no exec), told where the
// supervisor is and not to fall back again.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { libc } from '../api/internal/system.js';

const F_SETFD = 2;

/** dist/bin/warden beside this CLI (dist/cli/warden-main.cjs, or dist/src/cli when run unbundled). */
function relayPath(): string | undefined {
  for (const rel of ['../bin/warden', '../../bin/warden']) {
    const p = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(p)) return p;
  }
  return undefined;
}

/** Replaces this process with the relay for `argv` against the supervisor of `stateDir`; returns only if that fails. */
export function execRelay(stateDir: string, argv: readonly string[]): Error {
  const path = relayPath();
  if (path === undefined) return new Error('the relay (dist/bin/warden) is not built: run `npm run build`');
  const lib = libc();
  const fcntl = lib.func('int fcntl(int fd, int cmd, int arg)') as (fd: number, cmd: number, arg: number) => number;
  // Node marks its stdio close-on-exec; the relay must get them.
  for (const fd of [0, 1, 2]) fcntl(fd, F_SETFD, 0);
  const env = { ...process.env, WARDEN_STATE_DIR: stateDir, WARDEN_RELAY_NO_FALLBACK: '1' };
  const envp = [...Object.entries(env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`), null];
  const execve = lib.func('int execve(const char *path, const char **argv, const char **envp)') as (p: string, a: (string | null)[], e: (string | null)[]) => number;
  execve(path, ['warden', ...argv, null], envp);
  return new Error(`cannot execute the relay ${path}`);
}
