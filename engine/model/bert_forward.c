#include "bert_forward.h"

#include <cblas.h>
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/intops.h"
#include "kernels/intops_simd.h"
#include "kernels/qgemm.h"
#include "kernels/threadpool.h"

/* A qmat whose buffers grow to the largest shape requested. */
typedef struct qscratch {
    qmat m;
    size_t codes_cap, scales_cap;
} qscratch;

/* Scratch of one pool thread (worker 0: the calling thread). */
typedef struct bert_wk {
    float *f;       /* attention scores and V^T; a dequantized embedding row */
    size_t fcap;    /* floats */
    int32_t *i;     /* integer codes for non-linear ops (two halves: in, out) */
    size_t icap;    /* int32s */
    qscratch qa, qb; /* attention operands */
    void *pk;       /* attention operand packed for the GEMM kernel */
    size_t pkcap;   /* bytes */
    float *hpad;    /* one head's Q or K rows padded to whole blocks (quantize_head) */
    size_t hpadcap; /* floats */
} bert_wk;

struct bert_ws {
    float *buf;
    size_t cap; /* floats */
    int *start; /* first row of each sequence */
    int cap_seqs;
    qscratch qx; /* matmul input */
    float *pad;     /* matmul input padded to a weight's padded width (pad_input) */
    size_t pad_cap; /* floats */
    const float *qx_scale; /* the act_scale qx was quantized with */
    float *sx;             /* x * act_scale before quantization */
    size_t sx_cap;         /* floats */
    bct_pool *pool;
    bert_wk *wk;
    int nwk;
    bert_observer observe;
    void *observe_ud;
    int stop_layers; /* bert_ws_stop_after; 0: every layer */
};

bert_ws *bert_ws_create(void) { return calloc(1, sizeof(bert_ws)); }

void bert_ws_set_pool(bert_ws *ws, bct_pool *pool) { ws->pool = pool; }

void bert_ws_observe(bert_ws *ws, bert_observer fn, void *ud) {
    ws->observe = fn;
    ws->observe_ud = ud;
}

void bert_ws_stop_after(bert_ws *ws, int layers) { ws->stop_layers = layers; }

void bert_ws_free(bert_ws *ws) {
    if (!ws) return;
    free(ws->buf);
    free(ws->start);
    free(ws->pad);
    free(ws->sx);
    qmat_free(&ws->qx.m);
    for (int i = 0; i < ws->nwk; i++) {
        bert_wk *w = &ws->wk[i];
        free(w->f);
        free(w->i);
        qmat_free(&w->qa.m);
        qmat_free(&w->qb.m);
        free(w->pk);
        free(w->hpad);
    }
    free(ws->wk);
    free(ws);
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return BCT_OK;
    void *q = NULL;
    if (posix_memalign(&q, 64, need * elem) != 0) return BCT_ENOMEM;
    free(*p);
    *p = q;
    *cap = need;
    return BCT_OK;
}

/* Shapes s as an int8 activation matrix; BCT_ENOMEM on failure. */
static int qscratch_shape(qscratch *s, int rows, int cols, int block) {
    size_t nb = (size_t)rows * (size_t)(cols / block);
    if (grow(&s->m.codes, &s->codes_cap, (size_t)rows * cols, 1) != BCT_OK ||
        grow((void **)&s->m.scales, &s->scales_cap, nb, sizeof(float)) != BCT_OK)
        return BCT_ENOMEM;
    s->m.bits = 8;
    s->m.rows = rows;
    s->m.cols = cols;
    s->m.block = block;
    return BCT_OK;
}

#define ROUND_UP(x, m) (((x) + (m)-1) / (m) * (m))

/* Attention scratch floats: scores [nq][lpad] and V^T [dh][lpad]. */
static size_t attention_scratch(int nq, int len, int dh) {
    size_t lpad = ROUND_UP((size_t)len, QMAT_GROUP);
    return (size_t)nq * lpad + (size_t)dh * lpad;
}

/* Packed bytes of a rows x cols int8 matrix in blocks of 32. */
static size_t pack_bytes(int rows, int cols) {
    qmat q = {.bits = 8, .rows = rows, .cols = cols, .block = QMAT_GROUP};
    return qgemm_pack_bytes(&q);
}

