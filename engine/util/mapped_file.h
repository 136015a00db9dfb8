/* mapped_file.h - a whole regular file mapped read-only.
 *
 * The readers validate a file image once and then hand out pointers into
 * it, so the image must not change under them: the mapping is private and
 * read-only, and the descriptor is closed right away (the mapping keeps
 * the file alive even if it is unlinked or replaced).
 */
#ifndef BCT_MAPPED_FILE_H
#define BCT_MAPPED_FILE_H

#include <stddef.h>

#include "status.h"

typedef struct mapped_file {
    void *data; /* NULL for an empty file (mmap refuses length 0) */
    size_t len;
} mapped_file;

/* Maps the regular file at path.  Errors are BCT_EIO ("cannot open PATH:
 * ...", "PATH is not a regular file", ...) or BCT_ERANGE ("PATH is too
 * large to map"); *out is then zeroed. */
int mapped_file_open(const char *path, mapped_file *out, bct_error *err);

/* Unmaps and zeroes m; a zeroed mapped_file is a no-op. */
void mapped_file_close(mapped_file *m);

/* Asks the kernel to reclaim the whole pages inside [p, p + n) of a
 * mapping whose contents now live elsewhere (packed or widened copies).
 * MADV_PAGEOUT never loses data: clean file pages are dropped (and read
 * back from the file if touched again); anonymous memory would only be
 * swapped out.  Kernels without it: a no-op. */
void mapped_file_drop_pages(const void *p, size_t n);

#endif
