#!/usr/bin/python3
# Temporary recording wrapper diverted over /usr/bin/schroot: logs one JSON line
# per call to $LOG, then runs the real (setuid) schroot.distrib as a child.
# stdout is teed (and recorded) only for calls that run no command in the chroot
# (--info, -l, --begin-session, --end-session ...), so a command run in a session
# sees the caller's original fds unchanged.
import json, os, stat, sys, time, signal
REAL = '/usr/bin/schroot.distrib'
LOG = '/var/log/schroot-rec/calls.jsonl'
def ftype(fd):
    try:
        st = os.fstat(fd)
    except OSError:
        return {'type': 'closed'}
    m = st.st_mode
    if stat.S_ISCHR(m):
        t = 'tty' if os.isatty(fd) else 'chr'
    elif stat.S_ISFIFO(m): t = 'pipe'
    elif stat.S_ISREG(m): t = 'file'
    elif stat.S_ISSOCK(m): t = 'socket'
    elif stat.S_ISDIR(m): t = 'dir'
    else: t = 'other'
    try: target = os.readlink('/proc/self/fd/%d' % fd)
    except OSError: target = None
    return {'type': t, 'target': target}
argv = sys.argv[1:]
rec = {'t0': time.time(), 'argv': argv, 'cwd': os.getcwd(), 'uid': os.getuid(), 'euid': os.geteuid(),
       'gid': os.getgid(), 'ppid': os.getppid(),
       'parent': [a.decode('utf-8', 'replace')[:200] for a in open('/proc/%d/cmdline' % os.getppid(), 'rb').read().split(b'\0')[:6]],
       'env': {k: (v if len(v) <= 200 else v[:200] + '...[%d chars]' % len(v)) for k, v in sorted(os.environ.items())},
       'stdin': ftype(0), 'stdout': ftype(1), 'stderr': ftype(2)}
INFO = ('--info', '-i', '-l', '--list', '--begin-session', '-b', '--end-session', '-e',
        '--config', '--location', '-V', '--version', '--recover-session')
capture = '--' not in argv and any(a in INFO or a.startswith('--all') for a in argv)
start = time.monotonic()
if capture:
    r, w = os.pipe()
pid = os.fork()
if pid == 0:
    if capture:
        os.dup2(w, 1); os.close(r); os.close(w)
    os.execv(REAL, ['schroot'] + argv)
for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
    signal.signal(s, lambda n, f: os.kill(pid, n))
out = b''
if capture:
    os.close(w)
    while True:
        try:
            b = os.read(r, 65536)
        except InterruptedError:
            continue
        if not b: break
        out += b
        try: os.write(1, b)
        except OSError: pass
while True:
    try:
        _, st = os.waitpid(pid, 0); break
    except InterruptedError:
        continue
rec['duration_ms'] = round((time.monotonic() - start) * 1000, 1)
if os.WIFEXITED(st): rec['exit'] = os.WEXITSTATUS(st)
else: rec['signal'] = os.WTERMSIG(st)
if capture: rec['stdout_text'] = out.decode('utf-8', 'replace')
line = (json.dumps(rec, ensure_ascii=False) + '\n').encode()
fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
os.write(fd, line); os.close(fd)
if 'signal' in rec:
    signal.signal(rec['signal'], signal.SIG_DFL); os.kill(os.getpid(), rec['signal'])
sys.exit(rec.get('exit', 1))
