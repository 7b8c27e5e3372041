/* safetensors.c — parse and check safetensors headers, map files, resolve sharded
 * checkpoints. A header is untrusted input: every length, offset and shape is checked
 * with overflow-safe arithmetic before any tensor byte is touched. */
#include "path.h"
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qrr_open.h"

struct qrr_st_set {
    qrr_st_file **files;
    size_t nfiles;
    json_t *weight_map;  /* name -> shard file name; NULL for a single file */
    char *index_path;
};

static const char *const dtype_names[QRR_ST_DTYPE_COUNT] = {"F32", "F16", "BF16"};

const char *qrr_st_dtype_name(uint32_t dtype)
{
    return dtype < QRR_ST_DTYPE_COUNT ? dtype_names[dtype] : "?";
}

size_t qrr_st_dtype_size(uint32_t dtype)
{
    switch (dtype) {
    case QRR_ST_F32: return 4;
    case QRR_ST_F16: return 2;
    case QRR_ST_BF16: return 2;
    default: return 0;
    }
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const qrr_st_tensor *)a)->name, ((const qrr_st_tensor *)b)->name);
}

static int cmp_begin(const void *a, const void *b)
{
    const qrr_st_tensor *x = *(const qrr_st_tensor *const *)a;
    const qrr_st_tensor *y = *(const qrr_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

/* A JSON integer that fits uint64 (jansson integers are signed 64-bit). */
static int get_u64(const json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0) return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int parse_entry(const char *label, const char *name, json_t *v, uint64_t data_len,
                       qrr_st_tensor *t, qrr_diag *d)
{
    if (strlen(name) >= QRR_ST_NAME_MAX)
        return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: tensor name longer than %u bytes: '%.60s...'",
                        label, QRR_ST_NAME_MAX - 1, name);
    if (name[0] == '\0')
        return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: a tensor has an empty name", label);
    memcpy(t->name, name, strlen(name) + 1);
    if (!json_is_object(v))
        return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: tensor '%s': entry is not a JSON object",
                        label, name);

    json_t *jd = json_object_get(v, "dtype");
    if (!json_is_string(jd))
        return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: tensor '%s': \"dtype\" missing or not a string",
                        label, name);
    const char *ds = json_string_value(jd);
    t->dtype = QRR_ST_DTYPE_COUNT;
    for (uint32_t i = 0; i < QRR_ST_DTYPE_COUNT; i++)
        if (strcmp(ds, dtype_names[i]) == 0) t->dtype = i;
    if (t->dtype == QRR_ST_DTYPE_COUNT)
        return qrr_fail(d, QRR_ERR_SAFETENSORS,
                        "%s: tensor '%s': dtype %.16s is not supported (expected BF16, F16 or F32)",
                        label, name, ds);

    json_t *js = json_object_get(v, "shape");
    if (!json_is_array(js))
        return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: tensor '%s': \"shape\" missing or not an array",
                        label, name);
    size_t nd = json_array_size(js);
    if (nd > QRR_ST_MAX_DIMS)
        return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: tensor '%s': %zu dimensions, at most %u supported",
                        label, name, nd, QRR_ST_MAX_DIMS);
    t->ndim = (uint32_t)nd;
    uint64_t count = 1;
    for (size_t i = 0; i < nd; i++) {
        if (get_u64(json_array_get(js, i), &t->dims[i]) != 0)
            return qrr_fail(d, QRR_ERR_SAFETENSORS,
                            "%s: tensor '%s': shape[%zu] is not a non-negative integer", label, name, i);
        if (__builtin_mul_overflow(count, t->dims[i], &count))
            return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: tensor '%s': element count overflows",
                            label, name);
    }
    t->count = count;

    json_t *jo = json_object_get(v, "data_offsets");
    if (!json_is_array(jo) || json_array_size(jo) != 2 ||
        get_u64(json_array_get(jo, 0), &t->begin) != 0 || get_u64(json_array_get(jo, 1), &t->end) != 0)
        return qrr_fail(d, QRR_ERR_SAFETENSORS,
                        "%s: tensor '%s': \"data_offsets\" must be [begin, end] with non-negative integers",
                        label, name);
    if (t->begin > t->end)
        return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: tensor '%s': data_offsets begin %llu > end %llu",
                        label, name, (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > data_len)
        return qrr_fail(d, QRR_ERR_SAFETENSORS,
                        "%s: tensor '%s': data_offsets end %llu is past the data area (%llu bytes)",
                        label, name, (unsigned long long)t->end, (unsigned long long)data_len);
    uint64_t bytes;
    if (__builtin_mul_overflow(count, (uint64_t)qrr_st_dtype_size(t->dtype), &bytes) ||
        bytes != t->end - t->begin)
        return qrr_fail(d, QRR_ERR_SAFETENSORS,
                        "%s: tensor '%s': %llu bytes in data_offsets, expected %llu for %s of %llu elements",
                        label, name, (unsigned long long)(t->end - t->begin),
                        (unsigned long long)(count * qrr_st_dtype_size(t->dtype)), ds,
                        (unsigned long long)count);
    return QRR_OK;
}

