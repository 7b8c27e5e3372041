/* path.h — file-name helpers the converter's readers share. */
#ifndef QRR_PATH_H
#define QRR_PATH_H

/* "dir/name" in a malloc'ed string; NULL when out of memory. */
char *qrr__path_join(const char *dir, const char *name);

#endif
