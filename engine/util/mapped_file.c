/* mapped_file.c - a whole regular file mapped read-only (mapped_file.h). */
#include "mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int mapped_file_open(const char *path, mapped_file *out, bct_error *err) {
    out->data = NULL;
    out->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bct_fail(err, BCT_EIO, "cannot open %s: %s", path,
                        strerror(errno));

    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return bct_fail(err, BCT_EIO, "cannot stat %s: %s", path,
                        strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return bct_fail(err, BCT_EIO, "%s is not a regular file", path);
    }
    if ((uint64_t)sb.st_size > SIZE_MAX) {
        close(fd);
        return bct_fail(err, BCT_ERANGE, "%s is too large to map", path);
    }
    size_t len = (size_t)sb.st_size;
    if (len == 0) {
        close(fd);
        return BCT_OK;
    }

    void *map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    /* The mapping keeps the file alive; the descriptor is no longer needed.
     * close() on Linux releases the fd even when it reports EINTR. */
    if (close(fd) != 0 && errno != EINTR) {
        int e = errno;
        if (map != MAP_FAILED) munmap(map, len);
        return bct_fail(err, BCT_EIO, "cannot close %s: %s", path,
                        strerror(e));
    }
    if (map == MAP_FAILED)
        return bct_fail(err, BCT_EIO, "cannot map %s: %s", path,
                        strerror(map_errno));
    out->data = map;
    out->len = len;
    return BCT_OK;
}

void mapped_file_close(mapped_file *m) {
    /* Nothing useful can be done if munmap fails on our own mapping. */
    if (m->data) (void)munmap(m->data, m->len);
    m->data = NULL;
    m->len = 0;
}

void mapped_file_drop_pages(const void *p, size_t n) {
#ifdef MADV_PAGEOUT
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~((uintptr_t)ps - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_PAGEOUT);
#else
    (void)p;
    (void)n;
#endif
}
