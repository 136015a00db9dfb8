/* le.h - little-endian loads and stores for file formats.
 *
 * On-disk integers are little-endian whatever the host is, and they may sit
 * at any alignment, so these go byte by byte (compilers turn them into
 * plain loads and stores on little-endian hosts).
 */
#ifndef BCT_LE_H
#define BCT_LE_H

#include <stdint.h>

static inline uint16_t le_read16(const uint8_t *p) {
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline uint32_t le_read32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline uint64_t le_read64(const uint8_t *p) {
    return (uint64_t)le_read32(p) | (uint64_t)le_read32(p + 4) << 32;
}

static inline void le_write16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

static inline void le_write32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline void le_write64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

#endif
