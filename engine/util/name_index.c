/* name_index.c - arrays of records sorted and searched by name
 * (name_index.h). */
#include "name_index.h"

#include <stdlib.h>
#include <string.h>

static const char *name_of(const void *record) {
    return *(const char *const *)record;
}

static int cmp_records(const void *a, const void *b) {
    return strcmp(name_of(a), name_of(b));
}

static int cmp_key(const void *key, const void *record) {
    return strcmp((const char *)key, name_of(record));
}

const char *name_index_sort(void *base, size_t n, size_t size) {
    if (n < 2) return NULL; /* qsort() wants a non-NULL base even for 0 */
    qsort(base, n, size, cmp_records);
    const char *prev = name_of(base);
    for (size_t i = 1; i < n; i++) {
        const char *cur = name_of((const char *)base + i * size);
        if (strcmp(prev, cur) == 0) return cur;
        prev = cur;
    }
    return NULL;
}

void *name_index_find(const void *base, size_t n, size_t size,
                      const char *name) {
    if (n == 0 || !name) return NULL;
    return bsearch(name, base, n, size, cmp_key);
}
