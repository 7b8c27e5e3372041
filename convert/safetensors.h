/* safetensors.h — read Hugging Face safetensors checkpoints in place: one file or a
 * sharded set behind model.safetensors.index.json. Every header field is checked before
 * use; tensor bytes are read through the mapping. Holds no conversion and no model rules. */
#ifndef QRR_SAFETENSORS_H
#define QRR_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "qrr_diag.h"

#define QRR_ST_MAX_HEADER (100u << 20) /* JSON header bytes */
#define QRR_ST_MAX_TENSORS 65536u      /* tensors in one file */
#define QRR_ST_MAX_DIMS 8u
#define QRR_ST_MAX_SHARDS 4096u
#define QRR_ST_NAME_MAX 256u           /* tensor name bytes, NUL included */

typedef enum qrr_st_dtype {
    QRR_ST_F32 = 0,
    QRR_ST_F16 = 1,
    QRR_ST_BF16 = 2,
    QRR_ST_DTYPE_COUNT
} qrr_st_dtype;

typedef struct qrr_st_tensor {
    char name[QRR_ST_NAME_MAX];
    uint32_t dtype;                /* qrr_st_dtype */
    uint32_t ndim;
    uint64_t dims[QRR_ST_MAX_DIMS];
    uint64_t count;                /* elements */
    uint64_t begin, end;           /* relative to the data area, begin <= end */
} qrr_st_tensor;

/* One safetensors file, mapped read-only. */
typedef struct qrr_st_file {
    char *path;
    const uint8_t *map;    /* whole file */
    size_t size;
    uint64_t data_start;   /* 8 + header length */
    qrr_st_tensor *tensors; /* sorted by name */
    size_t count;
} qrr_st_file;

/* A checkpoint: one or more files and the map from tensor name to file. */
typedef struct qrr_st_set qrr_st_set;

const char *qrr_st_dtype_name(uint32_t dtype);
size_t qrr_st_dtype_size(uint32_t dtype);

/* Parse and check a safetensors image held in memory. label names the file in messages.
 * On success *tensors (malloc'ed, sorted by name) and *count; *data_start is 8 + header
 * length. Refuses: header length past the end or over the cap, header not a JSON object,
 * duplicate names, dtypes other than F32/F16/BF16, bad shapes, offsets outside the data
 * area, begin > end, size != product(shape) * dtype size, overlapping tensors. */
int qrr_st_parse(const uint8_t *bytes, size_t len, const char *label,
                 qrr_st_tensor **tensors, size_t *count, uint64_t *data_start, qrr_diag *d);

int qrr_st_file_open(const char *path, qrr_st_file **out, qrr_diag *d);
void qrr_st_file_close(qrr_st_file *f);
/* NULL when the file holds no tensor of that name. */
const qrr_st_tensor *qrr_st_file_find(const qrr_st_file *f, const char *name);
/* The tensor's bytes inside the mapping. */
static inline const uint8_t *qrr_st_data(const qrr_st_file *f, const qrr_st_tensor *t)
{
    return f->map + f->data_start + t->begin;
}
/* Drop the pages wholly inside [p, p+len) of f's mapping from memory (they are read back
 * from the file if touched again): keeps peak memory at a few chunks while streaming. */
void qrr_st_file_release(const qrr_st_file *f, const void *p, size_t len);

/* Open the checkpoint of a model directory: model.safetensors if present, else
 * model.safetensors.index.json and every shard it names (each must exist and hold the
 * tensors the map assigns to it). */
int qrr_st_set_open(const char *dir, qrr_st_set **out, qrr_diag *d);
void qrr_st_set_close(qrr_st_set *s);
/* Look a tensor up; returns 0 and sets *file and *tensor, or -1 when absent. */
int qrr_st_set_find(const qrr_st_set *s, const char *name, const qrr_st_file **file,
                    const qrr_st_tensor **tensor);
size_t qrr_st_set_file_count(const qrr_st_set *s);
const qrr_st_file *qrr_st_set_file(const qrr_st_set *s, size_t i);
/* The index file's path when the set is sharded, else NULL. */
const char *qrr_st_set_index_path(const qrr_st_set *s);

#endif
