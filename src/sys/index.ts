// The bottom layer: the system calls and processes that several layers
// share. koffi and glibc (loaded on first use), posix_spawn with its SIGCHLD
// reaper and the child_process fallback, ptys, poll(2), mount(2) and the
// fd-relative directory calls, /proc/self/mountinfo, long timers, the
// ownership rule for files root trusts, and the crash points of the tests.
// It imports no other layer.
export { childProcess } from './child-process.js';
export { fromChildProcess, viaSetsid, type Command } from './child.js';
export { crashPoint } from './crash.js';
export { RunError, SessionError } from './errors.js';
export { koffi, koffiLoadedBy, libc } from './koffi.js';
export { canonicalPath, isMountPoint, mountsUnder, readMountInfo, unescapeOctal, type MountEntry } from './mountinfo.js';
export * from './native.js';
export { showPath } from './paths.js';
export { POLLERR, POLLHUP, POLLIN, POLLRDHUP, pollOne } from './poll.js';
export { copyWindowSize, isTerminal, Pty, type PtySlave, type PtyStdio, type RelayOptions } from './pty.js';
export { makePipe, startCommand, type StartOptions } from './spawn.js';
export { MAX_TIMER_MS, setLongTimeout } from './timer.js';
export { untrusted } from './trust.js';
