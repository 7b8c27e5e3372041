/* qrr_file.c — the .qrr loader: checks an image held in memory against every rule of
 * docs/format.md (header, sections, metadata, tensor table, schema, checksums, scales) and
 * builds trusted views into it. It trusts no field; it maps no file and knows no kernel. */
#include "qrr_file.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include "qrr.h"
#include "qrr_checked.h"
#include "qrr_impl.h"
#include "qrr_names.h"
#include "qrr_schema.h"

struct qrr_file {
    const uint8_t *bytes;
    size_t len;
    qrr_header_disk h;
    uint8_t *meta_raw;       /* decompressed META; meta.strings point into it */
    qrr_meta meta;
    uint8_t *tok;            /* decompressed TOKENIZER */
    size_t tok_len;
    qrr_tensor_view *views;  /* [n] in table (= offset) order */
    uint8_t *roles;          /* [n] qrr_tensor_role of each view */
    size_t n;
    uint32_t *slots;         /* name index, mask + 1 slots */
    size_t mask;
};

static const char *const section_names[QRR_SECTION_COUNT] = {"META", "TOKENIZER", "TENSORS",
                                                             "DATA"};

/* ---- header and sections ---------------------------------------------------------- */

static int check_header(qrr_file *f, qrr_diag *d)
{
    if (f->len < QRR_HEADER_SIZE)
        return qrr_fail(d, QRR_ERR_TRUNCATED,
                        "file is %zu byte%s, shorter than the %u-byte header", f->len,
                        f->len == 1 ? "" : "s", QRR_HEADER_SIZE);
    qrr_header_disk *h = &f->h;
    memcpy(h, f->bytes, sizeof *h);
    if (memcmp(h->magic, QRR_MAGIC, sizeof h->magic) != 0)
        return qrr_fail(d, QRR_ERR_BAD_MAGIC, "not a .qrr file: bytes 0..7 are not \"%s\"",
                        QRR_MAGIC);
    if (h->version != QRR_FORMAT_VERSION)
        return qrr_fail(d, QRR_ERR_VERSION, "format version %u; this build reads version %u",
                        h->version, QRR_FORMAT_VERSION);
    if (h->quant_version != QRR_QUANT_VERSION)
        return qrr_fail(d, QRR_ERR_VERSION,
                        "quantization layout version %u; this build reads version %u",
                        h->quant_version, QRR_QUANT_VERSION);
    uint64_t sum = XXH3_64bits(f->bytes, offsetof(qrr_header_disk, header_checksum));
    if (sum != h->header_checksum)
        return qrr_fail(d, QRR_ERR_CHECKSUM, "header checksum %016llx, bytes [0, 248) hash to %016llx",
                        (unsigned long long)h->header_checksum, (unsigned long long)sum);
    if (h->file_size > f->len)
        return qrr_fail(d, QRR_ERR_TRUNCATED, "file is %zu bytes, its header says %llu", f->len,
                        (unsigned long long)h->file_size);
    if (h->file_size < f->len)
        return qrr_fail(d, QRR_ERR_TRAILING, "%llu bytes after the declared end at %llu",
                        (unsigned long long)(f->len - h->file_size),
                        (unsigned long long)h->file_size);
    if (h->flags)
        return qrr_fail(d, QRR_ERR_PADDING, "header flags are %#x, expected 0", h->flags);
    if (!qrr__all_zero(h->reserved, sizeof h->reserved))
        return qrr_fail(d, QRR_ERR_PADDING, "header reserved bytes [192, 248) are not zero");
    if (h->section_count != QRR_SECTION_COUNT)
        return qrr_fail(d, QRR_ERR_BAD_SECTION, "header declares %u sections, expected %u",
                        h->section_count, QRR_SECTION_COUNT);
    return QRR_OK;
}

