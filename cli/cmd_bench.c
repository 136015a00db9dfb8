/* bct bench: throughput, latency and peak memory of the fp32, int8 and int4
 * engines on a grid of batch sizes and sequence lengths, plus the int8
 * block GEMM against the selected ISA's theoretical peak.
 *
 * Each mode runs in a fresh process (this binary re-executed with the
 * hidden --worker option), so its peak RSS (VmHWM) is its own: model
 * load + every run of the grid, nothing inherited from the others. */
#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_model.h"
#include "bench_peak.h"
#include "model/bert_forward.h"
#include "cli_util.h"
#include "commands.h"
#include "compress.h"
#include "kernels/cpu_features.h"
#include "kernels/qgemm.h"
#include "kernels/threadpool.h"

static const char *usage_text =
    "usage: bct bench [options]\n"
    "\n"
    "Sentences/s (median and best of --runs runs after a warm-up run), ms per\n"
    "batch and peak RSS of each mode on a grid of batch sizes x sequence\n"
    "lengths (random tokens), then the int8 block GEMM M x K -> N (default\n"
    "4096 x 768 -> 3072, block 64: bert-base's FFN on 32 x 128 tokens) in\n"
    "GOPS against each SIMD ISA's theoretical int8 peak.  Each mode runs in\n"
    "its own process, so peak RSS is per mode.\n"
    "\n"
    "Without --model, a random-weight BERT of the shape below is written to a\n"
    "temporary directory and compressed to int8 (preset w8a8) and int4 (w4a8).\n"
    "\n"
    "  --model PATH        a checkpoint directory (fp32; int8/int4 are compressed\n"
    "                      from it) or a .bct file (benchmarked alone)\n"
    "  --layers N --hidden N --heads N --intermediate N --vocab N\n"
    "                      shape of the random model (default bert-base:\n"
    "                      12, 768, 12, 3072, 30522)\n"
    "  --modes LIST        any of fp32,int8,int4 (default all)\n"
    "  --batch LIST        batch sizes (default 1,8,32)\n"
    "  --seq LIST          sequence lengths in tokens (default 16,64,128)\n"
    "  --data FILE         real inputs instead of random tokens: one text per line\n"
    "                      (from a TAB on, a line is ignored, so GLUE single-\n"
    "                      sentence TSVs work without their header), tokenized\n"
    "                      before timing; each run is one pass over all of them\n"
    "                      in consecutive batches of each --batch size (a final\n"
    "                      partial batch is left out); seq is then their mean\n"
    "                      length.  The offline counterpart of `bct serve`.\n"
    "  --runs N            timed runs per point (default 5)\n"
    "  --threads N         threads: engine pool for int8/int4, OpenBLAS for fp32\n"
    "                      (default: all cores)\n"
    "  --gemm M,K,N        one GEMM shape (default: a BERT layer's, H -> H, H -> I\n"
    "                      and I -> H for --hidden H and --intermediate I, at\n"
    "                      M = 256 and 16, and 4096 x H -> I); --no-gemm skips them\n"
    "  --gemm-isa LIST     ISAs to time the GEMM with (default: every supported\n"
    "                      SIMD one; scalar is slow)\n"
    "  --gemm-block B      the GEMMs' block: a multiple of 32 dividing K (default\n"
    "                      64, the presets'), or row: one block per row (block =\n"
    "                      K, preset w8a8r's Linear layers)\n"
    "  --quick             CI size: a 2-layer model, batch 1,8 x seq 16,64, 3 runs,\n"
    "                      GEMM 256,768,768\n"
    "  --keep DIR          write the generated models into DIR and keep them\n"
    "  --json              a JSON list: one object per (mode, batch, seq) with\n"
    "                      mode, batch, seq, sentences_per_s, ms_per_batch,\n"
    "                      peak_rss_mb (kind \"forward\"), one per GEMM (kind\n"
    "                      \"gemm\") and one describing the machine (kind \"machine\")\n"
    "  -h, --help          this text\n"
    "\n"
    "The GEMM kernel is chosen by cpuid; BCT_ISA=scalar|avx2|avx512vnni overrides it.\n";

enum { MAX_LIST = 16, MAX_MODES = 3 };

typedef struct point {
    int batch, seq;
    double med_ms, min_ms;
} point;

typedef struct mode_run {
    char name[16];
    char path[PATH_MAX + 32];
    int ok;
    point pts[MAX_LIST * MAX_LIST];
    int npts;
    double load_s, rss_mb, rss_load_mb;
    char isa[16];
    int n_inputs; /* --data: how many, and their mean length */
    double mean_tokens;
} mode_run;

typedef struct gemm_run {
    bct_isa isa;
    int bits;
    int M, K, N, block;
    double med_ms, min_ms;
    bench_peak peak;
} gemm_run;

static int parse_list(const char *s, const char *what, int lo, int hi, int *out, int *n) {
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", s);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == MAX_LIST) {
            fprintf(stderr, "bct: %s: at most %d values\n", what, MAX_LIST);
            return CLI_USAGE;
        }
        if (cli_parse_int(tok, what, lo, hi, &out[(*n)++])) return CLI_USAGE;
    }
    if (*n == 0) {
        fprintf(stderr, "bct: %s: empty list\n", what);
        return CLI_USAGE;
    }
    return CLI_OK;
}