/* Everything a forward pass of at most `rows` tokens (sequences of at most
 * `longest`) needs, for `workers` threads. */
static int ws_reserve(bert_ws *ws, const bert_config *c, size_t floats, int seqs, int longest,
                      int workers) {
    if (floats > ws->cap) {
        float *p = realloc(ws->buf, floats * sizeof(float));
        if (!p) return BCT_ENOMEM;
        ws->buf = p;
        ws->cap = floats;
    }
    if (seqs > ws->cap_seqs) {
        int *s = realloc(ws->start, (size_t)seqs * sizeof(int));
        if (!s) return BCT_ENOMEM;
        ws->start = s;
        ws->cap_seqs = seqs;
    }
    if (workers > ws->nwk) {
        bert_wk *w = realloc(ws->wk, (size_t)workers * sizeof(bert_wk));
        if (!w) return BCT_ENOMEM;
        memset(w + ws->nwk, 0, (size_t)(workers - ws->nwk) * sizeof(bert_wk));
        ws->wk = w;
        ws->nwk = workers;
    }
    int H = c->hidden, dh = H / c->heads, lpad = ROUND_UP(longest, QMAT_GROUP);
    size_t att = attention_scratch(longest, longest, dh) + (size_t)H;
    size_t ints = 2 * (size_t)(lpad + H + c->intermediate);
    int dhp = qmat_padded_cols(dh), wide = lpad > dhp ? lpad : dhp;
    size_t pk = pack_bytes(longest, dhp), pv = pack_bytes(dh, lpad);
    for (int i = 0; i < workers; i++) {
        bert_wk *w = &ws->wk[i];
        if (grow((void **)&w->f, &w->fcap, att, sizeof(float)) ||
            grow((void **)&w->i, &w->icap, ints, sizeof(int32_t)) ||
            qscratch_shape(&w->qa, lpad, wide, QMAT_GROUP) || qscratch_shape(&w->qb, lpad, wide, QMAT_GROUP) ||
            grow(&w->pk, &w->pkcap, pk > pv ? pk : pv, 1) ||
            grow((void **)&w->hpad, &w->hpadcap, (size_t)lpad * (size_t)dhp, sizeof(float)))
            return BCT_ENOMEM;
    }
    return BCT_OK;
}

/* What the helpers of one forward pass share. */
typedef struct fwd {
    bert_ws *ws;
    const bert_model *m;
    const bert_mode *mode;
    bct_pool *pool; /* NULL: everything on the calling thread */
    const iops *ops; /* integer non-linear ops for the active ISA */
} fwd;

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

/* Rows per task of a row-parallel loop over `rows` rows of `cost` work
 * units each: ~2 tasks per thread, none below ~32k units (below that,
 * waking threads costs more than it saves). */
static int row_chunk(const fwd *f, int rows, size_t cost) {
    int threads = bct_pool_threads(f->pool);
    int chunk = ceil_div(rows, 2 * threads);
    int min_rows = cost ? (int)((32768 + cost - 1) / cost) : rows;
    return chunk < min_rows ? min_rows : chunk < 1 ? 1 : chunk;
}

/* ---- padded reduction widths (kernels/qmat.h: widths that fit no block) ---- */

typedef struct pad_job {
    const float *x;
    float *out;
    int ldx, width, cols, rows, chunk;
} pad_job;

static void pad_task(void *ctx, int task, int worker) {
    (void)worker;
    const pad_job *j = ctx;
    int r0 = task * j->chunk, r1 = r0 + j->chunk < j->rows ? r0 + j->chunk : j->rows;
    for (int r = r0; r < r1; r++) {
        float *o = j->out + (size_t)r * j->cols;
        memcpy(o, j->x + (size_t)r * j->ldx, (size_t)j->width * sizeof(float));
        memset(o + j->width, 0, (size_t)(j->cols - j->width) * sizeof(float));
    }
}

/* x (rows x width, stride ldx) copied into ws->pad as rows of cols floats,
 * zero past width: the padding's activation codes are then 0 (and its
 * blocks' absmax unaffected), so padded weight columns add exact zeros.
 * NULL when out of memory. */
