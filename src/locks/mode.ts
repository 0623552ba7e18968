// Which fcntl lock family this process uses: open-file-description locks
// (Linux >= 3.15) or process-associated POSIX locks. Decided once per process.
import { EINVAL, F_GETLK, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW, F_SETLK, F_SETLKW, F_WRLCK, encodeFlock, errno, native, strerror, FLOCK_SIZE } from './native.js';
import { LockUnsupportedError } from './errors.js';

export type LockMode = 'ofd' | 'posix';

export interface ModeCommands {
  mode: LockMode;
  getlk: number;
  setlk: number;
  setlkw: number;
}

const COMMANDS: Record<LockMode, ModeCommands> = {
  ofd: { mode: 'ofd', getlk: F_OFD_GETLK, setlk: F_OFD_SETLK, setlkw: F_OFD_SETLKW },
  posix: { mode: 'posix', getlk: F_GETLK, setlk: F_SETLK, setlkw: F_SETLKW },
};

let decided: ModeCommands | undefined;

/** The mode WARDEN_LOCK_MODE asks for, or 'auto'. Throws on a bad value. */
export function requestedMode(env: NodeJS.ProcessEnv = process.env): LockMode | 'auto' {
  const v = env.WARDEN_LOCK_MODE;
  if (v === undefined || v === '' || v === 'auto') return 'auto';
  if (v === 'ofd' || v === 'posix') return v;
  throw new LockUnsupportedError(`WARDEN_LOCK_MODE=${v} is not one of ofd, posix, auto`);
}

/**
 * Returns the commands of this process's lock mode, probing the kernel with
 * `fd` (any open regular file) the first time.
 *
 * The probe is a well-formed F_OFD_GETLK: SEEK_SET, l_pid = 0. The kernel
 * also answers EINVAL to an OFD request with l_pid != 0, so only a correct
 * request lets "EINVAL" mean "this kernel has no OFD locks".
 */
export function lockCommands(fd: number): ModeCommands {
  if (decided) return decided;
  const want = requestedMode();
  if (want === 'posix') return (decided = COMMANDS.posix);
  const buf = Buffer.alloc(FLOCK_SIZE);
  encodeFlock(buf, F_WRLCK, 0, 0);
  if (native().fcntl(fd, F_OFD_GETLK, buf) === 0) return (decided = COMMANDS.ofd);
  const e = errno();
  if (e !== EINVAL) throw new LockUnsupportedError(`probing for OFD locks failed: ${strerror(e)}`);
  if (want === 'ofd') throw new LockUnsupportedError('WARDEN_LOCK_MODE=ofd but this kernel has no open-file-description locks');
  return (decided = COMMANDS.posix);
}

