// The system calls the CLI makes itself (src/sys, loaded with every call
// anyway): its terminal and the command's pty, _exit(2) and execve(2)
// through glibc, and the mounts `info` shows.
export { fromChildProcess, isTerminal, koffiLoadedBy, libc, mountsUnder, Pty, type Command, type PtySlave, type PtyStdio } from '../../sys/index.js';
