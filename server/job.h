/* job.h - one request's inference work: its inputs tokenized on
 * admission, a slot for each input's logits, and timings.
 *
 * The HTTP thread creates a job (job_create tokenizes every input, so
 * token counts are known for batching and bad input fails at once),
 * hands it to the batcher, and gets it back through job->done on the
 * batcher's loop thread once every input has logits, or the job was
 * cancelled.  The job holds a reference to its model until job_free().
 */
#ifndef BCT_JOB_H
#define BCT_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "registry.h"

/* One text or text pair as the API delivered it (b == NULL: single). */
typedef struct srv_text {
    const char *a;
    size_t alen;
    const char *b;
    size_t blen;
} srv_text;

typedef struct srv_job srv_job;

/* One sequence. */
typedef struct srv_input {
    int32_t *ids;
    uint8_t *types;
    int len;         /* tokens after truncation */
    float *logits;   /* num_labels floats, written by a worker */
    srv_job *job;
    /* Batcher FIFO links, touched only on the batcher's loop thread. */
    struct srv_input *prev, *next;
    int queued;
} srv_input;

enum { JOB_OK, JOB_FAILED, JOB_CANCELLED, JOB_SHUTDOWN };

struct srv_job {
    srv_model *model;        /* acquired; released by job_free */
    int n;                   /* inputs */
    int num_labels;
    srv_input *in;
    float *logits;           /* n x num_labels, input order */
    int32_t *ids_buf;        /* n x max_len token ids (inputs point here) */
    uint8_t *types_buf;      /* n x max_len token types */
    long long tokens;        /* sum of len */
    long long chars;         /* bytes of text */
    int truncated;           /* inputs that were cut */
    int fd;                  /* client socket to watch for disconnects, or -1 */
    uint64_t t_admit;        /* srv_now_ns() when handed to the batcher */
    uint64_t t_first_start;  /* first batch with one of its inputs began */
    uint64_t t_last_end;     /* last such batch ended */
    int status;              /* JOB_* once done */
    char error[512];         /* for JOB_FAILED */
    void (*done)(srv_job *job); /* called once, on the loop thread */
    void *user;

    /* The batcher's state of the job (batcher.c), from batcher_reserve() on. */
    struct batcher_slot *slot;
};

enum {
    JOB_TRUNCATE = 1,      /* cut inputs longer than the model's max length (else 422) */
    JOB_TRUNCATE_LEFT = 2, /* cut them at their start instead of their end */
};

/* Tokenizes texts[0..n) with model's tokenizer (flags: JOB_TRUNCATE*).
 * Empty texts, texts of only whitespace or control characters, and
 * invalid UTF-8 are BCT_EINVAL (422); out of memory is BCT_ENOMEM (500).
 * Takes over the model reference (released on failure as well).  Returns
 * BCT_OK, or the code of err. */
int job_create(srv_model *model, const srv_text *texts, int n, int flags, srv_job **out,
               srv_err *err);
void job_free(srv_job *job);

#endif
