// `npm run demo`: the main job on the embedded demo chroot, through the
// real CLI. Builds /var/lib/warden/demo from host binaries (no download),
// begins an automatic overlay session with `warden run -c demo`, and while
// the command runs inside it shows, from outside, the session and the
// locks that keep it alive, and that an exclusive source entry is refused
// while the session holds the source; then shows that the write made
// inside the session never reached the source, and enters the source once
// the session has ended.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WARDEN = join(REPO, 'dist', 'cli', 'warden.cjs');
const DEMO_DIR = '/var/lib/warden/demo';

function warden(args: string[], shown = args.join(' ')): number {
  process.stdout.write(`\n$ warden ${shown}\n`);
  return spawnSync(process.execPath, [WARDEN, ...args], { stdio: 'inherit', cwd: REPO }).status ?? 1;
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('warden demo: mounting and chroot need root: run it as root\n');
    return 8;
  }
  if (warden(['bootstrap', DEMO_DIR]) !== 0) return 1;
  const script = [
    'echo "inside session $WARDEN_SESSION_ID: $(cat /etc/hostname), uid $(id -u), lock fds $WARDEN_LOCK_FDS"',
    'echo "written in the session" > /etc/demo-note && cat /etc/demo-note',
    'echo ready',
    'read _',
  ].join('; ');
  const args = ['run', '-c', 'demo', '--', '/bin/sh', '-c', script];
  process.stdout.write(`\n$ warden ${args.slice(0, 4).join(' ')} /bin/sh -c '...'\n`);
  const child = spawn(process.execPath, [WARDEN, ...args], { stdio: ['pipe', 'pipe', 'inherit'], cwd: REPO });
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    process.stdout.write(`  | ${line}\n`);
    if (line === 'ready') break;
  }
  // The session is up and its command is waiting for us: look at it from outside.
  warden(['list', '--sessions']);
  warden(['locks']);
  const refused = warden(['source', '-c', 'demo', '--no-wait', '--', 'true']);
  process.stdout.write(`(exit ${refused}: the session holds the source, so changing it now is refused)\n`);
  child.stdin.end('\n');
  const status = await new Promise<number>((r) => child.once('exit', (c) => r(c ?? 1)));
  process.stdout.write(`\nsession ended with status ${status}; the source has /etc/demo-note: ${existsSync(join(DEMO_DIR, 'etc/demo-note'))}\n`);
  warden(['list', '--sessions']);
  const entered = warden(['source', '-c', 'demo', '--', '/bin/sh', '-c', 'echo "in the source itself, alone: $(ls /etc | wc -l) files in /etc"'], "source -c demo -- /bin/sh -c '...'");
  return status || entered;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`warden demo: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
