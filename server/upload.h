/* upload.h - one multipart/form-data request body, streamed to disk.
 *
 * libmicrohttpd's post processor splits the body into parts as it
 * arrives.  A part with a filename is a file: its bytes are appended to a
 * file of a staging directory made for this upload alone, under the name
 * the caller's table gives for that part (the client's filename is never
 * used, so nothing can be written outside the directory).  A part without
 * a filename is a short text field kept in memory.  The body itself is
 * never held in memory.
 *
 * Checks while the body streams: the whole body against max_total, each
 * file part against its own limit (413); unknown parts, a part sent
 * twice, a field longer than UPLOAD_FIELD_MAX (422).  After the first
 * problem the rest of the body is consumed and dropped (upload_feed keeps
 * returning -1; the caller decides how long to keep reading).
 *
 * Not thread-safe: one thread feeds an upload (MHD's).  The staging
 * directory is removed by upload_free() unless upload_keep_dir() handed
 * it over.
 */
#ifndef BCT_UPLOAD_H
#define BCT_UPLOAD_H

#include <microhttpd.h>

#include "errors.h"

#define UPLOAD_FIELD_MAX 256

typedef struct upload_file {
    const char *part;    /* form part name */
    const char *file;    /* its name in the staging directory */
    long long max_bytes; /* 413 beyond it */
} upload_file;

typedef struct upload_opts {
    const char *staging_root; /* the upload's directory is made in here */
    long long max_total;      /* whole body, multipart framing included */
    const upload_file *files;
    int n_files;
    const char *const *fields; /* accepted field names */
    int n_fields;
} upload_opts;

typedef struct upload upload;

/* Creates the staging directory and the post processor.  SRV_EMEDIA (415)
 * when the request is not multipart/form-data, BCT_EIO (500) when the
 * directory cannot be made.  o (and its tables) must outlive the upload. */
int upload_begin(struct MHD_Connection *c, const upload_opts *o, upload **out, srv_err *err);

/* Body bytes as they arrive: 0, or -1 once the upload has failed. */
int upload_feed(upload *u, const char *data, size_t n);

/* The body is complete.  0 when it was a well-formed multipart body
 * within the limits; else the code of err (the first problem met). */
int upload_end(upload *u, srv_err *err);

const char *upload_dir(const upload *u);
/* A field's value, or NULL when it was not sent. */
const char *upload_field(const upload *u, const char *name);
/* Bytes of a file part, or -1 when it was not sent. */
long long upload_file_bytes(const upload *u, const char *part);
/* Body bytes received so far. */
long long upload_received(const upload *u);

/* The caller takes over the staging directory (and removes it). */
void upload_keep_dir(upload *u);
/* Frees; removes the staging directory unless kept.  NULL is a no-op. */
void upload_free(upload *u);

#endif
