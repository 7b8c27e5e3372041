/* qrr_writer.c — write a .qrr file: compress META and TOKENIZER, fix the layout on the
 * first data write, stream tensor bytes to their offsets while hashing them, then write the
 * table, sections and header and rename the temporary file into place. It checks what it
 * writes is well-formed, not that the tensors match the schema (the loader does that). */
#include "qrr_writer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include "qrr_checked.h"
#include "qrr_format.h"
#include "qrr_names.h"

#define NAME_SLOTS (2u * QRR_MAX_TENSORS) /* power of two, at most half full */

struct qrr_writer {
    char *path;
    char *tmp_path;
    int fd;
    int failed;                  /* sticky: the first error; every later call returns it */
    uint8_t *meta_z, *tok_z;     /* compressed sections */
    size_t meta_z_len, tok_z_len, meta_raw, tok_raw;
    qrr_tensor_disk *t;          /* [n] the table, in declaration (= offset) order */
    uint64_t *written;           /* [n] bytes written so far per tensor */
    size_t n, cap;
    uint32_t *slots;             /* [NAME_SLOTS] name index */
    int laid_out;
    qrr_header_disk h;           /* offsets and sizes once laid out */
    size_t cur;                  /* first tensor not yet complete */
    XXH3_state_t *xs;            /* hash of tensor cur so far */
};

static int fail(qrr_writer *w, qrr_diag *d, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Record the first failure, remove the temporary file, and return status. */
static int fail(qrr_writer *w, qrr_diag *d, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    qrr_vfail(d, status, fmt, ap);
    va_end(ap);
    if (!w->failed) w->failed = status;
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
    }
    if (w->tmp_path) {
        unlink(w->tmp_path);
        free(w->tmp_path);
        w->tmp_path = NULL;
    }
    return status;
}

static int dead(const qrr_writer *w, qrr_diag *d)
{
    return qrr_fail(d, w->failed, "qrr writer: an earlier call failed; the file is abandoned");
}

static void writer_free(qrr_writer *w)
{
    if (!w) return;
    if (w->fd >= 0) close(w->fd);
    if (w->tmp_path) unlink(w->tmp_path); /* not renamed into place: never leave it */
    free(w->path);
    free(w->tmp_path);
    free(w->meta_z);
    free(w->tok_z);
    free(w->t);
    free(w->written);
    free(w->slots);
    if (w->xs) XXH3_freeState(w->xs);
    free(w);
}

