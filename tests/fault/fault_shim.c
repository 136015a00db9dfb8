/* fault_shim.c - an LD_PRELOAD library that makes chosen file-system calls
 * of a real process fail (or kill it), for the fault-injection tests
 * (tests/fault/).  Test-only: built by CMake under tests/, never installed.
 *
 * Every intercepted call that matches BCT_FAULT_CALLS and BCT_FAULT_PATH
 * gets the next number of one process-wide counter (1, 2, ...).  Calls
 * numbered NTH to NTH+COUNT-1 get the ACTION; every matching call is
 * appended to BCT_FAULT_LOG when it is set.
 *
 *   BCT_FAULT_PATH    fnmatch(3) pattern of the path ('*' crosses '/'); a
 *                     call on a descriptor is matched by /proc/self/fd's
 *                     name for it.  Unset: the shim does nothing.
 *   BCT_FAULT_CALLS   comma-separated call names (below), or "all" (default)
 *   BCT_FAULT_NTH     first matching call to act on, 1-based; 0 (default):
 *                     none, only count and log
 *   BCT_FAULT_COUNT   how many matching calls to act on from NTH; 0 = every
 *                     one from NTH on (default 1)
 *   BCT_FAULT_ERRNO   ENOSPC, EIO, EROFS, EDQUOT, EACCES or a number (EIO)
 *   BCT_FAULT_ACTION  fail (default): return -1 with the errno, the call not
 *                     made; kill: SIGKILL the process instead of the call;
 *                     kill-after: make the call, then SIGKILL
 *   BCT_FAULT_LOG     file: one line per matching call, "<n> <call> <path>",
 *                     with " ACT" when the action was taken
 *   BCT_FAULT_LOG_ALL pattern: also log the other calls on paths matching
 *                     it, numbered "-" (what happened around the fault)
 *
 * Calls: open openat creat (only opens that may write: O_WRONLY, O_RDWR,
 * O_CREAT or O_TRUNC), write pwrite writev pwritev, fsync fdatasync,
 * ftruncate fallocate posix_fallocate fchmod close, rename renameat
 * renameat2 link linkat mkdir mkdirat unlink unlinkat rmdir, mkstemp
 * mkostemp mkdtemp (glibc creates those files with internal calls that an
 * LD_PRELOAD library cannot see, so they are matched on their template).
 * Only calls made through the dynamic symbol table are seen: bct's own
 * (those in its nftw callbacks too), not glibc's internal ones (stdio's
 * writes, the open inside mkostemp).  A descriptor's path is read from
 * /proc/self/fd, so sockets and pipes never match a path pattern. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

enum { ACT_FAIL, ACT_KILL, ACT_KILL_AFTER };

static struct {
    int on;
    char pattern[PATH_MAX];
    char calls[1024]; /* ",name,name," or empty for all */
    char log_all[PATH_MAX];
    long nth, count;
    int err, action, log_fd;
} cfg;
static atomic_long seq;

static int errno_of(const char *s) {
    static const struct {
        const char *name;
        int value;
    } names[] = {{"ENOSPC", ENOSPC}, {"EIO", EIO}, {"EROFS", EROFS}, {"EDQUOT", EDQUOT}, {"EACCES", EACCES},
                 {"EPERM", EPERM}};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (!strcmp(s, names[i].name)) return names[i].value;
    int v = atoi(s);
    return v > 0 ? v : EIO;
}

