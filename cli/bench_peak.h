/* bench_peak.h - the theoretical int8 peak of a GEMM kernel ISA on this
 * machine, for `bct bench`:
 *
 *   peak MAC/s = MACs per multiply instruction x instructions per cycle per
 *                core x cores (threads used) x clock
 *
 *   amx:        tdpbssd = 16 x 16 x 64 = 16384 MACs (a 16 x 64 int8 tile
 *               times a 64 x 16 one); not measured: one per 16 cycles per
 *               core (1024 MACs/cycle), the throughput Intel's optimization
 *               reference manual gives for TDPB[SU]D on Sapphire Rapids
 *   avx512vnni: vpdpbusd zmm = 64 MACs (16 lanes x 4 u8*s8 products)
 *   avxvnni:    vpdpbusd ymm (VEX) = 32 MACs (8 lanes x 4)
 *   avx2:       vpmaddubsw ymm = 32 MACs (16 int16 pairs); an upper bound,
 *               since each also needs a vpmaddwd on the same ports
 *   scalar:     1 MAC per imul (not measured: reported as 1/cycle)
 *
 * Instructions per cycle (AVX2, AVX-VNNI, AVX-512): a loop of 12 independent
 * accumulators (enough to cover the latency) timed on one thread, divided
 * by the clock and taken down to 1/2, 1, 2 or 4: the architectural
 * throughput.  Clock: bench_clock_ghz (cpufreq's maximum, else the
 * /proc/cpuinfo figure, else unknown: then there is no peak). */
#ifndef BCT_BENCH_PEAK_H
#define BCT_BENCH_PEAK_H

#include "kernels/cpu_features.h"


typedef struct bench_peak {
    double ghz;           /* bench_clock_ghz(); 0: unknown (no peak) */
    double cpuinfo_mhz;   /* "cpu MHz" of /proc/cpuinfo (0 if absent) */
    double ipc_measured;  /* multiply instructions per cycle per core (amx: the documented 1/16; 1 if the clock is unknown) */
    double ipc;           /* rounded to 0.5 (amx: 1/16 as is) */
    int macs_per_instr;
    int threads;
    double peak_gmacs;    /* macs_per_instr * ipc * threads * ghz */
} bench_peak;

/* The clock for the peak, in GHz (0: unknown); *source says where it
 * comes from. */
double bench_clock_ghz(const char **source);

/* Fills p for isa (which must be supported) with `threads` cores at ghz. */
void bench_peak_for(bct_isa isa, int threads, double ghz, bench_peak *p);

#endif
