/* extent.c - named byte ranges inside a file image (extent.h). */
#include "extent.h"

#include <inttypes.h>
#include <stdlib.h>

#include "status.h"

static int cmp_offset(const void *a, const void *b) {
    const extent *x = a, *y = b;
    if (x->offset != y->offset) return x->offset < y->offset ? -1 : 1;
    return (x->size > y->size) - (x->size < y->size);
}

void extent_sort(extent *e, size_t n) {
    if (n > 1) qsort(e, n, sizeof(*e), cmp_offset);
}

const extent *extent_first_overlap(const extent *e, size_t n,
                                   const extent **prev) {
    const extent *last = NULL; /* the previous non-empty extent */
    for (size_t i = 0; i < n; i++) {
        if (e[i].size == 0) continue;
        if (last && e[i].offset < extent_end(last)) {
            *prev = last;
            return &e[i];
        }
        last = &e[i];
    }
    return NULL;
}

int extent_overlap_fail(const extent *prev, const extent *cur, const char *kind,
                        bct_error *err) {
    return bct_fail(err, BCT_EFORMAT,
                    "%s \"%.200s\" [%" PRIu64 ", %" PRIu64 ") and \"%.200s\" [%" PRIu64 ", %" PRIu64
                    ") overlap",
                    kind, prev->name, prev->offset, extent_end(prev), cur->name, cur->offset,
                    extent_end(cur));
}
