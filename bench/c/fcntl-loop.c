/* Baseline for the uncontended lock+unlock pair: the same two
 * fcntl(F_OFD_SETLK) syscalls that FileLock.tryAcquire() + release() make,
 * with nothing between them but a loop counter.
 *
 * usage: fcntl-loop PATH PAIRS [THREADS]
 * Opens PATH, optionally starts THREADS (0 or 1, default 0) idle threads,
 * runs PAIRS/10 untimed pairs (caches, page tables), then PAIRS timed pairs,
 * and prints the mean nanoseconds per pair. One round per run: the caller
 * interleaves rounds with the JavaScript ones so that all sides see the same
 * machine state.
 *
 * Why THREADS: the kernel's fdget() takes no reference on the struct file
 * when the calling process's file table is not shared, i.e. when it has a
 * single thread; otherwise every fcntl pays an atomic get and put on the
 * file's refcount (measured: ~1,550 ns per pair single-threaded against
 * ~1,710-1,840 ns with one idle thread). A Node process always has
 * several threads (libuv pool, V8 platform workers), so the like-for-like
 * baseline for Node is THREADS=1. The thread only has to exist: the table is
 * shared from the moment clone() returns, and it sleeps in pause() so that it
 * takes no CPU from the timed loop. Build with -pthread.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pairs(int fd, struct flock *lk, struct flock *un, long n) {
  for (long i = 0; i < n; i++) {
    /* Checked like the library checks them: a silent failure would time a
     * cheaper error path. */
    if (fcntl(fd, F_OFD_SETLK, lk) != 0 || fcntl(fd, F_OFD_SETLK, un) != 0) {
      perror("fcntl");
      exit(1);
    }
  }
}

static void *idle(void *arg) {
  (void)arg;
  for (;;) pause();
  return NULL;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc > 4) {
    fprintf(stderr, "usage: fcntl-loop PATH PAIRS [THREADS]\n");
    return 2;
  }
  long n = atol(argv[2]);
  int threads = argc == 4 ? atoi(argv[3]) : 0;
  if (threads < 0 || threads > 1) {
    fprintf(stderr, "fcntl-loop: THREADS must be 0 or 1\n");
    return 2;
  }
  int fd = open(argv[1], O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    perror(argv[1]);
    return 1;
  }
  if (threads == 1) {
    pthread_t t;
    int e = pthread_create(&t, NULL, idle, NULL);
    if (e != 0) {
      fprintf(stderr, "pthread_create: %s\n", strerror(e));
      return 1;
    }
    /* Never joined: exit() ends it with the process. */
  }
  /* Whole file, exclusive; l_pid must be 0 for OFD requests. */
  struct flock lk, un;
  memset(&lk, 0, sizeof lk);
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  un = lk;
  un.l_type = F_UNLCK;

  pairs(fd, &lk, &un, n / 10);
  long long t0 = now_ns();
  pairs(fd, &lk, &un, n);
  long long t1 = now_ns();
  printf("%.3f\n", (double)(t1 - t0) / (double)n);
  return 0;
}