static int check_sections(qrr_file *f, qrr_diag *d)
{
    const qrr_header_disk *h = &f->h;
    uint64_t prev_end = QRR_HEADER_SIZE;
    for (uint32_t k = 0; k < QRR_SECTION_COUNT; k++) {
        const qrr_section_disk *s = &h->sections[k];
        const char *nm = section_names[k];
        uint32_t want_comp = k <= QRR_SECTION_TOKENIZER ? QRR_COMPRESSION_ZLIB
                                                        : QRR_COMPRESSION_NONE;
        uint64_t align = k == QRR_SECTION_DATA ? QRR_DATA_ALIGN : QRR_ALIGN;
        uint64_t end, want_off = 0;
        if (s->kind != k)
            return qrr_fail(d, QRR_ERR_BAD_SECTION, "section %u has kind %u, expected %u (%s)",
                            k, s->kind, k, nm);
        if (s->compression != want_comp)
            return qrr_fail(d, QRR_ERR_BAD_SECTION, "section %s: compression %u, expected %u",
                            nm, s->compression, want_comp);
        if (s->offset % align)
            return qrr_fail(d, QRR_ERR_ALIGNMENT, "section %s at %llu, not a multiple of %llu",
                            nm, (unsigned long long)s->offset, (unsigned long long)align);
        if (qrr__add_u64(s->offset, s->size, &end) || end > h->file_size)
            return qrr_fail(d, QRR_ERR_BAD_SECTION,
                            "section %s [%llu, +%llu) runs past the end of the file (%llu)", nm,
                            (unsigned long long)s->offset, (unsigned long long)s->size,
                            (unsigned long long)h->file_size);
        if (s->offset < prev_end)
            return qrr_fail(d, QRR_ERR_BAD_SECTION,
                            "section %s at %llu overlaps what precedes it (ends at %llu)", nm,
                            (unsigned long long)s->offset, (unsigned long long)prev_end);
        if (qrr__align_up_u64(prev_end, align, &want_off) || s->offset != want_off)
            return qrr_fail(d, QRR_ERR_BAD_SECTION,
                            "section %s at %llu, expected %llu (right after the previous one)",
                            nm, (unsigned long long)s->offset, (unsigned long long)want_off);
        if (!qrr__all_zero(f->bytes + prev_end, (size_t)(s->offset - prev_end)))
            return qrr_fail(d, QRR_ERR_PADDING, "padding before section %s [%llu, %llu) not zero",
                            nm, (unsigned long long)prev_end, (unsigned long long)s->offset);
        if (want_comp == QRR_COMPRESSION_NONE) {
            if (s->raw_size != s->size)
                return qrr_fail(d, QRR_ERR_BAD_SECTION, "section %s: raw_size %llu != size %llu",
                                nm, (unsigned long long)s->raw_size, (unsigned long long)s->size);
        } else {
            uint64_t lo = k == QRR_SECTION_META ? sizeof(qrr_meta_disk) : 1;
            uint64_t hi = k == QRR_SECTION_META ? QRR_MAX_META_BYTES : QRR_MAX_TOKENIZER_BYTES;
            /* deflate expands at most 1032:1, so a larger raw_size is a lie */
            if (s->size == 0 || s->raw_size < lo || s->raw_size > hi ||
                s->raw_size / 1032 > s->size)
                return qrr_fail(d, QRR_ERR_BAD_SECTION,
                                "section %s: size %llu, raw_size %llu (expected size >= 1, "
                                "raw_size %llu..%llu and <= 1032 * size)", nm, (unsigned long long)s->size,
                                (unsigned long long)s->raw_size, (unsigned long long)lo,
                                (unsigned long long)hi);
        }
        if (k == QRR_SECTION_TENSORS &&
            (s->size % sizeof(qrr_tensor_disk) ||
             s->size / sizeof(qrr_tensor_disk) > QRR_MAX_TENSORS))
            return qrr_fail(d, QRR_ERR_BAD_SECTION,
                            "section TENSORS: %llu bytes is not a table of at most %u "
                            "%zu-byte entries", (unsigned long long)s->size, QRR_MAX_TENSORS,
                            sizeof(qrr_tensor_disk));
        if (k == QRR_SECTION_DATA) {
            if (end != h->file_size)
                return qrr_fail(d, QRR_ERR_BAD_SECTION,
                                "section DATA ends at %llu, the file at %llu",
                                (unsigned long long)end, (unsigned long long)h->file_size);
            if (s->checksum)
                return qrr_fail(d, QRR_ERR_BAD_SECTION, "section DATA: checksum field not 0");
        }
        prev_end = end;
    }
    for (uint32_t k = 0; k < QRR_SECTION_DATA; k++) {
        const qrr_section_disk *s = &h->sections[k];
        uint64_t sum = XXH3_64bits(f->bytes + s->offset, (size_t)s->size);
        if (sum != s->checksum)
            return qrr_fail(d, QRR_ERR_CHECKSUM, "section %s [%llu, +%llu): checksum mismatch",
                            section_names[k], (unsigned long long)s->offset,
                            (unsigned long long)s->size);
    }
    return QRR_OK;
}

