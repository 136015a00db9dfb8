/* compress.h - Hugging Face checkpoint -> .bct, tensor by tensor.
 *
 * Every matrix (embedding tables and Linear weights) is quantized
 * blockwise with the spec of its role; biases and LayerNorm vectors stay
 * fp32.  The file records how the model is to run (int8 activations,
 * integer non-linear ops), the config, labels and tokenizer settings, the
 * vocabulary (deflated), per-tensor formats and errors, and provenance.
 * Memory: the checkpoint is mapped, and only one tensor's codes are held
 * at a time; the output is streamed to a temporary file that is renamed
 * into place when complete.
 */
#ifndef BCT_COMPRESS_H
#define BCT_COMPRESS_H

#include <stdatomic.h>

#include "blockquant.h"
#include "util/status.h"

struct cJSON;
struct bert_slot;

/* Most per-tensor exceptions one compression takes (compress_opts.rules). */
#define COMPRESS_MAX_RULES 256

/* A per-tensor exception to the spec of a kind: a matrix whose name
 * contains `match` gets `spec` (first matching rule wins).  How an
 * accuracy-budgeted plan (bct compress --max-drop) is written down. */
typedef struct compress_rule {
    char match[96];
    bq_spec spec;
} compress_rule;

/* Calibration sentences read when compress_opts.calib_max is not set. */
#define COMPRESS_CALIB_DEFAULT 256

typedef struct compress_opts {
    char preset[32];        /* recorded in the file ("custom" if hand-set) */
    bq_spec weights;        /* Linear weights (Q, K, V, attention out, FFN, embedding projection, head) */
    bq_spec embeddings;     /* word embeddings */
    bq_spec tables;         /* position and token-type embeddings */
    int act_int8;           /* run with int8 matmul inputs */
    int int_nonlinear;      /* run GELU, Softmax, LayerNorm in integer arithmetic */
    const char *calib;      /* optional calibration text (see calibrate.h), or NULL */
    int calib_max;          /* sentences read from it (<= 0: COMPRESS_CALIB_DEFAULT) */
    int smooth;             /* move activation outliers into the weights (smooth.h); needs calib */
    float smooth_alpha;     /* <= 0: searched per Linear; else this exponent everywhere */
    int gptq;               /* Linear weights by GPTQ (gptq.h) on calib's Hessians; needs calib */
    const compress_rule *rules; /* per-tensor exceptions (borrowed), or NULL */
    int n_rules;                /* <= COMPRESS_MAX_RULES */
    /* Structured pruning (prune.h) before quantization: fractions of each
     * layer's attention heads and FFN neurons removed; needs calib. */
    double prune_heads, prune_ffn;
    /* Optional progress callback: tensor i of n is about to be quantized. */
    void (*progress)(void *ud, int i, int n, const char *tensor);
    void *progress_ud;
    /* Optional: every tensor is written; the file is being committed
     * (header, fsync, rename).  Gets progress_ud. */
    void (*committing)(void *ud);
    /* Optional: when *cancel becomes non-zero, compression stops before
     * the next tensor with BCT_EINVAL ("cancelled"); nothing is written. */
    const atomic_int *cancel;
} compress_opts;

typedef struct compress_tensor {
    char name[96];
    const char *kind; /* "weights", "embeddings", "tables", or "params" (fp32 vectors) */
    int rows, cols; /* cols == 0 for vectors */
    int bits, block; /* the block used (bq_fit of the asked one) */
    int padded_cols; /* codes per stored row (qmat_padded_cols(cols)) */
    double bits_per_weight;
    double rel_error;
    float smooth_alpha; /* < 0: not smoothed */
} compress_tensor;

/* Which block a kind of tensor got for one row length (the report's
 * "block_sizes"): one entry per distinct (kind, cols). */
typedef struct compress_block_use {
    const char *kind;
    int asked, cols, padded_cols, block;
    int tensors;
} compress_block_use;

typedef struct compress_report {
    long long input_bytes;  /* config.json + vocab.txt + the weights file */
    long long output_bytes; /* the .bct file */
    long long matrix_params, matrix_bytes;
    double ratio;           /* whole file */
    double weights_ratio;   /* fp32 matrices / their codes + scales */
    double seconds;
    int n_tensors;
    compress_tensor *tensors;
    int n_blocks;
    compress_block_use *blocks;
    struct cJSON *pruning;  /* the file's "pruning" object (prune_meta), or NULL */
} compress_report;

/* "w8a8" | "w8a8r" | "w4a8" -> options; BCT_EINVAL for an unknown name. */
int compress_preset(const char *name, compress_opts *o, bct_error *err);

/* BCT_OK when every spec of o can be asked (bq_spec_ok): then any
 * checkpoint's widths compress (bq_fit).  What /admin/compress checks
 * before it accepts a job. */
int compress_opts_check(const compress_opts *o, bct_error *err);

/* A tensor format of the options: "q8", "q4", "q3" or "q2" -> spec->bits.
 * BCT_OK or BCT_EINVAL. */
int compress_format_parse(const char *s, bq_spec *spec);

int compress_checkpoint(const char *hf_dir, const char *out_path, const compress_opts *o,
                        compress_report *rep, bct_error *err);
void compress_report_free(compress_report *rep);
struct cJSON *compress_report_json(const compress_report *rep);

#endif