int qrr_st_parse(const uint8_t *bytes, size_t len, const char *label,
                 qrr_st_tensor **tensors, size_t *count, uint64_t *data_start, qrr_diag *d)
{
    *tensors = NULL;
    *count = 0;
    if (len < 8)
        return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: %zu bytes, too short for the 8-byte header length",
                        label, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | bytes[i];
    if (hlen > len - 8)
        return qrr_fail(d, QRR_ERR_SAFETENSORS,
                        "%s: header length %llu runs past the end of the file (%zu bytes)", label,
                        (unsigned long long)hlen, len);
    if (hlen > QRR_ST_MAX_HEADER)
        return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: header length %llu exceeds the %u-byte cap", label,
                        (unsigned long long)hlen, QRR_ST_MAX_HEADER);
    if (hlen < 2 || bytes[8] != '{')
        return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: header does not start with a JSON object", label);

    json_error_t err;
    json_t *root = json_loadb((const char *)bytes + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        if (json_error_code(&err) == json_error_duplicate_key)
            return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: header names a tensor twice (%s)", label,
                            err.text);
        return qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: header is not valid JSON: %s at byte %d", label,
                        err.text, err.position);
    }
    int st = QRR_OK;
    qrr_st_tensor *ts = NULL;
    const qrr_st_tensor **by_begin = NULL;
    size_t n = 0;
    if (!json_is_object(root)) {
        st = qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: header is not a JSON object", label);
        goto out;
    }
    size_t cap = json_object_size(root);
    if (cap > QRR_ST_MAX_TENSORS + 1) {
        st = qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: %zu header entries, at most %u tensors supported",
                      label, cap, QRR_ST_MAX_TENSORS);
        goto out;
    }
    ts = calloc(cap ? cap : 1, sizeof *ts);
    by_begin = calloc(cap ? cap : 1, sizeof *by_begin);
    if (!ts || !by_begin) {
        st = qrr_fail(d, QRR_ERR_NOMEM, "%s: out of memory for %zu tensor entries", label, cap);
        goto out;
    }
    uint64_t data_len = (uint64_t)len - 8 - hlen;
    const char *key;
    json_t *val;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_is_object(val)) {
                st = qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: \"__metadata__\" is not an object", label);
                goto out;
            }
            continue;
        }
        st = parse_entry(label, key, val, data_len, &ts[n], d);
        if (st != QRR_OK) goto out;
        by_begin[n] = &ts[n];
        n++;
    }
    /* No two tensors may share a byte: sorted by begin, each starts at or after the end of
     * the one before (empty tensors occupy no byte). */
    qsort(by_begin, n, sizeof *by_begin, cmp_begin);
    const qrr_st_tensor *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        const qrr_st_tensor *t = by_begin[i];
        if (t->begin == t->end) continue;
        if (prev && t->begin < prev->end) {
            st = qrr_fail(d, QRR_ERR_SAFETENSORS,
                          "%s: tensors '%s' [%llu, %llu) and '%s' [%llu, %llu) overlap", label,
                          prev->name, (unsigned long long)prev->begin, (unsigned long long)prev->end,
                          t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
            goto out;
        }
        prev = t;
    }
    qsort(ts, n, sizeof *ts, cmp_name);
    *tensors = ts;
    *count = n;
    *data_start = 8 + hlen;
    ts = NULL;
