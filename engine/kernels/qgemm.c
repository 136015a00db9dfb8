#include "qgemm.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgemm_kern.h"
#include "util/status.h"
#include "threadpool.h"

int32_t qdot_q8q8_scalar(const int8_t *w, const int8_t *x, int n) {
    int32_t sum = 0;
    for (int i = 0; i < n; i++) sum += (int32_t)w[i] * x[i];
    return sum;
}

int32_t qdot_q4q8_scalar(const uint8_t *w4, const int8_t *x, int n) {
    int32_t sum = 0;
    for (int g = 0; g < n / QMAT_GROUP; g++, w4 += 16, x += QMAT_GROUP)
        for (int j = 0; j < 16; j++)
            sum += ((w4[j] & 15) - 8) * x[j] + ((w4[j] >> 4) - 8) * x[j + 16];
    return sum;
}

/* 0x80 in every byte where pack p stores q8 codes biased to unsigned
 * (QPK1), else 0. */
static uint32_t pack_flip(const qpack *p) { return p->bits == 8 && p->magic == QPACK_MAGIC ? 0x80808080u : 0; }

/* Bytes [j0, j0 + n) of weight row o in the qmat layout (j0, n multiples
 * of 4): from w->codes, or, when those were dropped after packing
 * (qgemm.h), gathered from w->pack into buf. */
static const uint8_t *weight_bytes(const qmat *w, int o, size_t j0, size_t n, uint8_t *buf) {
    if (w->codes) return qmat_row_codes(w, o) + j0;
    const qpack *p = w->pack;
    const uint32_t *tile = (const uint32_t *)((const uint8_t *)p + QPACK_HEADER + (size_t)(o / QPACK_TILE) * p->tile_bytes);
    uint32_t flip = pack_flip(p);
    for (size_t k = 0; k < n / 4; k++) {
        uint32_t v = tile[(j0 / 4 + k) * QPACK_TILE + (size_t)(o % QPACK_TILE)] ^ flip;
        memcpy(buf + 4 * k, &v, 4);
    }
    return buf;
}

static int32_t block_dot(const qmat *w, int o, int b, const int8_t *xb) {
    const int blk = w->block, q8 = w->bits == 8;
    const size_t gbytes = qmat_row_bytes(w->bits, QMAT_GROUP), j0 = (size_t)b * qmat_row_bytes(w->bits, blk);
    if (w->codes) {
        const uint8_t *wb = qmat_row_codes(w, o) + j0;
        return q8 ? qdot_q8q8_scalar((const int8_t *)wb, xb, blk) : qdot_q4q8_scalar(wb, xb, blk);
    }
    /* Codes only in the pack: a group at a time (int32 sums are exact, so
     * the order does not matter). */
    uint8_t buf[QMAT_GROUP];
    int32_t sum = 0;
    for (int g = 0; g < blk / QMAT_GROUP; g++) {
        const uint8_t *wb = weight_bytes(w, o, j0 + (size_t)g * gbytes, gbytes, buf);
        const int8_t *xg = xb + (size_t)g * QMAT_GROUP;
        sum += q8 ? qdot_q8q8_scalar((const int8_t *)wb, xg, QMAT_GROUP) : qdot_q4q8_scalar(wb, xg, QMAT_GROUP);
    }
    return sum;
}

/* Rows [r0, r1) of the scalar reference. */
static void scalar_rows(const qmat *w, const qmat *x, const float *bias, float *y, int ldy, int r0, int r1) {
    int nb = w->cols / w->block, blk = w->block;
    for (int r = r0; r < r1; r++) {
        const int8_t *xq = (const int8_t *)qmat_row_codes(x, r);
        const float *xd = qmat_row_scales(x, r);
        for (int o = 0; o < w->rows; o++) {
            const float *wd = qmat_row_scales(w, o);
            float acc = bias ? bias[o] : 0.0f;
            for (int b = 0; b < nb; b++)
                acc += wd[b] * xd[b] * (float)block_dot(w, o, b, xq + (size_t)b * blk);
            y[(size_t)r * ldy + o] = acc;
        }
    }
}

void qgemm_scalar(const qmat *w, const qmat *x, const float *bias, float *y, int ldy) {
    assert(w->cols == x->cols && w->block == x->block && x->bits == 8);
    scalar_rows(w, x, bias, y, ldy, 0, x->rows);
}

