/* warden relay: the `warden` users call for run/begin/end/source/recover,
 * and `warden-schroot` (or `schroot`, by its name: argv[0]) for schroot's
 * command line, which it sends whole, as `schroot ARGS...`; state dir
 * from the environment or the default only (schroot has no --state-dir).
 *
 * It starts in ~1 ms where Node takes 60-125 ms. It decides nothing: it
 * hands its stdin/stdout/stderr, cwd, argv and environment to the root
 * supervisor, forwards the signals it gets, writes what it is told to write
 * and exits with the status it is sent. All parsing and authorization stay
 * in the supervisor (src/supervisor/relay-wire.ts is the other end).
 *
 * Wire protocol v1. Integers are little-endian u32.
 *   Socket: $WARDEN_STATE_DIR/supervisor.sock, but a leading
 *   `--state-dir DIR`/`--state-dir=DIR` wins over the environment, as in the
 *   Node CLI (src/config/context.ts), so both reach the same supervisor; with
 *   neither, /var/lib/warden/sessions/supervisor.sock.
 *   Request, one sendmsg with SCM_RIGHTS = {0, 1, 2}:
 *     "WRLY" version=1 N argc envc   (20 bytes), then N payload bytes:
 *     cwd\0 (getcwd, "/" if that fails), argv[1..argc]\0..., environ\0...
 *     N <= 1 MiB. argc >= 1 (argv[1] is the verb).
 *   Frames after it, both ways: type (1 byte), u32 length, payload.
 *     supervisor -> relay:
 *       'o' / 'e'  bytes for fd 1 / fd 2
 *       'T' [input(0|255), output(1|2), size(0|1|2)] + one fd (SCM_RIGHTS,
 *           on the frame's first byte): a pty master; at most one per run
 *       'X' u32 exit status 0-255
 *       'F' (empty) exec the Node CLI instead; only as the first frame
 *     relay -> supervisor:
 *       'S' u32 signo (SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGCONT)
 *   Any other type or length, an fd without a 'T', or a 'T' without an fd
 *   is a malformed reply: exit 125.
 * Choices the brief left open:
 *   - With WARDEN_RELAY_NO_FALLBACK set (non-empty, not "0") the relay never
 *     execs Node: it connects whatever the argv, and lets the supervisor
 *     judge it; an 'F' frame is then an error (exit 125).
 *   - WARDEN_CONFIG counts as set when non-empty (Node reads it so).
 *   - Stdin is put in raw mode only when it is a terminal; if stdin of a pty
 *     input hits EOF or an error, the relay stops reading it.
 *   - SIGTTIN/SIGTTOU keep their default action (blocking them would make a
 *     background read of the terminal fail with EIO instead of stopping).
 *   - Other fatal signals (SIGUSR1, SIGALRM, SIGSEGV, ...) restore the
 *     terminal, then kill the relay as they would have; ignored ones stay so.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#define MAX_PAYLOAD (1u << 20)
#define SYSTEM_STATE_DIR "/var/lib/warden/sessions"

extern char **environ;

static char **args;                 /* our argv, for the Node CLI */
/* Called as `schroot` or `warden-schroot`: schroot's command line, all of
 * it for the supervisor (its own --config, --help, -l ... included), sent
 * and handed to the Node CLI as the verb `schroot` followed by our argv. */
static int schrootMode;
static int noFallback;              /* WARDEN_RELAY_NO_FALLBACK */
static struct termios saved;        /* fd 0's modes before raw */
static volatile sig_atomic_t rawOn; /* read by the fatal-signal handler */
static int master = -1, input, outFd, sizeFd;
static sigset_t oldMask;
static struct sigaction oldPipe;

/* Puts fd 0 back as it was. TCSADRAIN: what we wrote is shown first. */
static void restore(void) {
  if (rawOn) tcsetattr(0, TCSADRAIN, &saved);
  rawOn = 0;
}