__attribute__((constructor)) static void fault_init(void) {
    const char *p = getenv("BCT_FAULT_PATH");
    if (!p || !*p) return;
    snprintf(cfg.pattern, sizeof(cfg.pattern), "%s", p);
    const char *c = getenv("BCT_FAULT_CALLS");
    if (c && *c && strcmp(c, "all")) snprintf(cfg.calls, sizeof(cfg.calls), ",%s,", c);
    const char *v;
    cfg.nth = (v = getenv("BCT_FAULT_NTH")) ? atol(v) : 0;
    cfg.count = (v = getenv("BCT_FAULT_COUNT")) ? atol(v) : 1;
    cfg.err = (v = getenv("BCT_FAULT_ERRNO")) ? errno_of(v) : EIO;
    v = getenv("BCT_FAULT_ACTION");
    cfg.action = !v || !strcmp(v, "fail") ? ACT_FAIL : !strcmp(v, "kill") ? ACT_KILL : ACT_KILL_AFTER;
    cfg.log_fd = -1;
    if ((v = getenv("BCT_FAULT_LOG")) && *v)
        cfg.log_fd = (int)syscall(SYS_openat, AT_FDCWD, v, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if ((v = getenv("BCT_FAULT_LOG_ALL"))) snprintf(cfg.log_all, sizeof(cfg.log_all), "%s", v);
    cfg.on = 1;
}

/* The real function: the next definition after this library. */
#define REAL(ret, name, ...)                                                                           \
    static ret (*real_##name)(__VA_ARGS__);                                                           \
    if (!real_##name) real_##name = (ret(*)(__VA_ARGS__))dlsym(RTLD_NEXT, #name)

static int call_selected(const char *call) {
    if (!cfg.calls[0]) return 1;
    char key[64];
    snprintf(key, sizeof(key), ",%s,", call);
    return strstr(cfg.calls, key) != NULL;
}

static void fd_path(int fd, char *out, size_t size) {
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, size - 1);
    out[n > 0 ? n : 0] = '\0';
}

static void at_path(int dirfd, const char *path, char *out, size_t size) {
    if (!path) {
        out[0] = '\0';
        return;
    }
    if (path[0] == '/' || dirfd == AT_FDCWD) {
        if (path[0] != '/' && getcwd(out, size)) {
            size_t n = strlen(out);
            snprintf(out + n, size - n, "/%s", path);
        } else {
            snprintf(out, size, "%s", path);
        }
        return;
    }
    char dir[PATH_MAX];
    fd_path(dirfd, dir, sizeof(dir));
    int n = snprintf(out, size, "%s/%s", dir, path);
    if (n < 0 || (size_t)n >= size) out[0] = '\0'; /* too long: matches nothing useful */
}

/* 1: act (the caller fails the call, or makes it and kills); 0: go on.
 * ACT_KILL never returns. */
static void log_call(const char *n, const char *call, const char *path, int act) {
    char line[PATH_MAX + 128];
    int len = snprintf(line, sizeof(line), "%s %s %s%s\n", n, call, path, act ? " ACT" : "");
    if (len > (int)sizeof(line) - 1) len = (int)sizeof(line) - 1;
    (void)!syscall(SYS_write, cfg.log_fd, line, (size_t)len);
}

static int decide(const char *call, const char *path) {
    if (!cfg.on) return 0;
    if (!call_selected(call) || fnmatch(cfg.pattern, path, 0) != 0) {
        if (cfg.log_fd >= 0 && cfg.log_all[0] && fnmatch(cfg.log_all, path, 0) == 0) log_call("-", call, path, 0);
        return 0;
    }
    long n = atomic_fetch_add(&seq, 1) + 1;
    int act = cfg.nth > 0 && n >= cfg.nth && (cfg.count == 0 || n < cfg.nth + cfg.count);
    if (cfg.log_fd >= 0) {
        char num[32];
        snprintf(num, sizeof(num), "%ld", n);
        log_call(num, call, path, act);
    }
    if (act && cfg.action == ACT_KILL) syscall(SYS_kill, getpid(), SIGKILL);
    return act;
}

static int decide_fd(const char *call, int fd) {
    if (!cfg.on) return 0;
    char p[PATH_MAX];
    fd_path(fd, p, sizeof(p));
    return decide(call, p);
}

static int decide_at(const char *call, int dirfd, const char *path) {
    if (!cfg.on) return 0;
    char p[PATH_MAX];
    at_path(dirfd, path, p, sizeof(p));
    return decide(call, p);
}

/* After the real call: kill-after kills, fail sets the errno. */
#define FINISH(act, result_expr)                                                                       \
    do {                                                                                               \
        if (act && cfg.action == ACT_FAIL) {                                                           \
            errno = cfg.err;                                                                           \
            return -1;                                                                                 \
        }                                                                                              \
        __typeof__(result_expr) r_ = result_expr;                                                      \
        if (act) syscall(SYS_kill, getpid(), SIGKILL);                                                 \
        return r_;                                                                                     \
    } while (0)

static int writes(int flags) { return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0; }

static mode_t mode_arg(int flags, va_list ap) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? (mode_t)va_arg(ap, int) : 0;
}

int open(const char *path, int flags, ...) {
    REAL(int, open, const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int act = writes(flags) && decide_at("open", AT_FDCWD, path);
    FINISH(act, real_open(path, flags, mode));
}
int open64(const char *path, int flags, ...) {
    REAL(int, open64, const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int act = writes(flags) && decide_at("open", AT_FDCWD, path);
    FINISH(act, real_open64(path, flags, mode));
}
int openat(int dirfd, const char *path, int flags, ...) {
    REAL(int, openat, int, const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int act = writes(flags) && decide_at("openat", dirfd, path);
    FINISH(act, real_openat(dirfd, path, flags, mode));
}
int openat64(int dirfd, const char *path, int flags, ...) {
    REAL(int, openat64, int, const char *, int, ...);
    va_list ap;
    va_start(ap, flags);
    mode_t mode = mode_arg(flags, ap);
    va_end(ap);
    int act = writes(flags) && decide_at("openat", dirfd, path);
    FINISH(act, real_openat64(dirfd, path, flags, mode));
}
int creat(const char *path, mode_t mode) {
    REAL(int, creat, const char *, mode_t);
    int act = decide_at("creat", AT_FDCWD, path);
    FINISH(act, real_creat(path, mode));
}

ssize_t write(int fd, const void *buf, size_t n) {
    REAL(ssize_t, write, int, const void *, size_t);
    int act = decide_fd("write", fd);
    FINISH(act, real_write(fd, buf, n));
}
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off) {
    REAL(ssize_t, pwrite, int, const void *, size_t, off_t);
    int act = decide_fd("pwrite", fd);
    FINISH(act, real_pwrite(fd, buf, n, off));
}
ssize_t pwrite64(int fd, const void *buf, size_t n, off_t off) {
    REAL(ssize_t, pwrite64, int, const void *, size_t, off_t);
    int act = decide_fd("pwrite", fd);
    FINISH(act, real_pwrite64(fd, buf, n, off));
}
ssize_t writev(int fd, const struct iovec *iov, int cnt) {
    REAL(ssize_t, writev, int, const struct iovec *, int);
    int act = decide_fd("writev", fd);
    FINISH(act, real_writev(fd, iov, cnt));
}
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off) {
    REAL(ssize_t, pwritev, int, const struct iovec *, int, off_t);
    int act = decide_fd("pwritev", fd);
    FINISH(act, real_pwritev(fd, iov, cnt, off));
}
int fsync(int fd) {
    REAL(int, fsync, int);
    int act = decide_fd("fsync", fd);
    FINISH(act, real_fsync(fd));
}
int fdatasync(int fd) {
    REAL(int, fdatasync, int);
    int act = decide_fd("fdatasync", fd);
    FINISH(act, real_fdatasync(fd));
}
int ftruncate(int fd, off_t len) {
    REAL(int, ftruncate, int, off_t);
    int act = decide_fd("ftruncate", fd);
    FINISH(act, real_ftruncate(fd, len));
}
int fallocate(int fd, int mode, off_t off, off_t len) {
    REAL(int, fallocate, int, int, off_t, off_t);
    int act = decide_fd("fallocate", fd);
    FINISH(act, real_fallocate(fd, mode, off, len));
}
/* posix_fallocate returns the error number instead of setting errno. */
int posix_fallocate(int fd, off_t off, off_t len) {
    REAL(int, posix_fallocate, int, off_t, off_t);
    int act = decide_fd("posix_fallocate", fd);
    if (act && cfg.action == ACT_FAIL) return cfg.err;
    int r = real_posix_fallocate(fd, off, len);
    if (act) syscall(SYS_kill, getpid(), SIGKILL);
    return r;
}
int fchmod(int fd, mode_t mode) {
    REAL(int, fchmod, int, mode_t);
    int act = decide_fd("fchmod", fd);
    FINISH(act, real_fchmod(fd, mode));
}
/* Linux releases the descriptor even when close() fails: so does this. */
int close(int fd) {
    REAL(int, close, int);
    int act = decide_fd("close", fd);
    int r = real_close(fd);
    if (act && cfg.action == ACT_FAIL) {
        errno = cfg.err;
        return -1;
    }
    if (act) syscall(SYS_kill, getpid(), SIGKILL);
    return r;
}

int rename(const char *from, const char *to) {
    REAL(int, rename, const char *, const char *);
    int act = decide_at("rename", AT_FDCWD, from);
    FINISH(act, real_rename(from, to));
}
int renameat(int fd1, const char *from, int fd2, const char *to) {
    REAL(int, renameat, int, const char *, int, const char *);
    int act = decide_at("renameat", fd1, from);
    FINISH(act, real_renameat(fd1, from, fd2, to));
}
int renameat2(int fd1, const char *from, int fd2, const char *to, unsigned flags) {
    REAL(int, renameat2, int, const char *, int, const char *, unsigned);
    int act = decide_at("renameat2", fd1, from);
    FINISH(act, real_renameat2(fd1, from, fd2, to, flags));
}
int link(const char *from, const char *to) {
    REAL(int, link, const char *, const char *);
    int act = decide_at("link", AT_FDCWD, to);
    FINISH(act, real_link(from, to));
}
int linkat(int fd1, const char *from, int fd2, const char *to, int flags) {
    REAL(int, linkat, int, const char *, int, const char *, int);
    int act = decide_at("linkat", fd2, to);
    FINISH(act, real_linkat(fd1, from, fd2, to, flags));
}
int mkdir(const char *path, mode_t mode) {
    REAL(int, mkdir, const char *, mode_t);
    int act = decide_at("mkdir", AT_FDCWD, path);
    FINISH(act, real_mkdir(path, mode));
}
int mkdirat(int dirfd, const char *path, mode_t mode) {
    REAL(int, mkdirat, int, const char *, mode_t);
    int act = decide_at("mkdirat", dirfd, path);
    FINISH(act, real_mkdirat(dirfd, path, mode));
}
int unlink(const char *path) {
    REAL(int, unlink, const char *);
    int act = decide_at("unlink", AT_FDCWD, path);
    FINISH(act, real_unlink(path));
}
int unlinkat(int dirfd, const char *path, int flags) {
    REAL(int, unlinkat, int, const char *, int);
    int act = decide_at("unlinkat", dirfd, path);
    FINISH(act, real_unlinkat(dirfd, path, flags));
}
int rmdir(const char *path) {
    REAL(int, rmdir, const char *);
    int act = decide_at("rmdir", AT_FDCWD, path);
    FINISH(act, real_rmdir(path));
}

int mkstemp(char *tmpl) {
    REAL(int, mkstemp, char *);
    int act = decide_at("mkstemp", AT_FDCWD, tmpl);
    FINISH(act, real_mkstemp(tmpl));
}
int mkostemp(char *tmpl, int flags) {
    REAL(int, mkostemp, char *, int);
    int act = decide_at("mkostemp", AT_FDCWD, tmpl);
    FINISH(act, real_mkostemp(tmpl, flags));
}
char *mkdtemp(char *tmpl) {
    REAL(char *, mkdtemp, char *);
    int act = decide_at("mkdtemp", AT_FDCWD, tmpl);
    if (act && cfg.action == ACT_FAIL) {
        errno = cfg.err;
        return NULL;
    }
    char *r = real_mkdtemp(tmpl);
    if (act) syscall(SYS_kill, getpid(), SIGKILL);
    return r;
}
