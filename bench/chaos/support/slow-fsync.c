/*
 * A slow disk without device-mapper: LD_PRELOAD this into one process and every fsync and
 * fdatasync it makes sleeps SLOW_FSYNC_MS milliseconds (default 100) before the real call.
 * Built by bench/chaos/slow-disk.ts: gcc -shared -fPIC -o slow-fsync.so slow-fsync.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long delay_ms = 100;
static atomic_long delayed = 0;
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);

__attribute__((constructor)) static void load(void) {
  const char *value = getenv("SLOW_FSYNC_MS");
  if (value != NULL) delay_ms = strtol(value, NULL, 10);
  real_fsync = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
  real_fdatasync = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
  fprintf(stderr, "slow-fsync: loaded, %ld ms before each fsync/fdatasync\n", delay_ms);
}

__attribute__((destructor)) static void unload(void) {
  fprintf(stderr, "slow-fsync: %ld calls delayed\n", atomic_load(&delayed));
}

static void stall(void) {
  struct timespec pause = { delay_ms / 1000, (delay_ms % 1000) * 1000000L };
  atomic_fetch_add(&delayed, 1);
  /* nanosleep resumes after a signal with what is left, so the stall is always whole. */
  while (nanosleep(&pause, &pause) != 0) {}
}

int fsync(int fd) {
  stall();
  return real_fsync(fd);
}

int fdatasync(int fd) {
  stall();
  return real_fdatasync(fd);
}