/* Restores the terminal and exits with one line on stderr. */
__attribute__((format(printf, 2, 3))) static _Noreturn void die(int status, const char *fmt, ...) {
  restore();
  char line[PATH_MAX + 300] = "warden: ";
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line + 8, sizeof line - 9, fmt, ap);
  va_end(ap);
  n = n < 0 ? 8 : n + 8 > (int)sizeof line - 2 ? (int)sizeof line - 2 : n + 8;
  line[n++] = '\n';
  /* One write: the line does not interleave with the command's output. */
  if (write(2, line, n) < 0) {
    /* stderr is gone: the status says it all. */
  }
  _exit(status);
}

/* Restores the terminal, then lets the signal do what it would have done.
 * SA_RESETHAND made its action the default and it is blocked in here, so it
 * lands when the handler returns. */
static void onFatal(int sig) {
  if (rawOn) tcsetattr(0, TCSADRAIN, &saved);
  raise(sig);
}

static void guardFatalSignals(void) {
  static const int sigs[] = {SIGALRM, SIGUSR1, SIGUSR2, SIGVTALRM, SIGPROF, SIGXCPU, SIGXFSZ, SIGIO,
                             SIGSYS, SIGABRT, SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSTKFLT};
  struct sigaction sa = {.sa_handler = onFatal, .sa_flags = SA_RESETHAND};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) {
    struct sigaction old;
    /* An ignored signal stays ignored: whoever ran us chose that. */
    if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL) sigaction(sigs[i], &sa, NULL);
  }
}

/* Becomes the Node CLI (dist/cli/warden.cjs beside dist/bin/warden), argv as given. */
static _Noreturn void fallBack(void) {
  if (noFallback) die(125, "the supervisor asked for the Node CLI, but WARDEN_RELAY_NO_FALLBACK is set");
  char self[PATH_MAX], cli[PATH_MAX + 32];
  /* realpath: a symlink such as /usr/bin/warden must lead to the install tree. */
  if (!realpath("/proc/self/exe", self)) die(125, "cannot resolve /proc/self/exe to find the Node CLI");
  char *slash = strrchr(self, '/');
  *slash = 0;
  snprintf(cli, sizeof cli, "%s/../cli/warden.cjs", self);
  /* Signal mask and SIGPIPE survive execve: give Node what we got. */
  sigprocmask(SIG_SETMASK, &oldMask, NULL);
  sigaction(SIGPIPE, &oldPipe, NULL);
  if (schrootMode) {
    /* warden schroot ARGS...: argv[0] stays, the verb goes in front of the rest. */
    int n = 0;
    while (args[n]) n++;
    char **v = calloc((size_t)n + 2, sizeof *v);
    if (!v) die(125, "out of memory");
    v[0] = args[0];
    v[1] = "schroot";
    for (int k = 1; k < n; k++) v[k + 1] = args[k];
    execv(cli, v);
  }
  execv(cli, args);
  die(125, "cannot run the Node CLI %s: %s", cli, strerror(errno));
}

/* Writes all of buf; EINTR retried, a non-blocking fd waited for, EPIPE and
 * other errors drop the rest (the reader is gone; not our failure). */
static void writeAll(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n > 0) {
      buf += n;
      len -= n;
    } else if (n < 0 && errno == EAGAIN) {
      /* The fd's open file is shared and someone made it O_NONBLOCK. */
      struct pollfd p = {.fd = fd, .events = POLLOUT};
      poll(&p, 1, -1);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      return;
    }
  }
}

static void put32(unsigned char *p, uint32_t v) {
  p[0] = v, p[1] = v >> 8, p[2] = v >> 16, p[3] = v >> 24;
}

