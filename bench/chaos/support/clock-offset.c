/*
 * A wall clock that can be stepped, without libfaketime: LD_PRELOAD this into one process and
 * CLOCK_REALTIME (clock_gettime, gettimeofday, time) is offset by the signed number of
 * milliseconds written in the file named by CLOCK_OFFSET_FILE, re-read at most every 50 ms.
 * Monotonic clocks are left alone, as a real step of the wall clock leaves them.
 * Built by bench/chaos/clock-backwards.ts: gcc -shared -fPIC -o clock-offset.so clock-offset.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int (*real_clock_gettime)(clockid_t, struct timespec *);
static int (*real_gettimeofday)(struct timeval *, void *);
static const char *offset_file;
static atomic_llong offset_ms = 0;
static atomic_llong read_at_ms = -1000000;

__attribute__((constructor)) static void load(void) {
  real_clock_gettime = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
  real_gettimeofday = (int (*)(struct timeval *, void *))dlsym(RTLD_NEXT, "gettimeofday");
  offset_file = getenv("CLOCK_OFFSET_FILE");
  fprintf(stderr, "clock-offset: loaded, offset read from %s\n", offset_file == NULL ? "(unset: none)" : offset_file);
}

static long long current_offset_ms(void) {
  if (offset_file == NULL) return 0;
  struct timespec now;
  real_clock_gettime(CLOCK_MONOTONIC, &now);
  long long now_ms = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000;
  long long last = atomic_load(&read_at_ms);
  if (now_ms - last >= 50 && atomic_compare_exchange_strong(&read_at_ms, &last, now_ms)) {
    int fd = open(offset_file, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char text[32] = {0};
      ssize_t length = read(fd, text, sizeof text - 1);
      close(fd);
      if (length > 0) atomic_store(&offset_ms, strtoll(text, NULL, 10));
    }
  }
  return atomic_load(&offset_ms);
}

static void shift(struct timespec *time) {
  long long nanos = (long long)time->tv_sec * 1000000000LL + time->tv_nsec + current_offset_ms() * 1000000LL;
  time->tv_sec = nanos / 1000000000LL;
  time->tv_nsec = nanos % 1000000000LL;
}

int clock_gettime(clockid_t clock, struct timespec *time) {
  int result = real_clock_gettime(clock, time);
  if (result == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) shift(time);
  return result;
}

int gettimeofday(struct timeval *tv, void *zone) {
  int result = real_gettimeofday(tv, zone);
  if (result == 0) {
    struct timespec time = { tv->tv_sec, tv->tv_usec * 1000 };
    shift(&time);
    tv->tv_sec = time.tv_sec;
    tv->tv_usec = time.tv_nsec / 1000;
  }
  return result;
}

time_t time(time_t *out) {
  struct timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  if (out != NULL) *out = now.tv_sec;
  return now.tv_sec;
}