out:
    free(ts);
    free(by_begin);
    json_decref(root);
    return st;
}

int qrr_st_file_open(const char *path, qrr_st_file **out, qrr_diag *d)
{
    *out = NULL;
    struct stat sb;
    int fd = qrr_open_regular(path, &sb, d);
    if (fd < 0) return fd;
    qrr_st_file *f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    }
    f->size = (size_t)sb.st_size;
    f->path = strdup(path);
    if (f->size > 0) {
        void *m = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            close(fd);
            qrr_st_file_close(f);
            return qrr_fail(d, QRR_ERR_IO, "%s: mmap failed: %s", path, strerror(errno));
        }
        f->map = m;
    }
    close(fd);
    if (!f->path) {
        qrr_st_file_close(f);
        return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    }
    static const uint8_t empty[1];
    int st = qrr_st_parse(f->map ? f->map : empty, f->size, path, &f->tensors, &f->count,
                          &f->data_start, d);
    if (st != QRR_OK) {
        qrr_st_file_close(f);
        return st;
    }
    *out = f;
    return QRR_OK;
}

void qrr_st_file_close(qrr_st_file *f)
{
    if (!f) return;
    if (f->map) munmap((void *)f->map, f->size);
    free(f->tensors);
    free(f->path);
    free(f);
}

const qrr_st_tensor *qrr_st_file_find(const qrr_st_file *f, const char *name)
{
    if (strlen(name) >= QRR_ST_NAME_MAX) return NULL;
    qrr_st_tensor key;
    memcpy(key.name, name, strlen(name) + 1);
    return bsearch(&key, f->tensors, f->count, sizeof *f->tensors, cmp_name);
}