/* Inflate a section into a malloc'ed buffer of exactly raw_size bytes (already capped). */
static int inflate_section(const qrr_file *f, uint32_t k, uint8_t **out, qrr_diag *d)
{
    const qrr_section_disk *s = &f->h.sections[k];
    uint8_t *buf = malloc((size_t)s->raw_size);
    if (!buf) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory inflating section %s",
                              section_names[k]);
    uLongf dst = (uLongf)s->raw_size;
    uLong src = (uLong)s->size;
    int zr = uncompress2(buf, &dst, f->bytes + s->offset, &src);
    if (zr != Z_OK || dst != s->raw_size || src != s->size) {
        free(buf);
        if (zr != Z_OK)
            return qrr_fail(d, QRR_ERR_DECOMPRESS, "section %s: zlib error %d (%s)",
                            section_names[k], zr,
                            zr == Z_BUF_ERROR ? "stream longer than raw_size or cut short"
                                              : "invalid stream");
        return qrr_fail(d, QRR_ERR_DECOMPRESS,
                        "section %s: inflated %llu of %llu bytes into %llu, raw_size %llu",
                        section_names[k], (unsigned long long)src, (unsigned long long)s->size,
                        (unsigned long long)dst, (unsigned long long)s->raw_size);
    }
    *out = buf;
    return QRR_OK;
}

/* ---- tensor table ----------------------------------------------------------------- */

static const char *view_name(const void *ctx, uint32_t i)
{
    return ((const qrr_file *)ctx)->views[i].name;
}

static int check_entry(const qrr_file *f, size_t i, const qrr_tensor_disk *e,
                       const char *name_in_image, qrr_tensor_view *v, qrr_diag *d)
{
    size_t nlen = strnlen(e->name, sizeof e->name);
    if (nlen == sizeof e->name)
        return qrr_fail(d, QRR_ERR_BAD_TENSOR, "tensor %zu: name not NUL-terminated", i);
    if (nlen == 0) return qrr_fail(d, QRR_ERR_BAD_TENSOR, "tensor %zu: empty name", i);
    for (size_t c = 0; c < nlen; c++)
        if (!qrr__name_char_ok((unsigned char)e->name[c]))
            return qrr_fail(d, QRR_ERR_BAD_TENSOR,
                            "tensor %zu: name byte %zu is %#x, not visible ASCII", i, c,
                            (unsigned char)e->name[c]);
    if (!qrr__all_zero(e->name + nlen, sizeof e->name - nlen))
        return qrr_fail(d, QRR_ERR_BAD_TENSOR, "tensor %zu (%s): bytes after the name's NUL "
                        "are not zero", i, e->name);
    size_t es = qrr_dtype_size(e->dtype);
    if (!es)
        return qrr_fail(d, QRR_ERR_BAD_TENSOR, "%s: unknown dtype %u", e->name, e->dtype);
    if (e->ndim == 0 || e->ndim > QRR_MAX_DIMS)
        return qrr_fail(d, QRR_ERR_BAD_TENSOR, "%s: %u dims, expected 1..%u", e->name, e->ndim,
                        QRR_MAX_DIMS);
    uint64_t bytes = es;
    for (uint32_t k = 0; k < QRR_MAX_DIMS; k++) {
        if (k >= e->ndim) {
            if (e->dims[k])
                return qrr_fail(d, QRR_ERR_BAD_TENSOR, "%s: unused dim %u is %llu, expected 0",
                                e->name, k, (unsigned long long)e->dims[k]);
            continue;
        }
        if (e->dims[k] == 0)
            return qrr_fail(d, QRR_ERR_BAD_TENSOR, "%s: dim %u is zero", e->name, k);
        if (qrr__mul_u64(bytes, e->dims[k], &bytes))
            return qrr_fail(d, QRR_ERR_BAD_TENSOR, "%s: dims overflow a 64-bit byte size",
                            e->name);
    }
    if (bytes != e->size)
        return qrr_fail(d, QRR_ERR_BAD_TENSOR, "%s: size %llu, its dims and dtype make %llu",
                        e->name, (unsigned long long)e->size, (unsigned long long)bytes);
    if (e->offset % QRR_ALIGN)
        return qrr_fail(d, QRR_ERR_ALIGNMENT, "%s: offset %llu, not a multiple of %u", e->name,
                        (unsigned long long)e->offset, QRR_ALIGN);
    const qrr_section_disk *data = &f->h.sections[QRR_SECTION_DATA];
    uint64_t end;
    if (e->offset < data->offset || qrr__add_u64(e->offset, e->size, &end) ||
        end > f->h.file_size)
        return qrr_fail(d, QRR_ERR_TENSOR_BOUNDS,
                        "%s: [%llu, +%llu) is not inside DATA [%llu, %llu)", e->name,
                        (unsigned long long)e->offset, (unsigned long long)e->size,
                        (unsigned long long)data->offset, (unsigned long long)f->h.file_size);
    v->name = name_in_image;
    v->dtype = e->dtype;
    v->ndim = e->ndim;
    memcpy(v->dims, e->dims, sizeof v->dims);
    v->data = f->bytes + e->offset;
    v->size = e->size;
    return QRR_OK;
}

