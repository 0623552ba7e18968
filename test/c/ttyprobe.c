/* What a command sees of its terminal, for test/security/run-as-user.test.ts.
 *   ttyprobe sti [noread]  print pid and fd 0's device, wait for a line,
 *                  push "injected\n" into fd 0 with TIOCSTI, print the
 *                  result and (unless noread) the line read back
 *   ttyprobe size  print the window size, then once more after SIGWINCH
 *   ttyprobe wait  print pid, read a line, exit 3
 * Each report is one line; "ready" means it waits for the test. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

static volatile sig_atomic_t winched;
static void on_winch(int sig) { (void)sig; winched = 1; }

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
  fprintf(stderr, "usage: ttyprobe sti|size|wait\n");
  return 2;
}
