/* GPTQ (quantizer/gptq.c) against the numpy reference tests/data/gptq_ref.py:
 * the same codes and scales on small random cases, and less output error
 * than plain rounding on the calibration inputs' Hessian. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/qcodec.h"
#include "gptq.h"
#include "test_util.h"

static char cases_path[64];

/* Runs the reference into a temporary file; 0 when numpy is missing. */
static int make_cases(void) {
    snprintf(cases_path, sizeof(cases_path), "/tmp/bct_gptq_XXXXXX");
    int fd = mkstemp(cases_path);
    if (fd < 0) return 0;
    close(fd);
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s' '%s'", test_data_path("gptq_ref.py"), cases_path);
    int rc = system(cmd);
    return rc == 0;
}

static double *read_doubles(FILE *f, size_t n) {
    double *v = malloc(n * sizeof(double));
    for (size_t i = 0; v && i < n; i++) ck_assert_int_eq(fscanf(f, "%lf", &v[i]), 1);
    return v;
}

/* y^T H y summed over rows for the error E = W - deq(Q): the output error
 * on the calibration inputs. */
static double output_error(const float *w, const bq_result *q, const bq_spec *s, int rows, int cols,
                           const double *h) {
    double total = 0;
    double *e = malloc((size_t)cols * sizeof(double));
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) {
            size_t bi = (size_t)r * (cols / s->block) + (size_t)(c / s->block);
            e[c] = w[(size_t)r * cols + c] - qcodec_scale_decode(s->scale, q->scales, bi, q->base) *
                                                 q->codes[(size_t)r * cols + c];
        }
        for (int a = 0; a < cols; a++)
            for (int b = 0; b < cols; b++) total += e[a] * h[(size_t)a * cols + b] * e[b];
    }
    free(e);
    return total;
}

START_TEST(gptq_matches_numpy_reference) {
    if (!make_cases()) {
        fprintf(stderr, "test_gptq: /usr/bin/python3 with numpy is missing; skipped\n");
        return;
    }
    FILE *f = fopen(cases_path, "r");
    ck_assert_ptr_nonnull(f);
    int ncases;
    ck_assert_int_eq(fscanf(f, "%d", &ncases), 1);
    ck_assert_int_ge(ncases, 3);
    for (int ci = 0; ci < ncases; ci++) {
        int rows, cols, block, bits;
        ck_assert_int_eq(fscanf(f, "%d %d %d %d", &rows, &cols, &block, &bits), 4);
        size_t nw = (size_t)rows * cols, nb = (size_t)rows * (cols / block);
        double *wd = read_doubles(f, nw), *h = read_doubles(f, (size_t)cols * cols);
        double *codes = read_doubles(f, nw), *scales = read_doubles(f, nb);
        float *w = malloc(nw * sizeof(float));
        for (size_t i = 0; i < nw; i++) w[i] = (float)wd[i];
        bq_spec spec = {bits, block, QSCALE_F16};
        bq_result q;
        bct_error err = {{0}};
        double *hc = malloc((size_t)cols * cols * sizeof(double));
        memcpy(hc, h, (size_t)cols * cols * sizeof(double));
        ck_assert_msg(gptq_quantize(w, rows, cols, hc, &spec, &q, &err) == BCT_OK, "%s", err.msg);
        free(hc);
        for (size_t i = 0; i < nw; i++)
            ck_assert_msg(q.codes[i] == (int)codes[i], "case %d: code %zu is %d, reference %d", ci, i, q.codes[i],
                          (int)codes[i]);
        for (size_t i = 0; i < nb; i++)
            ck_assert_msg(qcodec_scale_decode(QSCALE_F16, q.scales, i, q.base) == (float)scales[i],
                          "case %d: scale %zu", ci, i);
        /* Column 5 never saw an input: its weights are stored as 0. */
        for (int r = 0; r < rows; r++) ck_assert_int_eq(q.codes[(size_t)r * cols + 5], 0);
        /* Less output error on the calibration inputs than rounding each
         * block to its best scale (weights: H's diagonal). */
        float *cw = malloc((size_t)cols * sizeof(float));
        for (int c = 0; c < cols; c++) cw[c] = (float)(h[(size_t)c * cols + c] + 1e-3);
        bq_result plain;
        ck_assert_int_eq(bq_quantize(w, rows, cols, &spec, cw, &plain, &err), BCT_OK);
        double eg = output_error(w, &q, &spec, rows, cols, h), ep = output_error(w, &plain, &spec, rows, cols, h);
        ck_assert_msg(eg < ep, "case %d: GPTQ output error %g >= rounding %g", ci, eg, ep);
        bq_result_free(&plain);
        bq_result_free(&q);
        free(cw);
        free(w);
        free(wd);
        free(h);
        free(codes);
        free(scales);
    }
    fclose(f);
    remove(cases_path);
}
END_TEST

START_TEST(gptq_rejects_bad_input) {
    float w[64] = {0};
    double h[64 * 64] = {0};
    bq_spec spec = {4, 48, QSCALE_F16};
    bq_result q;
    bct_error err = {{0}};
    ck_assert_int_eq(gptq_quantize(w, 1, 64, h, &spec, &q, &err), BCT_EINVAL);
    ck_assert_ptr_null(q.codes);
    /* An indefinite H (negative diagonal) is an error, not garbage. */
    spec.block = 32;
    for (int i = 0; i < 64; i++) h[i * 64 + i] = i == 7 ? -100 : 1;
    ck_assert_int_eq(gptq_quantize(w, 1, 64, h, &spec, &q, &err), BCT_EINVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "positive definite"));
    ck_assert_ptr_null(q.codes);
}
END_TEST

int main(void) {
    Suite *s = suite_create("gptq");
    TCase *tc = tcase_create("gptq");
    tcase_add_test(tc, gptq_matches_numpy_reference);
    tcase_add_test(tc, gptq_rejects_bad_input);
    suite_add_tcase(s, tc);
    return test_run_suite(s);
}