static double median(double *v, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
            double t = v[j];
            v[j] = v[j - 1];
            v[j - 1] = t;
        }
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static long status_kb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t k = strlen(key);
    if (!f) return -1;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, key, k) && line[k] == ':') {
            kb = strtol(line + k + 1, NULL, 10);
            break;
        }
    fclose(f);
    return kb;
}

/* ------------------------------------------------------------------ */
/* worker: one mode in a fresh process; results as lines on stdout     */

/* --data: every line's tokens, back to back. */
typedef struct bench_inputs {
    int32_t *ids;
    uint8_t *types;
    int *off, *len; /* per input */
    int n;
    long tokens;
} bench_inputs;

static void inputs_free(bench_inputs *in) {
    free(in->ids);
    free(in->types);
    free(in->off);
    free(in->len);
    memset(in, 0, sizeof(*in));
}

static int inputs_load(const bert_model *m, const char *file, bench_inputs *in) {
    FILE *f = fopen(file, "r");
    if (!f) {
        fprintf(stderr, "bct: %s: %s\n", file, strerror(errno));
        return CLI_FAIL;
    }
    const int cap = m->max_len;
    int32_t *ids = malloc((size_t)cap * sizeof(int32_t));
    uint8_t *types = malloc((size_t)cap);
    tok_encoding e = {ids, types, cap, 0, 0};
    char *line = NULL;
    size_t linecap = 0, have = 0;
    ssize_t n;
    int rc = CLI_OK, lineno = 0;
    memset(in, 0, sizeof(*in));
    if (!ids || !types) {
        fprintf(stderr, "bct: out of memory\n");
        rc = CLI_FAIL;
    }
    while (rc == CLI_OK && (n = getline(&line, &linecap, f)) >= 0) {
        lineno++;
        char *tab = memchr(line, '\t', (size_t)n);
        size_t len = tab ? (size_t)(tab - line) : (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        if (!len) continue;
        bct_error err = {{0}};
        if (bert_model_encode(m, line, len, NULL, 0, &e, &err) != BCT_OK) {
            fprintf(stderr, "bct: %s:%d: %s\n", file, lineno, err.msg);
            rc = CLI_FAIL;
            break;
        }
        if ((size_t)in->n == have) {
            have = have ? 2 * have : 1024;
            int32_t *ni = realloc(in->ids, have * (size_t)cap * sizeof(int32_t));
            if (ni) in->ids = ni;
            uint8_t *nt = realloc(in->types, have * (size_t)cap);
            if (nt) in->types = nt;
            int *no = realloc(in->off, have * sizeof(int));
            if (no) in->off = no;
            int *nl = realloc(in->len, have * sizeof(int));
            if (nl) in->len = nl;
            if (!ni || !nt || !no || !nl) {
                fprintf(stderr, "bct: out of memory\n");
                rc = CLI_FAIL;
                break;
            }
        }
        in->off[in->n] = (int)in->tokens;
        in->len[in->n] = e.len;
        memcpy(in->ids + in->tokens, ids, (size_t)e.len * sizeof(int32_t));
        memcpy(in->types + in->tokens, types, (size_t)e.len);
        in->tokens += e.len;
        in->n++;
    }
    free(line);
    free(ids);
    free(types);
    fclose(f);
    if (rc == CLI_OK && in->n == 0) {
        fprintf(stderr, "bct: %s: no inputs\n", file);
        rc = CLI_FAIL;
    }
    if (rc != CLI_OK) inputs_free(in);
    return rc;
}

/* The worker's line for one grid point: median and minimum ms per batch. */
static void print_point(int batch, int seq, double *times, int runs) {
    double mn = times[0];
    for (int i = 1; i < runs; i++) mn = times[i] < mn ? times[i] : mn;
    printf("point %d %d %.6f %.6f\n", batch, seq, median(times, runs), mn);
    fflush(stdout);
}

/* One --data point: each run is a pass over the inputs in consecutive
 * batches of B; prints ms per batch like the random-token points. */
static int time_inputs(const bert_model *m, const bench_inputs *in, int B, int runs, bert_seq *sq, float *logits,
                       bert_ws *ws, double *times) {
    int nbat = in->n / B;
    if (nbat == 0) {
        fprintf(stderr, "bct: --batch %d: --data has only %d inputs\n", B, in->n);
        return CLI_FAIL;
    }
    for (int run = -1; run < runs; run++) { /* run -1: warm-up */
        double t = cli_now();
        for (int k = 0; k < nbat; k++) {
            for (int b = 0; b < B; b++) {
                int i = k * B + b;
                sq[b] = (bert_seq){in->ids + in->off[i], in->types + in->off[i], in->len[i]};
            }
            bct_error err = {{0}};
            if (bert_forward(m, sq, B, logits, ws, &err) != BCT_OK) {
                fprintf(stderr, "bct: %s\n", err.msg);
                return CLI_FAIL;
            }
        }
        if (run >= 0) times[run] = (cli_now() - t) * 1e3 / nbat;
    }
    long toks = 0;
    for (int i = 0; i < nbat * B; i++) toks += in->len[i];
    print_point(B, (int)((double)toks / (nbat * B) + 0.5), times, runs);
    return CLI_OK;
}

static int worker(const char *path, const char *data, int threads, int runs, const int *batches, int nb,
                  const int *seqs, int ns) {
    double t0 = cli_now();
    bert_model *m = cli_load_model(path, 0, NULL);
    if (!m) return CLI_FAIL;
    printf("load %.6f %ld %s\n", cli_now() - t0, status_kb("VmRSS"), m->mode.act_int8 ? bct_isa_name(qgemm_isa()) : "openblas");
    fflush(stdout);
    int maxb = 0, maxs = 0;
    bench_inputs in = {0};
    if (data && inputs_load(m, data, &in) != CLI_OK) {
        bert_model_free(m);
        return CLI_FAIL;
    }
    for (int i = 0; i < nb; i++) maxb = batches[i] > maxb ? batches[i] : maxb;
    for (int i = 0; i < ns && !data; i++) maxs = seqs[i] > maxs ? seqs[i] : maxs;
    if (data) maxs = 1; /* the random-token buffers are not used */
    if (maxs > m->cfg.max_pos) {
        fprintf(stderr, "bct: --seq %d exceeds the model's max_position_embeddings %d\n", maxs, m->cfg.max_pos);
        bert_model_free(m);
        inputs_free(&in);
        return CLI_FAIL;
    }
    bct_pool *pool = cli_threads(threads);
    bert_ws *ws = bert_ws_create();
    int32_t *ids = malloc((size_t)maxb * maxs * sizeof(int32_t));
    uint8_t *types = calloc((size_t)maxb * maxs, 1);
    bert_seq *sq = malloc((size_t)maxb * sizeof(bert_seq));
    float *logits = malloc((size_t)maxb * m->cfg.num_labels * sizeof(float));
    double *times = malloc((size_t)runs * sizeof(double));
    int rc = CLI_OK;
    if (!pool || !ws || !ids || !types || !sq || !logits || !times) {
        fprintf(stderr, "bct: out of memory\n");
        rc = CLI_FAIL;
        goto done;
    }
    bert_ws_set_pool(ws, pool);
    if (data) {
        printf("inputs %d %.3f\n", in.n, (double)in.tokens / in.n);
        for (int bi = 0; bi < nb && rc == CLI_OK; bi++)
            rc = time_inputs(m, &in, batches[bi], runs, sq, logits, ws, times);
        if (rc == CLI_OK) printf("peak %ld\n", status_kb("VmHWM"));
        goto done;
    }
    /* Random tokens: speed does not depend on them.  [CLS] ... [SEP] when
     * the vocabulary has the usual first ids. */
    unsigned r = 12345;
    int V = m->cfg.vocab_size;
    for (size_t i = 0; i < (size_t)maxb * maxs; i++) {
        r = r * 1103515245u + 12345u;
        ids[i] = V > 5 ? 5 + (int32_t)((r >> 8) % (unsigned)(V - 5)) : (int32_t)((r >> 8) % (unsigned)V);
    }
    for (int bi = 0; bi < nb && rc == CLI_OK; bi++)
        for (int si = 0; si < ns && rc == CLI_OK; si++) {
            int B = batches[bi], S = seqs[si];
            for (int b = 0; b < B; b++) sq[b] = (bert_seq){ids + (size_t)b * maxs, types + (size_t)b * maxs, S};
            bct_error err = {{0}};
            for (int run = -1; run < runs; run++) { /* run -1: warm-up */
                double t = cli_now();
                if (bert_forward(m, sq, B, logits, ws, &err) != BCT_OK) {
                    fprintf(stderr, "bct: %s\n", err.msg);
                    rc = CLI_FAIL;
                    break;
                }
                if (run >= 0) times[run] = (cli_now() - t) * 1e3;
            }
            if (rc == CLI_OK) print_point(B, S, times, runs);
        }
    if (rc == CLI_OK) printf("peak %ld\n", status_kb("VmHWM"));
done:
    free(times);
    free(logits);
    free(sq);
    free(types);
    free(ids);
    bert_ws_free(ws);
    bct_pool_free(pool);
    bert_model_free(m);
    inputs_free(&in);
    return rc;
}

/* Runs one mode's worker and parses what it prints. */
static int run_worker(mode_run *mr, int threads, int runs, const char *batch_list, const char *seq_list,
                      const char *data) {
    char self[PATH_MAX], th[16], ru[16];
    ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (len <= 0) {
        fprintf(stderr, "bct: cannot find my own executable: %s\n", strerror(errno));
        return CLI_FAIL;
    }
    self[len] = '\0';
    snprintf(th, sizeof(th), "%d", threads);
    snprintf(ru, sizeof(ru), "%d", runs);
    int fd[2];
    if (pipe(fd) != 0) return CLI_FAIL;
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) return CLI_FAIL;
    if (pid == 0) {
        dup2(fd[1], STDOUT_FILENO);
        close(fd[0]);
        close(fd[1]);
        if (data)
            execl(self, "bct", "bench", "--worker", mr->path, "--threads", th, "--runs", ru, "--batch", batch_list,
                  "--data", data, (char *)NULL);
        else
            execl(self, "bct", "bench", "--worker", mr->path, "--threads", th, "--runs", ru, "--batch", batch_list,
                  "--seq", seq_list, (char *)NULL);
        _exit(127);
    }
    close(fd[1]);
    FILE *in = fdopen(fd[0], "r");
    char line[512];
    long kb;
    while (in && fgets(line, sizeof(line), in)) {
        point p;
        if (sscanf(line, "point %d %d %lf %lf", &p.batch, &p.seq, &p.med_ms, &p.min_ms) == 4 &&
            mr->npts < MAX_LIST * MAX_LIST)
            mr->pts[mr->npts++] = p;
        else if (sscanf(line, "load %lf %ld %15s", &mr->load_s, &kb, mr->isa) == 3)
            mr->rss_load_mb = kb / 1024.0;
        else if (sscanf(line, "inputs %d %lf", &mr->n_inputs, &mr->mean_tokens) == 2)
            ;
        else if (sscanf(line, "peak %ld", &kb) == 1)
            mr->rss_mb = kb / 1024.0;
    }
    if (in) fclose(in);
    int status;
    waitpid(pid, &status, 0);
    mr->ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    return mr->ok ? CLI_OK : CLI_FAIL;
}

