#include "bench_peak.h"

#include <stdio.h>
#include <string.h>
#include <time.h>


static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The clock the peak is computed at, in GHz, and where it comes from:
 * cpufreq's cpuinfo_max_freq (the highest the core may run, turbo
 * included), else the "cpu MHz" of /proc/cpuinfo (under a hypervisor
 * usually the nominal clock, which turbo exceeds), else 0 (unknown).  A
 * timed chain of dependent adds, used before, is not a clock: cores that
 * fold immediate adds at rename (Intel's Golden Cove and later) retire
 * several per cycle, and it read 6 - 13 GHz on a Sapphire Rapids VM. */
static double sysfs_max_ghz(void) {
    FILE *f = fopen("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq", "r");
    double khz = 0;
    if (!f) return 0;
    if (fscanf(f, "%lf", &khz) != 1) khz = 0;
    fclose(f);
    return khz / 1e6;
}

static double cpuinfo_mhz(void);

double bench_clock_ghz(const char **source) {
    double ghz = sysfs_max_ghz();
    if (ghz > 0) {
        *source = "cpufreq cpuinfo_max_freq";
        return ghz;
    }
    ghz = cpuinfo_mhz() / 1e3;
    *source = ghz > 0 ? "/proc/cpuinfo cpu MHz (nominal; turbo may exceed it)" : "unknown";
    return ghz;
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

/* Multiply instructions per ns of a 12-instruction loop body, on this
 * thread: the fastest of several runs (a run disturbed by the scheduler is
 * only ever slower, so the fastest is the undisturbed one). */
static double measure_rate(void (*loop)(long)) {
    long n = 2000000;
    double best_rate = 0;
    for (int rep = 0; rep < 7; rep++) {
        double t = now();
        loop(n);
        double rate = 12.0 * (double)n / ((now() - t) * 1e9);
        if (rate > best_rate) best_rate = rate;
    }
    return best_rate;
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
    p->ipc_measured = p->ipc = 1;
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
    double rate = 0;
    if (isa == BCT_ISA_AVX512VNNI) {
        p->macs_per_instr = 64;
        rate = measure_rate(vnni_loop);
    } else if (isa == BCT_ISA_AVXVNNI) {
        p->macs_per_instr = 32;
        rate = measure_rate(vnni256_loop);
    } else if (isa == BCT_ISA_AVX2) {
        p->macs_per_instr = 32;
        rate = measure_rate(maddubs_loop);
    }
    if (rate > 0 && ghz > 0) {
        /* The architectural rate is 1/2, 1, 2 or 4 per cycle; a clock that
         * turbo exceeds inflates the measured figure (2.67 for the 2 of
         * Sapphire Rapids at its nominal 2.1 GHz), so take the largest of
         * those not above the measurement plus 10%. */
        static const double rates[] = {0.5, 1, 2, 4};
        p->ipc_measured = rate / ghz;
        p->ipc = rates[0];
        for (size_t i = 0; i < sizeof(rates) / sizeof(rates[0]); i++)
            if (rates[i] <= p->ipc_measured * 1.1) p->ipc = rates[i];
    }
#endif
    p->peak_gmacs = p->macs_per_instr * p->ipc * threads * ghz;
}