static int check_table(qrr_file *f, uint64_t *sums, qrr_diag *d)
{
    const qrr_section_disk *ts = &f->h.sections[QRR_SECTION_TENSORS];
    const qrr_section_disk *data = &f->h.sections[QRR_SECTION_DATA];
    size_t n = (size_t)(ts->size / sizeof(qrr_tensor_disk)); /* <= QRR_MAX_TENSORS */
    f->n = n;
    f->views = calloc(n ? n : 1, sizeof *f->views);
    f->roles = calloc(n ? n : 1, sizeof *f->roles);
    size_t slots = 2;
    while (slots < 2 * n) slots *= 2;
    f->slots = calloc(slots, sizeof *f->slots);
    f->mask = slots - 1;
    if (!f->views || !f->roles || !f->slots)
        return qrr_fail(d, QRR_ERR_NOMEM, "out of memory reading %zu tensor entries", n);

    uint64_t prev_end = data->offset;
    const char *prev_name = "the start of DATA";
    for (size_t i = 0; i < n; i++) {
        const uint8_t *at = f->bytes + ts->offset + i * sizeof(qrr_tensor_disk);
        qrr_tensor_disk e;
        memcpy(&e, at, sizeof e);
        qrr_tensor_view *v = &f->views[i];
        int rc = check_entry(f, i, &e, (const char *)at, v, d);
        if (rc != QRR_OK) return rc;
        uint64_t want = 0;
        if (e.offset < prev_end)
            return qrr_fail(d, QRR_ERR_OVERLAP,
                            "%s at %llu overlaps %s (ends at %llu); the table must be sorted by "
                            "offset", v->name, (unsigned long long)e.offset, prev_name,
                            (unsigned long long)prev_end);
        qrr__align_up_u64(prev_end, QRR_ALIGN, &want); /* prev_end <= file_size: no overflow */
        if (e.offset != want)
            return qrr_fail(d, QRR_ERR_HOLE, "%s at %llu, expected %llu: %llu unexplained bytes "
                            "after %s", v->name, (unsigned long long)e.offset,
                            (unsigned long long)want, (unsigned long long)(e.offset - want),
                            prev_name);
        if (!qrr__all_zero(f->bytes + prev_end, (size_t)(e.offset - prev_end)))
            return qrr_fail(d, QRR_ERR_PADDING, "padding [%llu, %llu) before %s is not zero",
                            (unsigned long long)prev_end, (unsigned long long)e.offset, v->name);
        sums[i] = e.checksum;
        prev_end = e.offset + e.size;
        prev_name = v->name;

        size_t slot = qrr__name_probe(f->slots, f->mask, v->name, view_name, f);
        if (f->slots[slot])
            return qrr_fail(d, QRR_ERR_DUPLICATE, "tensor %s appears twice (entries %u and %zu)",
                            v->name, f->slots[slot] - 1, i);
        f->slots[slot] = (uint32_t)i + 1;
    }
    if (prev_end != f->h.file_size)
        return qrr_fail(d, QRR_ERR_HOLE, "%llu unexplained bytes after %s, before the end of the "
                        "file at %llu", (unsigned long long)(f->h.file_size - prev_end),
                        prev_name, (unsigned long long)f->h.file_size);
    return QRR_OK;
}

/* ---- schema, checksums, scales ---------------------------------------------------- */

