/* fuzz_util.h — what several fuzz targets share: where the reference data is, an in-memory
 * file with a path (for readers that only take paths), and a hard stop when an invariant
 * the library promises is broken. Header-only: each fuzz_<target>.c is its own binary. */
#ifndef QRR_FUZZ_UTIL_H
#define QRR_FUZZ_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

/* An invariant broke: report and stop so libFuzzer saves the input. */
#define FUZZ_CHECK(cond, ...)                                                   \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "fuzz invariant failed at %s:%d: %s\n", __FILE__,   \
                    __LINE__, #cond);                                           \
            fprintf(stderr, __VA_ARGS__);                                       \
            fputc('\n', stderr);                                                \
            abort();                                                            \
        }                                                                       \
    } while (0)

static inline const char *fuzz_reference(void)
{
    const char *r = getenv("QRR_REFERENCE");
    return r && *r ? r : "../shared/reference";
}

/* A memory-backed file whose path ("/proc/self/fd/N") readers can open. */
typedef struct fuzz_memfile {
    int fd;
    char path[64];
} fuzz_memfile;

static inline int fuzz_memfile_open(fuzz_memfile *f, const char *name)
{
    f->fd = memfd_create(name, MFD_CLOEXEC);
    if (f->fd < 0) return -1;
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
    return 0;
}

/* Replace the file's contents with bytes[0, len). */
static inline int fuzz_memfile_set(fuzz_memfile *f, const uint8_t *bytes, size_t len)
{
    if (ftruncate(f->fd, 0) != 0) return -1;
    size_t done = 0;
    while (done < len) {
        ssize_t n = pwrite(f->fd, bytes + done, len - done, (off_t)done);
        if (n <= 0) return -1;
        done += (size_t)n;
    }
    return 0;
}

#endif
