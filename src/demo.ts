// `npm run demo`: builds the demo chroot from host binaries and runs a shell
// in it the way every session holder will: with a shared lock on the
// source's .ref that the command inherits (WARDEN_LOCK_FDS), so that an
// exclusive source entry cannot start while it runs. Sessions with overlay
// mounts (`warden run -c demo`) replace this with issue 3.
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { bootstrapChroot, SOURCE_LOCK } from './bootstrap/index.js';
import { FileLock, LockBusyError, describeHolders, lockPath, shutdownWaitPool } from './locks/index.js';

const DEMO_DIR = process.argv[2] ?? '/var/lib/warden/demo';

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('warden demo: chroot needs root: run it as root\n');
    return 8;
  }
  const built = await bootstrapChroot(DEMO_DIR);
  process.stdout.write(`built ${built.dir} in ${built.ms.toFixed(0)} ms: ${built.tools.length} tools, ${built.libraries.length} libraries\n`);

  const ref = join(DEMO_DIR, SOURCE_LOCK);
  const source = await lockPath(ref, 'shared', { timeout: 10_000 });
  try {
    const script = 'echo "inside: $(cat /etc/hostname), uid $(id -u), lock fds $WARDEN_LOCK_FDS"; ls /; sleep 1';
    const child = spawn('chroot', [DEMO_DIR, '/bin/sh', '-c', script], {
      // fd 3 in the child is a copy of our lock fd: the same open file
      // description, so the shell holds the shared lock too.
      stdio: ['inherit', 'inherit', 'inherit', source.fd],
      env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', WARDEN_LOCK_FDS: '3' },
    });
    await new Promise((resolve, reject) => {
      child.once('spawn', resolve);
      child.once('error', (e) => reject(new Error(`cannot start chroot(8): ${e.message}`)));
    });
    process.stdout.write(`source lock ${ref}: ${describeHolders(source.holders())}\n`);
    // What a source entry would try: it must not get in while the shell runs.
    const entry = FileLock.open(ref);
    try {
      await entry.acquire('exclusive', { wait: false });
      process.stdout.write('BUG: exclusive source lock granted while a holder runs\n');
      return 1;
    } catch (e) {
      if (!(e instanceof LockBusyError)) throw e;
      process.stdout.write(`exclusive entry refused, as it must be: ${e.message}\n`);
    } finally {
      entry.close();
    }
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.once('exit', (c, s) => r([c, s])));
    return code ?? 128 + (signal ? (await import('node:os')).constants.signals[signal] : 0);
  } finally {
    source.close();
    await shutdownWaitPool();
  }
}

main().then(
  (code) => process.exit(code),
  (e: Error) => {
    process.stderr.write(`warden demo: ${e.message}\n`);
    process.exit(1);
  },
);
