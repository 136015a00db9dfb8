#include "cpu_features.h"

#include <pthread.h>
#include <string.h>
#include <strings.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define BCT_X86 1
#endif
#if defined(__linux__) && defined(__x86_64__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

static cpu_features features;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#ifdef BCT_X86
static void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}

static unsigned long long xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

/* XCR0 bits: 1 SSE, 2 AVX (YMM high halves), 5 opmask, 6 ZMM_Hi256,
 * 7 Hi16_ZMM, 17 XTILECFG, 18 XTILEDATA. */
#define XCR0_YMM 0x6ull
#define XCR0_ZMM 0xE6ull
#define XCR0_AMX (3ull << 17)

/* Linux: a process must ask for AMX tile data before using it (else the
 * first tile instruction faults).  Values from the kernel's uapi
 * asm/prctl.h and its xstate feature numbers. */
#ifndef ARCH_REQ_XCOMP_PERM
#define ARCH_REQ_XCOMP_PERM 0x1023
#endif
#define XFEATURE_XTILEDATA 18

/* 1 when this process may use tile data from now on.  Idempotent; the
 * caller runs it once (under pthread_once). */
static int request_amx_permission(void) {
#if defined(__linux__) && defined(__x86_64__)
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return 0; /* no known way to be granted tile data: treat AMX as absent */
#endif
}

static void detect(void) {
    cpu_features *f = &features;
    unsigned r[4];
    cpuid(0, 0, r);
    unsigned max_leaf = r[0];
    memcpy(f->vendor, &r[1], 4);
    memcpy(f->vendor + 4, &r[3], 4);
    memcpy(f->vendor + 8, &r[2], 4);
    cpuid(0x80000000u, 0, r);
    if (r[0] >= 0x80000004u) {
        for (unsigned i = 0; i < 3; i++) {
            cpuid(0x80000002u + i, 0, r);
            memcpy(f->brand + 16 * i, r, 16);
        }
        f->brand[48] = '\0';
    }
    if (max_leaf < 1) return;
    cpuid(1, 0, r);
    int osxsave = (r[2] >> 27) & 1;
    f->sse41 = (r[2] >> 19) & 1;
    int avx = (r[2] >> 28) & 1, fma = (r[2] >> 12) & 1, f16c = (r[2] >> 29) & 1;
    f->xcr0 = osxsave ? xgetbv0() : 0;
    int os_ymm = (f->xcr0 & XCR0_YMM) == XCR0_YMM;
    int os_zmm = (f->xcr0 & XCR0_ZMM) == XCR0_ZMM;
    int os_amx = (f->xcr0 & XCR0_AMX) == XCR0_AMX;
    f->avx = avx && os_ymm;
    f->fma = fma && f->avx;
    f->f16c = f16c && f->avx;
    if (max_leaf < 7) return;
    cpuid(7, 0, r);
    unsigned ebx = r[1], ecx = r[2], edx = r[3];
    f->avx2 = ((ebx >> 5) & 1) && f->avx;
    f->avx512f = ((ebx >> 16) & 1) && os_zmm;
    f->avx512bw = ((ebx >> 30) & 1) && f->avx512f;
    f->avx512dq = ((ebx >> 17) & 1) && f->avx512f;
    f->avx512vl = ((ebx >> 31) & 1) && f->avx512f;
    f->avx512vnni = ((ecx >> 11) & 1) && f->avx512f;
    f->amx_tile = (edx >> 24) & 1;
    f->amx_int8 = (edx >> 25) & 1;
    if (r[0] >= 1) {
        cpuid(7, 1, r);
        f->avxvnni = ((r[0] >> 4) & 1) && f->avx2;
    }
    f->amx_ok = f->amx_tile && f->amx_int8 && os_amx;
    /* Asked only where AMX can work at all: once granted, signal frames
     * of the process must leave room for tile data. */
    f->amx_perm = f->amx_ok && request_amx_permission();
}
#else
static void detect(void) { strcpy(features.vendor, "unknown"); }
#endif

const cpu_features *cpu_features_get(void) {
    pthread_once(&once, detect);
    return &features;
}

int bct_isa_supported(bct_isa isa) {
    const cpu_features *f = cpu_features_get();
    switch (isa) {
    case BCT_ISA_SCALAR: return 1;
    case BCT_ISA_AVX2: return f->avx2;
    case BCT_ISA_AVXVNNI: return f->avx2 && f->avxvnni;
    case BCT_ISA_AVX512VNNI: return f->avx512f && f->avx512bw && f->avx512dq && f->avx512vl && f->avx512vnni;
    case BCT_ISA_AMX: return f->amx_ok && f->amx_perm && bct_isa_supported(BCT_ISA_AVX512VNNI);
    default: return 0;
    }
}

bct_isa bct_isa_best(void) {
    for (int i = BCT_ISA_COUNT - 1; i > 0; i--)
        if (bct_isa_supported((bct_isa)i)) return (bct_isa)i;
    return BCT_ISA_SCALAR;
}

static const char *const names[BCT_ISA_COUNT] = {"scalar", "avx2", "avxvnni", "avx512vnni", "amx"};

const char *bct_isa_name(bct_isa isa) {
    return (unsigned)isa < BCT_ISA_COUNT ? names[isa] : "?";
}

int bct_isa_parse(const char *name) {
    for (int i = 0; i < BCT_ISA_COUNT; i++)
        if (name && strcasecmp(name, names[i]) == 0) return i;
    return -1;
}
