// koffi is loaded two ways (src/sys/koffi.ts): its native module directly,
// or through koffi's own entry when that is not possible. Both must give
// working locks: each case takes a real lock in a fresh process and checks
// that a second process sees it.
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

// Takes the lock, then asks python3 (a second process) whether it is free.
const script = `
import { lockPath } from ${JSON.stringify(join(SRC, 'locks', 'index.js'))};
import { koffiLoadedBy } from ${JSON.stringify(join(SRC, 'sys', 'koffi.js'))};
import { execFileSync } from 'node:child_process';
const path = process.argv[1];
const lock = await lockPath(path, 'exclusive', { fileMode: 0o600 });
const probe = "import fcntl,sys\\nf=open(sys.argv[1],'r+')\\ntry:\\n fcntl.lockf(f,fcntl.LOCK_SH|fcntl.LOCK_NB); print('free')\\nexcept OSError: print('taken')";
process.stdout.write(execFileSync('python3', ['-c', probe, path], { encoding: 'utf8' }));
lock.close();
process.stdout.write(execFileSync('python3', ['-c', probe, path], { encoding: 'utf8' }));
process.stdout.write(koffiLoadedBy() + '\\n');
`;

// This host is glibc Linux with koffi's prebuilt package installed, so the
// direct load is expected to be taken when it is allowed.
for (const [how, direct, by] of [['its native module directly', '1', 'direct'], ["koffi's own entry", '0', 'entry']] as const) {
  test(`locks work with koffi loaded through ${how}`, (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'warden-koffi-'));
    try {
      const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, join(dir, 'f')], {
        encoding: 'utf8',
        env: { ...process.env, WARDEN_KOFFI_DIRECT: direct },
      });
      t.is(out, `taken\nfree\n${by}\n`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
