/*
 * A shifted wall clock for the calendar tests: LD_PRELOAD this library and set RASMON_CLOCK_OFFSET_MS,
 * and the process's wall clock (CLOCK_REALTIME through clock_gettime, gettimeofday and time) runs that
 * many milliseconds ahead of (or behind) the machine's, at the machine's pace. Monotonic clocks are left
 * alone, so timers and timeouts behave as usual.
 *
 * libfaketime does the same but cannot start Debian's redis-server (its start-up calls into the allocator
 * before jemalloc is ready); this shim asks the kernel directly and allocates nothing.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long long offset_ns(void) {
  static int read;
  static long long value;
  if (!read) {
    const char *text = getenv("RASMON_CLOCK_OFFSET_MS");
    value = text ? strtoll(text, NULL, 10) * 1000000LL : 0;
    read = 1;
  }
  return value;
}

static void shift(struct timespec *ts) {
  long long ns = (long long)ts->tv_sec * 1000000000LL + ts->tv_nsec + offset_ns();
  ts->tv_sec = ns / 1000000000LL;
  ts->tv_nsec = ns % 1000000000LL;
  if (ts->tv_nsec < 0) {
    ts->tv_nsec += 1000000000LL;
    ts->tv_sec -= 1;
  }
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
  int rc = (int)syscall(SYS_clock_gettime, clock, ts);
  if (rc == 0 && (clock == CLOCK_REALTIME || clock == CLOCK_REALTIME_COARSE)) shift(ts);
  return rc;
}

int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
  struct timespec ts;
  (void)tz;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return -1;
  if (tv) {
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
  }
  return 0;
}

time_t time(time_t *out) {
  struct timespec ts;
  if (clock_gettime(CLOCK_REALTIME, &ts) != 0) return (time_t)-1;
  if (out) *out = ts.tv_sec;
  return ts.tv_sec;
}