/* ------------------------------------------------------------------ */
/* kernel choice                                                       */

static atomic_int active_isa = BCT_ISA_SCALAR;
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;

static void choose_isa(void) {
    bct_isa best = bct_isa_best(), isa = best;
    const char *env = getenv("BCT_ISA");
    if (env && *env) {
        int want = bct_isa_parse(env);
        if (want < 0)
            fprintf(stderr, "bct: warning: BCT_ISA=%s is not one of scalar, avx2, avxvnni, avx512vnni, amx; using %s\n",
                    env, bct_isa_name(best));
        else if (!bct_isa_supported((bct_isa)want))
            fprintf(stderr, "bct: warning: BCT_ISA=%s: %s; using %s\n", env,
                    want == BCT_ISA_AMX ? "this CPU or OS does not support it (AMX-INT8 needs the CPU flags, "
                                          "tile state enabled by the OS and the arch_prctl tile permission)"
                                        : "this CPU (or OS) does not support it",
                    bct_isa_name(best));
        else
            isa = (bct_isa)want;
    }
    atomic_store(&active_isa, (int)isa);
}

bct_isa qgemm_isa(void) {
    pthread_once(&isa_once, choose_isa);
    return (bct_isa)atomic_load_explicit(&active_isa, memory_order_relaxed);
}

int qgemm_set_isa(bct_isa isa) {
    pthread_once(&isa_once, choose_isa);
    if (!bct_isa_supported(isa)) return BCT_EUNSUPPORTED;
    atomic_store(&active_isa, (int)isa);
    return BCT_OK;
}

static int isa_packs(bct_isa isa) {
    return isa != BCT_ISA_SCALAR;
}

/* The pack layout an ISA's kernel reads (qgemm_kern.h). */
static uint32_t isa_magic(bct_isa isa) { return isa == BCT_ISA_AMX ? QPACK_AMX_MAGIC : QPACK_MAGIC; }

/* ------------------------------------------------------------------ */
/* packing                                                             */

static size_t round64(size_t n) { return (n + 63) / 64 * 64; }

static qpack pack_header(bct_isa isa, const qmat *w) {
    qpack h = {.magic = isa_magic(isa), .bits = w->bits, .rows = w->rows, .cols = w->cols, .block = w->block};
    h.tiles = (w->rows + QPACK_TILE - 1) / QPACK_TILE;
    h.tile_bytes = (size_t)QPACK_TILE * qmat_row_bytes(w->bits, w->cols);
    h.total = QPACK_HEADER + round64(h.tile_bytes * (size_t)h.tiles);
    return h;
}

size_t qgemm_pack_bytes_isa(bct_isa isa, const qmat *w) { return isa_packs(isa) ? pack_header(isa, w).total : 0; }

size_t qgemm_pack_bytes(const qmat *w) { return qgemm_pack_bytes_isa(qgemm_isa(), w); }

const void *qgemm_pack(const qmat *w, void *buf) { return qgemm_pack_isa(qgemm_isa(), w, buf); }

const void *qgemm_pack_isa(bct_isa isa, const qmat *w, void *buf) {
    qpack h = pack_header(isa, w);
    memcpy(buf, &h, sizeof(h));
    if (!w->codes) {
        /* Codes dropped after packing: every layout has the same tiles and
         * records, only QPK1's q8 bias differs. */
        const qpack *src = w->pack;
        uint32_t flip = pack_flip(src) ^ pack_flip(&h);
        const uint32_t *from = (const uint32_t *)((const uint8_t *)src + QPACK_HEADER);
        uint32_t *to = (uint32_t *)((uint8_t *)buf + QPACK_HEADER);
        for (size_t i = 0; i < h.tile_bytes * (size_t)h.tiles / 4; i++) to[i] = from[i] ^ flip;
        return buf;
    }
    const int quads = w->cols / 4;
    const size_t rb = qmat_row_bytes(w->bits, w->cols);
    for (int t = 0; t < h.tiles; t++) {
        /* Codes: 32-bit lanes, lane l of record k = bytes [4k, 4k+4) of row 16t + l
         * (q8: per column quad; q4: per byte quad, the same transposition).
         * QPK1 biases q8 codes to unsigned; QPA1 keeps them signed.  Padding
         * rows hold the code 0. */
        uint32_t *dst = (uint32_t *)((uint8_t *)buf + QPACK_HEADER + (size_t)t * h.tile_bytes);
        int nrec = w->bits == 8 ? quads : quads / 2;
        uint32_t flip = w->bits == 8 && h.magic == QPACK_MAGIC ? 0x80808080u : 0;
        uint32_t pad = w->bits == 8 ? flip : 0x88888888u;
        for (int l = 0; l < QPACK_TILE; l++) {
            int o = t * QPACK_TILE + l;
            if (o >= w->rows) {
                for (int k = 0; k < nrec; k++) dst[(size_t)k * QPACK_TILE + l] = pad;
                continue;
            }
            const uint8_t *src = (const uint8_t *)w->codes + (size_t)o * rb;
            for (int k = 0; k < nrec; k++) {
                uint32_t v;
                memcpy(&v, src + 4 * (size_t)k, 4);
                dst[(size_t)k * QPACK_TILE + l] = v ^ flip;
            }
        }
    }
    return buf;
}