int qrr_writer_open(const char *path, qrr_writer **out, qrr_diag *d)
{
    if (!path || !*path || !out)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_writer_open: NULL or empty argument");
    *out = NULL;
    qrr_writer *w = calloc(1, sizeof *w);
    if (!w) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    w->fd = -1;
    size_t plen = strlen(path);
    w->path = malloc(plen + 1);
    w->tmp_path = malloc(plen + sizeof ".tmp.XXXXXX");
    w->slots = calloc(NAME_SLOTS, sizeof *w->slots);
    w->xs = XXH3_createState();
    if (!w->path || !w->tmp_path || !w->slots || !w->xs) {
        free(w->tmp_path);
        w->tmp_path = NULL;
        writer_free(w);
        return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    }
    memcpy(w->path, path, plen + 1);
    memcpy(w->tmp_path, path, plen);
    memcpy(w->tmp_path + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    w->fd = mkostemp(w->tmp_path, O_CLOEXEC);
    if (w->fd < 0) {
        int e = errno;
        free(w->tmp_path);
        w->tmp_path = NULL;
        writer_free(w);
        return qrr_fail(d, QRR_ERR_IO, "%s: cannot create a temporary file beside it: %s", path,
                        strerror(e));
    }
    if (fchmod(w->fd, 0644) != 0) {
        int e = errno;
        fail(w, d, QRR_ERR_IO, "%s: chmod: %s", w->tmp_path, strerror(e));
        writer_free(w);
        return QRR_ERR_IO;
    }
    XXH3_64bits_reset(w->xs);
    *out = w;
    return QRR_OK;
}

static int compress_into(qrr_writer *w, const void *src, size_t len, uint8_t **out,
                         size_t *out_len, const char *what, qrr_diag *d)
{
    uLong bound = compressBound((uLong)len);
    uint8_t *buf = malloc(bound ? bound : 1);
    if (!buf) return fail(w, d, QRR_ERR_NOMEM, "out of memory compressing %s", what);
    uLongf z = bound;
    if (compress2(buf, &z, src, (uLong)len, 6) != Z_OK) {
        free(buf);
        return fail(w, d, QRR_ERR_IO, "zlib failed to compress %s", what);
    }
    *out = buf;
    *out_len = z;
    return QRR_OK;
}

int qrr_writer_set_meta(qrr_writer *w, const qrr_meta *m, qrr_diag *d)
{
    if (!w || !m) return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_writer_set_meta: NULL argument");
    if (w->failed) return dead(w, d);
    if (w->meta_z) return fail(w, d, QRR_ERR_INVALID_ARG, "qrr writer: metadata set twice");
    if (w->n) return fail(w, d, QRR_ERR_INVALID_ARG, "qrr writer: metadata after tensors");
    uint8_t *raw = NULL;
    size_t raw_len = 0;
    int rc = qrr_meta_encode(m, &raw, &raw_len, d);
    if (rc != QRR_OK) return fail(w, NULL, rc, "%s", "");
    rc = compress_into(w, raw, raw_len, &w->meta_z, &w->meta_z_len, "metadata", d);
    free(raw);
    if (rc == QRR_OK) w->meta_raw = raw_len;
    return rc;
}

int qrr_writer_set_tokenizer(qrr_writer *w, const void *blob, size_t len, qrr_diag *d)
{
    if (!w || !blob)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_writer_set_tokenizer: NULL argument");
    if (w->failed) return dead(w, d);
    if (w->tok_z) return fail(w, d, QRR_ERR_INVALID_ARG, "qrr writer: tokenizer set twice");
    if (w->n) return fail(w, d, QRR_ERR_INVALID_ARG, "qrr writer: tokenizer after tensors");
    if (len == 0 || len > QRR_MAX_TOKENIZER_BYTES)
        return fail(w, d, QRR_ERR_INVALID_ARG, "qrr writer: tokenizer blob of %zu bytes, "
                    "expected 1..%u", len, QRR_MAX_TOKENIZER_BYTES);
    int rc = compress_into(w, blob, len, &w->tok_z, &w->tok_z_len, "the tokenizer", d);
    if (rc == QRR_OK) w->tok_raw = len;
    return rc;
}

static const char *table_name(const void *ctx, uint32_t i)
{
    return ((const qrr_writer *)ctx)->t[i].name;
}

int qrr_writer_add_tensor(qrr_writer *w, const char *name, uint32_t dtype, uint32_t ndim,
                          const uint64_t *dims, size_t *index, qrr_diag *d)
{
    if (!w || !name || !dims)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_writer_add_tensor: NULL argument");
    if (w->failed) return dead(w, d);
    if (!w->meta_z || !w->tok_z)
        return fail(w, d, QRR_ERR_INVALID_ARG,
                    "qrr writer: set metadata and tokenizer before declaring tensors");
    if (w->laid_out)
        return fail(w, d, QRR_ERR_INVALID_ARG, "qrr writer: tensor %.64s declared after data",
                    name);
    size_t nlen = strnlen(name, QRR_TENSOR_NAME_MAX);
    if (nlen == 0 || nlen >= QRR_TENSOR_NAME_MAX)
        return fail(w, d, QRR_ERR_BAD_TENSOR, "tensor name '%.64s' must be 1..%u bytes", name,
                    QRR_TENSOR_NAME_MAX - 1);
    for (size_t i = 0; i < nlen; i++)
        if (!qrr__name_char_ok((unsigned char)name[i]))
            return fail(w, d, QRR_ERR_BAD_TENSOR,
                        "tensor name '%s': byte %zu is not visible ASCII", name, i);
    size_t es = qrr_dtype_size(dtype);
    if (!es) return fail(w, d, QRR_ERR_BAD_TENSOR, "%s: unknown dtype %u", name, dtype);
    if (ndim == 0 || ndim > QRR_MAX_DIMS)
        return fail(w, d, QRR_ERR_BAD_TENSOR, "%s: %u dims, expected 1..%u", name, ndim,
                    QRR_MAX_DIMS);
    uint64_t size = es;
    for (uint32_t i = 0; i < ndim; i++) {
        if (dims[i] == 0)
            return fail(w, d, QRR_ERR_BAD_TENSOR, "%s: dim %u is zero", name, i);
        if (qrr__mul_u64(size, dims[i], &size))
            return fail(w, d, QRR_ERR_BAD_TENSOR, "%s: byte size overflows", name);
    }
    if (w->n >= QRR_MAX_TENSORS)
        return fail(w, d, QRR_ERR_BAD_TENSOR, "more than %u tensors", QRR_MAX_TENSORS);
    size_t slot = qrr__name_probe(w->slots, NAME_SLOTS - 1, name, table_name, w);
    if (w->slots[slot])
        return fail(w, d, QRR_ERR_DUPLICATE, "tensor %s declared twice", name);

    if (w->n == w->cap) {
        size_t cap = w->cap ? 2 * w->cap : 64;
        qrr_tensor_disk *t = realloc(w->t, cap * sizeof *t);
        if (t) w->t = t;
        uint64_t *wr = realloc(w->written, cap * sizeof *wr);
        if (wr) w->written = wr;
        if (!t || !wr) return fail(w, d, QRR_ERR_NOMEM, "out of memory declaring tensors");
        w->cap = cap;
    }
    qrr_tensor_disk *e = &w->t[w->n];
    memset(e, 0, sizeof *e);
    memcpy(e->name, name, nlen);
    e->dtype = dtype;
    e->ndim = ndim;
    for (uint32_t i = 0; i < ndim; i++) e->dims[i] = dims[i];
    e->size = size;
    w->written[w->n] = 0;
    w->slots[slot] = (uint32_t)w->n + 1;
    if (index) *index = w->n;
    w->n++;
    return QRR_OK;
}

/* Fix every offset: header, META at 256, TOKENIZER, TENSORS, DATA at a page, tensors
 * packed at QRR_ALIGN in declaration order, the file ending with the last tensor. */
static int lay_out(qrr_writer *w, qrr_diag *d)
{
    if (!w->meta_z || !w->tok_z)
        return fail(w, d, QRR_ERR_INVALID_ARG, "qrr writer: metadata or tokenizer not set");
    qrr_header_disk *h = &w->h;
    memset(h, 0, sizeof *h);
    memcpy(h->magic, QRR_MAGIC, sizeof h->magic);
    h->version = QRR_FORMAT_VERSION;
    h->quant_version = QRR_QUANT_VERSION;
    h->section_count = QRR_SECTION_COUNT;
    qrr_section_disk *s = h->sections;
    for (uint32_t k = 0; k < QRR_SECTION_COUNT; k++) s[k].kind = k;
    s[QRR_SECTION_META].compression = QRR_COMPRESSION_ZLIB;
    s[QRR_SECTION_META].size = w->meta_z_len;
    s[QRR_SECTION_META].raw_size = w->meta_raw;
    s[QRR_SECTION_TOKENIZER].compression = QRR_COMPRESSION_ZLIB;
    s[QRR_SECTION_TOKENIZER].size = w->tok_z_len;
    s[QRR_SECTION_TOKENIZER].raw_size = w->tok_raw;
    s[QRR_SECTION_TENSORS].size = s[QRR_SECTION_TENSORS].raw_size =
        (uint64_t)w->n * sizeof(qrr_tensor_disk);

    uint64_t pos = QRR_HEADER_SIZE;
    int bad = 0;
    for (uint32_t k = 0; k < QRR_SECTION_DATA; k++) {
        s[k].offset = pos;
        bad |= qrr__add_u64(pos, s[k].size, &pos);
        bad |= qrr__align_up_u64(pos, k + 1 == QRR_SECTION_DATA ? QRR_DATA_ALIGN : QRR_ALIGN,
                                 &pos);
    }
    s[QRR_SECTION_DATA].offset = pos;
    uint64_t end = pos;
    for (size_t i = 0; i < w->n; i++) {
        bad |= qrr__align_up_u64(end, QRR_ALIGN, &w->t[i].offset);
        bad |= qrr__add_u64(w->t[i].offset, w->t[i].size, &end);
    }
    if (bad || end > (uint64_t)INT64_MAX)
        return fail(w, d, QRR_ERR_IO, "qrr writer: the file would be larger than 2^63 bytes");
    s[QRR_SECTION_DATA].size = s[QRR_SECTION_DATA].raw_size = end - pos;
    h->file_size = end;
    w->laid_out = 1;
    return QRR_OK;
}

static int pwrite_all(qrr_writer *w, const void *buf, size_t len, uint64_t off, qrr_diag *d)
{
    const uint8_t *p = buf;
    while (len) {
        size_t chunk = len > (1u << 30) ? (1u << 30) : len;
        ssize_t r = pwrite(w->fd, p, chunk, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) {
            int e = r < 0 ? errno : EIO;
            return fail(w, d, QRR_ERR_IO, "%s: write at %llu: %s", w->tmp_path,
                        (unsigned long long)off, strerror(e));
        }
        p += r;
        off += (uint64_t)r;
        len -= (size_t)r;
    }
    return QRR_OK;
}

static int write_zeros(qrr_writer *w, uint64_t from, uint64_t to, qrr_diag *d)
{
    static const uint8_t zeros[QRR_DATA_ALIGN];
    while (from < to) {
        size_t n = to - from > sizeof zeros ? sizeof zeros : (size_t)(to - from);
        int rc = pwrite_all(w, zeros, n, from, d);
        if (rc != QRR_OK) return rc;
        from += n;
    }
    return QRR_OK;
}

int qrr_writer_write(qrr_writer *w, size_t index, const void *data, size_t len, qrr_diag *d)
{
    if (!w || (!data && len))
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_writer_write: NULL argument");
    if (w->failed) return dead(w, d);
    if (!w->laid_out) {
        int rc = lay_out(w, d);
        if (rc != QRR_OK) return rc;
    }
    if (index >= w->n)
        return fail(w, d, QRR_ERR_INVALID_ARG, "qrr writer: no tensor %zu (%zu declared)",
                    index, w->n);
    if (index != w->cur)
        return fail(w, d, QRR_ERR_INVALID_ARG,
                    "qrr writer: data for %s out of order (%s is %s)", w->t[index].name,
                    w->t[index < w->cur ? index : w->cur].name,
                    index < w->cur ? "already complete" : "not complete yet");
    qrr_tensor_disk *e = &w->t[index];
    if (len > e->size - w->written[index])
        return fail(w, d, QRR_ERR_INVALID_ARG,
                    "qrr writer: %s: %zu more bytes than its declared %llu", e->name,
                    len - (size_t)(e->size - w->written[index]), (unsigned long long)e->size);
    if (!len) return QRR_OK;
    int rc = pwrite_all(w, data, len, e->offset + w->written[index], d);
    if (rc != QRR_OK) return rc;
    XXH3_64bits_update(w->xs, data, len);
    w->written[index] += len;
    if (w->written[index] == e->size) {
        e->checksum = XXH3_64bits_digest(w->xs);
        XXH3_64bits_reset(w->xs);
        w->cur++;
    }
    return QRR_OK;
}

static int finish(qrr_writer *w, qrr_diag *d)
{
    int rc;
    if (!w->laid_out && (rc = lay_out(w, d)) != QRR_OK) return rc;
    if (w->cur != w->n)
        return fail(w, d, QRR_ERR_INVALID_ARG, "qrr writer: %s has %llu of its %llu bytes",
                    w->t[w->cur].name, (unsigned long long)w->written[w->cur],
                    (unsigned long long)w->t[w->cur].size);
    qrr_header_disk *h = &w->h;
    qrr_section_disk *s = h->sections;
    size_t table_len = w->n * sizeof(qrr_tensor_disk);
    s[QRR_SECTION_META].checksum = XXH3_64bits(w->meta_z, w->meta_z_len);
    s[QRR_SECTION_TOKENIZER].checksum = XXH3_64bits(w->tok_z, w->tok_z_len);
    s[QRR_SECTION_TENSORS].checksum = XXH3_64bits(w->t, table_len);
    h->header_checksum = XXH3_64bits(h, offsetof(qrr_header_disk, header_checksum));

    const void *body[3] = {w->meta_z, w->tok_z, w->t};
    for (int k = 0; k < QRR_SECTION_DATA; k++) {
        if ((rc = pwrite_all(w, body[k], s[k].size, s[k].offset, d)) != QRR_OK) return rc;
        if ((rc = write_zeros(w, s[k].offset + s[k].size, s[k + 1].offset, d)) != QRR_OK)
            return rc;
    }
    for (size_t i = 0; i + 1 < w->n; i++)
        if ((rc = write_zeros(w, w->t[i].offset + w->t[i].size, w->t[i + 1].offset, d)))
            return rc;
    if ((rc = pwrite_all(w, h, sizeof *h, 0, d)) != QRR_OK) return rc;
    if (ftruncate(w->fd, (off_t)h->file_size) != 0)
        return fail(w, d, QRR_ERR_IO, "%s: truncate: %s", w->tmp_path, strerror(errno));
    if (fsync(w->fd) != 0)
        return fail(w, d, QRR_ERR_IO, "%s: fsync: %s", w->tmp_path, strerror(errno));
    if (close(w->fd) != 0) {
        w->fd = -1;
        return fail(w, d, QRR_ERR_IO, "%s: close: %s", w->tmp_path, strerror(errno));
    }
    w->fd = -1;
    if (rename(w->tmp_path, w->path) != 0)
        return fail(w, d, QRR_ERR_IO, "cannot rename %s to %s: %s", w->tmp_path, w->path,
                    strerror(errno));
    free(w->tmp_path);
    w->tmp_path = NULL;
    /* Make the rename durable; the file is complete either way, so a failure here is not
     * reported. */
    char *dir = strdup(w->path);
    if (dir) {
        int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return QRR_OK;
}

int qrr_writer_finish(qrr_writer *w, qrr_diag *d)
{
    if (!w) return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_writer_finish: NULL writer");
    int rc = w->failed ? dead(w, d) : finish(w, d);
    writer_free(w);
    return rc;
}

void qrr_writer_abort(qrr_writer *w)
{
    writer_free(w);
}

const char *qrr_writer_tmp_path(const qrr_writer *w)
{
    return w ? w->tmp_path : NULL;
}
