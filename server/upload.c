#include "upload.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model_store.h"

#define UPLOAD_MAX_PARTS 16

typedef struct part_state {
    int seen;
    long long bytes;
    char value[UPLOAD_FIELD_MAX + 1]; /* fields */
} part_state;

struct upload {
    const upload_opts *o;
    struct MHD_PostProcessor *pp;
    char dir[4096];
    int dirfd;
    int keep;
    long long received;
    int failed;
    srv_err err;
    /* The part being received: index into files (is_file) or fields. */
    int cur, cur_is_file, cur_fd;
    char cur_key[UPLOAD_FIELD_MAX + 1];
    uint64_t cur_next; /* offset the next piece of it must start at */
    part_state files[UPLOAD_MAX_PARTS], fields[UPLOAD_MAX_PARTS];
};

static void set_error(upload *u, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_error(upload *u, int code, const char *fmt, ...) {
    if (u->failed) return;
    u->failed = 1;
    u->err.code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(u->err.msg, sizeof(u->err.msg), fmt, ap);
    va_end(ap);
}

/* A part's file could not be created or written (errno e). */
static void store_error(upload *u, int e, const char *part, const char *file) {
    set_error(u, srv_errno_code(e), "cannot store part \"%.60s\" (%s) in the staging directory: %s", part, file,
              strerror(e));
}

static void close_part(upload *u) {
    if (u->cur_fd >= 0) close(u->cur_fd);
    u->cur_fd = -1;
    u->cur = -1;
}

static int write_all(int fd, const char *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int find_file(const upload_opts *o, const char *key) {
    for (int i = 0; i < o->n_files; i++)
        if (!strcmp(o->files[i].part, key)) return i;
    return -1;
}

static int find_field(const upload_opts *o, const char *key) {
    for (int i = 0; i < o->n_fields; i++)
        if (!strcmp(o->fields[i], key)) return i;
    return -1;
}

static void list_parts(const upload_opts *o, char *buf, size_t size) {
    size_t off = 0;
    buf[0] = '\0';
    for (int i = 0; i < o->n_files && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s (file)", off ? ", " : "", o->files[i].part);
    for (int i = 0; i < o->n_fields && off < size; i++)
        off += (size_t)snprintf(buf + off, size - off, "%s%s", off ? ", " : "", o->fields[i]);
}

/* The first piece of a new part. */
static int start_part(upload *u, const char *key, const char *filename) {
    const upload_opts *o = u->o;
    close_part(u);
    snprintf(u->cur_key, sizeof(u->cur_key), "%s", key);
    u->cur_next = 0;
    int is_file = filename != NULL;
    int i = is_file ? find_file(o, key) : find_field(o, key);
    if (i < 0) {
        char known[512];
        list_parts(o, known, sizeof(known));
        int other = is_file ? find_field(o, key) : find_file(o, key);
        if (other >= 0 && !is_file)
            set_error(u, BCT_EINVAL,
                      "part \"%.60s\" must be a file (a part with a filename, e.g. curl -F "
                      "'%.60s=@FILE')",
                      key, key);
        else if (other >= 0)
            set_error(u, BCT_EINVAL,
                      "part \"%.60s\" is a field, not a file (send it without a filename)", key);
        else
            set_error(u, BCT_EINVAL, "unknown part \"%.60s\" (parts: %s)", key, known);
        return -1;
    }
    part_state *ps = is_file ? &u->files[i] : &u->fields[i];
    if (ps->seen) {
        set_error(u, BCT_EINVAL, "part \"%.60s\" was sent twice", key);
        return -1;
    }
    ps->seen = 1;
    u->cur = i;
    u->cur_is_file = is_file;
    if (is_file) {
        u->cur_fd = openat(u->dirfd, o->files[i].file,
                           O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (u->cur_fd < 0) {
            store_error(u, errno, key, o->files[i].file);
            return -1;
        }
    }
    return 0;
}

static enum MHD_Result on_part(void *cls, enum MHD_ValueKind kind, const char *key,
                               const char *filename, const char *content_type,
                               const char *transfer_encoding, const char *data, uint64_t off,
                               size_t size) {
    upload *u = cls;
    (void)kind;
    (void)content_type;
    (void)transfer_encoding;
    if (u->failed) return MHD_NO;
    if (!key) key = "";
    /* A piece continues the current part when it has the same name and
     * starts where the last one ended; anything else starts a new part.
     * (Parts come whole and in order; a new one starts at offset 0.) */
    int cont = u->cur >= 0 && !strcmp(u->cur_key, key) && off == u->cur_next;
    if (!cont) {
        if (off != 0) {
            set_error(u, SRV_EBADREQ, "malformed multipart body (part \"%.60s\")", key);
            return MHD_NO;
        }
        if (start_part(u, key, filename) != 0) return MHD_NO;
    }
    u->cur_next = off + size;
    if (size == 0) return MHD_YES;
    if (u->cur_is_file) {
        const upload_file *f = &u->o->files[u->cur];
        part_state *ps = &u->files[u->cur];
        if (ps->bytes + (long long)size > f->max_bytes) {
            set_error(u, BCT_ERANGE, "part \"%s\" is larger than its limit of %lld bytes",
                      f->part, f->max_bytes);
            return MHD_NO;
        }
        if (write_all(u->cur_fd, data, size) != 0) {
            store_error(u, errno, f->part, f->file);
            return MHD_NO;
        }
        ps->bytes += (long long)size;
    } else {
        part_state *ps = &u->fields[u->cur];
        if (ps->bytes + (long long)size > UPLOAD_FIELD_MAX) {
            set_error(u, BCT_EINVAL,
                      "field \"%.60s\" is longer than %d bytes (files must be sent as file parts, "
                      "with a filename)",
                      key, UPLOAD_FIELD_MAX);
            return MHD_NO;
        }
        if (memchr(data, '\0', size)) { /* it would cut the value short, silently */
            set_error(u, BCT_EINVAL, "field \"%.60s\" holds a NUL byte", key);
            return MHD_NO;
        }
        memcpy(ps->value + ps->bytes, data, size);
        ps->bytes += (long long)size;
        ps->value[ps->bytes] = '\0';
    }
    return MHD_YES;
}

/* multipart/form-data, with a boundary. */
static int is_multipart(const char *ct) {
    if (!ct) return 0;
    while (*ct == ' ') ct++;
    return strncasecmp(ct, "multipart/form-data", 19) == 0 && strstr(ct, "boundary=") != NULL;
}

int upload_begin(struct MHD_Connection *c, const upload_opts *o, upload **out, srv_err *err) {
    *out = NULL;
    if (o->n_files > UPLOAD_MAX_PARTS || o->n_fields > UPLOAD_MAX_PARTS)
        return srv_err_set(err, BCT_EIO, "too many upload parts configured");
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!is_multipart(ct))
        return srv_err_set(err, SRV_EMEDIA,
                           "Content-Type must be multipart/form-data with a boundary, got %.100s",
                           ct ? ct : "none");
    upload *u = calloc(1, sizeof(*u));
    if (!u) return srv_err_set(err, BCT_ENOMEM, "out of memory");
    u->o = o;
    u->dirfd = u->cur_fd = u->cur = -1;
    if (mkdir(o->staging_root, 0700) != 0 && errno != EEXIST) {
        int e = errno;
        srv_err_set(err, srv_errno_code(e), "cannot create the staging directory %s: %s",
                    o->staging_root, strerror(e));
        free(u);
        return err->code;
    }
    struct stat sst;
    if (lstat(o->staging_root, &sst) != 0 || !S_ISDIR(sst.st_mode)) {
        srv_err_set(err, BCT_EIO, "the staging directory %s is not a directory (a symlink?)",
                    o->staging_root);
        free(u);
        return err->code;
    }
    snprintf(u->dir, sizeof(u->dir), "%s/" STORE_UPLOAD_PREFIX "XXXXXX", o->staging_root);
    if (!mkdtemp(u->dir)) {
        int e = errno;
        srv_err_set(err, srv_errno_code(e), "cannot create a staging directory in %s: %s",
                    o->staging_root, strerror(e));
        free(u);
        return err->code;
    }
    u->dirfd = open(u->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    /* The marker tells start-up cleanup that bct made this folder. */
    int mfd = u->dirfd >= 0 ? openat(u->dirfd, STORE_UPLOAD_MARKER, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600)
                            : -1;
    if (mfd < 0) {
        int e = errno;
        srv_err_set(err, srv_errno_code(e), "cannot create an upload folder in %s: %s",
                    o->staging_root, strerror(e));
        upload_free(u);
        return err->code;
    }
    close(mfd);
    u->pp = MHD_create_post_processor(c, 64 * 1024, on_part, u);
    if (!u->pp) {
        srv_err_set(err, SRV_EMEDIA, "cannot parse this multipart/form-data body (%.100s)", ct);
        upload_free(u);
        return err->code;
    }
    *out = u;
    return 0;
}

int upload_feed(upload *u, const char *data, size_t n) {
    u->received += (long long)n;
    if (u->failed) return -1;
    if (u->received > u->o->max_total) {
        set_error(u, BCT_ERANGE, "the upload is larger than admin_max_upload_mb (%lld bytes)",
                  u->o->max_total);
        close_part(u);
        return -1;
    }
    if (MHD_post_process(u->pp, data, n) != MHD_YES) {
        set_error(u, SRV_EBADREQ, "malformed multipart/form-data body");
        close_part(u);
        return -1;
    }
    return 0;
}

int upload_end(upload *u, srv_err *err) {
    if (u->pp) {
        int ok = MHD_destroy_post_processor(u->pp) == MHD_YES;
        u->pp = NULL;
        if (!ok && !u->failed)
            set_error(u, SRV_EBADREQ,
                      "malformed multipart/form-data body (it ends before its closing boundary)");
    }
    close_part(u);
    if (u->failed) {
        *err = u->err;
        return err->code;
    }
    return BCT_OK;
}

const char *upload_dir(const upload *u) { return u->dir; }

const char *upload_field(const upload *u, const char *name) {
    int i = find_field(u->o, name);
    return i >= 0 && u->fields[i].seen ? u->fields[i].value : NULL;
}

long long upload_file_bytes(const upload *u, const char *part) {
    int i = find_file(u->o, part);
    return i >= 0 && u->files[i].seen ? u->files[i].bytes : -1;
}

long long upload_received(const upload *u) { return u->received; }

void upload_keep_dir(upload *u) { u->keep = 1; }

void upload_free(upload *u) {
    if (!u) return;
    if (u->pp) MHD_destroy_post_processor(u->pp);
    close_part(u);
    if (u->dirfd >= 0) close(u->dirfd);
    if (!u->keep && u->dir[0]) store_remove_upload(u->dir);
    free(u);
}
