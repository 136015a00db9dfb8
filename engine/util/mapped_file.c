/* mapped_file.c - a whole regular file copied into private memory
 * (mapped_file.h). */
#include "mapped_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static int same_file_state(const struct stat *a, const struct stat *b) {
    return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Reads len bytes of fd into buf; 0, or -1 with errno (0 at an early end
 * of file: the file shrank under us). */
static int read_all(int fd, uint8_t *buf, size_t len) {
    size_t done = 0;
    while (done < len) {
        ssize_t n = pread(fd, buf + done, len - done, (off_t)done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            if (n == 0) errno = 0;
            return -1;
        }
        done += (size_t)n;
    }
    return 0;
}

int mapped_file_open(const char *path, mapped_file *out, bct_error *err) {
    out->data = NULL;
    out->len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bct_fail(err, BCT_EIO, "cannot open %s: %s", path, strerror(errno));

    struct stat before, after;
    int rc = BCT_OK;
    void *map = MAP_FAILED;
    size_t len = 0;
    if (fstat(fd, &before) != 0) {
        rc = bct_fail(err, BCT_EIO, "cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(before.st_mode)) {
        rc = bct_fail(err, BCT_EIO, "%s is not a regular file", path);
        goto out;
    }
    if ((uint64_t)before.st_size > SIZE_MAX) {
        rc = bct_fail(err, BCT_ERANGE, "%s is too large to map", path);
        goto out;
    }
    len = (size_t)before.st_size;
    if (len == 0) goto out;

    map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        rc = bct_fail(err, BCT_ENOMEM, "cannot allocate %zu bytes for %s: %s", len, path,
                      strerror(errno));
        goto out;
    }
    if (read_all(fd, map, len) != 0) {
        rc = errno ? bct_fail(err, BCT_EIO, "cannot read %s: %s", path, strerror(errno))
                   : bct_fail(err, BCT_EIO, "%s shrank while it was being read", path);
        goto out;
    }
    /* A writer that was busy during the copy (cp, rsync --inplace) leaves
     * a torn image: refuse it; whoever watches the file tries again once
     * it settles. */
    if (fstat(fd, &after) != 0 || !same_file_state(&before, &after)) {
        rc = bct_fail(err, BCT_EIO, "%s changed while it was being read", path);
        goto out;
    }
    (void)mprotect(map, len, PROT_READ); /* readers never write; catch it if they do */
out:
    close(fd); /* a read-only descriptor: nothing to lose on error */
    if (rc != BCT_OK) {
        if (map != MAP_FAILED) munmap(map, len);
        return rc;
    }
    if (map != MAP_FAILED) {
        out->data = map;
        out->len = len;
    }
    return BCT_OK;
}

void mapped_file_close(mapped_file *m) {
    /* Nothing useful can be done if munmap fails on our own mapping. */
    if (m->data) (void)munmap(m->data, m->len);
    m->data = NULL;
    m->len = 0;
}

void mapped_file_discard(const void *p, size_t n) {
#ifdef MADV_DONTNEED
    long ps = sysconf(_SC_PAGESIZE);
    if (ps <= 0 || !p) return;
    uintptr_t a = ((uintptr_t)p + (uintptr_t)ps - 1) & ~((uintptr_t)ps - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~((uintptr_t)ps - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_DONTNEED);
#else
    (void)p;
    (void)n;
#endif
}
