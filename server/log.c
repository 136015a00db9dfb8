#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *const level_names[] = {"debug", "info", "warn", "error"};

uint64_t srv_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

struct timespec srv_deadline(int ms) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

void srv_put_time(sbuf *b, const struct timespec *ts) {
    struct tm tm;
    gmtime_r(&ts->tv_sec, &tm);
    sbuf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts->tv_nsec / 1000000);
}

void srv_put_timestamp(sbuf *b) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    srv_put_time(b, &ts);
}

void srv_write_all(int fd, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return;
        buf += n;
        len -= (size_t)n;
    }
}

void srv_logf(const srv_log *lg, int level, const char *fmt, ...) {
    if (!lg || level < lg->level) return;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sbuf b;
    sbuf_init(&b);
    sbuf_puts(&b, "{\"ts\":\"");
    srv_put_timestamp(&b);
    sbuf_printf(&b, "\",\"level\":\"%s\",\"msg\":", level_names[level & 3]);
    sbuf_json_str(&b, msg, strnlen(msg, sizeof(msg)));
    sbuf_puts(&b, "}\n");
    if (!b.oom) srv_write_all(lg->fd, b.data, b.len);
    sbuf_free(&b);
}
