/* mapped_file.h - a whole regular file copied into private memory.
 *
 * The readers validate a file image once and then hand out pointers into
 * it for as long as a model is served, so the image must not change under
 * them.  A private mapping of the file itself does not give that: pages
 * not yet read come from the file as it is *then*, and once the file is
 * truncated or rewritten in place (cp, rsync --inplace) a read past its new
 * end is SIGBUS, which killed the server (issue 17).  So the file is read
 * into an anonymous mapping of its own, made read-only; the file may then
 * change, shrink or vanish.  Cost: the whole image is resident at first
 * (a file mapping kept only touched pages), until the loader discards the
 * parts it has copied elsewhere (mapped_file_discard: the codes of packed
 * weights, decoded scales); docs/reliability.md and docs/performance.md
 * have the numbers.
 */
#ifndef BCT_MAPPED_FILE_H
#define BCT_MAPPED_FILE_H

#include <stddef.h>

#include "status.h"

typedef struct mapped_file {
    void *data; /* NULL for an empty file (mmap refuses length 0) */
    size_t len;
} mapped_file;

/* Copies the regular file at path.  Errors are BCT_EIO ("cannot open PATH:
 * ...", "PATH is not a regular file", "PATH changed while it was being
 * read", ...), BCT_ENOMEM or BCT_ERANGE ("PATH is too large to map");
 * *out is then zeroed.  A file whose size, mtime or identity changes
 * during the copy is refused rather than served torn. */
int mapped_file_open(const char *path, mapped_file *out, bct_error *err);

/* Unmaps and zeroes m; a zeroed mapped_file is a no-op. */
void mapped_file_close(mapped_file *m);

/* Gives back to the system the whole pages inside [p, p + n) of an image,
 * bytes that the caller will never read again (codes now held packed or
 * widened elsewhere, scales once decoded): MADV_DONTNEED on the private
 * copy frees them at once, without swap.  A later read is still no crash
 * (it sees zeros), but it is a bug: readers must have forgotten these
 * bytes.  The partial pages at either end stay.  Kernels without
 * MADV_DONTNEED: a no-op. */
void mapped_file_discard(const void *p, size_t n);

#endif
