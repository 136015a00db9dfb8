/* libFuzzer: multipart/form-data uploads (server/upload.c) behind
 * libmicrohttpd's own HTTP parsing.  The input is the raw bytes of one
 * HTTP request, handed to an in-process daemon (no listening socket, no
 * threads) over a socketpair; the handler streams the body through
 * upload_begin/feed/end into a staging directory under /dev/shm (or
 * $TMPDIR), as /admin/compress does. */
#include <fcntl.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "upload.h"

static struct MHD_Daemon *daemon_;
static char staging[256];
static const upload_file files[] = {
    {"config", "config.json", 4096}, {"weights", "model.safetensors", 1 << 16}, {"vocab", "vocab.txt", 4096}};
static const char *const fields[] = {"name", "preset", "block"};
static const upload_opts opts = {.staging_root = staging, .max_total = 1 << 17, .files = files, .n_files = 3,
                                 .fields = fields, .n_fields = 3};

static enum MHD_Result answer(struct MHD_Connection *c, int status) {
    struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **con_cls) {
    (void)cls, (void)url, (void)method, (void)version;
    upload *u = *con_cls;
    srv_err err;
    if (!u) {
        if (upload_begin(c, &opts, &u, &err) != 0) return answer(c, srv_err_status(err.code, NULL));
        *con_cls = u;
        return MHD_YES;
    }
    if (*size) {
        upload_feed(u, data, *size);
        *size = 0;
        return MHD_YES;
    }
    if (upload_end(u, &err) == 0) {
        upload_field(u, "name");
        upload_file_bytes(u, "weights");
        return answer(c, 200);
    }
    return answer(c, srv_err_status(err.code, NULL));
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
    (void)cls, (void)c, (void)toe;
    upload_free(*con_cls);
    *con_cls = NULL;
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(staging, sizeof(staging), "%s/bct-fuzz-staging-%d", base, (int)getpid());
    daemon_ = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET, 0, NULL, NULL, on_request, NULL,
                               MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
                               MHD_OPTION_CONNECTION_TIMEOUT, 1u, MHD_OPTION_END);
    if (!daemon_) abort();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int sv[2];
    if (size > (1 << 16) || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001)};
    int bufsz = 1 << 18;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
    if (MHD_add_connection(daemon_, sv[0], (struct sockaddr *)&addr, sizeof(addr)) != MHD_YES) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    fcntl(sv[1], F_SETFL, O_NONBLOCK);
    size_t sent = 0;
    char sink[4096];
    /* Feed, let MHD read and answer, until it closes its end. */
    for (int round = 0; round < 2000; round++) {
        if (sent < size) {
            ssize_t n = write(sv[1], data + sent, size - sent);
            if (n > 0) sent += (size_t)n;
            if (sent == size) shutdown(sv[1], SHUT_WR);
        } else if (size == 0 && round == 0) {
            shutdown(sv[1], SHUT_WR);
        }
        MHD_run(daemon_);
        ssize_t n = read(sv[1], sink, sizeof(sink));
        if (n == 0) break;
    }
    close(sv[1]);
    /* The daemon drops the connection if it is still open. */
    for (int i = 0; i < 4; i++) MHD_run(daemon_);
    return 0;
}