/* pack, if it is w's in the layout of isa's kernel (a weight prepared for
 * another kernel, before a qgemm_set_isa, is packed again per call). */
static const qpack *valid_pack(bct_isa isa, const qmat *w, const void *pack) {
    const qpack *p = pack;
    if (!p || p->magic != isa_magic(isa) || p->bits != w->bits || p->rows != w->rows || p->cols != w->cols ||
        p->block != w->block)
        return NULL;
    return p;
}

static void *alloc64(size_t n) {
    void *p = NULL;
    return posix_memalign(&p, 64, n ? n : 64) == 0 ? p : NULL;
}

int qgemm_prepare(qmat *w) {
    size_t n = qgemm_pack_bytes(w);
    if (!n) return BCT_OK;
    void *buf = alloc64(n);
    if (!buf) return BCT_ENOMEM;
    qgemm_pack(w, buf);
    w->pack = buf;
    return BCT_OK;
}

/* ------------------------------------------------------------------ */
/* driver                                                              */

typedef struct gemm_task {
    bct_isa isa;
    qk_fn kern;            /* the SIMD kernel */
    qk_job job;
    const qmat *w;
    int rows, chunk;       /* activation rows, rows per task */
    int tiles, group;      /* output tiles, tiles per task */
    int ngroups;
} gemm_task;

static qk_fn isa_kernel(bct_isa isa) {
    switch (isa) {
    case BCT_ISA_AMX: return qk_amx;
    case BCT_ISA_AVX512VNNI: return qk_avx512;
    case BCT_ISA_AVXVNNI: return qk_avxvnni;
    default: return qk_avx2;
    }
}

/* Whether isa's kernel reads the per-row data of qk_job (nc, nq, xq):
 * only those that bias the weight codes. */
static int isa_preps(bct_isa isa) { return isa != BCT_ISA_SCALAR && isa != BCT_ISA_AMX; }

static void run_prep(bct_isa isa, const qk_job *j, int r0, int r1) {
    if (isa == BCT_ISA_AVX512VNNI) qk_prep_avx512(j, r0, r1);
    else if (isa == BCT_ISA_AVXVNNI) qk_prep_avxvnni(j, r0, r1);
    else qk_prep_avx2(j, r0, r1);
}

/* The per-row data of the kernels (qk_job.nc, nq, xq): one allocation. */
static void *alloc_prep(qk_job *j) {
    size_t n = qk_prep_len(j->x);
    char *buf = alloc64(3 * n * sizeof(int32_t));
    if (buf) {
        j->nc = (int32_t *)buf;
        j->nq = (int32_t *)buf + n;
        j->xq = (float *)((int32_t *)buf + 2 * n);
    }
    return buf;
}

typedef struct prep_task {
    bct_isa isa;
    const qk_job *job;
    int chunk;
} prep_task;

static void prep_task_fn(void *ctx, int task, int worker) {
    const prep_task *t = ctx;
    int r0 = task * t->chunk, r1 = r0 + t->chunk < t->job->x->rows ? r0 + t->chunk : t->job->x->rows;
    run_prep(t->isa, t->job, r0, r1);
}