static const float *pad_input(const fwd *f, const float *x, int ldx, int rows, int width, int cols) {
    bert_ws *ws = f->ws;
    if (grow((void **)&ws->pad, &ws->pad_cap, (size_t)rows * (size_t)cols, sizeof(float)) != BCT_OK)
        return NULL;
    pad_job j = {x, ws->pad, ldx, width, cols, rows, row_chunk(f, rows, (size_t)cols)};
    bct_pool_run(f->pool, ceil_div(rows, j.chunk), pad_task, &j);
    return ws->pad;
}

/* Quantizes x (rows x width, stride ldx), times act_scale per column when
 * not NULL, to int8 blocks in ws->qx, in the (possibly padded) width and
 * block of weight w. */
static const qmat *quantize_input(const fwd *f, const float *x, int ldx, int rows, int width, const qmat *w,
                                  const float *act_scale) {
    bert_ws *ws = f->ws;
    if (act_scale) {
        /* Scaled and padded in one pass (zeros past width, as pad_input). */
        size_t cols = (size_t)w->cols;
        if (grow((void **)&ws->sx, &ws->sx_cap, (size_t)rows * cols, sizeof(float)) != BCT_OK) return NULL;
        for (int r = 0; r < rows; r++) {
            float *o = ws->sx + (size_t)r * cols;
            for (int c = 0; c < width; c++) o[c] = x[(size_t)r * ldx + c] * act_scale[c];
            memset(o + width, 0, (cols - (size_t)width) * sizeof(float));
        }
        x = ws->sx;
        ldx = w->cols;
    } else if (w->cols != width) {
        if (!(x = pad_input(f, x, ldx, rows, width, w->cols))) return NULL;
        ldx = w->cols;
    }
    if (qscratch_shape(&ws->qx, rows, w->cols, w->block) != BCT_OK) return NULL;
    qmat_quantize_act_mt(&ws->qx.m, x, ldx, f->pool);
    ws->qx_scale = act_scale;
    return &ws->qx.m;
}

/* y[rows][out] = x[rows][in] W^T + b.  For quantized weights the input is
 * quantized to int8 blocks, unless `pre` already holds it in the right
 * block size (Q, K and V share one quantized input). */
static int linear(const fwd *f, const bert_linear *l, const float *x, int ldx, int rows,
                  const qmat *pre, float *y) {
    bert_ws *ws = f->ws;
    if (l->q) {
        const qmat *qx = pre && pre->block == l->q->block && pre->cols == l->q->cols && pre->rows == rows &&
                                 ws->qx_scale == l->act_scale
                             ? pre
                             : quantize_input(f, x, ldx, rows, l->in, l->q, l->act_scale);
        if (!qx) return BCT_ENOMEM;
        qgemm_run(l->q, l->q->pack, qx, l->b, y, l->out, f->pool);
        return BCT_OK;
    }
    if (ws->observe) ws->observe(ws->observe_ud, l, x, ldx, rows);
    for (int r = 0; r < rows; r++) memcpy(y + (size_t)r * l->out, l->b, (size_t)l->out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, l->out, l->in, 1.0f, x, ldx, l->w,
                l->in, 1.0f, y, l->out);
    return BCT_OK;
}

/* ------------------------------------------------------------------ */
/* row-wise ops, split into row tasks                                  */

typedef struct rows_job {
    const fwd *f;
    float *x;
    const float *res;
    int rows, n, chunk;
    const bert_norm *nm;
    float eps;
    bert_act act;
    int block;
} rows_job;

/* x[r] = LayerNorm(x[r] + res[r]) over n features (res may be NULL).  The
 * integer path quantizes the row to nl_bits codes (one scale: it cancels
 * in normalisation) and normalises with integer arithmetic. */
static void layer_norm_rows(const rows_job *j, int r0, int r1, int32_t *ibuf) {
    const bert_mode *mode = j->f->mode;
    const bert_norm *nm = j->nm;
    int n = j->n;
    for (int r = r0; r < r1; r++) {
        float *v = j->x + (size_t)r * n;
        if (mode->int_layernorm && nm->ints) {
            iops_layernorm(j->f->ops, nm->ints, v, j->res ? j->res + (size_t)r * n : NULL, mode->nl_bits, ibuf);
            continue;
        }
        if (j->res)
            for (int i = 0; i < n; i++) v[i] += j->res[(size_t)r * n + i];
        double mean = 0, var = 0;
        for (int i = 0; i < n; i++) mean += v[i];
        mean /= n;
        for (int i = 0; i < n; i++) var += (v[i] - mean) * (v[i] - mean);
        var /= n;
        float inv = (float)(1.0 / sqrt(var + j->eps));
        for (int i = 0; i < n; i++) v[i] = (float)(v[i] - mean) * inv * nm->gamma[i] + nm->beta[i];
    }
}

