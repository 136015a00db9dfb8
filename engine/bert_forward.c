#include "bert_forward.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct bert_ws {
    float *buf;
    size_t cap; /* floats */
    int *start; /* first row of each sequence */
    int cap_seqs;
};

bert_ws *bert_ws_create(void) { return calloc(1, sizeof(bert_ws)); }

void bert_ws_free(bert_ws *ws) {
    if (!ws) return;
    free(ws->buf);
    free(ws->start);
    free(ws);
}

static int ws_reserve(bert_ws *ws, size_t floats, int seqs) {
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
    return BCT_OK;
}

/* y[rows][out] = x[rows][in] W^T + b (x rows are ldx apart). */
static void linear(const bert_linear *l, const float *x, int ldx, int rows, float *y) {
    for (int r = 0; r < rows; r++) memcpy(y + (size_t)r * l->out, l->b, (size_t)l->out * sizeof(float));
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rows, l->out, l->in, 1.0f, x, ldx, l->w,
                l->in, 1.0f, y, l->out);
}

/* x[r] = LayerNorm(x[r] + res[r]) over n features (res may be NULL). */
static void add_layer_norm(float *x, const float *res, int rows, int n, const bert_norm *nm,
                           float eps) {
    for (int r = 0; r < rows; r++) {
        float *v = x + (size_t)r * n;
        if (res)
            for (int i = 0; i < n; i++) v[i] += res[(size_t)r * n + i];
        double mean = 0, var = 0;
        for (int i = 0; i < n; i++) mean += v[i];
        mean /= n;
        for (int i = 0; i < n; i++) var += (v[i] - mean) * (v[i] - mean);
        var /= n;
        float inv = (float)(1.0 / sqrt(var + eps));
        for (int i = 0; i < n; i++) v[i] = (float)(v[i] - mean) * inv * nm->gamma[i] + nm->beta[i];
    }
}

static void activation(bert_act act, float *x, size_t n) {
    switch (act) {
    case BERT_ACT_GELU:
        for (size_t i = 0; i < n; i++) x[i] = 0.5f * x[i] * (1.0f + erff(x[i] * (float)M_SQRT1_2));
        break;
    case BERT_ACT_GELU_TANH: {
        const float k = 0.7978845608028654f; /* sqrt(2/pi) */
        for (size_t i = 0; i < n; i++)
            x[i] = 0.5f * x[i] * (1.0f + tanhf(k * (x[i] + 0.044715f * x[i] * x[i] * x[i])));
        break;
    }
    case BERT_ACT_RELU:
        for (size_t i = 0; i < n; i++) x[i] = x[i] > 0 ? x[i] : 0;
        break;
    }
}

static void softmax_row(float *s, int n) {
    float mx = s[0], sum = 0;
    for (int j = 1; j < n; j++) mx = s[j] > mx ? s[j] : mx;
    for (int j = 0; j < n; j++) sum += s[j] = expf(s[j] - mx);
    float inv = 1.0f / sum;
    for (int j = 0; j < n; j++) s[j] *= inv;
}

/* Multi-head self-attention of one sequence of `len` tokens.  q holds
 * `nq` query rows (all tokens, or just [CLS] in the last layer), k and v
 * hold `len` rows; all are [rows][H] with heads side by side.  Writes the
 * context rows to ctx ([nq][H], ld H).  scores: nq*len floats. */
static void attention(const float *q, int ldq, int nq, const float *k, const float *v, int len,
                      int H, int heads, float *ctx, int ldc, float *scores) {
    int dh = H / heads;
    float scale = 1.0f / sqrtf((float)dh);
    for (int h = 0; h < heads; h++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, len, dh, scale, q + h * dh, ldq,
                    k + h * dh, H, 0.0f, scores, len);
        for (int i = 0; i < nq; i++) softmax_row(scores + (size_t)i * len, len);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, dh, len, 1.0f, scores, len,
                    v + h * dh, H, 0.0f, ctx + h * dh, ldc);
    }
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

static void embed(const bert_model *m, const bert_seq *seqs, int n, float *x) {
    int H = m->cfg.hidden;
    for (int s = 0, row = 0; s < n; s++) {
        for (int t = 0; t < seqs[s].len; t++, row++) {
            const float *w = m->word_emb + (size_t)seqs[s].ids[t] * H;
            const float *p = m->pos_emb + (size_t)t * H;
            const float *ty = m->type_emb + (size_t)seqs[s].type_ids[t] * H;
            float *o = x + (size_t)row * H;
            for (int i = 0; i < H; i++) o[i] = w[i] + p[i] + ty[i];
        }
    }
}

int bert_forward(const bert_model *m, const bert_seq *seqs, int n, float *logits, bert_ws *ws,
                 bct_error *err) {
    const bert_config *c = &m->cfg;
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
    size_t need = 5 * NH + (size_t)total * inter + (size_t)longest * longest;
    if (ws_reserve(ws, need, n) != BCT_OK)
        return bct_fail(err, BCT_ENOMEM, "out of memory for a batch of %d tokens", total);
    float *x = ws->buf, *q = x + NH, *k = q + NH, *v = k + NH, *ctx = v + NH;
    float *ffn = ctx + NH, *scores = ffn + (size_t)total * inter;
    for (int s = 0, row = 0; s < n; row += seqs[s].len, s++) ws->start[s] = row;

    embed(m, seqs, n, x);
    add_layer_norm(x, NULL, total, H, &m->emb_norm, c->ln_eps);

    for (int li = 0; li < c->layers; li++) {
        const bert_layer *L = &m->layer[li];
        int last = li == c->layers - 1;
        linear(&L->key, x, H, total, k);
        linear(&L->value, x, H, total, v);
        if (!last) {
            linear(&L->query, x, H, total, q);
            for (int s = 0; s < n; s++) {
                size_t off = (size_t)ws->start[s] * H;
                attention(q + off, H, seqs[s].len, k + off, v + off, seqs[s].len, H, c->heads,
                          ctx + off, H, scores);
            }
        } else {
            /* Only [CLS] rows reach the pooler: gather them into q's space
             * (rows 0..n-1) and shrink the rest of the layer to n rows. */
            float *xc = ctx; /* free until attention writes it */
            for (int s = 0; s < n; s++)
                memcpy(xc + (size_t)s * H, x + (size_t)ws->start[s] * H, (size_t)H * sizeof(float));
            memcpy(x, xc, (size_t)n * H * sizeof(float));
            linear(&L->query, x, H, n, q);
            for (int s = 0; s < n; s++) {
                size_t off = (size_t)ws->start[s] * H;
                attention(q + (size_t)s * H, H, 1, k + off, v + off, seqs[s].len, H, c->heads,
                          ctx + (size_t)s * H, H, scores);
            }
            total = n;
        }
        linear(&L->attn_out, ctx, H, total, q);
        add_layer_norm(q, x, total, H, &L->attn_norm, c->ln_eps);
        linear(&L->ffn_in, q, H, total, ffn);
        activation(c->act, ffn, (size_t)total * inter);
        linear(&L->ffn_out, ffn, inter, total, x);
        add_layer_norm(x, q, total, H, &L->ffn_norm, c->ln_eps);
    }

    /* x now holds one row per sequence: [CLS] after the last layer. */
    linear(&m->pooler, x, H, n, q);
    for (size_t i = 0; i < (size_t)n * H; i++) q[i] = tanhf(q[i]);
    linear(&m->classifier, q, H, n, logits);
    return BCT_OK;
}
