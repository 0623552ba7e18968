/* The external process of the lock benchmarks: holds (or waits for) OFD
 * locks on a set of files, driven one command per stdin line.
 *
 * usage: lockctl PATH...
 * Opens every PATH (O_RDWR|O_CREAT), prints "ready", then answers each
 * command with one line on stdout (except "drop"):
 *   lock N     F_OFD_SETLKW exclusive on files 0..N-1            -> "ok"
 *   unlock N   unlock files 0..N-1                               -> "<t>"
 *   drop N     unlock files 0..N-1, answering nothing            (no reply)
 *   stamp      the <t> of the last unlock or drop                -> "<t>"
 *   wait       F_OFD_SETLKW exclusive on file 0                  -> "<t>"
 *   quit       exit (the kernel drops every lock with the fds)
 * <t> is CLOCK_MONOTONIC in nanoseconds: for unlock/drop read immediately
 * before the first unlock fcntl, for wait read immediately after the blocking
 * fcntl returns. Node's process.hrtime.bigint() reads the same clock on Linux,
 * so the two are directly comparable.
 *
 * "drop" exists for the wake-up latency trials: a reply written right after
 * the unlock would have the waiting process read a pipe in the middle of the
 * very wake-up being timed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int *fds;
static int nfds;

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int setlk(int fd, int cmd, short type) {
  struct flock fl;
  memset(&fl, 0, sizeof fl); /* whole file; l_pid 0 as OFD requires */
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  for (;;) {
    if (fcntl(fd, cmd, &fl) == 0) return 0;
    if (errno != EINTR) return -1;
  }
}

static void die(const char *what) {
  printf("err %s: %s\n", what, strerror(errno));
  exit(1);
}

static int count(int n) {
  if (n < 0 || n > nfds) {
    printf("err count %d out of 0..%d\n", n, nfds);
    exit(2);
  }
  return n;
}

static long long unlock_first(int n) {
  long long t = now_ns();
  for (int i = 0; i < n; i++)
    if (setlk(fds[i], F_OFD_SETLK, F_UNLCK) != 0) die("unlock");
  return t;
}

int main(int argc, char **argv) {
  nfds = argc - 1;
  if (nfds < 1) {
    fprintf(stderr, "usage: lockctl PATH...\n");
    return 2;
  }
  fds = calloc((size_t)nfds, sizeof *fds);
  for (int i = 0; i < nfds; i++) {
    fds[i] = open(argv[i + 1], O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fds[i] < 0) {
      perror(argv[i + 1]);
      return 1;
    }
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");

  char line[128];
  int n;
  long long last = 0;
  while (fgets(line, sizeof line, stdin)) {
    if (sscanf(line, "lock %d", &n) == 1) {
      for (int i = 0; i < count(n); i++)
        if (setlk(fds[i], F_OFD_SETLKW, F_WRLCK) != 0) die("lock");
      printf("ok\n");
    } else if (sscanf(line, "unlock %d", &n) == 1) {
      last = unlock_first(count(n));
      printf("%lld\n", last);
    } else if (sscanf(line, "drop %d", &n) == 1) {
      last = unlock_first(count(n));
    } else if (strncmp(line, "stamp", 5) == 0) {
      printf("%lld\n", last);
    } else if (strncmp(line, "wait", 4) == 0) {
      if (setlk(fds[0], F_OFD_SETLKW, F_WRLCK) != 0) die("wait");
      long long t = now_ns();
      printf("%lld\n", t);
    } else if (strncmp(line, "quit", 4) == 0) {
      break;
    } else {
      printf("err unknown command\n");
    }
  }
  return 0;
}