/* ------------------------------------------------------------------ */
/* GEMM                                                                */

static int time_gemm(bct_isa isa, int bits, int M, int K, int N, int block, int runs, bct_pool *pool,
                     gemm_run *g) {
    qmat w, x;
    memset(g, 0, sizeof(*g));
    g->isa = isa;
    g->bits = bits;
    g->M = M;
    g->K = K;
    g->N = N;
    g->block = block;
    if (qmat_alloc(&w, bits, N, K, block) || qmat_alloc(&x, 8, M, K, block)) {
        qmat_free(&w);
        return CLI_FAIL;
    }
    float *y = malloc((size_t)M * N * sizeof(float)), *xf = malloc((size_t)M * K * sizeof(float));
    int8_t *codes = malloc((size_t)K);
    double *times = malloc((size_t)runs * sizeof(double));
    int rc = CLI_FAIL;
    if (!y || !xf || !codes || !times) goto done;
    unsigned r = 7;
    int lo = bits == 8 ? -127 : -8, span = bits == 8 ? 255 : 16;
    for (int o = 0; o < N; o++) {
        for (int i = 0; i < K; i++) {
            r = r * 1103515245u + 12345u;
            codes[i] = (int8_t)(lo + (int)((r >> 8) % (unsigned)span));
        }
        qmat_pack_row(&w, o, codes);
    }
    for (size_t i = 0; i < (size_t)N * (K / block); i++) w.scales[i] = 0.01f;
    for (size_t i = 0; i < (size_t)M * K; i++) {
        r = r * 1103515245u + 12345u;
        xf[i] = (float)((r >> 8) & 0xFFFF) / 32768.0f - 1.0f;
    }
    if (qgemm_set_isa(isa) != BCT_OK) goto done;
    qmat_quantize_act(&x, xf, K);
    if (qgemm_prepare(&w) != BCT_OK) goto done;
    qgemm_run(&w, w.pack, &x, NULL, y, N, pool); /* warm-up */
    for (int i = 0; i < runs; i++) {
        double t = cli_now();
        qgemm_run(&w, w.pack, &x, NULL, y, N, pool);
        times[i] = (cli_now() - t) * 1e3;
    }
    g->min_ms = times[0];
    for (int i = 1; i < runs; i++) g->min_ms = times[i] < g->min_ms ? times[i] : g->min_ms;
    g->med_ms = median(times, runs);
    rc = CLI_OK;
done:
    free(times);
    free(codes);
    free(xf);
    free(y);
    qmat_free(&w);
    qmat_free(&x);
    return rc;
}

