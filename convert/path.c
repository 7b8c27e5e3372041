/* path.c — file-name helpers the converter's readers share (see path.h). */
#include "path.h"

#include <stdlib.h>
#include <string.h>

char *qrr__path_join(const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}
