// `npm run demo`: the main job on the embedded demo chroot, through the
// real CLI. Builds /var/lib/warden/demo from host binaries (no download),
// begins an automatic overlay session with `warden run -c demo`, and while
// the command runs inside it shows, from outside, the session and the
// locks that keep it alive; then shows that the write made inside the
// session never reached the source.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPO = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const WARDEN = join(REPO, 'dist', 'cli', 'warden.cjs');
const DEMO_DIR = '/var/lib/warden/demo';

function warden(args: string[]): number {
  process.stdout.write(`\n$ warden ${args.join(' ')}\n`);
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
  child.stdin.end('\n');
  const status = await new Promise<number>((r) => child.once('exit', (c) => r(c ?? 1)));
  process.stdout.write(`\nsession ended with status ${status}; the source has /etc/demo-note: ${existsSync(join(DEMO_DIR, 'etc/demo-note'))}\n`);
  warden(['list', '--sessions']);
  return status;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`warden demo: ${(e as Error).message}\n`);
    process.exit(1);
  },
);