static void gemm_task_fn(void *ctx, int task, int worker) {
    const gemm_task *g = ctx;
    int rc = task / g->ngroups, tg = task % g->ngroups;
    int r0 = rc * g->chunk, r1 = r0 + g->chunk < g->rows ? r0 + g->chunk : g->rows;
    int t0 = tg * g->group, t1 = t0 + g->group < g->tiles ? t0 + g->group : g->tiles;
    if (g->isa == BCT_ISA_SCALAR) {
        scalar_rows(g->w, g->job.x, g->job.bias, g->job.y, g->job.ldy, r0, r1);
        return;
    }
    g->kern(&g->job, r0, r1, t0, t1);
}

static int ceil_div(int a, int b) { return (a + b - 1) / b; }

void qgemm_run(const qmat *w, const void *pack, const qmat *x, const float *bias, float *y, int ldy,
               bct_pool *pool) {
    qgemm_run_kern(qgemm_isa(), NULL, w, pack, x, bias, y, ldy, pool);
}

void qgemm_run_kern(bct_isa isa, qk_fn kern, const qmat *w, const void *pack, const qmat *x, const float *bias,
                    float *y, int ldy, bct_pool *pool) {
    assert(w->cols == x->cols && w->block == x->block && x->bits == 8);
    if (x->rows <= 0 || w->rows <= 0) return;
    int threads = bct_pool_threads(pool);
    void *tmp = NULL;
    const qpack *p = NULL;
    if (isa_packs(isa) && !(p = valid_pack(isa, w, pack))) {
        if ((tmp = alloc64(pack_header(isa, w).total))) p = qgemm_pack_isa(isa, w, tmp);
        else isa = BCT_ISA_SCALAR; /* out of memory: the reference needs none */
    }
    gemm_task g = {.isa = isa, .kern = kern ? kern : isa_kernel(isa),
                   .job = {p, w->scales, x, bias, y, ldy, NULL, NULL, NULL, NULL}, .w = w, .rows = x->rows};
    if (isa == BCT_ISA_SCALAR) {
        g.tiles = g.group = g.ngroups = 1;
        g.chunk = threads > 1 ? ceil_div(x->rows, 4 * threads) : x->rows;
    } else {
        /* Row chunks whose codes stay in L2 (~256 KB), and groups of tiles
         * whose packed weights do too (~512 KB); then at least ~4 tasks
         * per thread when there is enough work for it.  Chunks and groups
         * are whole kernel tiles: 4 rows x 3 tiles (AVX2, AVX-512), 32 rows
         * (AMX works on 16 x 16 C tiles; 32-row chunks and pairs of tiles
         * keep tasks coarse enough for its per-call tile configuration). */
        const int amx = isa == BCT_ISA_AMX;
        const int rt = amx ? 32 : 4, rt_min = amx ? 16 : 4, ct = amx ? 2 : 3;
        g.tiles = p->tiles;
        g.chunk = (int)(((size_t)1 << 18) / (size_t)x->cols);
        g.chunk = g.chunk < 16 ? 16 : g.chunk > 256 ? 256 : g.chunk / rt * rt;
        if (g.chunk < rt) g.chunk = rt;
        int max_group = (int)(((size_t)1 << 19) / p->tile_bytes);
        max_group = max_group < ct ? ct : max_group / ct * ct;
        int chunks = ceil_div(x->rows, g.chunk);
        int want = threads > 1 ? ceil_div(4 * threads, chunks) : 1; /* groups wanted */
        g.group = ceil_div(g.tiles, want);
        if (g.group > ct) g.group = ceil_div(g.group, ct) * ct;
        if (g.group > max_group) g.group = max_group;
        if (g.group < 1) g.group = 1;
        if (threads > 1 && chunks * ceil_div(g.tiles, g.group) < 2 * threads && x->rows > 8) {
            /* Few wide tiles and few rows: split rows finer instead. */
            g.chunk = ceil_div(ceil_div(x->rows, 2 * threads), rt_min) * rt_min;
        }
    }
    g.ngroups = ceil_div(g.tiles, g.group);
    int ntasks = ceil_div(x->rows, g.chunk) * g.ngroups;
    void *prep = NULL;
    if (isa_preps(isa)) {
        /* Block sums of the activations etc., once per GEMM (rows in
         * multiples of 4, the kernels' row tiles). */
        if (!(prep = alloc_prep(&g.job))) {
            g.isa = BCT_ISA_SCALAR;
            g.tiles = g.group = g.ngroups = 1;
            g.chunk = threads > 1 ? ceil_div(x->rows, 4 * threads) : x->rows;
            ntasks = ceil_div(x->rows, g.chunk);
        } else {
            prep_task pt = {isa, &g.job, ceil_div(ceil_div(x->rows, 2 * threads), 4) * 4};
            if (pt.chunk < 32) pt.chunk = 32;
            bct_pool_run(threads > 1 ? pool : NULL, ceil_div(x->rows, pt.chunk), prep_task_fn, &pt);
        }
    }
    bct_pool_run(threads > 1 ? pool : NULL, ntasks, gemm_task_fn, &g);
    free(prep);
    free(tmp);
}