static void layer_norm_task(void *ctx, int task, int worker) {
    const rows_job *j = ctx;
    int r0 = task * j->chunk, r1 = r0 + j->chunk < j->rows ? r0 + j->chunk : j->rows;
    layer_norm_rows(j, r0, r1, j->f->ws->wk[worker].i);
}

static void add_layer_norm(const fwd *f, float *x, const float *res, int rows, int n, const bert_norm *nm,
                           float eps) {
    rows_job j = {.f = f, .x = x, .res = res, .rows = rows, .n = n, .nm = nm, .eps = eps};
    j.chunk = row_chunk(f, rows, (size_t)n * 8);
    bct_pool_run(f->pool, ceil_div(rows, j.chunk), layer_norm_task, &j);
}

/* i-GELU of one row of n elements in blocks of `block`; when n fits no
 * block (an FFN width padded for the next matmul), the last block is the
 * short rest, so blocks still line up with that matmul's input blocks. */
static void gelu_row_blocks(const fwd *f, float *x, int n, int block, int32_t *ibuf) {
    for (int off = 0; off < n; off += block)
        iops_gelu_block(f->ops, x + off, n - off < block ? n - off : block, f->mode->nl_bits, ibuf);
}

/* GELU over [rows][n].  The integer path applies i-GELU per block of
 * `block` elements, each quantized to nl_bits codes with its own scale. */
