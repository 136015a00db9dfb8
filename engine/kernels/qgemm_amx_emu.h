/* qgemm_amx_emu.h - a plain-C emulation of the AMX-INT8 tile instructions
 * that qgemm_amx.c uses, for testing that kernel on CPUs without AMX.
 * TEST-ONLY: included by qgemm_amx.c when it is compiled with QAMX_EMU (the
 * test_amx_emu target) and by that test; never part of the bct binary.
 *
 * The register file is per thread, like the real one: 8 tiles of up to 16
 * rows x 64 bytes, shaped by a palette-1 configuration (rows and bytes per
 * row per tile).  Each instruction checks what the hardware faults on
 * (#GP on a bad configuration, #UD on tiles that are not configured or do
 * not fit the operation) and aborts with a message instead, so a kernel
 * bug that real AMX would trap on fails the test here too; loads and
 * stores touch exactly rows x colsb bytes per tile, so the sanitizers see
 * any out-of-bounds access.
 *
 * Semantics, from Intel's instruction set reference:
 *   LDTILECFG   palette 0: tiles released; palette 1: per tile rows <= 16
 *               and colsb <= 64, both 0 for an unused tile, reserved bytes
 *               and tiles 8..15 zero, start_row 0.  All tile data is zeroed.
 *   TILERELEASE back to the initial state (nothing configured).
 *   TILEZERO    the whole tile is zeroed.
 *   TILELOADD   row r (< rows) = colsb bytes at base + r * stride; the rest
 *               of the tile (rows and columns outside the shape) zeroed.
 *   TILESTORED  rows x colsb bytes to base + r * stride.
 *   TDPBSSD     C[m][n] += sum over k4 < A.colsb / 4 of
 *                          sum over j < 4 of (int32)A[m][4 k4 + j] * (int32)B[k4][4 n + j]
 *               (signed bytes, int32 with wraparound), m < C.rows,
 *               n < C.colsb / 4; requires distinct tiles, C.rows == A.rows,
 *               C.colsb == B.colsb, A.colsb == 4 * B.rows.
 */
#ifndef BCT_QGEMM_AMX_EMU_H
#define BCT_QGEMM_AMX_EMU_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qgemm_kern.h"

typedef struct amx_emu_state {
    int configured;
    uint8_t rows[QAMX_TILES];
    uint16_t colsb[QAMX_TILES];
    uint8_t data[QAMX_TILES][QAMX_ROWS][QAMX_COLSB];
    long dp_count; /* TDPBSSD executed on this thread (tests check the emulation ran) */
} amx_emu_state;

static _Thread_local amx_emu_state amx_emu;

static void amx_emu_fault(const char *insn, const char *why, int tile) {
    fprintf(stderr, "amx emulation: %s: %s (tile %d)\n", insn, why, tile);
    abort();
}

/* A tile that an instruction may use: configured, shape in range. */
static inline void amx_emu_check(const char *insn, int t) {
    if (!amx_emu.configured) amx_emu_fault(insn, "tiles are not configured on this thread", t);
    if (t < 0 || t >= QAMX_TILES) amx_emu_fault(insn, "no such tile", t);
    if (!amx_emu.rows[t]) amx_emu_fault(insn, "tile is not configured", t);
}

static inline void amx_emu_release(void) { memset(&amx_emu, 0, offsetof(amx_emu_state, dp_count)); }

static inline void amx_emu_loadconfig(const qamx_cfg *c) {
    amx_emu_release();
    if (c->palette == 0) return;
    if (c->palette != 1) amx_emu_fault("ldtilecfg", "unsupported palette", -1);
    if (c->start_row) amx_emu_fault("ldtilecfg", "start_row is not 0", -1);
    for (int i = 0; i < (int)sizeof(c->reserved); i++)
        if (c->reserved[i]) amx_emu_fault("ldtilecfg", "reserved bytes are not 0", -1);
    for (int t = 0; t < 16; t++) {
        int rows = c->rows[t], colsb = c->colsb[t];
        if (t >= QAMX_TILES ? rows || colsb : rows > QAMX_ROWS || colsb > QAMX_COLSB || !rows != !colsb)
            amx_emu_fault("ldtilecfg", "invalid tile shape", t);
        if (t < QAMX_TILES) {
            amx_emu.rows[t] = (uint8_t)rows;
            amx_emu.colsb[t] = (uint16_t)colsb;
        }
    }
    amx_emu.configured = 1;
}

static inline void amx_emu_zero(int t) {
    amx_emu_check("tilezero", t);
    memset(amx_emu.data[t], 0, sizeof(amx_emu.data[t]));
}

static inline void amx_emu_loadd(int t, const void *base, long stride) {
    amx_emu_check("tileloadd", t);
    memset(amx_emu.data[t], 0, sizeof(amx_emu.data[t]));
    for (int r = 0; r < amx_emu.rows[t]; r++)
        memcpy(amx_emu.data[t][r], (const uint8_t *)base + (ptrdiff_t)r * stride, amx_emu.colsb[t]);
}

static inline void amx_emu_stored(int t, void *base, long stride) {
    amx_emu_check("tilestored", t);
    for (int r = 0; r < amx_emu.rows[t]; r++)
        memcpy((uint8_t *)base + (ptrdiff_t)r * stride, amx_emu.data[t][r], amx_emu.colsb[t]);
}

static inline void amx_emu_dpbssd(int c, int a, int b) {
    amx_emu_check("tdpbssd", c);
    amx_emu_check("tdpbssd", a);
    amx_emu_check("tdpbssd", b);
    if (c == a || c == b || a == b) amx_emu_fault("tdpbssd", "tiles are not distinct", c);
    if (amx_emu.rows[c] != amx_emu.rows[a]) amx_emu_fault("tdpbssd", "C rows != A rows", c);
    if (amx_emu.colsb[c] != amx_emu.colsb[b]) amx_emu_fault("tdpbssd", "C colsb != B colsb", c);
    if (amx_emu.colsb[a] != 4 * amx_emu.rows[b]) amx_emu_fault("tdpbssd", "A colsb != 4 x B rows", a);
    if (amx_emu.colsb[c] % 4) amx_emu_fault("tdpbssd", "C colsb is not whole dwords", c);
    const int M = amx_emu.rows[c], N = amx_emu.colsb[c] / 4, K4 = amx_emu.colsb[a] / 4;
    for (int m = 0; m < M; m++)
        for (int n = 0; n < N; n++) {
            uint8_t *cp = amx_emu.data[c][m] + 4 * n;
            uint32_t acc;
            memcpy(&acc, cp, 4);
            for (int k4 = 0; k4 < K4; k4++)
                for (int j = 0; j < 4; j++) {
                    int32_t p = (int32_t)(int8_t)amx_emu.data[a][m][4 * k4 + j] *
                                (int32_t)(int8_t)amx_emu.data[b][k4][4 * n + j];
                    acc += (uint32_t)p; /* int32 wraparound, without signed overflow */
                }
            memcpy(cp, &acc, 4);
        }
    amx_emu.dp_count++;
}

/* Defined by the QAMX_EMU build of qgemm_amx.c: the AMX kernel on this
 * emulation (qk_amx's contract), and the calling thread's emulated state
 * (tiles configured?, TDPBSSD executed so far). */
void qk_amx_emu(const qk_job *j, int r0, int r1, int t0, int t1);
void qk_amx_emu_state(int *configured, long *dp_count);

#endif