static int check_schema(qrr_file *f, qrr_diag *d)
{
    qrr_schema_entry *sc = NULL;
    size_t count = 0;
    int rc = qrr_schema_build(&f->meta, &sc, &count, d);
    if (rc != QRR_OK) return rc;
    uint8_t *seen = calloc(f->n ? f->n : 1, 1);
    if (!seen) {
        free(sc);
        return qrr_fail(d, QRR_ERR_NOMEM, "out of memory checking the schema");
    }
    for (size_t j = 0; j < count && rc == QRR_OK; j++) {
        const qrr_schema_entry *s = &sc[j];
        uint32_t idx = f->slots[qrr__name_probe(f->slots, f->mask, s->name, view_name, f)];
        if (!idx) {
            rc = qrr_fail(d, QRR_ERR_MISSING_TENSOR, "tensor %s is missing", s->name);
            break;
        }
        const qrr_tensor_view *v = &f->views[idx - 1];
        int same = v->ndim == s->ndim;
        for (uint32_t k = 0; same && k < s->ndim; k++) same = v->dims[k] == s->dims[k];
        if (!same) {
            char got[96], want[96];
            qrr_shape_format(got, sizeof got, v->ndim, v->dims);
            qrr_shape_format(want, sizeof want, s->ndim, s->dims);
            rc = qrr_fail(d, QRR_ERR_SHAPE, "%s: shape %s, expected %s", s->name, got, want);
        } else if (v->dtype != s->dtype) {
            rc = qrr_fail(d, QRR_ERR_SHAPE, "%s: dtype %s, expected %s", s->name,
                          qrr_dtype_name(v->dtype), qrr_dtype_name(s->dtype));
        }
        seen[idx - 1] = 1;
        f->roles[idx - 1] = (uint8_t)s->role;
    }
    for (size_t i = 0; i < f->n && rc == QRR_OK; i++)
        if (!seen[i])
            rc = qrr_fail(d, QRR_ERR_UNEXPECTED_TENSOR,
                          "tensor %s is not part of a model with these hyper-parameters",
                          f->views[i].name);
    free(seen);
    free(sc);
    return rc;
}

/* Checksums of the tensors, shared out among threads: hashing is bound by reading memory
 * (or, on a cold page cache, the disk), so several readers finish a large file sooner.
 * Every tensor is hashed whatever the others find, so the one reported (the first failing
 * in table order) does not depend on the threads' timing. */
#define SUM_MAX_THREADS 8
#define SUM_BYTES_PER_THREAD ((uint64_t)64 << 20)

typedef struct sum_job {
    const qrr_file *f;
    const uint64_t *sums;
    unsigned flags;
    atomic_size_t next;      /* next tensor to hash */
    atomic_size_t first_bad; /* smallest index whose checksum differs; n if none */
} sum_job;

static void *sum_worker(void *arg)
{
    sum_job *j = arg;
    const qrr_file *f = j->f;
    for (size_t i; (i = atomic_fetch_add(&j->next, 1)) < f->n;) {
        if ((j->flags & QRR_LOAD_SKIP_WEIGHT_CHECKSUMS) && f->roles[i] == QRR_ROLE_WEIGHT) continue;
        if (XXH3_64bits(f->views[i].data, (size_t)f->views[i].size) == j->sums[i]) continue;
        size_t bad = atomic_load(&j->first_bad);
        while (i < bad && !atomic_compare_exchange_weak(&j->first_bad, &bad, i)) {}
    }
    return NULL;
}

static int check_sums(const qrr_file *f, const uint64_t *sums, unsigned flags, qrr_diag *d)
{
    sum_job job = {.f = f, .sums = sums, .flags = flags};
    atomic_init(&job.next, 0);
    atomic_init(&job.first_bad, f->n);
    uint64_t bytes = 0;
    for (size_t i = 0; i < f->n; i++) bytes += f->views[i].size; /* <= file size: no overflow */
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    uint64_t want = bytes / SUM_BYTES_PER_THREAD;
    int extra = (int)(want < SUM_MAX_THREADS ? want : SUM_MAX_THREADS);
    if (cpus > 0 && extra > cpus) extra = (int)cpus;
    extra = extra > 1 ? extra - 1 : 0; /* the calling thread is one of them */
    pthread_t threads[SUM_MAX_THREADS];
    int started = 0;
    while (started < extra && pthread_create(&threads[started], NULL, sum_worker, &job) == 0)
        started++; /* fewer threads than wanted only makes it slower */
    sum_worker(&job);
    for (int t = 0; t < started; t++) pthread_join(threads[t], NULL);
    size_t i = atomic_load(&job.first_bad);
    if (i == f->n) return QRR_OK;
    const qrr_tensor_view *v = &f->views[i];
    return qrr_fail(d, QRR_ERR_CHECKSUM, "%s [%llu, +%llu): checksum mismatch", v->name,
                    (unsigned long long)((const uint8_t *)v->data - f->bytes),
                    (unsigned long long)v->size);
}