static void activation_rows(const rows_job *j, int r0, int r1, int32_t *ibuf) {
    const bert_mode *mode = j->f->mode;
    float *x = j->x + (size_t)r0 * j->n;
    size_t total = (size_t)(r1 - r0) * j->n;
    if (j->act == BERT_ACT_GELU && mode->int_gelu) {
        for (int r = r0; r < r1; r++) gelu_row_blocks(j->f, j->x + (size_t)r * j->n, j->n, j->block, ibuf);
        return;
    }
    switch (j->act) {
    case BERT_ACT_GELU:
        for (size_t i = 0; i < total; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
        break;
    case BERT_ACT_GELU_TANH: {
        const float k = 0.7978845608028654f; /* sqrt(2/pi) */
        for (size_t i = 0; i < total; i++)
            x[i] = 0.5f * x[i] * (1.0f + tanhf(k * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
        break;
    }
    case BERT_ACT_RELU:
        for (size_t i = 0; i < total; i++) x[i] = x[i] > 0 ? x[i] : 0;
        break;
    }
}

static void activation_task(void *ctx, int task, int worker) {
    const rows_job *j = ctx;
    int r0 = task * j->chunk, r1 = r0 + j->chunk < j->rows ? r0 + j->chunk : j->rows;
    activation_rows(j, r0, r1, j->f->ws->wk[worker].i);
}

static void activation(const fwd *f, bert_act act, float *x, int rows, int n, int block) {
    rows_job j = {.f = f, .x = x, .rows = rows, .n = n, .act = act, .block = block};
    j.chunk = row_chunk(f, rows, (size_t)n * 16);
    bct_pool_run(f->pool, ceil_div(rows, j.chunk), activation_task, &j);
}

/* ------------------------------------------------------------------ */
/* attention                                                           */

/* Softmax of s[0..n) * scale, in place. */
static void softmax_row(const fwd *f, int32_t *ibuf, float *s, int n, float scale) {
    const bert_mode *mode = f->mode;
    if (mode->int_softmax) {
        enum { OUT_BITS = 16 };
        iops_softmax_row(f->ops, s, n, scale, mode->nl_bits, OUT_BITS, ibuf);
        return;
    }
    float mx = s[0] * scale, sum = 0;
    for (int j = 1; j < n; j++) mx = s[j] * scale > mx ? s[j] * scale : mx;
    for (int j = 0; j < n; j++) sum += s[j] = expf(s[j] * scale - mx);
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) s[j] *= inv;
}

/* y = x W^T with a run-time int8 operand w (packed into wk->pk for SIMD
 * kernels); single-threaded: attention runs one (sequence, head) per task. */
static void small_gemm(bert_wk *wk, const qmat *w, const qmat *x, float *y, int ldy) {
    const void *pk = qgemm_pack_bytes(w) ? qgemm_pack(w, wk->pk) : NULL;
    qgemm_run(w, pk, x, NULL, y, ldy, NULL);
}

/* Quantizes rows x dh features of one head (stride ld) into s as int8
 * blocks of 32.  A head dimension that is no multiple of 32 (312 / 12 =
 * 26) is padded with zeros, as pad_input does for matmul inputs: padded
 * features have code 0 in Q and K alike, so Q.K^T is unchanged. */
static int quantize_head(bert_wk *wk, qscratch *s, const float *x, int ld, int rows, int dh) {
    int dhp = qmat_padded_cols(dh);
    if (qscratch_shape(s, rows, dhp, QMAT_GROUP)) return BCT_ENOMEM;
    if (dhp != dh) {
        if (grow((void **)&wk->hpad, &wk->hpadcap, (size_t)rows * (size_t)dhp, sizeof(float))) return BCT_ENOMEM;
        for (int r = 0; r < rows; r++) {
            memcpy(wk->hpad + (size_t)r * dhp, x + (size_t)r * ld, (size_t)dh * sizeof(float));
            memset(wk->hpad + (size_t)r * dhp + dh, 0, (size_t)(dhp - dh) * sizeof(float));
        }
        x = wk->hpad;
        ld = dhp;
    }
    qmat_quantize_act(&s->m, x, ld);
    return BCT_OK;
}

/* Self-attention of one head h (of dh features) of one sequence of `len`
 * tokens.  q holds `nq` query rows (all tokens, or just [CLS] in the last
 * layer), k and v hold `len` rows (stride H: the layer's heads side by
 * side, fewer than the config's when pruned).  Writes the head's context
 * columns of ctx ([nq][H], ld ldc). */
static int attention_head(const fwd *f, bert_wk *wk, const float *q, int ldq, int nq, const float *k,
                          const float *v, int len, int H, int dh, int h, float *ctx, int ldc) {
    const bert_mode *mode = f->mode;
    float scale = 1.0f / sqrtf((float)dh);
    /* Scores and probabilities as int8 blocks of 32 along the reduction
     * dimension: head features for Q.K^T (padded, quantize_head), key
     * positions for P.V (padded to lpad). */
    int quant = mode->act_int8;
    int lpad = ROUND_UP(len, QMAT_GROUP);
    float *scores = wk->f, *vt = wk->f + (size_t)nq * lpad;
    if (!quant) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, len, dh, 1.0f, q + h * dh, ldq,
                    k + h * dh, H, 0.0f, scores, len);
        for (int i = 0; i < nq; i++) softmax_row(f, wk->i, scores + (size_t)i * len, len, scale);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, dh, len, 1.0f, scores, len,
                    v + h * dh, H, 0.0f, ctx + h * dh, ldc);
        return BCT_OK;
    }
    if (quantize_head(wk, &wk->qa, q + h * dh, ldq, nq, dh) || quantize_head(wk, &wk->qb, k + h * dh, H, len, dh))
        return BCT_ENOMEM;
    small_gemm(wk, &wk->qb.m, &wk->qa.m, scores, lpad);
    for (int i = 0; i < nq; i++) {
        float *row = scores + (size_t)i * lpad;
        softmax_row(f, wk->i, row, len, scale);
        memset(row + len, 0, (size_t)(lpad - len) * sizeof(float));
    }
    /* V^T: [dh][lpad], so that P.V reduces along contiguous positions. */
    f->ops->transpose(v + h * dh, H, len, dh, vt, lpad);
    if (qscratch_shape(&wk->qa, nq, lpad, QMAT_GROUP) || qscratch_shape(&wk->qb, dh, lpad, QMAT_GROUP))
        return BCT_ENOMEM;
    qmat_quantize_act(&wk->qa.m, scores, lpad);
    qmat_quantize_act(&wk->qb.m, vt, lpad);
    small_gemm(wk, &wk->qb.m, &wk->qa.m, ctx + h * dh, ldc);
    return BCT_OK;
}

