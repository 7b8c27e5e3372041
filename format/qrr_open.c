/* qrr_open.c — see qrr_open.h. */
#include "qrr_open.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

int qrr_open_regular(const char *path, struct stat *st, qrr_diag *d)
{
    /* O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return qrr_fail(d, QRR_ERR_IO, "%s: %s", path, strerror(errno));
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        return qrr_fail(d, QRR_ERR_IO, "%s: not a regular file", path);
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
        int e = errno;
        close(fd);
        return qrr_fail(d, QRR_ERR_IO, "%s: %s", path, strerror(e));
    }
    return fd;
}
