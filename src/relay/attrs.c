/*
 * warden-attrs: gives the process the umask, nice value and resource limits
 * it is told, then execs a program with them.
 *
 *   warden-attrs UMASK NICE [RESOURCE=SOFT:HARD]... -- PROGRAM [ARG]...
 *
 * UMASK is octal, NICE decimal, RESOURCE a RLIMIT_* number, SOFT and HARD
 * decimal or "inf". The supervisor (src/sessions/attributes.ts) puts it in
 * front of a client's command so that the command gets the client's umask,
 * nice value and limits, as a command schroot starts inherits them from its
 * caller. Node cannot run code between fork and exec, and no util-linux or
 * coreutils program sets a umask, so this is the one step in C; what the
 * values are is decided in TypeScript. It runs as root before the chroot, and
 * parses only what the supervisor wrote: anything malformed is exit 125.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static int fail(const char *what, const char *arg) {
  fprintf(stderr, "warden-attrs: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
  return 125;
}

/* A decimal rlim_t or "inf"; 0 on success. */
static int limit_value(const char *s, const char *end, rlim_t *out) {
  if ((size_t)(end - s) == 3 && strncmp(s, "inf", 3) == 0) {
    *out = RLIM_INFINITY;
    return 0;
  }
  if (s == end) return -1;
  rlim_t v = 0;
  for (const char *p = s; p < end; p++) {
    if (*p < '0' || *p > '9') return -1;
    if (v > (RLIM_INFINITY - 9) / 10) return -1;
    v = v * 10 + (rlim_t)(*p - '0');
  }
  *out = v;
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 5) return fail("usage: warden-attrs UMASK NICE [RESOURCE=SOFT:HARD]... -- PROGRAM [ARG]...", NULL);
  char *end;
  errno = 0;
  unsigned long mask = strtoul(argv[1], &end, 8);
  if (errno || *end || end == argv[1] || mask > 0777) return fail("bad umask", argv[1]);
  long nice = strtol(argv[2], &end, 10);
  if (errno || *end || end == argv[2] || nice < -20 || nice > 19) return fail("bad nice value", argv[2]);
  int i = 3;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    char *eq = strchr(argv[i], '='), *colon = eq ? strchr(eq, ':') : NULL;
    if (!eq || !colon) return fail("bad limit", argv[i]);
    long resource = strtol(argv[i], &end, 10);
    struct rlimit rl;
    if (end != eq || resource < 0 || resource >= RLIM_NLIMITS || limit_value(eq + 1, colon, &rl.rlim_cur) != 0 ||
        limit_value(colon + 1, colon + strlen(colon), &rl.rlim_max) != 0 || rl.rlim_cur > rl.rlim_max)
      return fail("bad limit", argv[i]);
    if (setrlimit((int)resource, &rl) != 0) {
      fprintf(stderr, "warden-attrs: setrlimit %s: %s\n", argv[i], strerror(errno));
      return 125;
    }
  }
  if (i + 1 >= argc) return fail("no program after --", NULL);
  umask((mode_t)mask);
  if (setpriority(PRIO_PROCESS, 0, (int)nice) != 0) {
    fprintf(stderr, "warden-attrs: setpriority %ld: %s\n", nice, strerror(errno));
    return 125;
  }
  execv(argv[i + 1], argv + i + 1);
  fprintf(stderr, "warden-attrs: %s: %s\n", argv[i + 1], strerror(errno));
  return errno == ENOENT ? 127 : 126;
}
