/* What a command sees of its terminal, for test/security/run-as-user.test.ts.
 *   ttyprobe sti [noread]  print pid and fd 0's device, wait for a line,
 *                  push "injected\n" into fd 0 with TIOCSTI, print the
 *                  result and (unless noread) the line read back
 *   ttyprobe size  print the window size, then once more after SIGWINCH
 *   ttyprobe wait  print pid, read a line, exit 3
 *   ttyprobe fds   print what each of fds 0-2 is: "ctty:RDEV" (the
 *                  controlling terminal), "tty:RDEV" (another terminal)
 *                  or "-", the line read from stdin when it is none, "end"
 *   ttyprobe leave read a line from stdin, leave a background process
 *                  (SIGHUP ignored) and wait for SIGUSR1; the background
 *                  process, on SIGUSR1, tries to read fds 0-2 and /dev/tty
 *                  (non-blocking) and reports on stderr what it got
 * Each report is one line; "ready" means it waits for the test. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t winched;
static void on_winch(int sig) { (void)sig; winched = 1; }

static volatile sig_atomic_t usr1;
static void on_usr1(int sig) { (void)sig; usr1 = 1; }

/* Waits for SIGUSR1 (blocked since `old` was saved). */
static void wait_usr1(const sigset_t *old) {
  while (!usr1) sigsuspend(old);
}

/* What a non-blocking read of fd got: "got:TEXT", "eof" or "errno:N". */
static void try_read(const char *name, int fd) {
  char buf[256];
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  ssize_t n = read(fd, buf, sizeof buf - 1);
  if (n > 0) {
    buf[n] = 0;
    for (ssize_t i = 0; i < n; i++) if (buf[i] == '\n' || buf[i] == '\r') buf[i] = '_';
    dprintf(2, "%s=got:%s\n", name, buf);
  } else if (n == 0) dprintf(2, "%s=eof\n", name);
  else dprintf(2, "%s=errno:%d\n", name, errno);
}

static void size(void) {
  struct winsize ws;
  if (ioctl(0, TIOCGWINSZ, &ws) != 0) printf("size=error %d\n", errno);
  else printf("size=%u %u\n", ws.ws_row, ws.ws_col);
  fflush(stdout);
}

int main(int argc, char **argv) {
  setvbuf(stdout, NULL, _IONBF, 0);
  const char *mode = argc > 1 ? argv[1] : "";
  char line[256];
  if (strcmp(mode, "sti") == 0) {
    struct stat st;
    fstat(0, &st);
    printf("pid=%d rdev=%lu\nready\n", (int)getpid(), (unsigned long)st.st_rdev);
    if (!fgets(line, sizeof line, stdin)) return 1;
    const char *s = "injected\n";
    int err = 0;
    for (const char *p = s; *p; p++)
      if (ioctl(0, TIOCSTI, p) != 0) { err = errno; break; }
    printf("sti=%d\n", err);
    if (err == 0 && !(argc > 2 && strcmp(argv[2], "noread") == 0) && fgets(line, sizeof line, stdin)) printf("read=%s", line);
    return 0;
  }
  if (strcmp(mode, "size") == 0) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGWINCH);
    sigprocmask(SIG_BLOCK, &block, &old);
    signal(SIGWINCH, on_winch);
    size();
    printf("ready\n");
    while (!winched) sigsuspend(&old);
    size();
    return 0;
  }
  if (strcmp(mode, "wait") == 0) {
    printf("pid=%d\nready\n", (int)getpid());
    if (fgets(line, sizeof line, stdin)) printf("read=%s", line);
    return 3;
  }
  if (strcmp(mode, "fds") == 0) {
    pid_t sid = getsid(0);
    for (int fd = 0; fd < 3; fd++) {
      struct stat st;
      pid_t of = -1;
      if (!isatty(fd)) printf("fd%d=- ", fd);
      else if (fstat(fd, &st) == 0)
        printf("fd%d=%s:%lu ", fd, ioctl(fd, TIOCGSID, &of) == 0 && of == sid ? "ctty" : "tty", (unsigned long)st.st_rdev);
    }
    printf("leader=%d\n", sid == getpid());
    if (!isatty(0) && fgets(line, sizeof line, stdin)) printf("read=%s", line);
    printf("end\n");
    return 0;
  }
  if (strcmp(mode, "leave") == 0) {
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGUSR1);
    sigprocmask(SIG_BLOCK, &block, &old);
    signal(SIGUSR1, on_usr1);
    if (fgets(line, sizeof line, stdin)) printf("read=%s", line);
    /* Ignored before the fork: a child not yet scheduled when the hangup
       comes (a loaded machine) would otherwise die of it. */
    signal(SIGHUP, SIG_IGN);
    pid_t bg = fork();
    if (bg < 0) return 1;
    if (bg == 0) {
      /* What an attacker's leftover would do: survive the hangup, then snoop. */
      wait_usr1(&old);
      try_read("fd0", 0);
      try_read("fd1", 1);
      try_read("fd2", 2);
      int tty = open("/dev/tty", O_RDWR | O_NOCTTY | O_NONBLOCK);
      if (tty < 0) dprintf(2, "devtty=errno:%d\n", errno);
      else try_read("devtty", tty);
      dprintf(2, "done\n");
      return 0;
    }
    signal(SIGHUP, SIG_DFL);
    printf("pid=%d bg=%d\nready\n", (int)getpid(), (int)bg);
    wait_usr1(&old);
    return 0;
  }
  fprintf(stderr, "usage: ttyprobe sti|size|wait|fds|leave\n");
  return 2;
}