void qgemm(const qmat *w, const qmat *x, const float *bias, float *y, int ldy) {
    qgemm_run(w, w->pack, x, bias, y, ldy, NULL);
}

int qgemm_block_dots(bct_isa isa, const qmat *w, const qmat *x, int32_t *out) {
    return qgemm_block_dots_kern(isa, NULL, w, x, out);
}

int qgemm_block_dots_kern(bct_isa isa, qk_fn kern, const qmat *w, const qmat *x, int32_t *out) {
    if (!kern && !bct_isa_supported(isa)) return BCT_EUNSUPPORTED;
    int nb = w->cols / w->block;
    if (!isa_packs(isa)) {
        for (int r = 0; r < x->rows; r++)
            for (int o = 0; o < w->rows; o++)
                for (int b = 0; b < nb; b++)
                    out[((size_t)r * w->rows + o) * nb + b] =
                        block_dot(w, o, b, (const int8_t *)qmat_row_codes(x, r) + (size_t)b * w->block);
        return BCT_OK;
    }
    void *buf = alloc64(pack_header(isa, w).total), *prep = NULL;
    qk_job j = {buf ? qgemm_pack_isa(isa, w, buf) : NULL, w->scales, x, NULL, NULL, 0, out, NULL, NULL, NULL};
    if (!buf || (isa_preps(isa) && !(prep = alloc_prep(&j)))) {
        free(buf);
        return BCT_ENOMEM;
    }
    if (isa_preps(isa)) run_prep(isa, &j, 0, x->rows);
    (kern ? kern : isa_kernel(isa))(&j, 0, x->rows, 0, ((const qpack *)buf)->tiles);
    free(prep);
    free(buf);
    return BCT_OK;
}

/* ------------------------------------------------------------------ */
/* activation quantization                                             */

static void quantize_rows(bct_isa isa, qmat *m, const float *x, int ld, int r0, int r1) {
    switch (isa) {
    case BCT_ISA_AMX: /* AMX machines have AVX-512 (bct_isa_supported checks it) */
    case BCT_ISA_AVX512VNNI: qact_avx512(m, x, ld, r0, r1); break;
    case BCT_ISA_AVXVNNI:
    case BCT_ISA_AVX2: qact_avx2(m, x, ld, r0, r1); break;
    default: qact_scalar(m, x, ld, r0, r1); break;
    }
}

void qmat_quantize_act(qmat *m, const float *x, int ld) { quantize_rows(qgemm_isa(), m, x, ld, 0, m->rows); }

int qmat_quantize_act_isa(bct_isa isa, qmat *m, const float *x, int ld) {
    if (!bct_isa_supported(isa)) return BCT_EUNSUPPORTED;
    quantize_rows(isa, m, x, ld, 0, m->rows);
    return BCT_OK;
}

typedef struct quant_task {
    bct_isa isa;
    qmat *m;
    const float *x;
    int ld, chunk;
} quant_task;

static void quant_task_fn(void *ctx, int task, int worker) {
    const quant_task *q = ctx;
    int r0 = task * q->chunk, r1 = r0 + q->chunk < q->m->rows ? r0 + q->chunk : q->m->rows;
    quantize_rows(q->isa, q->m, q->x, q->ld, r0, r1);
}

void qmat_quantize_act_mt(qmat *m, const float *x, int ld, bct_pool *pool) {
    int threads = bct_pool_threads(pool);
    /* ~64 KB of floats per task at least: below that, waking threads costs more. */
    int min_rows = ceil_div(16384, m->cols);
    int chunk = ceil_div(m->rows, 2 * threads);
    if (chunk < min_rows) chunk = min_rows;
    quant_task q = {qgemm_isa(), m, x, ld, chunk};
    bct_pool_run(pool, ceil_div(m->rows, chunk), quant_task_fn, &q);
}
