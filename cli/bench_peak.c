#include "bench_peak.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kernels/threadpool.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* 4 dependent adds per iteration: 4 cycles. */
static double add_chain_ghz(long iters) {
    long x = 0;
    double t = now();
    for (long i = 0; i < iters; i++)
        __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
    return 4.0 * (double)iters / (now() - t) / 1e9;
}

typedef struct clock_job {
    double ghz[256];
} clock_job;

static void clock_task(void *ctx, int task, int worker) {
    clock_job *j = ctx;
    if (task < 256) j->ghz[task] = add_chain_ghz(50000000); /* ~50 ms at 4 GHz */
}

double bench_measure_ghz(bct_pool *pool) {
    int n = bct_pool_threads(pool);
    if (n > 256) n = 256;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) { /* best of 3: the machine may be shared */
        clock_job j;
        memset(&j, 0, sizeof(j));
        bct_pool_run(pool, n, clock_task, &j);
        double sum = 0;
        for (int i = 0; i < n; i++) sum += j.ghz[i];
        if (sum / n > best) best = sum / n;
    }
    return best;
}

#define R12(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11)

#if defined(__x86_64__)
#define DPZ(i) "vpdpbusd %%zmm30, %%zmm31, %%zmm" #i "\n\t"
#define MBY(i) "vpmaddubsw %%ymm14, %%ymm15, %%ymm" #i "\n\t"
#define DPY(i) "%{vex%} vpdpbusd %%ymm14, %%ymm15, %%ymm" #i "\n\t"

__attribute__((target("avx512f,avx512vnni"))) static void vnni_loop(long n) {
    __asm__ volatile("vpxord %%zmm30, %%zmm30, %%zmm30\n\tvpxord %%zmm31, %%zmm31, %%zmm31" ::: "memory");
    for (long i = 0; i < n; i++)
        __asm__ volatile(R12(DPZ)::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                         "xmm9", "xmm10", "xmm11", "xmm30", "xmm31", "memory");
}

__attribute__((target("avx2"))) static void maddubs_loop(long n) {
    __asm__ volatile("vpxor %%ymm14, %%ymm14, %%ymm14\n\tvpxor %%ymm15, %%ymm15, %%ymm15" ::: "memory");
    for (long i = 0; i < n; i++)
        __asm__ volatile(R12(MBY)::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                         "xmm9", "xmm10", "xmm11", "xmm14", "xmm15", "memory");
}

__attribute__((target("avx2"))) static void vnni256_loop(long n) {
    __asm__ volatile("vpxor %%ymm14, %%ymm14, %%ymm14\n\tvpxor %%ymm15, %%ymm15, %%ymm15" ::: "memory");
    for (long i = 0; i < n; i++)
        __asm__ volatile(R12(DPY)::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                         "xmm9", "xmm10", "xmm11", "xmm14", "xmm15", "memory");
}

/* Instructions per cycle of a 12-instruction loop body, on this thread:
 * the fastest of several runs of the loop over the fastest of several runs
 * of the add chain (a run disturbed by the scheduler is only ever slower,
 * so the fastest of each is the undisturbed one). */
static double measure_ipc(void (*loop)(long)) {
    long n = 2000000;
    double best_rate = 0, best_ghz = 0;
    for (int rep = 0; rep < 7; rep++) {
        double ghz = add_chain_ghz(8000000);
        if (ghz > best_ghz) best_ghz = ghz;
        double t = now();
        loop(n);
        double rate = 12.0 * (double)n / ((now() - t) * 1e9); /* per ns */
        if (rate > best_rate) best_rate = rate;
    }
    return best_rate / best_ghz;
}
#endif

static double cpuinfo_mhz(void) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[256];
    double mhz = 0;
    if (!f) return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "cpu MHz : %lf", &mhz) == 1) break;
    fclose(f);
    return mhz;
}

void bench_peak_for(bct_isa isa, int threads, double ghz, bench_peak *p) {
    memset(p, 0, sizeof(*p));
    p->ghz = ghz;
    p->threads = threads;
    p->cpuinfo_mhz = cpuinfo_mhz();
    p->macs_per_instr = 1;
    p->ipc_measured = 1;
    if (isa == BCT_ISA_AMX) {
        /* tdpbssd: C[16][16] += A[16][64] . B[64][16] in one instruction,
         * issued once every 16 cycles per core (Intel's optimization
         * reference manual, Sapphire Rapids): 1024 MACs per cycle.  Taken
         * as documented, not measured (and not rounded like the others). */
        p->macs_per_instr = 16 * 16 * 64;
        p->ipc_measured = p->ipc = 1.0 / 16;
        p->peak_gmacs = p->macs_per_instr * p->ipc * threads * ghz;
        return;
    }
#if defined(__x86_64__)
    if (isa == BCT_ISA_AVX512VNNI) {
        p->macs_per_instr = 64;
        p->ipc_measured = measure_ipc(vnni_loop);
    } else if (isa == BCT_ISA_AVXVNNI) {
        p->macs_per_instr = 32;
        p->ipc_measured = measure_ipc(vnni256_loop);
    } else if (isa == BCT_ISA_AVX2) {
        p->macs_per_instr = 32;
        p->ipc_measured = measure_ipc(maddubs_loop);
    }
#endif
    p->ipc = round(p->ipc_measured * 2) / 2;
    if (p->ipc < 0.5) p->ipc = 0.5;
    p->peak_gmacs = p->macs_per_instr * p->ipc * threads * ghz;
}