/* ------------------------------------------------------------------ */
/* output                                                              */

static const point *find_point(const mode_run *mr, int batch, int seq) {
    for (int i = 0; i < mr->npts; i++)
        if (mr->pts[i].batch == batch && mr->pts[i].seq == seq) return &mr->pts[i];
    return NULL;
}

static const mode_run *find_mode(const mode_run *modes, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(modes[i].name, name) && modes[i].ok) return &modes[i];
    return NULL;
}

static double gmacs(int M, int K, int N, double ms) { return (double)M * K * N / (ms * 1e-3) / 1e9; }

static void print_text(const char *what, int threads, const mode_run *modes, int nm, const gemm_run *gemms,
                       int ng, int block, const char *clock_src) {
    const cpu_features *f = cpu_features_get();
    printf("bct bench: %s; %d thread%s; CPU %s; int8 kernel %s\n\n", what, threads, threads > 1 ? "s" : "",
           f->brand[0] ? f->brand : f->vendor, bct_isa_name(qgemm_isa()));
    printf("%-6s %5s %5s  %13s %10s  %11s %10s  %11s\n", "mode", "batch", "seq", "sentences/s", "(best)",
           "ms/batch", "(min)", "peak RSS MB");
    for (int i = 0; i < nm; i++) {
        if (modes[i].n_inputs)
            printf("%-6s %d inputs, mean %.2f tokens (seq: mean length of each batch size's timed ones)\n",
                   modes[i].name, modes[i].n_inputs, modes[i].mean_tokens);
        if (!modes[i].ok) {
            printf("%-6s failed\n", modes[i].name);
            continue;
        }
        for (int k = 0; k < modes[i].npts; k++) {
            const point *p = &modes[i].pts[k];
            printf("%-6s %5d %5d  %13.1f %10.1f  %11.2f %10.2f  %11.1f\n", modes[i].name, p->batch, p->seq,
                   p->batch * 1e3 / p->med_ms, p->batch * 1e3 / p->min_ms, p->med_ms, p->min_ms, modes[i].rss_mb);
        }
    }
    const mode_run *fp = find_mode(modes, nm, "fp32");
    if (fp) {
        printf("\nagainst fp32 (medians):\n");
        for (int i = 0; i < nm; i++) {
            if (!modes[i].ok || &modes[i] == fp) continue;
            const point *a = find_point(&modes[i], 32, 128), *b = find_point(fp, 32, 128);
            const point *c = find_point(&modes[i], 1, 16), *d = find_point(fp, 1, 16);
            printf("  %-5s", modes[i].name);
            if (a && b) printf("  throughput at batch 32 x seq 128: %.2fx", b->med_ms / a->med_ms);
            if (c && d) printf("  latency at batch 1 x seq 16: %.3f of fp32", c->med_ms / d->med_ms);
            printf("  peak RSS: %.3f of fp32\n", modes[i].rss_mb / fp->rss_mb);
        }
    }
    if (ng) {
        char bl[24];
        snprintf(bl, sizeof(bl), block ? "%d" : "one per row", block);
        printf("\nint8 block GEMMs M x K -> N (block %s), %d thread%s; 1 MAC = 2 ops; clock %s:\n", bl, threads,
               threads > 1 ? "s" : "", clock_src);
        printf("%-20s %-11s %-7s %9s %9s %8s  %10s  %s\n", "shape", "kernel", "weights", "ms", "(min)", "GOPS",
               "peak GOPS", "% of peak  (peak = MACs/instr x instr/cycle x cores x GHz)");
        for (int i = 0; i < ng; i++) {
            const gemm_run *g = &gemms[i];
            double gops = 2 * gmacs(g->M, g->K, g->N, g->med_ms);
            char shp[32];
            snprintf(shp, sizeof(shp), "%d x %d -> %d", g->M, g->K, g->N);
            printf("%-20s %-11s %-7s %9.3f %9.3f %8.1f", shp, bct_isa_name(g->isa), g->bits == 8 ? "int8" : "int4",
                   g->med_ms, g->min_ms, gops);
            if (g->peak.peak_gmacs > 0)
                printf("  %10.1f  %5.1f%%  (%d x %.4g [measured %.3g] x %d x %.2f)\n", 2 * g->peak.peak_gmacs,
                       100 * gops / (2 * g->peak.peak_gmacs), g->peak.macs_per_instr, g->peak.ipc,
                       g->peak.ipc_measured, g->peak.threads, g->peak.ghz);
            else
                printf("  %10s  %6s  (clock unknown)\n", "unknown", "-");
        }
    }
}

