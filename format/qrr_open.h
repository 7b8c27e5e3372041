/* qrr_open.h — opening an input file that must be a regular file (a .qrr, a safetensors
 * shard, a JSON file of a model directory), private to the library and its programs. */
#ifndef QRR_OPEN_H
#define QRR_OPEN_H

#include <sys/stat.h>
#include "qrr_diag.h"

/* Open path read-only and close-on-exec. Returns the descriptor, with st filled, or a
 * negative status (QRR_ERR_IO) with the reason in d: missing, unreadable, or not a regular
 * file. A FIFO or a device is refused without waiting on it. */
int qrr_open_regular(const char *path, struct stat *st, qrr_diag *d);

#endif