static uint32_t get32(const unsigned char *p) {
  return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void sendSignal(int sock, int signo) {
  unsigned char f[9] = {'S'};
  put32(f + 1, 4);
  put32(f + 5, signo);
  /* A failure means the supervisor is gone: the socket's EOF reports that. */
  if (send(sock, f, sizeof f, MSG_NOSIGNAL) < 0) return;
}

static void copyWindowSize(void) {
  struct winsize ws;
  if (master >= 0 && ioctl(sizeFd, TIOCGWINSZ, &ws) == 0) ioctl(master, TIOCSWINSZ, &ws);
}

static void makeRaw(void) {
  if (master < 0 || !input || !isatty(0) || tcgetattr(0, &saved) != 0) return;
  struct termios raw = saved;
  cfmakeraw(&raw);
  guardFatalSignals();
  rawOn = 1; /* before the change: a signal between must restore it */
  if (tcsetattr(0, TCSADRAIN, &raw) != 0) rawOn = 0;
}

/* Copies what the master has to outFd: the bytes read; 0 at its end (EOF,
 * or EIO: no one holds the slave any more); -1 when there is nothing now. */
static ssize_t pumpMaster(void) {
  char buf[16384];
  ssize_t n = read(master, buf, sizeof buf);
  if (n > 0) writeAll(outFd, buf, n);
  return n >= 0 ? n : errno == EINTR || errno == EAGAIN ? -1 : 0;
}

/* The command ended: show the rest of its output, then leave. Stops early
 * when the pty has been silent for 100 ms: a background process may hold
 * the slave open for ever. One end is read past: as the last slave fd
 * closes, read can return 0 before the last output (see sessions/terminal.ts). */
static _Noreturn void finish(uint32_t status) {
  struct pollfd p = {.fd = master, .events = POLLIN};
  for (int ends = 0; master >= 0 && ends < 2 && poll(&p, 1, 100) > 0;)
    if (pumpMaster() == 0) ends++;
  restore();
  _exit(status);
}

/* Sends the whole request: one sendmsg carrying fds 0-2, then the rest of
 * a short send with plain send (the fds must go exactly once). */
static void sendRequest(int sock, const char *buf, size_t len) {
  int fds[3] = {0, 1, 2};
  union {
    struct cmsghdr h;
    char space[CMSG_SPACE(sizeof fds)];
  } ctl;
  memset(&ctl, 0, sizeof ctl);
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  ssize_t n;
  while ((n = sendmsg(sock, &m, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
  }
  while (n >= 0 && (size_t)n < len) {
    buf += n, len -= n;
    while ((n = send(sock, buf, len, MSG_NOSIGNAL)) < 0 && errno == EINTR) {
    }
  }
  if (n < 0) die(125, "the supervisor went away before the command finished");
}

static int isVerb(const char *s) {
  static const char *const verbs[] = {"run", "begin", "end", "source", "recover"};
  for (size_t i = 0; s && i < sizeof verbs / sizeof *verbs; i++)
    if (strcmp(s, verbs[i]) == 0) return 1;
  return 0;
}

/* Whether the Node CLI must handle this call: options the relay cannot
 * honour (a config file, another state dir, help) or a verb it does not serve. */
static int needsNode(int i, int argc, char **argv, int stateDirGiven) {
  const char *v;
  if (!isVerb(argv[i])) return 1;
  if (((v = getenv("WARDEN_NO_SUPERVISOR")) && *v) || ((v = getenv("WARDEN_CONFIG")) && *v)) return 1;
  /* Node would read ./etc/warden.conf, which may name another state dir. */
  if (!stateDirGiven && access("etc/warden.conf", F_OK) == 0) return 1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    const char *a = argv[i];
    if (!strcmp(a, "--no-supervisor") || !strcmp(a, "--help") || !strcmp(a, "-h") || !strncmp(a, "--config", 8) ||
        !strncmp(a, "--state-dir", 11))
      return 1;
  }
  return 0;
}

int main(int argc, char **argv) {
  args = argv;
  /* A closed 0-2 would be reused by the socket, and then handed to the
   * supervisor as our stdout. */
  for (int fd = 0; fd < 3; fd++)
    if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) != fd) _exit(125);
  if (getuid() != geteuid() || getgid() != getegid())
    die(125, "refusing to run set-user-ID or set-group-ID: the relay must not be installed so");
  const char *v = getenv("WARDEN_RELAY_NO_FALLBACK");
  noFallback = v && *v && strcmp(v, "0") != 0;
  sigprocmask(SIG_SETMASK, NULL, &oldMask);
  sigaction(SIGPIPE, NULL, &oldPipe);
  const char *base = strrchr(argv[0], '/');
  base = base ? base + 1 : argv[0];
  schrootMode = strcmp(base, "schroot") == 0 || strcmp(base, "warden-schroot") == 0;

  /* Leading --state-dir options, then the verb. */
  const char *stateDir = NULL;
  int i = 1;
  for (; !schrootMode;) {
    if (i + 1 < argc && strcmp(argv[i], "--state-dir") == 0) {
      stateDir = argv[i + 1];
      i += 2;
    } else if (i < argc && strncmp(argv[i], "--state-dir=", 12) == 0) {
      stateDir = argv[i] + 12;
      i++;
    } else {
      break;
    }
  }
  if (!stateDir || !*stateDir) stateDir = getenv("WARDEN_STATE_DIR");
  int stateDirGiven = stateDir && *stateDir;
  if (!stateDirGiven) stateDir = SYSTEM_STATE_DIR;
  const char *verb = schrootMode ? "schroot" : i < argc ? argv[i] : NULL;
  if (schrootMode) {
    if (!noFallback && (v = getenv("WARDEN_NO_SUPERVISOR")) && *v) fallBack();
  } else if (!noFallback && needsNode(i, argc, argv, stateDirGiven)) {
    fallBack();
  }
  /* Only reachable with no fallback: a request needs a verb (argc >= 1). */
  if (!verb) die(1, "no verb given");

  /* The request, built before connecting so that a refusal costs no connection. */
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) strcpy(cwd, "/");
  size_t envc = 0, payload = strlen(cwd) + 1;
  for (int a = 1; a < argc; a++) payload += strlen(argv[a]) + 1;
  if (schrootMode) payload += sizeof "schroot";
  for (char **e = environ; *e; e++, envc++) payload += strlen(*e) + 1;
  if (payload > MAX_PAYLOAD) die(125, "argument list and environment too long (%zu bytes, at most %u)", payload, MAX_PAYLOAD);
  char *req = malloc(20 + payload), *p = req + 20;
  if (!req) die(125, "out of memory");
  memcpy(req, "WRLY", 4);
  put32((unsigned char *)req + 4, 1);
  put32((unsigned char *)req + 8, payload);
  put32((unsigned char *)req + 12, argc - 1 + schrootMode);
  put32((unsigned char *)req + 16, envc);
  p = stpcpy(p, cwd) + 1;
  if (schrootMode) p = stpcpy(p, "schroot") + 1;
  for (int a = 1; a < argc; a++) p = stpcpy(p, argv[a]) + 1;
  for (char **e = environ; *e; e++) p = stpcpy(p, *e) + 1;

  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  int n = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/supervisor.sock", stateDir);
  if (n < 0 || (size_t)n >= sizeof addr.sun_path) die(125, "the socket path %s/supervisor.sock is too long for a unix socket", stateDir);
  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0 || connect(sock, (struct sockaddr *)&addr, sizeof addr) != 0) {
    int err = errno;
    if (!noFallback && (err == ENOENT || err == ECONNREFUSED || err == EACCES || err == ENOTDIR)) fallBack();
    int status = !schrootMode && verb && (!strcmp(verb, "run") || !strcmp(verb, "source") || !strcmp(verb, "recover")) ? 125 : 1;
    die(status, "no supervisor runs for %s (%s: %s); start it with `systemctl start warden.socket`, or as root `warden supervise`",
        stateDir, addr.sun_path, strerror(err));
  }

  /* From here on the signals we forward arrive as data, never interrupting a write. */
  sigset_t mask;
  sigemptyset(&mask);
  int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGTSTP, SIGCONT, SIGWINCH};
  for (size_t s = 0; s < sizeof forwarded / sizeof *forwarded; s++) sigaddset(&mask, forwarded[s]);
  sigprocmask(SIG_BLOCK, &mask, NULL);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC);
  if (sfd < 0) die(125, "signalfd failed");
  /* A caller that closed its end of our stdout must not kill us mid-run. */
  signal(SIGPIPE, SIG_IGN);
  sendRequest(sock, req, 20 + payload);
  free(req);

  unsigned char hdr[5];
  size_t have = 0;       /* bytes of hdr read */
  uint32_t left = 0;     /* payload bytes of the current frame still to come */
  unsigned char small[4]; /* payload of T and X */
  int frames = 0, pendingFd = -1, stdinOpen = 1, masterOpen = 1;
  char buf[65536];
  for (;;) {
    struct pollfd pf[4] = {{.fd = sock, .events = POLLIN}, {.fd = sfd, .events = POLLIN}, {.fd = -1}, {.fd = -1}};
    if (master >= 0 && input && stdinOpen) pf[2] = (struct pollfd){.fd = 0, .events = POLLIN};
    if (master >= 0 && masterOpen) pf[3] = (struct pollfd){.fd = master, .events = POLLIN};
    if (poll(pf, 4, -1) < 0) {
      if (errno == EINTR) continue;
      die(125, "poll failed");
    }
    if (pf[1].revents) {
      struct signalfd_siginfo si;
      if (read(sfd, &si, sizeof si) == sizeof si) {
        int sig = si.ssi_signo;
        if (sig == SIGWINCH) {
          copyWindowSize();
        } else if (sig == SIGTSTP) {
          /* Stop as a terminal program does: leave the terminal usable first. */
          restore();
          sendSignal(sock, sig);
          kill(getpid(), SIGSTOP);
        } else {
          sendSignal(sock, sig);
          if (sig == SIGCONT) {
            makeRaw();
            copyWindowSize();
          }
        }
      }
    }
    if (pf[2].revents) {
      ssize_t r = read(0, buf, sizeof buf);
      if (r > 0) writeAll(master, buf, r);
      else if (r == 0 || (errno != EINTR && errno != EAGAIN)) stdinOpen = 0;
    }
    if (pf[3].revents) masterOpen = pumpMaster() != 0;
    if (!pf[0].revents) continue;

    /* Every socket read is a recvmsg: a 'T' frame's fd may come at any time.
     * Never past the current header or small payload, so that an fd is
     * attributed to the frame it came with. */
    size_t want = have < 5 ? 5 - have : hdr[0] == 'o' || hdr[0] == 'e' ? (left < sizeof buf ? left : sizeof buf) : left;
    unsigned char *into = have < 5 ? hdr + have : (hdr[0] == 'o' || hdr[0] == 'e') ? (unsigned char *)buf : small + (have - 5);
    union {
      struct cmsghdr h;
      char space[CMSG_SPACE(sizeof(int) * 4)];
    } ctl;
    struct iovec iov = {.iov_base = into, .iov_len = want};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.space, .msg_controllen = sizeof ctl.space};
    ssize_t r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    if (r < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (r <= 0) die(125, "the supervisor went away before the command finished");
    if (m.msg_flags & MSG_CTRUNC) die(125, "malformed reply from the supervisor");
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) die(125, "malformed reply from the supervisor");
      /* Exactly one fd, only with a 'T' header's first byte, only once. */
      if (c->cmsg_len != CMSG_LEN(sizeof(int)) || have != 0 || hdr[0] != 'T' || pendingFd >= 0 || master >= 0)
        die(125, "malformed reply from the supervisor");
      memcpy(&pendingFd, CMSG_DATA(c), sizeof(int));
    }
    if (have < 5) {
      have += r;
      if (have < 5) continue;
      left = get32(hdr + 1);
      int t = hdr[0];
      if (!(t == 'o' || t == 'e' || (t == 'T' && left == 3) || (t == 'X' && left == 4) || (t == 'F' && left == 0)) ||
          (t == 'F' && frames != 0) || (t != 'T' && pendingFd >= 0))
        die(125, "malformed reply from the supervisor");
    } else if (hdr[0] == 'o' || hdr[0] == 'e') {
      writeAll(hdr[0] == 'o' ? 1 : 2, buf, r);
      left -= r;
    } else {
      have += r;
      left -= r;
    }
    if (left > 0) continue;
    /* A whole frame. */
    frames++;
    if (hdr[0] == 'F') {
      close(sock);
      close(sfd);
      fallBack();
    } else if (hdr[0] == 'X') {
      uint32_t status = get32(small);
      if (status > 255) die(125, "malformed reply from the supervisor");
      finish(status);
    } else if (hdr[0] == 'T') {
      if (pendingFd < 0 || (small[0] != 0 && small[0] != 255) || (small[1] != 1 && small[1] != 2) || small[2] > 2)
        die(125, "malformed reply from the supervisor");
      master = pendingFd, pendingFd = -1;
      input = small[0] == 0, outFd = small[1], sizeFd = small[2];
      copyWindowSize();
      makeRaw();
    }
    have = 0;
  }
}
