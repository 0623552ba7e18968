// The directories and /etc files a minimal chroot needs, beyond its programs.
import type { ChrootTree } from './tree.js';

/** The host's top-level links (merged /usr) are recreated as they are: scripts name /bin/sh, the kernel /lib64/ld-*.so. */
const HOST_TOP_LEVEL = ['/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

// Mount points of warden's default hooks (/proc, /sys, /dev, /dev/pts) and
// the directories programs expect. Modes are set exactly, not by umask.
const DIRS: [string, number][] = [
  ['/proc', 0o555],
  ['/sys', 0o555],
  ['/dev', 0o755],
  ['/dev/pts', 0o755],
  ['/etc', 0o755],
  ['/root', 0o700],
  ['/home', 0o755],
  ['/run', 0o755],
  ['/tmp', 0o1777],
  ['/var/tmp', 0o1777],
];

const HOSTNAME = 'warden-demo';

const FILES: [string, string][] = [
  ['/etc/passwd', 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n'],
  ['/etc/group', 'root:x:0:\nnogroup:x:65534:\n'],
  // Only the files backend exists in here (glibc has it built in since 2.34; older ones get libnss_files copied).
  ['/etc/nsswitch.conf', 'passwd: files\ngroup: files\nshadow: files\nhosts: files\n'],
  ['/etc/hostname', `${HOSTNAME}\n`],
  // Empty on purpose: warden's default hooks copy the host's into each session.
  ['/etc/resolv.conf', ''],
  ['/etc/hosts', ''],
  [
    '/etc/os-release',
    [
      'NAME="warden demo"',
      'PRETTY_NAME="warden demo chroot"',
      'ID=warden-demo',
      'VERSION_ID="1"',
      'VARIANT="minimal chroot built by warden bootstrap from host binaries"',
      '',
    ].join('\n'),
  ],
];

export function writeSkeleton(tree: ChrootTree): void {
  for (const top of HOST_TOP_LEVEL) tree.mirror(top);
  for (const [path, mode] of DIRS) tree.dir(path, mode);
  for (const [path, content] of FILES) tree.write(path, content, 0o644);
}
