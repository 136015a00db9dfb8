#include "bert_forward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "intops.h"
#include "qgemm.h"

/* A qmat whose buffers grow to the largest shape requested. */
typedef struct qscratch {
    qmat m;
    size_t codes_cap, scales_cap;
} qscratch;

struct bert_ws {
    float *buf;
    size_t cap; /* floats */
    int *start; /* first row of each sequence */
    int cap_seqs;
    qscratch qx, qa, qb; /* matmul input; attention operands */
    int32_t *ibuf;       /* integer codes for non-linear ops */
    size_t icap;         /* int32s in ibuf (two halves: in, out) */
    bert_observer observe;
    void *observe_ud;
};

bert_ws *bert_ws_create(void) { return calloc(1, sizeof(bert_ws)); }

void bert_ws_observe(bert_ws *ws, bert_observer fn, void *ud) {
    ws->observe = fn;
    ws->observe_ud = ud;
}

void bert_ws_free(bert_ws *ws) {
    if (!ws) return;
    free(ws->buf);
    free(ws->start);
    qmat_free(&ws->qx.m);
    qmat_free(&ws->qa.m);
    qmat_free(&ws->qb.m);
    free(ws->ibuf);
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

static int ws_reserve(bert_ws *ws, size_t floats, int seqs, size_t ints) {
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
    return grow((void **)&ws->ibuf, &ws->icap, ints, sizeof(int32_t));
}

/* Quantizes x (rows x cols, stride ldx) to int8 blocks in ws->qx. */
static const qmat *quantize_input(bert_ws *ws, const float *x, int ldx, int rows, int cols,
                                  int block) {
    if (qscratch_shape(&ws->qx, rows, cols, block) != BCT_OK) return NULL;
    qmat_quantize_act(&ws->qx.m, x, ldx);
    return &ws->qx.m;
}

/* y[rows][out] = x[rows][in] W^T + b.  For quantized weights the input is
 * quantized to int8 blocks, unless `pre` already holds it in the right
 * block size (Q, K and V share one quantized input). */
static int linear(bert_ws *ws, const bert_linear *l, const float *x, int ldx, int rows,
                  const qmat *pre, float *y) {
    if (l->q) {
        const qmat *qx = pre && pre->block == l->q->block && pre->rows == rows
                             ? pre
                             : quantize_input(ws, x, ldx, rows, l->in, l->q->block);
        if (!qx) return BCT_ENOMEM;
        qgemm(l->q, qx, l->b, y, l->out);
        return BCT_OK;
    }
    if (ws->observe) ws->observe(ws->observe_ud, l, x, ldx, rows);
    for (int r = 0; r < rows; r++) memcpy(y + (size_t)r * l->out, l->b, (size_t)l->out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, l->out, l->in, 1.0f, x, ldx, l->w,
                l->in, 1.0f, y, l->out);
    return BCT_OK;
}

/* x[r] = LayerNorm(x[r] + res[r]) over n features (res may be NULL).  The
 * integer path quantizes the row to nl_bits codes (one scale: it cancels
 * in normalisation) and normalises with integer arithmetic. */
static void add_layer_norm(bert_ws *ws, const bert_mode *mode, float *x, const float *res, int rows,
                           int n, const bert_norm *nm, float eps) {
    for (int r = 0; r < rows; r++) {
        float *v = x + (size_t)r * n;
        if (res)
            for (int i = 0; i < n; i++) v[i] += res[(size_t)r * n + i];
        if (mode->int_layernorm && nm->ints) {
            float s = iop_quantize_row(v, n, mode->nl_bits, ws->ibuf);
            iop_layernorm_scaled(nm->ints, ws->ibuf, s, v);
            continue;
        }
        double mean = 0, var = 0;
        for (int i = 0; i < n; i++) mean += v[i];
        mean /= n;
        for (int i = 0; i < n; i++) var += (v[i] - mean) * (v[i] - mean);
        var /= n;
        float inv = (float)(1.0 / sqrt(var + eps));
        for (int i = 0; i < n; i++) v[i] = (float)(v[i] - mean) * inv * nm->gamma[i] + nm->beta[i];
    }
}

/* GELU over [rows][n].  The integer path applies i-GELU per block of
 * `block` elements, each quantized to nl_bits codes with its own scale. */
static void activation(bert_ws *ws, const bert_mode *mode, bert_act act, float *x, int rows, int n,
                       int block) {
    size_t total = (size_t)rows * n;
    if (act == BERT_ACT_GELU && mode->int_gelu) {
        int32_t *in = ws->ibuf, *out = ws->ibuf + block;
        for (size_t off = 0; off < total; off += (size_t)block) {
            float out_scale, s = iop_quantize_row(x + off, block, mode->nl_bits, in);
            iop_gelu(in, block, s, out, &out_scale);
            for (int i = 0; i < block; i++) x[off + (size_t)i] = (float)out[i] * out_scale;
        }
        return;
    }
    switch (act) {
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

/* Softmax of s[0..n) * scale, in place. */
static void softmax_row(bert_ws *ws, const bert_mode *mode, float *s, int n, float scale) {
    if (mode->int_softmax) {
        enum { OUT_BITS = 16 };
        int32_t *in = ws->ibuf, *p = ws->ibuf + n;
        float qs = iop_quantize_row(s, n, mode->nl_bits, in);
        iop_softmax(in, n, qs * scale, p, OUT_BITS);
        for (int j = 0; j < n; j++) s[j] = (float)p[j] * (1.0f / (1 << OUT_BITS));
        return;
    }
    float mx = s[0] * scale, sum = 0;
    for (int j = 1; j < n; j++) mx = s[j] * scale > mx ? s[j] * scale : mx;
    for (int j = 0; j < n; j++) sum += s[j] = expf(s[j] * scale - mx);
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) s[j] *= inv;
}

#define ROUND_UP(x, m) (((x) + (m)-1) / (m) * (m))

/* Multi-head self-attention of one sequence of `len` tokens.  q holds
 * `nq` query rows (all tokens, or just [CLS] in the last layer), k and v
 * hold `len` rows; all are [rows][H] with heads side by side.  Writes the
 * context rows to ctx ([nq][H], ld ldc).  scratch: attention_scratch()
 * floats. */
static size_t attention_scratch(int nq, int len, int dh) {
    size_t lpad = ROUND_UP((size_t)len, QMAT_GROUP);
    return (size_t)nq * lpad + (size_t)dh * lpad;
}

static int attention(bert_ws *ws, const bert_mode *mode, const float *q, int ldq, int nq,
                     const float *k, const float *v, int len, int H, int heads, float *ctx, int ldc,
                     float *scratch) {
    int dh = H / heads;
    float scale = 1.0f / sqrtf((float)dh);
    /* Scores and probabilities as int8 blocks of 32 along the reduction
     * dimension: head features for Q.K^T, key positions for P.V. */
    int quant = mode->act_int8 && dh % QMAT_GROUP == 0;
    int lpad = ROUND_UP(len, QMAT_GROUP);
    float *scores = scratch, *vt = scratch + (size_t)nq * lpad;
    for (int h = 0; h < heads; h++) {
        if (!quant) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, len, dh, 1.0f, q + h * dh, ldq,
                        k + h * dh, H, 0.0f, scores, len);
            for (int i = 0; i < nq; i++) softmax_row(ws, mode, scores + (size_t)i * len, len, scale);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, dh, len, 1.0f, scores, len,
                        v + h * dh, H, 0.0f, ctx + h * dh, ldc);
            continue;
        }
        if (qscratch_shape(&ws->qa, nq, dh, QMAT_GROUP) || qscratch_shape(&ws->qb, len, dh, QMAT_GROUP))
            return BCT_ENOMEM;
        qmat_quantize_act(&ws->qa.m, q + h * dh, ldq);
        qmat_quantize_act(&ws->qb.m, k + h * dh, H);
        qgemm(&ws->qb.m, &ws->qa.m, NULL, scores, lpad);
        for (int i = 0; i < nq; i++) {
            float *row = scores + (size_t)i * lpad;
            softmax_row(ws, mode, row, len, scale);
            memset(row + len, 0, (size_t)(lpad - len) * sizeof(float));
        }
        /* V^T: [dh][lpad], so that P.V reduces along contiguous positions. */
        for (int d = 0; d < dh; d++) {
            float *dst = vt + (size_t)d * lpad;
            for (int t = 0; t < len; t++) dst[t] = v[(size_t)t * H + h * dh + d];
            memset(dst + len, 0, (size_t)(lpad - len) * sizeof(float));
        }
        if (qscratch_shape(&ws->qa, nq, lpad, QMAT_GROUP) || qscratch_shape(&ws->qb, dh, lpad, QMAT_GROUP))
            return BCT_ENOMEM;
        qmat_quantize_act(&ws->qa.m, scores, lpad);
        qmat_quantize_act(&ws->qb.m, vt, lpad);
        qgemm(&ws->qb.m, &ws->qa.m, NULL, ctx + h * dh, ldc);
    }
    return BCT_OK;
}

