/* conn_guard.c - header and body deadlines (conn_guard.h). */
#include "conn_guard.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "errors.h"

/* How often the deadlines are checked: a connection lives at most this
 * much past its deadline. */
#define GUARD_TICK_MS 250

struct conn_guard_entry {
    struct conn_guard_entry *prev, *next;
    conn_guard *g;
    int fd;
    int64_t deadline_ns; /* 0: no deadline */
    int body_s;          /* > 0: the deadline is a body's, of this many seconds */
    int timed_out;       /* the guard answered 408 */
};
typedef struct conn_guard_entry guarded;

struct conn_guard {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    int stop;
    int64_t timeout_ns; /* header deadline; 0 = none */
    guarded head; /* circular list */
};

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The one answer the guard writes itself (conn_guard.h says why).  Best
 * effort: a client that does not read gets the shutdown alone. */
static void answer_408(guarded *c) {
    char body[200], msg[400];
    const char *type;
    int status = srv_err_status(SRV_ETIMEOUT, &type);
    int nb = snprintf(body, sizeof(body),
                      "{\"error\":\"the request body was not complete %d s after its headers "
                      "(body_timeout_s, plus 1 s per MiB announced)\",\"error_type\":\"%s\"}",
                      c->body_s, type);
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 %d Request Timeout\r\nContent-Type: application/json\r\n"
                     "Connection: close\r\nContent-Length: %d\r\n\r\n%s",
                     status, nb, body);
    (void)send(c->fd, msg, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
    c->timed_out = 1;
}

static void *run(void *arg) {
    conn_guard *g = arg;
    pthread_mutex_lock(&g->mu);
    while (!g->stop) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_nsec += GUARD_TICK_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g->cv, &g->mu, &until);
        int64_t now = now_ns();
        for (guarded *c = g->head.next; c != &g->head; c = c->next) {
            if (!c->deadline_ns || now < c->deadline_ns) continue;
            /* The descriptor is still MHD's: "closed" waits for this lock. */
            if (c->body_s) answer_408(c);
            (void)shutdown(c->fd, SHUT_RDWR);
            c->deadline_ns = 0;
            c->body_s = 0;
        }
    }
    pthread_mutex_unlock(&g->mu);
    return NULL;
}

int conn_guard_start(int header_timeout_s, int bodies, conn_guard **out, bct_error *err) {
    *out = NULL;
    if (header_timeout_s <= 0 && !bodies) return BCT_OK;
    conn_guard *g = calloc(1, sizeof(*g));
    if (!g) return bct_fail(err, BCT_ENOMEM, "out of memory");
    g->timeout_ns = header_timeout_s > 0 ? (int64_t)header_timeout_s * 1000000000 : 0;
    g->head.prev = g->head.next = &g->head;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&g->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&g->mu, NULL);
    int rc = pthread_create(&g->thread, NULL, run, g);
    if (rc != 0) {
        pthread_mutex_destroy(&g->mu);
        pthread_cond_destroy(&g->cv);
        free(g);
        return bct_fail(err, BCT_ENOMEM, "cannot start the connection guard thread: %s", strerror(rc));
    }
    *out = g;
    return BCT_OK;
}

void conn_guard_stop(conn_guard *g) {
    if (!g) return;
    pthread_mutex_lock(&g->mu);
    g->stop = 1;
    pthread_cond_signal(&g->cv);
    pthread_mutex_unlock(&g->mu);
    pthread_join(g->thread, NULL);
    /* MHD_stop_daemon reported every connection closed; nothing is left. */
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
    free(g);
}

conn_guard_entry *conn_guard_open(conn_guard *g, struct MHD_Connection *c) {
    if (!g) return NULL;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    guarded *e = ci ? calloc(1, sizeof(*e)) : NULL;
    if (!e) return NULL; /* unguarded: the idle timeout still applies */
    e->g = g;
    e->fd = ci->connect_fd;
    pthread_mutex_lock(&g->mu);
    e->deadline_ns = g->timeout_ns ? now_ns() + g->timeout_ns : 0;
    e->next = g->head.next;
    e->prev = &g->head;
    g->head.next->prev = e;
    g->head.next = e;
    pthread_mutex_unlock(&g->mu);
    return e;
}

void conn_guard_close(conn_guard_entry *e) {
    if (!e) return;
    pthread_mutex_lock(&e->g->mu);
    e->prev->next = e->next;
    e->next->prev = e->prev;
    pthread_mutex_unlock(&e->g->mu);
    free(e);
}

void conn_guard_request_line(conn_guard_entry *e) {
    /* A later request on a kept-alive connection: its deadline runs from
     * its request line (the first one's from the connection's start). */
    if (!e) return;
    pthread_mutex_lock(&e->g->mu);
    e->timed_out = 0;
    if (!e->deadline_ns && e->g->timeout_ns) e->deadline_ns = now_ns() + e->g->timeout_ns;
    pthread_mutex_unlock(&e->g->mu);
}

void conn_guard_headers_in(conn_guard_entry *e) {
    if (!e) return;
    pthread_mutex_lock(&e->g->mu);
    e->deadline_ns = 0;
    pthread_mutex_unlock(&e->g->mu);
}

void conn_guard_body_start(conn_guard_entry *e, int seconds) {
    if (!e || seconds <= 0) return;
    pthread_mutex_lock(&e->g->mu);
    e->deadline_ns = now_ns() + (int64_t)seconds * 1000000000;
    e->body_s = seconds;
    pthread_mutex_unlock(&e->g->mu);
}

int conn_guard_body_done(conn_guard_entry *e) {
    if (!e) return 0;
    pthread_mutex_lock(&e->g->mu);
    if (e->body_s) e->deadline_ns = 0;
    e->body_s = 0;
    int late = e->timed_out;
    pthread_mutex_unlock(&e->g->mu);
    return late ? -1 : 0;
}

int conn_guard_timed_out(const conn_guard_entry *e) {
    if (!e) return 0;
    pthread_mutex_lock(&e->g->mu);
    int t = e->timed_out;
    pthread_mutex_unlock(&e->g->mu);
    return t;
}
