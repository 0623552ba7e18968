// node:child_process, loaded on first use. Loading it pulls in net, stream
// and dgram: ~5 ms of a CLI call on these machines, paid only by the paths
// that start a process through Node (an executable hook, a copy union, a
// source entry's gated command, a supervisor), not by every begin or run.
import { createRequire } from 'node:module';

type ChildProcessModule = typeof import('node:child_process');

let loaded: ChildProcessModule | undefined;

export function childProcess(): ChildProcessModule {
  return (loaded ??= createRequire(import.meta.url)('node:child_process') as ChildProcessModule);
}