typedef struct att_job {
    const fwd *f;
    const bert_seq *seqs;
    const float *q, *k, *v;
    float *ctx;
    int last; /* only the [CLS] query of each sequence; its rows are packed */
    int heads, dh; /* the layer's heads and their width; rows are heads * dh wide */
    atomic_int rc;
} att_job;

static void attention_task(void *ctx, int task, int worker) {
    att_job *j = ctx;
    int A = j->heads * j->dh, s = task / j->heads, h = task % j->heads, len = j->seqs[s].len;
    size_t off = (size_t)j->f->ws->start[s] * A, qoff = j->last ? (size_t)s * A : off;
    int rc = attention_head(j->f, &j->f->ws->wk[worker], j->q + qoff, A, j->last ? 1 : len,
                            j->k + off, j->v + off, len, A, j->dh, h, j->ctx + qoff, A);
    if (rc != BCT_OK) atomic_store(&j->rc, rc);
}

/* Attention of every sequence and head of a layer of `heads` heads: one
 * task each. */
static int attention(const fwd *f, const bert_seq *seqs, int n, const float *q, const float *k,
                     const float *v, float *ctx, int last, int heads) {
    const bert_config *c = &f->m->cfg;
    att_job j = {.f = f, .seqs = seqs, .q = q, .k = k, .v = v, .ctx = ctx, .last = last, .heads = heads,
                 .dh = c->hidden / c->heads};
    atomic_init(&j.rc, BCT_OK);
    bct_pool_run(f->pool, n * heads, attention_task, &j);
    return atomic_load(&j.rc);
}

/* y = the bias of l in each of `rows` rows: a Linear all of whose inputs
 * were pruned away. */
static void bias_rows(const bert_linear *l, int rows, float *y) {
    for (int r = 0; r < rows; r++) memcpy(y + (size_t)r * l->out, l->b, (size_t)l->out * sizeof(float));
}

/* ------------------------------------------------------------------ */
/* forward                                                             */

static int check_inputs(const bert_config *c, const bert_seq *seqs, int n, bct_error *err) {
    for (int s = 0; s < n; s++) {
        if (seqs[s].len < 1 || seqs[s].len > c->max_pos)
            return bct_fail(err, BCT_EINVAL, "sequence %d has %d tokens (1..%d)", s, seqs[s].len,
                            c->max_pos);
        for (int t = 0; t < seqs[s].len; t++) {
            if (seqs[s].ids[t] < 0 || seqs[s].ids[t] >= c->vocab_size)
                return bct_fail(err, BCT_EINVAL, "sequence %d: token id %d outside the vocabulary", s,
                                seqs[s].ids[t]);
            if (c->type_vocab > 1 && seqs[s].type_ids[t] >= c->type_vocab)
                return bct_fail(err, BCT_EINVAL, "sequence %d: token type %d >= type_vocab_size", s,
                                seqs[s].type_ids[t]);
        }
    }
    return BCT_OK;
}

/* Row `r` of an embedding table, dequantized into tmp if needed. */
static const float *table_row(const bert_table *t, int r, int H, float *tmp) {
    if (!t->q) return t->f + (size_t)r * H;
    qmat_dequantize_prefix(t->q, r, tmp, H); /* without the row's padding */
    return tmp;
}

typedef struct embed_job {
    const fwd *f;
    const bert_seq *seqs;
    int n, total, chunk;
    float *x;
} embed_job;

/* Position-table row of token t of sq.  RoBERTa / XLM-R count non-pad
 * tokens: row pos_offset + (non-pad tokens before t), pad_id for a pad;
 * *run carries the non-pad count of tokens [0, t) from the call for t - 1 (pass
 * t == 0 or a fresh *run = -1 to start over). */
static int position_row(const bert_config *c, const bert_seq *sq, int t, int *run) {
    if (!c->pos_offset) return t;
    if (*run < 0 || t == 0) {
        *run = 0;
        for (int i = 0; i < t; i++) *run += sq->ids[i] != c->pad_id;
    }
    int pad = sq->ids[t] == c->pad_id, row = pad ? c->pad_id : c->pos_offset + *run;
    *run += !pad;
    return row;
}

