/* log.h - the server's own messages (not the access log): one JSON line
 * each, {"ts": ISO-8601 UTC, "level", "msg"}, written with one write(2)
 * so lines from different threads never interleave.
 *
 * A srv_log is set up once at start and read-only afterwards; modules
 * that report get a const pointer to it.
 */
#ifndef BCT_SRV_LOG_H
#define BCT_SRV_LOG_H

#include <stdint.h>
#include <time.h>

#include "sbuf.h"

enum { SRV_LOG_DEBUG, SRV_LOG_INFO, SRV_LOG_WARN, SRV_LOG_ERROR };

typedef struct srv_log {
    int level; /* messages below it are dropped */
    int fd;    /* normally 2 (stderr) */
} srv_log;

void srv_logf(const srv_log *lg, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Monotonic clock in nanoseconds (durations) and the ISO-8601 UTC wall
 * time with milliseconds ("2024-05-01T12:00:00.123Z") for log lines. */
uint64_t srv_now_ns(void);
/* CLOCK_REALTIME now + ms: the deadline pthread_cond_timedwait wants. */
struct timespec srv_deadline(int ms);
void srv_put_timestamp(sbuf *b);
/* ts (wall clock) in the same ISO-8601 form. */
void srv_put_time(sbuf *b, const struct timespec *ts);

/* write(2) all of buf to fd, retrying on EINTR / short writes. */
void srv_write_all(int fd, const char *buf, size_t len);

#endif