static void print_json(const char *what, int threads, const mode_run *modes, int nm, const gemm_run *gemms, int ng,
                       int block, int runs, const char *clock_src) {
    cJSON *list = cJSON_CreateArray();
    const cpu_features *f = cpu_features_get();
    cJSON *mach = cJSON_CreateObject();
    cJSON_AddStringToObject(mach, "kind", "machine");
    cJSON_AddStringToObject(mach, "cpu", f->brand[0] ? f->brand : f->vendor);
    cJSON_AddStringToObject(mach, "isa", bct_isa_name(qgemm_isa()));
    cJSON_AddNumberToObject(mach, "threads", threads);
    cJSON_AddNumberToObject(mach, "runs", runs);
    cJSON_AddStringToObject(mach, "model", what);
    if (ng) {
        cJSON_AddNumberToObject(mach, "ghz", gemms[0].peak.ghz);
        cJSON_AddStringToObject(mach, "clock_source", clock_src);
    }
    cJSON_AddItemToArray(list, mach);
    for (int i = 0; i < nm; i++)
        for (int k = 0; modes[i].ok && k < modes[i].npts; k++) {
            const point *p = &modes[i].pts[k];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "kind", "forward");
            cJSON_AddStringToObject(o, "mode", modes[i].name);
            cJSON_AddNumberToObject(o, "batch", p->batch);
            cJSON_AddNumberToObject(o, "seq", p->seq);
            cJSON_AddNumberToObject(o, "sentences_per_s", p->batch * 1e3 / p->med_ms);
            cJSON_AddNumberToObject(o, "sentences_per_s_best", p->batch * 1e3 / p->min_ms);
            cJSON_AddNumberToObject(o, "ms_per_batch", p->med_ms);
            cJSON_AddNumberToObject(o, "ms_per_batch_min", p->min_ms);
            cJSON_AddNumberToObject(o, "peak_rss_mb", modes[i].rss_mb);
            cJSON_AddNumberToObject(o, "threads", threads);
            cJSON_AddStringToObject(o, "engine", modes[i].isa);
            if (modes[i].n_inputs) {
                cJSON_AddNumberToObject(o, "inputs", modes[i].n_inputs);
                cJSON_AddNumberToObject(o, "mean_tokens", modes[i].mean_tokens);
            }
            cJSON_AddItemToArray(list, o);
        }
    for (int i = 0; i < ng; i++) {
        const gemm_run *g = &gemms[i];
        double gops = 2 * gmacs(g->M, g->K, g->N, g->med_ms);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "kind", "gemm");
        cJSON_AddStringToObject(o, "mode", g->bits == 8 ? "int8" : "int4");
        cJSON_AddStringToObject(o, "isa", bct_isa_name(g->isa));
        cJSON_AddStringToObject(o, "kernel", bct_isa_name(g->isa));
        cJSON_AddNumberToObject(o, "m", g->M);
        cJSON_AddNumberToObject(o, "k", g->K);
        cJSON_AddNumberToObject(o, "n", g->N);
        cJSON_AddNumberToObject(o, "block", g->block);
        cJSON_AddNumberToObject(o, "threads", threads);
        cJSON_AddNumberToObject(o, "ms", g->med_ms);
        cJSON_AddNumberToObject(o, "ms_min", g->min_ms);
        cJSON_AddNumberToObject(o, "gops", gops);
        if (g->peak.peak_gmacs > 0) {
            cJSON_AddNumberToObject(o, "peak_gops", 2 * g->peak.peak_gmacs);
            cJSON_AddNumberToObject(o, "percent_of_peak", 100 * gops / (2 * g->peak.peak_gmacs));
        } else {
            cJSON_AddNullToObject(o, "peak_gops");
            cJSON_AddNullToObject(o, "percent_of_peak");
        }
        cJSON_AddNumberToObject(o, "macs_per_instr", g->peak.macs_per_instr);
        cJSON_AddNumberToObject(o, "instr_per_cycle", g->peak.ipc);
        cJSON_AddNumberToObject(o, "instr_per_cycle_measured", g->peak.ipc_measured);
        cJSON_AddNumberToObject(o, "ghz", g->peak.ghz);
        cJSON_AddItemToArray(list, o);
    }
    cli_print_json(list);
}

