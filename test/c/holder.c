/* An external lock holder for warden's tests: a second real process.
 *
 * usage: holder PATH
 * Opens PATH (O_RDWR|O_CREAT) and then obeys one command per stdin line,
 * answering one line on stdout:
 *   lock FAMILY TYPE START LEN   FAMILY: ofd|posix|flock, TYPE: r|w
 *                                -> "ok" | "busy" | "err <errno>"
 *   wait FAMILY TYPE START LEN   same, blocking   -> "ok" | "err <errno>"
 *   unlock FAMILY START LEN      -> "ok" | "err <errno>"
 *   reopen                       close the fd and open PATH again -> "ok"
 *   pid                          -> "<pid>"
 * Exits at EOF (which drops every lock it holds). Prints "ready" first.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int fd = -1;
static const char *path;

static int do_lock(const char *fam, int type, long long start, long long len, int wait) {
  if (strcmp(fam, "flock") == 0) {
    int op = type == F_UNLCK ? LOCK_UN : type == F_RDLCK ? LOCK_SH : LOCK_EX;
    return flock(fd, op | (wait ? 0 : LOCK_NB));
  }
  struct flock fl;
  memset(&fl, 0, sizeof fl);
  fl.l_type = type;
  fl.l_whence = SEEK_SET;
  fl.l_start = start;
  fl.l_len = len;
  int ofd = strcmp(fam, "ofd") == 0;
  int cmd = ofd ? (wait ? F_OFD_SETLKW : F_OFD_SETLK) : (wait ? F_SETLKW : F_SETLK);
  return fcntl(fd, cmd, &fl);
}

int main(int argc, char **argv) {
  if (argc != 2) { fprintf(stderr, "usage: holder PATH\n"); return 2; }
  path = argv[1];
  fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) { perror(path); return 1; }
  setvbuf(stdout, NULL, _IOLBF, 0);
  printf("ready\n");
  char line[256], fam[16], t[4];
  long long start, len;
  while (fgets(line, sizeof line, stdin)) {
    int r;
    if (sscanf(line, "lock %15s %3s %lld %lld", fam, t, &start, &len) == 4 ||
        sscanf(line, "wait %15s %3s %lld %lld", fam, t, &start, &len) == 4) {
      int wait = line[0] == 'w';
      r = do_lock(fam, t[0] == 'r' ? F_RDLCK : F_WRLCK, start, len, wait);
      if (r == 0) printf("ok\n");
      else if (errno == EAGAIN || errno == EACCES || errno == EWOULDBLOCK) printf("busy\n");
      else printf("err %d\n", errno);
    } else if (sscanf(line, "unlock %15s %lld %lld", fam, &start, &len) == 3) {
      r = do_lock(fam, F_UNLCK, start, len, 0);
      if (r == 0) printf("ok\n"); else printf("err %d\n", errno);
    } else if (strncmp(line, "reopen", 6) == 0) {
      close(fd);
      fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
      printf(fd < 0 ? "err\n" : "ok\n");
    } else if (strncmp(line, "pid", 3) == 0) {
      printf("%d\n", (int)getpid());
    } else {
      printf("err bad-command\n");
    }
  }
  return 0;
}