static int check_inputs(const bert_config *c, const bert_seq *seqs, int n, bct_error *err) {
    for (int s = 0; s < n; s++) {
        if (seqs[s].len < 1 || seqs[s].len > c->max_pos)
            return bct_fail(err, BCT_EINVAL, "sequence %d has %d tokens (1..%d)", s, seqs[s].len,
                            c->max_pos);
        for (int t = 0; t < seqs[s].len; t++) {
            if (seqs[s].ids[t] < 0 || seqs[s].ids[t] >= c->vocab_size)
                return bct_fail(err, BCT_EINVAL, "sequence %d: token id %d outside the vocabulary", s,
                                seqs[s].ids[t]);
            if (seqs[s].type_ids[t] >= c->type_vocab)
                return bct_fail(err, BCT_EINVAL, "sequence %d: token type %d >= type_vocab_size", s,
                                seqs[s].type_ids[t]);
        }
    }
    return BCT_OK;
}

/* Row `r` of an embedding table, dequantized into tmp if needed. */
static const float *table_row(const bert_table *t, int r, int H, float *tmp) {
    if (!t->q) return t->f + (size_t)r * H;
    qmat_dequantize_row(t->q, r, tmp);
    return tmp;
}

static void embed(const bert_model *m, const bert_seq *seqs, int n, float *x, float *tmp) {
    int H = m->cfg.hidden;
    for (int s = 0, row = 0; s < n; s++) {
        for (int t = 0; t < seqs[s].len; t++, row++) {
            float *o = x + (size_t)row * H;
            const float *w = table_row(&m->word_emb, seqs[s].ids[t], H, tmp);
            memcpy(o, w, (size_t)H * sizeof(float));
            const float *p = table_row(&m->pos_emb, t, H, tmp);
            for (int i = 0; i < H; i++) o[i] += p[i];
            const float *ty = table_row(&m->type_emb, seqs[s].type_ids[t], H, tmp);
            for (int i = 0; i < H; i++) o[i] += ty[i];
        }
    }
}