/* ------------------------------------------------------------------ */

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void progress(void *ud, int i, int n, const char *tensor) {
    if (isatty(STDERR_FILENO)) {
        fprintf(stderr, "\rbench: compressing to %s: tensor %d/%d", (const char *)ud, i + 1, n);
        if (i + 1 == n) fputc('\n', stderr);
    }
}

static int compress_to(const char *hf, const char *out, const char *preset) {
    bct_error err = {{0}};
    compress_opts o;
    compress_report rep;
    if (compress_preset(preset, &o, &err) != BCT_OK) {
        fprintf(stderr, "bct: %s\n", err.msg);
        return CLI_FAIL;
    }
    o.progress = progress;
    o.progress_ud = (void *)preset;
    if (compress_checkpoint(hf, out, &o, &rep, &err) != BCT_OK) {
        fprintf(stderr, "\nbct: compressing to %s: %s\n", preset, err.msg);
        return CLI_FAIL;
    }
    compress_report_free(&rep);
    return CLI_OK;
}

int cmd_bench(int argc, char **argv) {
    static const struct option opts[] = {
        {"model", required_argument, 0, 'm'},   {"layers", required_argument, 0, 'L'},
        {"hidden", required_argument, 0, 'H'},  {"heads", required_argument, 0, 'A'},
        {"intermediate", required_argument, 0, 'I'}, {"vocab", required_argument, 0, 'V'},
        {"modes", required_argument, 0, 'M'},   {"batch", required_argument, 0, 'b'},
        {"seq", required_argument, 0, 's'},     {"runs", required_argument, 0, 'r'},
        {"threads", required_argument, 0, 't'}, {"gemm", required_argument, 0, 'g'},
        {"no-gemm", no_argument, 0, 'G'},       {"gemm-isa", required_argument, 0, 'i'},
        {"quick", no_argument, 0, 'q'},         {"keep", required_argument, 0, 'k'},
        {"json", no_argument, 0, 'j'},          {"worker", required_argument, 0, 'W'},
        {"data", required_argument, 0, 'D'},    {"gemm-block", required_argument, 0, 'B'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    bench_shape shape = BENCH_SHAPE_BASE;
    const char *model = NULL, *keep = NULL, *worker_path = NULL, *modes_arg = "fp32,int8,int4";
    const char *batch_arg = NULL, *seq_arg = NULL, *gemm_isa_arg = NULL, *data = NULL;
    int runs = 0, threads = 0, json = 0, quick = 0, no_gemm = 0, shape_set = 0, c;
    int gemm_shape[3] = {4096, 768, 3072}, gemm_set = 0, n3;
    int block = 64; /* the GEMMs' block; 0: one per row (K) */
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'L': shape_set = 1; if (cli_parse_int(optarg, "--layers", 1, 256, &shape.layers)) return CLI_USAGE; break;
        case 'H': shape_set = 1; if (cli_parse_int(optarg, "--hidden", 32, 16384, &shape.hidden)) return CLI_USAGE; break;
        case 'A': shape_set = 1; if (cli_parse_int(optarg, "--heads", 1, 1024, &shape.heads)) return CLI_USAGE; break;
        case 'I': shape_set = 1; if (cli_parse_int(optarg, "--intermediate", 32, 65536, &shape.intermediate)) return CLI_USAGE; break;
        case 'V': shape_set = 1; if (cli_parse_int(optarg, "--vocab", 6, 1 << 22, &shape.vocab)) return CLI_USAGE; break;
        case 'M': modes_arg = optarg; break;
        case 'b': batch_arg = optarg; break;
        case 's': seq_arg = optarg; break;
        case 'r': if (cli_parse_int(optarg, "--runs", 1, 10000, &runs)) return CLI_USAGE; break;
        case 't': if (cli_parse_int(optarg, "--threads", 1, 1024, &threads)) return CLI_USAGE; break;
        case 'g':
            gemm_set = 1;
            if (parse_list(optarg, "--gemm", 1, 1 << 20, gemm_shape, &n3) || n3 != 3) {
                fprintf(stderr, "bct: --gemm wants M,K,N\n");
                return CLI_USAGE;
            }
            break;
        case 'G': no_gemm = 1; break;
        case 'i': gemm_isa_arg = optarg; break;
        case 'B':
            if (strcmp(optarg, "row") == 0) block = 0;
            else if (cli_parse_int(optarg, "--gemm-block", QMAT_GROUP, BQ_MAX_BLOCK, &block)) return CLI_USAGE;
            if (block % QMAT_GROUP) {
                fprintf(stderr, "bct: --gemm-block must be a multiple of %d or row\n", QMAT_GROUP);
                return CLI_USAGE;
            }
            break;
        case 'q': quick = 1; break;
        case 'k': keep = optarg; break;
        case 'j': json = 1; break;
        case 'W': worker_path = optarg; break;
        case 'D': data = optarg; break;
        case 'h': fputs(usage_text, stdout); return CLI_OK;
        default: fputs(usage_text, stderr); return CLI_USAGE;
        }
    }
    if (optind != argc) {
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    if (data && seq_arg) {
        fprintf(stderr, "bct: --data and --seq exclude each other (--data's lengths are its own)\n");
        return CLI_USAGE;
    }
    if (quick) {
        if (!shape_set) shape = (bench_shape){2, 128, 2, 512, 2000, 512, 2};
        if (!batch_arg) batch_arg = "1,8";
        if (!seq_arg) seq_arg = "16,64";
        if (!runs) runs = 3;
        if (!gemm_set) gemm_shape[0] = 256, gemm_shape[2] = 768;
    }
    if (!batch_arg) batch_arg = "1,8,32";
    if (!seq_arg) seq_arg = "16,64,128";
    if (!runs) runs = 5;
    if (!threads) threads = bct_cpu_count();
    int batches[MAX_LIST], seqs[MAX_LIST], nb, ns;
    if (parse_list(batch_arg, "--batch", 1, 4096, batches, &nb) || parse_list(seq_arg, "--seq", 2, 8192, seqs, &ns))
        return CLI_USAGE;
    if (worker_path) return worker(worker_path, data, threads, runs, batches, nb, seqs, ns);
    if (data && access(data, R_OK) != 0) {
        fprintf(stderr, "bct: --data %s: %s\n", data, strerror(errno));
        return CLI_USAGE;
    }
    if (shape.hidden % shape.heads) {
        fprintf(stderr, "bct: --hidden must be a multiple of --heads\n");
        return CLI_USAGE;
    }

    /* Which models to run. */
    mode_run modes[MAX_MODES];
    int nm = 0, want[3] = {0, 0, 0}; /* fp32, int8, int4 */
    char buf[64];
    snprintf(buf, sizeof(buf), "%s", modes_arg);
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int k = !strcmp(tok, "fp32") ? 0 : !strcmp(tok, "int8") ? 1 : !strcmp(tok, "int4") ? 2 : -1;
        if (k < 0) {
            fprintf(stderr, "bct: --modes: unknown mode \"%s\" (fp32, int8, int4)\n", tok);
            return CLI_USAGE;
        }
        want[k] = 1;
    }
    char dir[PATH_MAX] = "", hf[PATH_MAX + 8], what[256];
    int made_dir = 0, rc = CLI_OK;
    memset(modes, 0, sizeof(modes));
    if (model && !is_dir(model)) { /* a .bct alone */
        snprintf(modes[0].name, sizeof(modes[0].name), "bct");
        snprintf(modes[0].path, sizeof(modes[0].path), "%s", model);
        nm = 1;
        snprintf(what, sizeof(what), "model %s", model);
    } else {
        if (model) {
            snprintf(hf, sizeof(hf), "%s", model);
            snprintf(what, sizeof(what), "model %s", model);
        } else {
            snprintf(what, sizeof(what), "random BERT: %d layers, hidden %d, %d heads, FFN %d, vocab %d", shape.layers,
                     shape.hidden, shape.heads, shape.intermediate, shape.vocab);
        }
        if (keep) {
            snprintf(dir, sizeof(dir), "%s", keep);
            if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
                fprintf(stderr, "bct: %s: %s\n", dir, strerror(errno));
                return CLI_FAIL;
            }
        } else {
            const char *tmp = getenv("TMPDIR");
            snprintf(dir, sizeof(dir), "%s/bct_bench_XXXXXX", tmp && *tmp ? tmp : "/tmp");
            if (!mkdtemp(dir)) {
                fprintf(stderr, "bct: cannot create a temporary directory: %s\n", strerror(errno));
                return CLI_FAIL;
            }
            made_dir = 1;
        }
        if (!model) {
            snprintf(hf, sizeof(hf), "%s/hf", dir);
            bct_error err = {{0}};
            fprintf(stderr, "bench: writing the random checkpoint to %s\n", hf);
            if (bench_write_random_bert(hf, &shape, 1, &err) != BCT_OK) {
                fprintf(stderr, "bct: %s\n", err.msg);
                rc = CLI_FAIL;
                goto cleanup;
            }
        }
        static const char *const names[3] = {"fp32", "int8", "int4"}, *const presets[3] = {NULL, "w8a8", "w4a8"};
        for (int k = 0; k < 3; k++) {
            if (!want[k]) continue;
            mode_run *mr = &modes[nm++];
            snprintf(mr->name, sizeof(mr->name), "%s", names[k]);
            if (k == 0) {
                snprintf(mr->path, sizeof(mr->path), "%s", hf);
                continue;
            }
            snprintf(mr->path, sizeof(mr->path), "%s/%s.bct", dir, names[k]);
            if ((rc = compress_to(hf, mr->path, presets[k])) != CLI_OK) goto cleanup;
        }
    }
    if (data) {
        size_t l = strlen(what);
        snprintf(what + l, sizeof(what) - l, "; inputs from %s", data);
    }
    for (int i = 0; i < nm; i++) {
        fprintf(stderr, "bench: %s ...\n", modes[i].name);
        if (run_worker(&modes[i], threads, runs, batch_arg, seq_arg, data) != CLI_OK) {
            fprintf(stderr, "bct: the %s run failed\n", modes[i].name);
            rc = CLI_FAIL;
        }
    }

    /* GEMM shapes: --gemm's one, or the model's (Q/K/V and attention
     * output H -> H, FFN in H -> I, FFN out I -> H) at M = 256 (a forward
     * group of BERT_FORWARD_GROUP_TOKENS, what batches of long sequences
     * run) and M = 16 (batch 1 x 16 tokens), plus 4096 x H -> I (the shape
     * of the kernels' peak targets). */
    enum { MAX_SHAPES = 8 };
    int shapes[MAX_SHAPES][3], nsh = 0;
    const int hid = shape.hidden, inter = shape.intermediate;
    if (gemm_set || quick) {
        memcpy(shapes[nsh++], gemm_shape, sizeof(gemm_shape));
    } else {
        const int ms[2] = {BERT_FORWARD_GROUP_TOKENS, 16};
        for (int mi = 0; mi < 2; mi++) {
            const int kn[3][2] = {{hid, hid}, {hid, inter}, {inter, hid}};
            for (int k = 0; k < 3; k++) {
                shapes[nsh][0] = ms[mi];
                shapes[nsh][1] = kn[k][0];
                shapes[nsh][2] = kn[k][1];
                nsh++;
            }
        }
        shapes[nsh][0] = 4096, shapes[nsh][1] = hid, shapes[nsh][2] = inter;
        nsh++;
    }
    gemm_run gemms[MAX_SHAPES * 2 * BCT_ISA_COUNT];
    int ng = 0;
    const char *clock_src = "unknown";
    if (!no_gemm) {
        for (int s = 0; s < nsh; s++)
            if (block ? shapes[s][1] % block : shapes[s][1] % QMAT_GROUP || shapes[s][1] > BQ_MAX_BLOCK) {
                fprintf(stderr, "bct: --gemm: the block (%d, a multiple of %d up to %d) must divide K = %d\n",
                        block ? block : shapes[s][1], QMAT_GROUP, BQ_MAX_BLOCK, shapes[s][1]);
                rc = CLI_FAIL;
                goto print;
            }
        bct_isa isas[BCT_ISA_COUNT];
        int ni = 0;
        if (gemm_isa_arg) {
            char ib[64];
            snprintf(ib, sizeof(ib), "%s", gemm_isa_arg);
            for (char *save = NULL, *tok = strtok_r(ib, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                int isa = bct_isa_parse(tok);
                if (isa < 0 || !bct_isa_supported((bct_isa)isa))
                    fprintf(stderr, "bct: --gemm-isa: %s is not supported here; skipped\n", tok);
                else if (ni < BCT_ISA_COUNT)
                    isas[ni++] = (bct_isa)isa;
            }
        } else {
            for (int i = BCT_ISA_AVX2; i < BCT_ISA_COUNT; i++)
                if (bct_isa_supported((bct_isa)i)) isas[ni++] = (bct_isa)i;
            if (!ni) isas[ni++] = BCT_ISA_SCALAR;
        }
        bct_isa saved = qgemm_isa();
        bct_pool *pool = bct_pool_create(threads);
        fprintf(stderr, "bench: GEMM ...\n");
        double ghz = bench_clock_ghz(&clock_src);
        bench_peak peaks[BCT_ISA_COUNT];
        for (int i = 0; i < ni; i++) bench_peak_for(isas[i], threads, ghz, &peaks[i]);
        for (int s = 0; s < nsh; s++)
            for (int i = 0; i < ni; i++)
                for (int bits = 8; bits >= 4; bits -= 4) {
                    gemm_run *g = &gemms[ng];
                    if (time_gemm(isas[i], bits, shapes[s][0], shapes[s][1], shapes[s][2],
                                  block ? block : shapes[s][1], runs, pool, g) !=
                        CLI_OK) {
                        fprintf(stderr, "bct: GEMM with %s failed (out of memory?)\n", bct_isa_name(isas[i]));
                        rc = CLI_FAIL;
                        continue;
                    }
                    g->peak = peaks[i];
                    ng++;
                }
        qgemm_set_isa(saved);
        bct_pool_free(pool);
    }
print:
    if (json) print_json(what, threads, modes, nm, gemms, ng, block, runs, clock_src);
    else print_text(what, threads, modes, nm, gemms, ng, block, clock_src);
cleanup:
    if (made_dir) {
        char cmd[PATH_MAX + 32];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "bct: could not remove %s\n", dir);
    }
    return rc;
}