static int check_scales(const qrr_file *f, qrr_diag *d)
{
    for (size_t i = 0; i < f->n; i++) {
        if (f->roles[i] != QRR_ROLE_SCALE) continue;
        const qrr_tensor_view *v = &f->views[i];
        const uint8_t *p = v->data;
        for (uint64_t j = 0; j < v->size / sizeof(float); j++) {
            float x;
            memcpy(&x, p + j * sizeof x, sizeof x);
            if (!isfinite(x) || x == 0.0f)
                return qrr_fail(d, QRR_ERR_BAD_SCALE, "%s[%llu] = %g: scales must be finite "
                                "and non-zero", v->name, (unsigned long long)j, (double)x);
        }
    }
    return QRR_OK;
}

/* ---- public ----------------------------------------------------------------------- */

int qrr_file_load(const void *bytes, size_t len, unsigned flags, qrr_file **out,
                  double *verify_seconds, qrr_diag *d)
{
    if (verify_seconds) *verify_seconds = 0;
    if (!out || (!bytes && len))
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_file_load: NULL argument");
    *out = NULL;
    if (flags & ~(unsigned)QRR_LOAD_SKIP_WEIGHT_CHECKSUMS)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_file_load: unknown flags %#x", flags);
    qrr_file *f = calloc(1, sizeof *f);
    if (!f) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    f->bytes = bytes;
    f->len = len;
    uint64_t *sums = NULL;

    int rc = check_header(f, d);
    if (rc == QRR_OK) rc = check_sections(f, d);
    if (rc == QRR_OK) rc = inflate_section(f, QRR_SECTION_META, &f->meta_raw, d);
    if (rc == QRR_OK) rc = inflate_section(f, QRR_SECTION_TOKENIZER, &f->tok, d);
    if (rc == QRR_OK) {
        f->tok_len = (size_t)f->h.sections[QRR_SECTION_TOKENIZER].raw_size;
        rc = qrr_meta_decode(f->meta_raw, (size_t)f->h.sections[QRR_SECTION_META].raw_size,
                             &f->meta, d);
    }
    if (rc == QRR_OK) {
        size_t n = (size_t)(f->h.sections[QRR_SECTION_TENSORS].size / sizeof(qrr_tensor_disk));
        sums = malloc((n ? n : 1) * sizeof *sums);
        rc = sums ? check_table(f, sums, d)
                  : qrr_fail(d, QRR_ERR_NOMEM, "out of memory reading the tensor table");
    }
    if (rc == QRR_OK) rc = check_schema(f, d);
    if (rc == QRR_OK) {
        double t0 = qrr_time_seconds();
        rc = check_sums(f, sums, flags, d);
        if (verify_seconds) *verify_seconds = qrr_time_seconds() - t0;
    }
    if (rc == QRR_OK) rc = check_scales(f, d);
    free(sums);
    if (rc != QRR_OK) {
        qrr_file_free(f);
        return rc;
    }
    *out = f;
    return QRR_OK;
}

void qrr_file_free(qrr_file *f)
{
    if (!f) return;
    free(f->meta_raw);
    free(f->tok);
    free(f->views);
    free(f->roles);
    free(f->slots);
    free(f);
}

const qrr_header_disk *qrr_file_header(const qrr_file *f) { return f ? &f->h : NULL; }
const qrr_meta *qrr_file_meta(const qrr_file *f) { return f ? &f->meta : NULL; }

const uint8_t *qrr_file_tokenizer(const qrr_file *f, size_t *len)
{
    if (len) *len = f ? f->tok_len : 0;
    return f ? f->tok : NULL;
}

size_t qrr_file_tensor_count(const qrr_file *f) { return f ? f->n : 0; }

const qrr_tensor_view *qrr_file_tensor(const qrr_file *f, size_t i)
{
    return f && i < f->n ? &f->views[i] : NULL;
}

const qrr_tensor_view *qrr_file_find(const qrr_file *f, const char *name)
{
    if (!f || !name) return NULL;
    uint32_t idx = f->slots[qrr__name_probe(f->slots, f->mask, name, view_name, f)];
    return idx ? &f->views[idx - 1] : NULL;
}