/* Block size of the integer GELU: the FFN output weight's, so GELU codes
 * and the next matmul's input blocks line up. */
static int gelu_block(const bert_layer *L) { return L->ffn_out.q ? L->ffn_out.q->block : QMAT_GROUP; }

int bert_forward(const bert_model *m, const bert_seq *seqs, int n, float *logits, bert_ws *ws,
                 bct_error *err) {
    const bert_config *c = &m->cfg;
    const bert_mode *mode = &m->mode;
    int H = c->hidden, inter = c->intermediate;
    int rc = check_inputs(c, seqs, n, err);
    if (rc != BCT_OK) return rc;
    if (n == 0) return BCT_OK;

    int total = 0, longest = 0;
    for (int s = 0; s < n; s++) {
        total += seqs[s].len;
        longest = seqs[s].len > longest ? seqs[s].len : longest;
    }
    size_t NH = (size_t)total * H;
    size_t att = attention_scratch(longest, longest, H / c->heads);
    size_t need = 5 * NH + (size_t)total * inter + att + (size_t)H;
    size_t ints = 2 * (size_t)(ROUND_UP(longest, QMAT_GROUP) + H + inter);
    if (ws_reserve(ws, need, n, ints) != BCT_OK)
        return bct_fail(err, BCT_ENOMEM, "out of memory for a batch of %d tokens", total);
    float *x = ws->buf, *q = x + NH, *k = q + NH, *v = k + NH, *ctx = v + NH;
    float *ffn = ctx + NH, *scratch = ffn + (size_t)total * inter, *row_tmp = scratch + att;
    for (int s = 0, row = 0; s < n; row += seqs[s].len, s++) ws->start[s] = row;

    embed(m, seqs, n, x, row_tmp);
    add_layer_norm(ws, mode, x, NULL, total, H, &m->emb_norm, c->ln_eps);

    for (int li = 0; li < c->layers && rc == BCT_OK; li++) {
        const bert_layer *L = &m->layer[li];
        int last = li == c->layers - 1;
        const qmat *qx = L->key.q ? quantize_input(ws, x, H, total, H, L->key.q->block) : NULL;
        if (L->key.q && !qx) return bct_fail(err, BCT_ENOMEM, "out of memory");
        if ((rc = linear(ws, &L->key, x, H, total, qx, k)) ||
            (rc = linear(ws, &L->value, x, H, total, qx, v)))
            break;
        if (!last) {
            if ((rc = linear(ws, &L->query, x, H, total, qx, q))) break;
            for (int s = 0; s < n && rc == BCT_OK; s++) {
                size_t off = (size_t)ws->start[s] * H;
                rc = attention(ws, mode, q + off, H, seqs[s].len, k + off, v + off, seqs[s].len, H,
                               c->heads, ctx + off, H, scratch);
            }
        } else {
            /* Only [CLS] rows reach the pooler: gather them into x's first
             * n rows and shrink the rest of the layer to n rows. */
            for (int s = 0; s < n; s++)
                memcpy(ctx + (size_t)s * H, x + (size_t)ws->start[s] * H, (size_t)H * sizeof(float));
            memcpy(x, ctx, (size_t)n * H * sizeof(float));
            if ((rc = linear(ws, &L->query, x, H, n, NULL, q))) break;
            for (int s = 0; s < n && rc == BCT_OK; s++) {
                size_t off = (size_t)ws->start[s] * H;
                rc = attention(ws, mode, q + (size_t)s * H, H, 1, k + off, v + off, seqs[s].len, H,
                               c->heads, ctx + (size_t)s * H, H, scratch);
            }
            total = n;
        }
        if (rc || (rc = linear(ws, &L->attn_out, ctx, H, total, NULL, q))) break;
        add_layer_norm(ws, mode, q, x, total, H, &L->attn_norm, c->ln_eps);
        if ((rc = linear(ws, &L->ffn_in, q, H, total, NULL, ffn))) break;
        activation(ws, mode, c->act, ffn, total, inter, gelu_block(L));
        if ((rc = linear(ws, &L->ffn_out, ffn, inter, total, NULL, x))) break;
        add_layer_norm(ws, mode, x, q, total, H, &L->ffn_norm, c->ln_eps);
    }
    if (rc != BCT_OK) return bct_fail(err, rc, "out of memory running a batch of %d tokens", total);

    /* x now holds one row per sequence: [CLS] after the last layer. */
    if ((rc = linear(ws, &m->pooler, x, H, n, NULL, q)))
        return bct_fail(err, rc, "out of memory");
    for (size_t i = 0; i < (size_t)n * H; i++) q[i] = tanhf(q[i]);
    if ((rc = linear(ws, &m->classifier, q, H, n, NULL, logits)))
        return bct_fail(err, rc, "out of memory");
    return BCT_OK;
}
