/* Fault-injection shim for taskledger's integration tests, loaded with LD_PRELOAD.
 *
 * Wraps the libc calls the durability barrier and the free-space check go
 * through. Behaviour is switched at run time by files in $TL_SHIM_DIR, so a test
 * can flip a fault on and off while the server runs:
 *   fail-sync   fsync/fdatasync of a sled data file (".../gen-N/db") fail with EIO
 *   hold-sync   the same calls wait until this file is removed (then proceed)
 *   hold-ckpt   fsync of a checkpoint being written waits until this file is removed
 *   full        statvfs/fstatvfs report no free blocks
 * Every fsync/fdatasync is logged as "<call> <path>" to $TL_SHIM_DIR/syncs.log.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

static int flag(const char *name) {
    const char *dir = getenv("TL_SHIM_DIR");
    char p[4096];
    if (!dir) return 0;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return access(p, F_OK) == 0;
}

static void path_of(int fd, char *out, size_t n) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t len = readlink(link, out, n - 1);
    out[len < 0 ? 0 : len] = 0;
}

static int is_data_file(const char *p) {
    size_t n = strlen(p);
    return strstr(p, "/gen-") != NULL && n > 3 && strcmp(p + n - 3, "/db") == 0;
}

static void note(const char *call, const char *p) {
    const char *dir = getenv("TL_SHIM_DIR");
    char log[4096], line[4200];
    if (!dir) return;
    snprintf(log, sizeof log, "%s/syncs.log", dir);
    int fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return;
    int len = snprintf(line, sizeof line, "%s %s\n", call, p);
    if (write(fd, line, (size_t)len) < 0) { /* best effort */ }
    close(fd);
}

static void wait_while(const char *name) {
    struct timespec ts = {0, 5 * 1000 * 1000};
    while (flag(name)) nanosleep(&ts, NULL);
}

static int around(const char *call, int fd, int (*real)(int)) {
    char p[4096];
    path_of(fd, p, sizeof p);
    note(call, p);
    if (is_data_file(p)) {
        wait_while("hold-sync");
        if (flag("fail-sync")) {
            errno = EIO;
            return -1;
        }
    }
    if (strstr(p, ".checkpoint.tmp") != NULL) wait_while("hold-ckpt");
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    return around("fdatasync", fd, real);
}

int fsync(int fd) {
    static int (*real)(int);
    if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    return around("fsync", fd, real);
}

static void empty(struct statvfs *s) {
    s->f_bavail = 0;
    s->f_bfree = 0;
}

int statvfs(const char *path, struct statvfs *s) {
    static int (*real)(const char *, struct statvfs *);
    if (!real) real = (int (*)(const char *, struct statvfs *))dlsym(RTLD_NEXT, "statvfs");
    int r = real(path, s);
    if (r == 0 && flag("full")) empty(s);
    return r;
}

/* On 64-bit glibc, struct statvfs64 has the same layout as struct statvfs. */
int statvfs64(const char *path, struct statvfs64 *s) {
    return statvfs(path, (struct statvfs *)s);
}

int fstatvfs(int fd, struct statvfs *s) {
    static int (*real)(int, struct statvfs *);
    if (!real) real = (int (*)(int, struct statvfs *))dlsym(RTLD_NEXT, "fstatvfs");
    int r = real(fd, s);
    if (r == 0 && flag("full")) empty(s);
    return r;
}
