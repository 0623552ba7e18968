/* The attacker of warden's removal tests (test/security/removal.test.ts):
 * swaps a directory that a deleting walk is inside for a symbolic link to a
 * directory outside, as fast as it can, until it gets SIGTERM.
 *
 * usage: racer DIR MATCH SUB TARGET STASH
 * Each round lists DIR and, for every entry whose name contains MATCH (a
 * session's id matches both `<id>` and the `.gone-<id>.*` that end renames
 * it to), takes P = DIR/<entry>/SUB and does
 *   rename(P, STASH); symlink(TARGET, P); spin; unlink(P); rename(STASH, P); spin
 * ignoring every failure (the walk deletes what it races with). STASH is
 * outside the tree (same filesystem), so the walk never meets the directory
 * under another name: only P, a directory or a link. It keeps no fd, cwd
 * or root inside DIR between calls, and puts P back before it exits. Prints "ready" after its first round,
 * and at SIGTERM the number of rounds in which the link was put in place,
 * then exits 0.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: racer DIR MATCH SUB TARGET STASH\n");
    return 2;
  }
  const char *dir = argv[1], *match = argv[2], *sub = argv[3], *target = argv[4], *stash = argv[5];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_term;
  sigaction(SIGTERM, &sa, NULL);
  setvbuf(stdout, NULL, _IONBF, 0);
  unsigned long swaps = 0;
  int announced = 0;
  char path[4096], moved[4200];
  while (!stop) {
    DIR *d = opendir(dir);
    if (!d) {
      if (!announced) printf("ready\n");
      announced = 1;
      continue;
    }
    char names[16][256];
    int n = 0;
    for (struct dirent *e; n < 16 && (e = readdir(d));)
      if (strstr(e->d_name, match)) snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    for (int i = 0; i < n; i++) {
      if (snprintf(path, sizeof path, "%s/%s/%s", dir, names[i], sub) >= (int)sizeof path) continue;
      if (snprintf(moved, sizeof moved, "%s.%d", stash, i) >= (int)sizeof moved) continue;
      /* Many swaps per listing: the walk spends its time inside SUB. */
      for (int k = 0; k < 64 && !stop; k++) {
        if (rename(path, moved) != 0) break;
        if (symlink(target, path) == 0) {
          swaps++;
          for (volatile int spin = 0; spin < 20000; spin++) {
          }
          unlink(path);
        }
        rename(moved, path);
        /* As long with the directory in place: the walk must get into it
         * (and list it) before the link is worth anything. */
        for (volatile int spin = 0; spin < 20000; spin++) {
        }
      }
    }
    /* After a whole round, so that the walk starts against a racer that is
     * already on a CPU and swapping (not one still being scheduled). */
    if (!announced) {
      printf("ready\n");
      announced = 1;
    }
  }
  printf("%lu\n", swaps);
  return 0;
}
