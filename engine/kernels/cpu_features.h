/* cpu_features.h - what the CPU and the OS let the kernels use.
 *
 * Detection reads cpuid for the instruction sets and xgetbv (XCR0) for the
 * register state the OS saves on context switches: AVX needs YMM state,
 * AVX-512 also opmask and ZMM state, AMX the tile state (XTILECFG and
 * XTILEDATA).  On Linux, tile data also needs a per-process permission:
 * when the CPU and XCR0 allow AMX, detection asks for it once, with
 * arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) (before any tile is
 * used; it holds for every thread of the process).  The kernel may refuse
 * (e.g. a thread's sigaltstack too small for the larger signal frame);
 * then, as on other OSes, AMX counts as absent.  An instruction set the
 * CPU has but the OS does not enable counts as absent.
 *
 * The kernels of the int8 block GEMM exist per ISA level (bct_isa); the
 * best one this machine supports is used unless BCT_ISA says otherwise
 * (see qgemm.h).  Everything is chosen at run time: the binary is built
 * for baseline x86-64 and SIMD functions carry target attributes.
 */
#ifndef BCT_CPU_FEATURES_H
#define BCT_CPU_FEATURES_H

typedef enum bct_isa {
    BCT_ISA_SCALAR,     /* portable C, the reference */
    BCT_ISA_AVX2,       /* AVX2: vpmaddubsw / vpmaddwd */
    BCT_ISA_AVXVNNI,    /* AVX2 + AVX-VNNI: vpdpbusd on 256-bit vectors (VEX; CPUs without AVX-512) */
    BCT_ISA_AVX512VNNI, /* AVX-512 F/BW/DQ/VL + VNNI: vpdpbusd on 512-bit vectors */
    BCT_ISA_AMX,        /* AMX-INT8 tiles: tdpbssd on 16 x 64-byte tiles (+ AVX-512 for the rescale) */
    BCT_ISA_COUNT
} bct_isa;

typedef struct cpu_features {
    char vendor[13];
    char brand[49];
    /* Instruction sets usable here (CPU has them and the OS saves their state). */
    int sse41, avx, avx2, fma, f16c;
    int avx512f, avx512bw, avx512dq, avx512vl, avx512vnni, avxvnni;
    int amx_tile, amx_int8; /* CPU flags */
    int amx_ok;             /* ... and the OS enables tile state in XCR0 */
    int amx_perm;           /* ... and this process may use tile data (Linux arch_prctl granted) */
    /* XCR0 state bits as read (0 when xgetbv is unavailable). */
    unsigned long long xcr0;
} cpu_features;

/* Detected once (thread-safe, including the AMX permission request), then
 * cached. */
const cpu_features *cpu_features_get(void);

/* 1 when this CPU/OS can run the kernels of `isa`.  AMX: the AMX-TILE and
 * AMX-INT8 flags, tile state in XCR0, the permission granted, and the
 * avx512vnni level (its kernel rescales and unpacks with AVX-512). */
int bct_isa_supported(bct_isa isa);
/* The best supported ISA. */
bct_isa bct_isa_best(void);

/* "scalar", "avx2", "avxvnni", "avx512vnni", "amx". */
const char *bct_isa_name(bct_isa isa);
/* Parses a name above (case-insensitive); -1 when unknown. */
int bct_isa_parse(const char *name);

#endif