/* Embedding sums of rows [chunk * task, ...): any tokens of any sequences.
 * Word + position (+ token type, as the architecture has it), emb_size wide. */
static void embed_task(void *ctx, int task, int worker) {
    const embed_job *j = ctx;
    const bert_model *m = j->f->m;
    const bert_config *c = &m->cfg;
    const int *start = j->f->ws->start;
    int E = c->emb_size;
    float *tmp = j->f->ws->wk[worker].f;
    int r0 = task * j->chunk, r1 = r0 + j->chunk < j->total ? r0 + j->chunk : j->total;
    int s = 0, run = -1;
    for (int lo = 0, hi = j->n - 1; lo <= hi;) { /* the sequence holding row r0 */
        int mid = (lo + hi) / 2;
        if (start[mid] <= r0) s = mid, lo = mid + 1;
        else hi = mid - 1;
    }
    for (int row = r0; row < r1; row++) {
        while (s + 1 < j->n && start[s + 1] <= row) s++;
        const bert_seq *sq = &j->seqs[s];
        int t = row - start[s];
        float *o = j->x + (size_t)row * E;
        const float *w = table_row(&m->word_emb, sq->ids[t], E, tmp);
        memcpy(o, w, (size_t)E * sizeof(float));
        const float *p = table_row(&m->pos_emb, position_row(c, sq, t, &run), E, tmp);
        for (int i = 0; i < E; i++) o[i] += p[i];
        if (c->type_vocab == 0) continue;
        /* One token type (RoBERTa): every token takes row 0, whatever a
         * pair-aware tokenizer said. */
        const float *ty = table_row(&m->type_emb, c->type_vocab > 1 ? sq->type_ids[t] : 0, E, tmp);
        for (int i = 0; i < E; i++) o[i] += ty[i];
    }
}

/* Block size of the integer GELU: the FFN output weight's, so GELU codes
 * and the next matmul's input blocks line up. */
static int gelu_block(const bert_layer *L) { return L->ffn_out.q ? L->ffn_out.q->block : QMAT_GROUP; }

/* The head's activation, in fp32 in every mode: it runs on one row per
 * sequence. */
static void head_activation(bert_head_act act, float *x, size_t n) {
    switch (act) {
    case BERT_HEAD_TANH:
        for (size_t i = 0; i < n; i++) x[i] = tanhf(x[i]);
        break;
    case BERT_HEAD_RELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
        break;
    case BERT_HEAD_GELU:
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
        break;
    }
}

