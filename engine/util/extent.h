/* extent.h - named byte ranges inside a file image.
 *
 * A reader may hand out pointers into an image only once it knows no two
 * items (tensors, blobs) share a byte.  Sorted by offset, that is a check
 * between neighbours.  Empty extents own no bytes: they may sit anywhere,
 * even inside another extent, and never overlap anything.
 */
#ifndef BCT_EXTENT_H
#define BCT_EXTENT_H

#include <stddef.h>
#include <stdint.h>

struct bct_error;

typedef struct extent {
    const char *name; /* first member, so extents also suit name_index.h */
    uint64_t offset;
    uint64_t size;
} extent;

_Static_assert(offsetof(extent, name) == 0, "name_index.h needs name first");

/* One past the last byte.  Callers keep offset + size from overflowing. */
static inline uint64_t extent_end(const extent *e) {
    return e->offset + e->size;
}

/* Sorts in place by offset, the shorter first at equal offsets. */
void extent_sort(extent *e, size_t n);

/* In an array sorted by extent_sort(): the first non-empty extent that
 * starts before the previous non-empty one ends, with that one in *prev;
 * NULL if no two extents share a byte. */
const extent *extent_first_overlap(const extent *e, size_t n,
                                   const extent **prev);

/* BCT_EFORMAT with the message "KIND "a" [x, y) and "b" [x, y) overlap",
 * for the pair extent_first_overlap() found. */
int extent_overlap_fail(const extent *prev, const extent *cur, const char *kind,
                        struct bct_error *err);

#endif
