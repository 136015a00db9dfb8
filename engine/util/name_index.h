/* name_index.h - arrays of records sorted and searched by name.
 *
 * A record is any struct whose first member is its name (a `const char *`).
 * C lets a pointer to a struct be read as a pointer to its first member, so
 * each reader sorts its own entry type in place, without a wrapper; users
 * pin the layout with _Static_assert(offsetof(T, name) == 0, ...).
 */
#ifndef BCT_NAME_INDEX_H
#define BCT_NAME_INDEX_H

#include <stddef.h>

/* Sorts n records of `size` bytes by name (strcmp order) and returns the
 * first name that occurs more than once, or NULL if all are unique. */
const char *name_index_sort(void *base, size_t n, size_t size);

/* The record called name in an array sorted by name_index_sort(), or
 * NULL. */
void *name_index_find(const void *base, size_t n, size_t size,
                      const char *name);

#endif
