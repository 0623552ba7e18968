// Holds a shared OFD lock on byte 0 (a session's liveness byte) of every
// file listed in argv[1] (one path a line), each through its own open file
// description, then prints "ready" and keeps them until stdin closes. One
// process for thousands of "active" sessions in bench/stale.ts.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: hold-many LIST\n");
    return 2;
  }
  FILE *list = fopen(argv[1], "r");
  if (!list) {
    printf("err open %s: %s\n", argv[1], strerror(errno));
    return 1;
  }
  size_t n = 0;
  char line[4096];
  while (fgets(line, sizeof line, list)) n++;
  rewind(list);
  // One fd per lock: raise the soft limit as far as the hard one allows.
  struct rlimit rl;
  getrlimit(RLIMIT_NOFILE, &rl);
  if (rl.rlim_cur < n + 64) {
    rl.rlim_cur = n + 64 < rl.rlim_max ? n + 64 : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  struct flock fl = {.l_type = F_RDLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};
  size_t held = 0;
  while (fgets(line, sizeof line, list)) {
    line[strcspn(line, "\n")] = 0;
    int fd = open(line, O_RDWR | O_CLOEXEC);
    if (fd < 0 || fcntl(fd, F_OFD_SETLK, &fl) != 0) {
      printf("err %s: %s\n", line, strerror(errno));
      fflush(stdout);
      return 1;
    }
    held++;
  }
  fclose(list);
  printf("ready\n");
  fflush(stdout);
  char buf[256];
  while (read(0, buf, sizeof buf) > 0) {
  }
  return 0;
}