void qrr_st_file_release(const qrr_st_file *f, const void *p, size_t len)
{
    static long page;
    if (!page) page = sysconf(_SC_PAGESIZE);
    uintptr_t base = (uintptr_t)f->map, a = (uintptr_t)p, b = a + len;
    if (!f->map || a < base || b > base + f->size) return;
    uintptr_t lo = (a + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
    uintptr_t hi = b & ~((uintptr_t)page - 1);
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
}

static int set_add_file(qrr_st_set *s, const char *path, qrr_diag *d)
{
    qrr_st_file **nf = realloc(s->files, (s->nfiles + 1) * sizeof *nf);
    if (!nf) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    s->files = nf;
    int st = qrr_st_file_open(path, &s->files[s->nfiles], d);
    if (st != QRR_OK) return st;
    s->nfiles++;
    return QRR_OK;
}

/* A shard name must be a plain file name inside the model directory. */
static int plain_name(const char *s)
{
    return s[0] != '\0' && strchr(s, '/') == NULL && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static int open_sharded(qrr_st_set *s, const char *dir, qrr_diag *d)
{
    const char *ip = s->index_path;
    json_error_t err;
    json_t *root = json_load_file(ip, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return qrr_fail(d, QRR_ERR_JSON, "%s: not valid JSON: %s (line %d)", ip, err.text, err.line);
    int st = QRR_OK;
    json_t *wm = json_object_get(root, "weight_map");
    if (!json_is_object(wm)) {
        st = qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: \"weight_map\" missing or not an object", ip);
        goto out;
    }
    /* Open each distinct shard once, in first-mention order. */
    const char *key;
    json_t *val;
    json_object_foreach(wm, key, val) {
        if (!json_is_string(val) || !plain_name(json_string_value(val))) {
            st = qrr_fail(d, QRR_ERR_SAFETENSORS,
                          "%s: weight_map[\"%s\"] must be a shard file name in the model directory",
                          ip, key);
            goto out;
        }
        const char *fname = json_string_value(val);
        size_t i = 0;
        for (; i < s->nfiles; i++) {
            const char *p = strrchr(s->files[i]->path, '/');
            if (strcmp(p ? p + 1 : s->files[i]->path, fname) == 0) break;
        }
        if (i < s->nfiles) continue;
        if (s->nfiles >= QRR_ST_MAX_SHARDS) {
            st = qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: more than %u shards", ip, QRR_ST_MAX_SHARDS);
            goto out;
        }
        char *path = qrr__path_join(dir, fname);
        if (!path) {
            st = qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (access(path, F_OK) != 0) {
            st = qrr_fail(d, QRR_ERR_SAFETENSORS,
                          "%s: weight_map names shard '%s' (for '%s'), but %s does not exist", ip,
                          fname, key, path);
            free(path);
            goto out;
        }
        st = set_add_file(s, path, d);
        free(path);
        if (st != QRR_OK) goto out;
    }
    /* Every mapped tensor must be in the shard the map names. */
    s->weight_map = json_incref(wm);
    json_object_foreach(wm, key, val) {
        const qrr_st_file *f;
        const qrr_st_tensor *t;
        if (qrr_st_set_find(s, key, &f, &t) != 0) {
            st = qrr_fail(d, QRR_ERR_SAFETENSORS, "%s: weight_map puts '%s' in %s, which has no such tensor",
                          ip, key, json_string_value(val));
            goto out;
        }
    }
out:
    json_decref(root);
    return st;
}

int qrr_st_set_open(const char *dir, qrr_st_set **out, qrr_diag *d)
{
    *out = NULL;
    qrr_st_set *s = calloc(1, sizeof *s);
    if (!s) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    int st;
    char *single = qrr__path_join(dir, "model.safetensors");
    char *index = qrr__path_join(dir, "model.safetensors.index.json");
    if (!single || !index) {
        st = qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    } else if (access(single, F_OK) == 0) {
        st = set_add_file(s, single, d);
    } else if (access(index, F_OK) == 0) {
        s->index_path = index;
        index = NULL;
        st = open_sharded(s, dir, d);
    } else {
        st = qrr_fail(d, QRR_ERR_SAFETENSORS,
                      "%s: no model.safetensors and no model.safetensors.index.json "
                      "(only safetensors checkpoints are read)", dir);
    }
    free(single);
    free(index);
    if (st != QRR_OK) {
        qrr_st_set_close(s);
        return st;
    }
    *out = s;
    return QRR_OK;
}

void qrr_st_set_close(qrr_st_set *s)
{
    if (!s) return;
    for (size_t i = 0; i < s->nfiles; i++) qrr_st_file_close(s->files[i]);
    free(s->files);
    json_decref(s->weight_map);
    free(s->index_path);
    free(s);
}

int qrr_st_set_find(const qrr_st_set *s, const char *name, const qrr_st_file **file,
                    const qrr_st_tensor **tensor)
{
    if (!s->weight_map) {
        if (s->nfiles != 1) return -1;
        const qrr_st_tensor *t = qrr_st_file_find(s->files[0], name);
        if (!t) return -1;
        *file = s->files[0];
        *tensor = t;
        return 0;
    }
    const char *fname = json_string_value(json_object_get(s->weight_map, name));
    if (!fname) return -1;
    for (size_t i = 0; i < s->nfiles; i++) {
        const char *p = strrchr(s->files[i]->path, '/');
        if (strcmp(p ? p + 1 : s->files[i]->path, fname) != 0) continue;
        const qrr_st_tensor *t = qrr_st_file_find(s->files[i], name);
        if (!t) return -1;
        *file = s->files[i];
        *tensor = t;
        return 0;
    }
    return -1;
}

size_t qrr_st_set_file_count(const qrr_st_set *s) { return s->nfiles; }
const qrr_st_file *qrr_st_set_file(const qrr_st_set *s, size_t i) { return s->files[i]; }
const char *qrr_st_set_index_path(const qrr_st_set *s) { return s->index_path; }