/* One group of whole sequences (see bert_forward.h on grouping). */
static int forward_group(const fwd *f, const bert_seq *seqs, int n, float *logits, bct_error *err) {
    bert_ws *ws = f->ws;
    const bert_model *m = f->m;
    const bert_config *c = &m->cfg;
    int H = c->hidden, rc = BCT_OK;
    int total = 0, longest = 0;
    for (int s = 0; s < n; s++) {
        total += seqs[s].len;
        longest = seqs[s].len > longest ? seqs[s].len : longest;
    }
    /* x, q, then k, v, ctx; the FFN intermediate (total x inter) reuses k,
     * v and ctx, which are dead once the attention output is computed. */
    size_t NH = (size_t)total * H, NI = (size_t)total * c->intermediate;
    size_t need = 2 * NH + (3 * NH > NI ? 3 * NH : NI);
    if (ws_reserve(ws, c, need, n, longest, bct_pool_threads(f->pool)) != BCT_OK)
        return bct_fail(err, BCT_ENOMEM, "out of memory for a batch of %d tokens", total);
    float *x = ws->buf, *q = x + NH, *k = q + NH, *v = k + NH, *ctx = v + NH;
    float *ffn = k;
    for (int s = 0, row = 0; s < n; row += seqs[s].len, s++) ws->start[s] = row;

    /* Embeddings narrower than the hidden state (ELECTRA) are summed and
     * normalised in the FFN scratch, then projected into x. */
    int E = c->emb_size, project = E != H;
    float *emb = project ? ffn : x;
    embed_job ej = {f, seqs, n, total, row_chunk(f, total, (size_t)E * 8), emb};
    bct_pool_run(f->pool, ceil_div(total, ej.chunk), embed_task, &ej);
    add_layer_norm(f, emb, NULL, total, E, &m->emb_norm, c->ln_eps);
    if (project && (rc = linear(f, &m->emb_proj, emb, E, total, NULL, x)))
        return bct_fail(err, rc, "out of memory");

    int run = ws->stop_layers > 0 && ws->stop_layers < c->layers ? ws->stop_layers : c->layers;
    for (int li = 0; li < run && rc == BCT_OK; li++) {
        const bert_layer *L = &m->layer[li];
        int last = li == c->layers - 1, heads = bert_config_layer_heads(c, li);
        int A = heads * (H / c->heads), inter = bert_config_layer_inter(c, li);
        const qmat *qx = heads && L->key.q ? quantize_input(f, x, H, total, H, L->key.q, L->key.act_scale) : NULL;
        if (heads && L->key.q && !qx) return bct_fail(err, BCT_ENOMEM, "out of memory");
        if (heads && ((rc = linear(f, &L->key, x, H, total, qx, k)) || (rc = linear(f, &L->value, x, H, total, qx, v))))
            break;
        if (last) {
            /* Only [CLS] rows reach the pooler: gather them into x's first
             * n rows and shrink the rest of the layer to n rows. */
            for (int s = 0; s < n; s++)
                memcpy(ctx + (size_t)s * H, x + (size_t)ws->start[s] * H, (size_t)H * sizeof(float));
            memcpy(x, ctx, (size_t)n * H * sizeof(float));
        }
        int qrows = last ? n : total;
        if (heads) {
            if ((rc = linear(f, &L->query, x, H, qrows, last ? NULL : qx, q))) break;
            rc = attention(f, seqs, n, q, k, v, ctx, last, heads);
        }
        if (last) total = n;
        if (rc) break;
        if (heads) rc = linear(f, &L->attn_out, ctx, A, total, NULL, q);
        else bias_rows(&L->attn_out, total, q);
        if (rc) break;
        add_layer_norm(f, q, x, total, H, &L->attn_norm, c->ln_eps);
        if (inter) {
            if ((rc = linear(f, &L->ffn_in, q, H, total, NULL, ffn))) break;
            activation(f, c->act, ffn, total, inter, gelu_block(L));
            if ((rc = linear(f, &L->ffn_out, ffn, inter, total, NULL, x))) break;
        } else {
            bias_rows(&L->ffn_out, total, x);
        }
        add_layer_norm(f, x, q, total, H, &L->ffn_norm, c->ln_eps);
    }
    if (rc != BCT_OK) return bct_fail(err, rc, "out of memory running a batch of %d tokens", total);
    if (run < c->layers) return BCT_OK; /* stopped early: no logits */

    /* x now holds one row per sequence: the first token after the last layer. */
    if ((rc = linear(f, &m->head_dense, x, H, n, NULL, q))) return bct_fail(err, rc, "out of memory");
    head_activation(bert_arch_head_act(c->arch), q, (size_t)n * H);
    if ((rc = linear(f, &m->classifier, q, H, n, NULL, logits))) return bct_fail(err, rc, "out of memory");
    return BCT_OK;
}

int bert_forward(const bert_model *m, const bert_seq *seqs, int n, float *logits, bert_ws *ws,
                 bct_error *err) {
    const bert_config *c = &m->cfg;
    int rc = check_inputs(c, seqs, n, err);
    if (rc != BCT_OK) return rc;
    /* fp32 GEMMs thread inside OpenBLAS: the pool only serves the int8 path. */
    fwd f = {ws, m, &m->mode, m->mode.act_int8 ? ws->pool : NULL, iops_for(qgemm_isa())};
    for (int s0 = 0; s0 < n && rc == BCT_OK;) {
        int s1 = s0, tokens = 0;
        while (s1 < n && (s1 == s0 || tokens + seqs[s1].len <= BERT_FORWARD_GROUP_TOKENS))
            tokens += seqs[s1++].len;
        rc = forward_group(&f, seqs + s0, s1 - s0, logits + (size_t)s0 * c->num_labels, err);
        s0 = s1;
    }
    return rc;
}
