/* test_format.c — the .qrr format library: metadata, schema, writer and loader.
 * A tiny model is written through the writer and must load back unchanged; then one
 * hand-made malformed image per loader rule, each asserting the exact status. Images are
 * laid out by a small assembler here (independent of the writer) and re-sealed (checksums
 * recomputed) after each mutation so that the rule under test is the one that fires. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zlib.h>

#include "qrr_test_util.h"

#include "qrr_file.h"
#include "qrr_format.h"
#include "qrr_meta.h"
#include "qrr_schema.h"
#include "qrr_writer.h"

/* ---- a tiny model ----------------------------------------------------------------- */

#define MAXT 128

typedef struct tmodel {
    qrr_meta meta;
    uint8_t *tok;
    size_t tok_len;
    size_t n;
    qrr_tensor_disk e[MAXT];   /* name, dtype, ndim, dims, size; offsets are the layout's */
    uint8_t *data[MAXT];
    uint64_t gap_before[MAXT]; /* extra zero bytes before tensor i (multiple of 64) */
} tmodel;

static const char *const test_strings[QRR_META_STRING_COUNT] = {
    "<|im_start|>system\nJudge.<|im_end|>\n<|im_start|>user\n",
    "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n",
    "<Instruct>: {instruction}\n<Query>: ",
    "\n<Document>: ",
    "Given a web search query, retrieve relevant passages that answer the query",
    "no",
    "yes",
    "test: labels given",
    "{\"converter\": \"test\", \"note\": \"caf\xc3\xa9\"}",
};

static uint64_t rng_state;
static uint32_t rnd(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 33);
}
static float rnd_unit(void) { return (float)rnd() / 2147483648.0f - 1.0f; } /* [-1, 1) */

static uint32_t vocab_override; /* a large vocabulary makes a file big enough for threads */

static void meta_init(qrr_meta *m, uint32_t weight_dtype, uint32_t quant_block)
{
    memset(m, 0, sizeof *m);
    qrr_meta_disk *f = &m->fixed;
    f->arch = QRR_ARCH_QWEN3;
    f->head_kind = QRR_HEAD_YES_NO;
    f->label_source = QRR_LABELS_FROM_USER;
    f->weight_dtype = weight_dtype;
    f->n_layers = 2;
    f->hidden = 24;
    f->n_heads = 2;
    f->n_kv_heads = 1;
    f->head_dim = 16;
    f->intermediate = 40;
    f->vocab_size = vocab_override ? vocab_override : 67;
    f->max_position = 256;
    f->max_length = 128;
    f->yes_id = 5;
    f->no_id = 6;
    f->tied = 1;
    f->quant_block = quant_block;
    f->rms_eps = 1e-6;
    f->rope_theta = 1e6;
    for (int i = 0; i < QRR_META_STRING_COUNT; i++) {
        m->strings[i].ptr = test_strings[i];
        m->strings[i].len = strlen(test_strings[i]);
    }
}

static void fill(tmodel *t, size_t i, uint32_t role)
{
    qrr_tensor_disk *e = &t->e[i];
    free(t->data[i]);
    t->data[i] = malloc(e->size);
    cr_assert(t->data[i]);
    if (e->dtype == QRR_DTYPE_F32) {
        for (uint64_t j = 0; j < e->size / 4; j++) {
            float x = role == QRR_ROLE_SCALE ? 0.01f + 0.05f * (rnd_unit() + 1.0f) : rnd_unit();
            memcpy(t->data[i] + 4 * j, &x, 4);
        }
    } else {
        for (uint64_t j = 0; j < e->size; j++) t->data[i][j] = (uint8_t)rnd();
    }
}

static void model_init(tmodel *t, uint32_t weight_dtype, uint32_t quant_block)
{
    memset(t, 0, sizeof *t);
    rng_state = 12345 + weight_dtype * 7 + quant_block;
    meta_init(&t->meta, weight_dtype, quant_block);
    t->tok_len = 3000;
    t->tok = malloc(t->tok_len);
    cr_assert(t->tok);
    for (size_t i = 0; i < t->tok_len; i++) t->tok[i] = (uint8_t)("tokenizer blob "[i % 15] ^ (i % 7));

    qrr_schema_entry *sc;
    size_t count;
    qrr_diag d;
    cr_assert_eq(qrr_schema_build(&t->meta, &sc, &count, &d), QRR_OK, "%s", d.msg);
    cr_assert(count <= MAXT);
    t->n = count;
    for (size_t i = 0; i < count; i++) {
        qrr_tensor_disk *e = &t->e[i];
        memcpy(e->name, sc[i].name, sizeof e->name);
        e->dtype = sc[i].dtype;
        e->ndim = sc[i].ndim;
        memcpy(e->dims, sc[i].dims, sizeof e->dims);
        e->size = qrr_dtype_size(e->dtype);
        for (uint32_t k = 0; k < e->ndim; k++) e->size *= e->dims[k];
        fill(t, i, sc[i].role);
    }
    free(sc);
}

static void model_free(tmodel *t)
{
    free(t->tok);
    for (size_t i = 0; i < MAXT; i++) free(t->data[i]);
}

static size_t model_find(const tmodel *t, const char *name)
{
    for (size_t i = 0; i < t->n; i++)
        if (!strcmp(t->e[i].name, name)) return i;
    cr_assert_fail("no tensor %s in the test model", name);
    return 0;
}

/* Replace tensor i's shape (and data, refilled) */
static void model_reshape(tmodel *t, size_t i, uint32_t dtype, uint32_t ndim, uint64_t d0,
                          uint64_t d1)
{
    qrr_tensor_disk *e = &t->e[i];
    e->dtype = dtype;
    e->ndim = ndim;
    memset(e->dims, 0, sizeof e->dims);
    e->dims[0] = d0;
    if (ndim > 1) e->dims[1] = d1;
    e->size = qrr_dtype_size(dtype) * d0 * (ndim > 1 ? d1 : 1);
    fill(t, i, QRR_ROLE_NORM);
}

/* ---- the test-side assembler ------------------------------------------------------ */

typedef struct image {
    uint8_t *b;
    size_t len;
} image;

static uint64_t up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

static image image_alloc(size_t len)
{
    image im = {aligned_alloc(4096, up(len ? len : 1, 4096)), len};
    cr_assert(im.b);
    memset(im.b, 0, up(len ? len : 1, 4096));
    return im;
}

static qrr_header_disk *hdr(image *im) { return (qrr_header_disk *)im->b; }
static qrr_section_disk *sec(image *im, int k) { return &hdr(im)->sections[k]; }
static qrr_tensor_disk *entry(image *im, size_t i)
{
    return (qrr_tensor_disk *)(im->b + sec(im, QRR_SECTION_TENSORS)->offset) + i;
}
static size_t n_entries(image *im) { return sec(im, QRR_SECTION_TENSORS)->size / 128; }

/* Recompute the META/TOKENIZER/TENSORS checksums (where the ranges lie inside the image)
 * and the header checksum. */
static void reseal(image *im)
{
    for (int k = 0; k < QRR_SECTION_DATA; k++) {
        qrr_section_disk *s = sec(im, k);
        if (s->offset <= im->len && s->size <= im->len - s->offset)
            s->checksum = XXH3_64bits(im->b + s->offset, s->size);
    }
    hdr(im)->header_checksum = XXH3_64bits(im->b, 248);
}

static void reseal_tensor(image *im, size_t i)
{
    qrr_tensor_disk *e = entry(im, i);
    e->checksum = XXH3_64bits(im->b + e->offset, e->size);
    reseal(im);
}

static uint8_t *zip(const void *src, size_t len, size_t *out_len)
{
    uLongf z = compressBound(len);
    uint8_t *buf = malloc(z);
    cr_assert(buf);
    cr_assert_eq(compress2(buf, &z, src, len, 6), Z_OK);
    *out_len = z;
    return buf;
}

/* Lay out t as the spec says (meta_raw: the META bytes to use, NULL = encode t->meta). */
static image assemble_raw(const tmodel *t, const uint8_t *meta_raw, size_t meta_len)
{
    uint8_t *own = NULL;
    if (!meta_raw) {
        qrr_diag d;
        cr_assert_eq(qrr_meta_encode(&t->meta, &own, &meta_len, &d), QRR_OK, "%s", d.msg);
        meta_raw = own;
    }
    size_t mz_len, tz_len;
    uint8_t *mz = zip(meta_raw, meta_len, &mz_len);
    uint8_t *tz = zip(t->tok, t->tok_len, &tz_len);
    uint64_t meta_off = 256, tok_off = up(meta_off + mz_len, 64);
    uint64_t tab_off = up(tok_off + tz_len, 64), tab_len = t->n * 128;
    uint64_t data_off = up(tab_off + tab_len, 4096), end = data_off;
    uint64_t off[MAXT];
    for (size_t i = 0; i < t->n; i++) {
        off[i] = up(end, 64) + t->gap_before[i];
        end = off[i] + t->e[i].size;
    }
    image im = image_alloc(end);
    qrr_header_disk *h = hdr(&im);
    memcpy(h->magic, "QRRMODEL", 8);
    h->version = QRR_FORMAT_VERSION;
    h->quant_version = QRR_QUANT_VERSION;
    h->file_size = end;
    h->section_count = 4;
    qrr_section_disk s[4] = {
        {0, 1, meta_off, mz_len, meta_len, 0},
        {1, 1, tok_off, tz_len, t->tok_len, 0},
        {2, 0, tab_off, tab_len, tab_len, 0},
        {3, 0, data_off, end - data_off, end - data_off, 0},
    };
    memcpy(h->sections, s, sizeof s);
    memcpy(im.b + meta_off, mz, mz_len);
    memcpy(im.b + tok_off, tz, tz_len);
    for (size_t i = 0; i < t->n; i++) {
        qrr_tensor_disk *e = entry(&im, i);
        *e = t->e[i];
        e->offset = off[i];
        memcpy(im.b + off[i], t->data[i], e->size);
        e->checksum = XXH3_64bits(t->data[i], e->size);
    }
    reseal(&im);
    free(mz);
    free(tz);
    free(own);
    return im;
}

static image assemble(const tmodel *t) { return assemble_raw(t, NULL, 0); }

static void swap_entries(image *im, size_t a, size_t b)
{
    qrr_tensor_disk tmp = *entry(im, a);
    *entry(im, a) = *entry(im, b);
    *entry(im, b) = tmp;
}

static int load(const image *im, unsigned flags, qrr_diag *d)
{
    qrr_file *f = NULL;
    qrr_diag_clear(d);
    int rc = qrr_file_load(im->b, im->len, flags, &f, NULL, d);
    cr_assert_eq(rc == QRR_OK, f != NULL, "a file is handed out exactly on success");
    qrr_file_free(f);
    return rc;
}

#define expect_load(im, flags, want)                                                   \
    do {                                                                               \
        qrr_diag d_;                                                                   \
        int rc_ = load(im, flags, &d_);                                                \
        cr_assert_eq(rc_, want, "expected %s, got %s: %s", qrr_status_str(want),       \
                     qrr_status_str(rc_), d_.msg);                                     \
    } while (0)

/* A valid F32 image, mutated by the caller. */
static image base_image(tmodel *t)
{
    model_init(t, QRR_DTYPE_F32, 0);
    return assemble(t);
}

/* ---- temp dir and files ----------------------------------------------------------- */

static char tmpdir[256];

static void setup(void)
{
    tu_tmpdir(tmpdir, sizeof tmpdir);
}

static void teardown(void)
{
    tu_rmtree(tmpdir);
}

static int dir_entries(void)
{
    DIR *dir = opendir(tmpdir);
    cr_assert(dir);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dir)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) n++;
    closedir(dir);
    return n;
}

static image read_image(const char *path)
{
    FILE *fp = fopen(path, "rb");
    cr_assert(fp, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long len = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    image im = image_alloc((size_t)len);
    cr_assert_eq(fread(im.b, 1, (size_t)len, fp), (size_t)len);
    fclose(fp);
    return im;
}

static int write_model(const tmodel *t, const char *path, qrr_diag *d)
{
    qrr_writer *w;
    int rc = qrr_writer_open(path, &w, d);
    if (rc) return rc;
    if ((rc = qrr_writer_set_meta(w, &t->meta, d)) ||
        (rc = qrr_writer_set_tokenizer(w, t->tok, t->tok_len, d))) {
        qrr_writer_abort(w);
        return rc;
    }
    for (size_t i = 0; i < t->n; i++) {
        size_t idx;
        if ((rc = qrr_writer_add_tensor(w, t->e[i].name, t->e[i].dtype, t->e[i].ndim,
                                        t->e[i].dims, &idx, d))) {
            qrr_writer_abort(w);
            return rc;
        }
        cr_assert_eq(idx, i);
    }
    for (size_t i = 0; i < t->n; i++) {
        /* stream in pieces of 100 bytes to exercise incremental hashing */
        for (uint64_t at = 0; at < t->e[i].size; at += 100) {
            size_t len = t->e[i].size - at < 100 ? (size_t)(t->e[i].size - at) : 100;
            if ((rc = qrr_writer_write(w, i, t->data[i] + at, len, d))) {
                qrr_writer_abort(w);
                return rc;
            }
        }
    }
    return qrr_writer_finish(w, d);
}

TestSuite(format, .init = setup, .fini = teardown);

/* ---- round trips ------------------------------------------------------------------ */

static void roundtrip(uint32_t weight_dtype, uint32_t quant_block)
{
    tmodel t;
    model_init(&t, weight_dtype, quant_block);
    char path[512];
    snprintf(path, sizeof path, "%s/model.qrr", tmpdir);
    qrr_diag d;
    cr_assert_eq(write_model(&t, path, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(dir_entries(), 1, "only the output file remains");
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0644);

    image im = read_image(path);
    image ref = assemble(&t);
    cr_assert_eq(im.len, ref.len, "writer and spec assembler agree on the length");
    cr_assert(!memcmp(im.b, ref.b, im.len), "writer and spec assembler agree byte for byte");

    qrr_file *f;
    double secs = -1;
    cr_assert_eq(qrr_file_load(im.b, im.len, 0, &f, &secs, &d), QRR_OK, "%s", d.msg);
    cr_assert(secs >= 0 && secs < 10);
    const qrr_meta *m = qrr_file_meta(f);
    cr_assert(!memcmp(&m->fixed, &t.meta.fixed, sizeof m->fixed));
    for (int i = 0; i < QRR_META_STRING_COUNT; i++) {
        cr_assert_eq(m->strings[i].len, t.meta.strings[i].len);
        cr_assert(!memcmp(m->strings[i].ptr, t.meta.strings[i].ptr, m->strings[i].len));
    }
    size_t tok_len;
    const uint8_t *tok = qrr_file_tokenizer(f, &tok_len);
    cr_assert_eq(tok_len, t.tok_len);
    cr_assert(!memcmp(tok, t.tok, tok_len));
    cr_assert_eq(qrr_file_header(f)->file_size, im.len);

    cr_assert_eq(qrr_file_tensor_count(f), t.n);
    for (size_t i = 0; i < t.n; i++) {
        const qrr_tensor_view *v = qrr_file_tensor(f, i);
        cr_assert_str_eq(v->name, t.e[i].name);
        cr_assert_eq(v->dtype, t.e[i].dtype);
        cr_assert_eq(v->ndim, t.e[i].ndim);
        cr_assert(!memcmp(v->dims, t.e[i].dims, sizeof v->dims));
        cr_assert_eq(v->size, t.e[i].size);
        cr_assert(!memcmp(v->data, t.data[i], v->size), "%s bytes", v->name);
        cr_assert_eq((uintptr_t)v->data % QRR_ALIGN, 0);
        cr_assert_eq(qrr_file_find(f, t.e[i].name), v);
    }
    cr_assert_null(qrr_file_find(f, "model.layers.2.input_layernorm.weight"));
    cr_assert_null(qrr_file_tensor(f, t.n));
    qrr_file_free(f);
    free(im.b);
    free(ref.b);
    model_free(&t);
}

Test(format, roundtrip_f32) { roundtrip(QRR_DTYPE_F32, 0); }
Test(format, roundtrip_bf16) { roundtrip(QRR_DTYPE_BF16, 0); }
Test(format, roundtrip_f16) { roundtrip(QRR_DTYPE_F16, 0); }
Test(format, roundtrip_i8_per_channel) { roundtrip(QRR_DTYPE_I8, 0); }
Test(format, roundtrip_i8_per_block) { roundtrip(QRR_DTYPE_I8, 8); }

Test(format, single_logit_head)
{
    tmodel t;
    model_init(&t, QRR_DTYPE_F32, 0);
    t.meta.fixed.head_kind = QRR_HEAD_SINGLE_LOGIT;
    t.meta.fixed.yes_id = t.meta.fixed.no_id = QRR_NO_TOKEN;
    image ok = assemble(&t);
    expect_load(&ok, 0, QRR_ERR_SHAPE); /* head.weight is still [2, H] */
    model_reshape(&t, model_find(&t, "head.weight"), QRR_DTYPE_F32, 2, 1, 24);
    image im = assemble(&t);
    expect_load(&im, 0, QRR_OK);
    free(ok.b);
    free(im.b);
    model_free(&t);
}

/* ---- metadata and schema units ---------------------------------------------------- */

Test(format, meta_encode_decode)
{
    qrr_meta m, back;
    meta_init(&m, QRR_DTYPE_I8, 8);
    uint8_t *raw;
    size_t len;
    qrr_diag d;
    cr_assert_eq(qrr_meta_encode(&m, &raw, &len, &d), QRR_OK, "%s", d.msg);
    size_t want = sizeof(qrr_meta_disk);
    for (int i = 0; i < QRR_META_STRING_COUNT; i++) want += 4 + m.strings[i].len;
    cr_assert_eq(len, want);
    cr_assert_eq(qrr_meta_decode(raw, len, &back, &d), QRR_OK, "%s", d.msg);
    cr_assert(!memcmp(&back.fixed, &m.fixed, sizeof m.fixed));
    for (int i = 0; i < QRR_META_STRING_COUNT; i++)
        cr_assert(back.strings[i].len == m.strings[i].len &&
                  !memcmp(back.strings[i].ptr, m.strings[i].ptr, m.strings[i].len));
    /* every proper prefix and one extra byte are refused */
    for (size_t cut = 0; cut < len; cut++)
        cr_assert_eq(qrr_meta_decode(raw, cut, &back, &d), QRR_ERR_BAD_META, "cut %zu", cut);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, raw, len);
    longer[len] = 0;
    cr_assert_eq(qrr_meta_decode(longer, len + 1, &back, &d), QRR_ERR_BAD_META);
    free(longer);
    free(raw);
}

Test(format, meta_validate_rules)
{
    qrr_meta m;
    qrr_diag d;
#define CHECK(want, stmt)                                                                  \
    do {                                                                                   \
        meta_init(&m, QRR_DTYPE_F32, 0);                                                   \
        stmt;                                                                              \
        int rc_ = qrr_meta_validate(&m, &d);                                               \
        cr_assert_eq(rc_, want, "%s: expected %s, got %s (%s)", #stmt, qrr_status_str(want), \
                     qrr_status_str(rc_), d.msg);                                          \
    } while (0)
    CHECK(QRR_OK, (void)0);
    CHECK(QRR_ERR_BAD_META, m.fixed.arch = QRR_ARCH_COUNT);
    CHECK(QRR_ERR_BAD_LABEL, m.fixed.head_kind = QRR_HEAD_COUNT);
    CHECK(QRR_ERR_BAD_META, m.fixed.label_source = 7);
    CHECK(QRR_ERR_BAD_META, m.fixed.weight_dtype = QRR_DTYPE_COUNT);
    CHECK(QRR_ERR_BAD_META, m.fixed.n_layers = 0);
    CHECK(QRR_ERR_BAD_META, m.fixed.n_layers = QRR_MAX_LAYERS + 1);
    CHECK(QRR_ERR_BAD_META, m.fixed.hidden = 0);
    CHECK(QRR_ERR_BAD_META, m.fixed.n_kv_heads = 3);
    CHECK(QRR_ERR_BAD_META, m.fixed.n_kv_heads = 0);
    CHECK(QRR_ERR_BAD_META, m.fixed.head_dim = 15);
    CHECK(QRR_ERR_BAD_META, m.fixed.vocab_size = QRR_MAX_VOCAB + 1);
    CHECK(QRR_ERR_BAD_META, m.fixed.intermediate = 0);
    CHECK(QRR_ERR_BAD_META, m.fixed.max_length = 0);
    CHECK(QRR_ERR_BAD_META, m.fixed.max_length = m.fixed.max_position + 1);
    CHECK(QRR_OK, m.fixed.max_length = m.fixed.max_position);
    CHECK(QRR_ERR_BAD_META, m.fixed.tied = 2);
    CHECK(QRR_ERR_BAD_META, m.fixed.rms_eps = NAN);
    CHECK(QRR_ERR_BAD_META, m.fixed.rms_eps = 0);
    CHECK(QRR_ERR_BAD_META, m.fixed.rope_theta = INFINITY);
    CHECK(QRR_ERR_BAD_META, m.fixed.rope_theta = -1);
    CHECK(QRR_ERR_BAD_META, m.fixed.quant_block = 8);  /* without int8 weights */
    CHECK(QRR_ERR_BAD_META, (m.fixed.weight_dtype = QRR_DTYPE_I8, m.fixed.quant_block = 7));
    CHECK(QRR_ERR_BAD_META, (m.fixed.weight_dtype = QRR_DTYPE_I8, m.fixed.quant_block = 16));
    CHECK(QRR_OK, (m.fixed.weight_dtype = QRR_DTYPE_I8, m.fixed.quant_block = 8));
    CHECK(QRR_ERR_BAD_LABEL, m.fixed.yes_id = 67);
    CHECK(QRR_ERR_BAD_LABEL, m.fixed.no_id = QRR_NO_TOKEN);
    CHECK(QRR_ERR_BAD_LABEL, m.fixed.no_id = m.fixed.yes_id);
    CHECK(QRR_ERR_BAD_LABEL, m.fixed.head_kind = QRR_HEAD_SINGLE_LOGIT);
    CHECK(QRR_OK, (m.fixed.head_kind = QRR_HEAD_SINGLE_LOGIT,
                   m.fixed.yes_id = m.fixed.no_id = QRR_NO_TOKEN));
    CHECK(QRR_ERR_PADDING, m.fixed.reserved0 = 1);
    CHECK(QRR_ERR_PADDING, m.fixed.reserved[31] = 1);
    CHECK(QRR_ERR_BAD_META, m.strings[QRR_STR_PREFIX].ptr = "bad \xff utf-8");
    CHECK(QRR_ERR_BAD_META, (m.strings[QRR_STR_SUFFIX].ptr = "a\0b",
                             m.strings[QRR_STR_SUFFIX].len = 3));
    CHECK(QRR_ERR_BAD_META, m.strings[QRR_STR_PROVENANCE].len = QRR_MAX_STRING_BYTES + 1);
#undef CHECK
}

Test(format, schema_list)
{
    qrr_meta m;
    qrr_schema_entry *sc;
    size_t n;
    qrr_diag d;
    meta_init(&m, QRR_DTYPE_F16, 0);
    cr_assert_eq(qrr_schema_build(&m, &sc, &n, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(n, 1 + 2 * 11 + 2);
    cr_assert_str_eq(sc[0].name, "model.embed_tokens.weight");
    cr_assert(sc[0].dims[0] == 67 && sc[0].dims[1] == 24 && sc[0].dtype == QRR_DTYPE_F16);
    cr_assert_str_eq(sc[1].name, "model.layers.0.input_layernorm.weight");
    cr_assert_str_eq(sc[2].name, "model.layers.0.self_attn.q_proj.weight");
    cr_assert(sc[2].dims[0] == 32 && sc[2].dims[1] == 24);
    cr_assert_str_eq(sc[5].name, "model.layers.0.self_attn.o_proj.weight");
    cr_assert(sc[5].dims[0] == 24 && sc[5].dims[1] == 32);
    cr_assert_str_eq(sc[n - 2].name, "model.norm.weight");
    cr_assert_str_eq(sc[n - 1].name, "head.weight");
    cr_assert(sc[n - 1].dims[0] == 2 && sc[n - 1].dtype == QRR_DTYPE_F32 &&
              sc[n - 1].role == QRR_ROLE_HEAD);
    free(sc);

    /* int8 per block at the largest layer count: every name fits with its NUL */
    meta_init(&m, QRR_DTYPE_I8, 8);
    m.fixed.n_layers = QRR_MAX_LAYERS;
    cr_assert_eq(qrr_schema_build(&m, &sc, &n, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(n, 2 + (size_t)QRR_MAX_LAYERS * 18 + 2);
    cr_assert_str_eq(sc[1].name, "model.embed_tokens.weight_scale");
    cr_assert(sc[1].ndim == 2 && sc[1].dims[0] == 67 && sc[1].dims[1] == 3 &&
              sc[1].role == QRR_ROLE_SCALE && sc[1].dtype == QRR_DTYPE_F32);
    const qrr_schema_entry *last_scale = &sc[n - 3];
    cr_assert_str_eq(last_scale->name, "model.layers.511.mlp.down_proj.weight_scale");
    cr_assert(last_scale->dims[0] == 24 && last_scale->dims[1] == 5);
    for (size_t i = 0; i < n; i++)
        cr_assert(strnlen(sc[i].name, QRR_TENSOR_NAME_MAX) < QRR_TENSOR_NAME_MAX - 8);
    free(sc);
}

/* ---- header ----------------------------------------------------------------------- */

Test(format, empty_and_truncated)
{
    tmodel t;
    image im = base_image(&t);
    image empty = {NULL, 0};
    expect_load(&empty, 0, QRR_ERR_TRUNCATED);
    size_t full = im.len;
    size_t cuts[] = {1, 255, 256, 257, 4096, full - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
        im.len = cuts[i];
        expect_load(&im, 0, QRR_ERR_TRUNCATED);
    }
    /* every prefix of the file */
    qrr_diag d;
    for (size_t len = 0; len < full; len++) {
        im.len = len;
        cr_assert_eq(load(&im, 0, &d), QRR_ERR_TRUNCATED, "length %zu", len);
    }
    free(im.b);
    model_free(&t);
}

Test(format, bad_magic)
{
    tmodel t;
    image im = base_image(&t);
    im.b[3] = 'x';
    reseal(&im);
    expect_load(&im, 0, QRR_ERR_BAD_MAGIC);
    free(im.b);
    model_free(&t);
}

Test(format, future_versions)
{
    tmodel t;
    image im = base_image(&t);
    hdr(&im)->version = QRR_FORMAT_VERSION + 1;
    reseal(&im);
    expect_load(&im, 0, QRR_ERR_VERSION);
    hdr(&im)->version = QRR_FORMAT_VERSION;
    hdr(&im)->quant_version = QRR_QUANT_VERSION + 1;
    reseal(&im);
    expect_load(&im, 0, QRR_ERR_VERSION);
    hdr(&im)->quant_version = 0;
    reseal(&im);
    expect_load(&im, 0, QRR_ERR_VERSION);
    free(im.b);
    model_free(&t);
}

Test(format, header_checksum)
{
    tmodel t;
    image im = base_image(&t);
    hdr(&im)->sections[0].raw_size ^= 1; /* not resealed */
    expect_load(&im, 0, QRR_ERR_CHECKSUM);
    expect_load(&im, QRR_LOAD_SKIP_WEIGHT_CHECKSUMS, QRR_ERR_CHECKSUM);
    free(im.b);
    model_free(&t);
}

Test(format, trailing_bytes)
{
    tmodel t;
    model_init(&t, QRR_DTYPE_F32, 0);
    image ref = assemble(&t);
    image im = image_alloc(ref.len + 1);
    memcpy(im.b, ref.b, ref.len);
    expect_load(&im, 0, QRR_ERR_TRAILING);
    free(im.b);
    free(ref.b);
    model_free(&t);
}

Test(format, header_reserved_and_flags)
{
    tmodel t;
    image im = base_image(&t);
    hdr(&im)->flags = 1;
    reseal(&im);
    expect_load(&im, 0, QRR_ERR_PADDING);
    hdr(&im)->flags = 0;
    hdr(&im)->reserved[55] = 0x80;
    reseal(&im);
    expect_load(&im, 0, QRR_ERR_PADDING);
    free(im.b);
    model_free(&t);
}

/* ---- sections --------------------------------------------------------------------- */

Test(format, section_table)
{
    tmodel t;
    image im = base_image(&t);
    image orig = image_alloc(im.len);
    memcpy(orig.b, im.b, im.len);
#define MUTATE(want, stmt)                                                              \
    do {                                                                                \
        memcpy(im.b, orig.b, im.len);                                                   \
        stmt;                                                                           \
        reseal(&im);                                                                    \
        qrr_diag d_;                                                                    \
        int rc_ = load(&im, 0, &d_);                                                    \
        cr_assert_eq(rc_, want, "%s: expected %s, got %s (%s)", #stmt,                  \
                     qrr_status_str(want), qrr_status_str(rc_), d_.msg);                \
    } while (0)
    qrr_section_disk *s = hdr(&im)->sections;
    MUTATE(QRR_ERR_BAD_SECTION, hdr(&im)->section_count = 5);
    MUTATE(QRR_ERR_BAD_SECTION, hdr(&im)->section_count = 0);
    MUTATE(QRR_ERR_BAD_SECTION, s[1].kind = 2);
    MUTATE(QRR_ERR_BAD_SECTION, s[0].compression = QRR_COMPRESSION_NONE);
    MUTATE(QRR_ERR_BAD_SECTION, s[2].compression = QRR_COMPRESSION_ZLIB);
    MUTATE(QRR_ERR_BAD_SECTION, s[3].compression = 9);
    MUTATE(QRR_ERR_ALIGNMENT, s[1].offset += 8);
    MUTATE(QRR_ERR_ALIGNMENT, s[3].offset += 64);
    /* META must start right after the header */
    MUTATE(QRR_ERR_BAD_SECTION, s[0].offset += 64);
    /* overlapping sections: TOKENIZER moved back onto META */
    MUTATE(QRR_ERR_BAD_SECTION, s[1].offset -= 64);
    /* sizes: past the end, wrapping, absurd */
    MUTATE(QRR_ERR_BAD_SECTION, s[3].size += 1);
    MUTATE(QRR_ERR_BAD_SECTION, s[1].size = UINT64_MAX - 100);
    MUTATE(QRR_ERR_BAD_SECTION, s[2].size = s[2].raw_size = 65537ull * 128);
    MUTATE(QRR_ERR_BAD_SECTION, (s[3].offset = 1ull << 63, s[3].size = 1ull << 63));
    MUTATE(QRR_ERR_BAD_SECTION, s[0].raw_size = QRR_MAX_META_BYTES + 1);
    MUTATE(QRR_ERR_BAD_SECTION, s[0].raw_size = 0);
    MUTATE(QRR_ERR_BAD_SECTION, s[0].raw_size = 100); /* less than the fixed part */
    MUTATE(QRR_ERR_BAD_SECTION, s[1].raw_size = QRR_MAX_TOKENIZER_BYTES + 1);
    MUTATE(QRR_ERR_BAD_SECTION, s[1].raw_size = s[1].size * 2000); /* beyond deflate */
    MUTATE(QRR_ERR_BAD_SECTION, s[2].raw_size += 128);
    MUTATE(QRR_ERR_BAD_SECTION, (s[2].size -= 1, s[2].raw_size -= 1));
    MUTATE(QRR_ERR_BAD_SECTION, s[3].checksum = 1);
    /* DATA ending before the file does */
    MUTATE(QRR_ERR_BAD_SECTION, (s[3].size -= 64, s[3].raw_size -= 64));
    /* a table one entry shorter: the dropped entry's bytes are now padding before DATA
     * (not zero); once zeroed, the last tensor's bytes are an unexplained hole */
    MUTATE(QRR_ERR_PADDING, (s[2].size -= 128, s[2].raw_size -= 128));
    MUTATE(QRR_ERR_HOLE, (s[2].size -= 128, s[2].raw_size -= 128,
                                    memset(im.b + s[2].offset + s[2].size, 0, 128)));
#undef MUTATE
    free(orig.b);
    free(im.b);
    model_free(&t);
}

Test(format, section_padding_not_zero)
{
    tmodel t;
    image im = base_image(&t);
    qrr_section_disk *s = hdr(&im)->sections;
    int found = 0;
    for (int k = 0; k < QRR_SECTION_DATA; k++) {
        uint64_t end = s[k].offset + s[k].size;
        if (end < s[k + 1].offset) {
            im.b[s[k + 1].offset - 1] = 1;
            expect_load(&im, 0, QRR_ERR_PADDING);
            im.b[s[k + 1].offset - 1] = 0;
            expect_load(&im, 0, QRR_OK);
            found++;
        }
    }
    cr_assert(found >= 1, "the test image has padding between sections");
    free(im.b);
    model_free(&t);
}

Test(format, section_checksums)
{
    tmodel t;
    image im = base_image(&t);
    for (int k = 0; k < QRR_SECTION_DATA; k++) {
        uint8_t *p = im.b + sec(&im, k)->offset + sec(&im, k)->size / 2;
        *p ^= 0x10;
        expect_load(&im, 0, QRR_ERR_CHECKSUM);
        expect_load(&im, QRR_LOAD_SKIP_WEIGHT_CHECKSUMS, QRR_ERR_CHECKSUM);
        *p ^= 0x10;
    }
    expect_load(&im, 0, QRR_OK);
    free(im.b);
    model_free(&t);
}

Test(format, decompress_errors)
{
    tmodel t;
    image im = base_image(&t);
    /* a damaged zlib stream (resealed so the checksum passes) */
    uint8_t *p = im.b + sec(&im, QRR_SECTION_META)->offset + 2;
    *p ^= 0xFF;
    reseal(&im);
    expect_load(&im, 0, QRR_ERR_DECOMPRESS);
    *p ^= 0xFF;
    /* raw_size that disagrees with the stream, both ways */
    sec(&im, QRR_SECTION_TOKENIZER)->raw_size += 1;
    reseal(&im);
    expect_load(&im, 0, QRR_ERR_DECOMPRESS);
    sec(&im, QRR_SECTION_TOKENIZER)->raw_size -= 2;
    reseal(&im);
    expect_load(&im, 0, QRR_ERR_DECOMPRESS);
    sec(&im, QRR_SECTION_TOKENIZER)->raw_size += 1;
    reseal(&im);
    expect_load(&im, 0, QRR_OK);
    free(im.b);
    model_free(&t);
}

/* ---- META contents ---------------------------------------------------------------- */

/* Encode t's metadata, let mut() tamper the raw bytes, assemble, expect a status. */
static void meta_case(void (*mut)(uint8_t *raw, size_t *len), int want, const char *what)
{
    tmodel t;
    model_init(&t, QRR_DTYPE_F32, 0);
    uint8_t *raw;
    size_t len;
    qrr_diag d;
    cr_assert_eq(qrr_meta_encode(&t.meta, &raw, &len, &d), QRR_OK);
    uint8_t *big = calloc(1, len + 16);
    memcpy(big, raw, len);
    mut(big, &len);
    image im = assemble_raw(&t, big, len);
    int rc = load(&im, 0, &d);
    cr_assert_eq(rc, want, "%s: expected %s, got %s (%s)", what, qrr_status_str(want),
                 qrr_status_str(rc), d.msg);
    free(im.b);
    free(big);
    free(raw);
    model_free(&t);
}

static qrr_meta_disk *fx(uint8_t *raw) { return (qrr_meta_disk *)raw; }
static void set_u32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static uint32_t get_u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

static void m_strlen_huge(uint8_t *r, size_t *l) { (void)l; set_u32(r + 120, 0xFFFFFFF0u); }
static void m_strlen_past(uint8_t *r, size_t *l)
{
    /* the last string claims one byte more than remains */
    size_t pos = 120;
    for (int i = 0; i < QRR_META_STRING_COUNT - 1; i++) pos += 4 + get_u32(r + pos);
    set_u32(r + pos, get_u32(r + pos) + 1);
    (void)l;
}
static void m_strlen_cap(uint8_t *r, size_t *l) { (void)l; set_u32(r + 120, QRR_MAX_STRING_BYTES + 1); }
static void m_trailing(uint8_t *r, size_t *l) { (void)r; *l += 1; }
static void m_cut(uint8_t *r, size_t *l) { (void)r; *l -= 1; }
static void m_arch(uint8_t *r, size_t *l) { (void)l; fx(r)->arch = 3; }
static void m_dtype(uint8_t *r, size_t *l) { (void)l; fx(r)->weight_dtype = 99; }
static void m_heads(uint8_t *r, size_t *l) { (void)l; fx(r)->n_kv_heads = 3; }
static void m_layers(uint8_t *r, size_t *l) { (void)l; fx(r)->n_layers = 0xFFFFFFFFu; }
static void m_eps(uint8_t *r, size_t *l) { (void)l; fx(r)->rms_eps = NAN; }
static void m_yes(uint8_t *r, size_t *l) { (void)l; fx(r)->yes_id = fx(r)->vocab_size; }
static void m_no(uint8_t *r, size_t *l) { (void)l; fx(r)->no_id = 0x7FFFFFFF; }
static void m_head(uint8_t *r, size_t *l) { (void)l; fx(r)->head_kind = 2; }
static void m_reserved(uint8_t *r, size_t *l) { (void)l; fx(r)->reserved[0] = 1; }
static void m_utf8(uint8_t *r, size_t *l) { (void)l; r[120 + 4] = 0xC0; }
static void m_block(uint8_t *r, size_t *l) { (void)l; fx(r)->quant_block = 8; }

Test(format, meta_contents)
{
    meta_case(m_strlen_huge, QRR_ERR_BAD_META, "string length 0xFFFFFFF0");
    meta_case(m_strlen_past, QRR_ERR_BAD_META, "string running past the end");
    meta_case(m_strlen_cap, QRR_ERR_BAD_META, "string over the cap");
    meta_case(m_trailing, QRR_ERR_BAD_META, "a byte after the last string");
    meta_case(m_cut, QRR_ERR_BAD_META, "last string cut short");
    meta_case(m_arch, QRR_ERR_BAD_META, "unknown architecture");
    meta_case(m_dtype, QRR_ERR_BAD_META, "unknown weight dtype");
    meta_case(m_heads, QRR_ERR_BAD_META, "kv heads not dividing heads");
    meta_case(m_layers, QRR_ERR_BAD_META, "absurd layer count");
    meta_case(m_eps, QRR_ERR_BAD_META, "NaN rms_eps");
    meta_case(m_yes, QRR_ERR_BAD_LABEL, "yes id = vocab");
    meta_case(m_no, QRR_ERR_BAD_LABEL, "no id far outside the vocab");
    meta_case(m_head, QRR_ERR_BAD_LABEL, "unknown head kind");
    meta_case(m_reserved, QRR_ERR_PADDING, "reserved metadata byte");
    meta_case(m_utf8, QRR_ERR_BAD_META, "invalid UTF-8 in the prefix");
    meta_case(m_block, QRR_ERR_BAD_META, "quant_block on float weights");
}

/* ---- tensor entries --------------------------------------------------------------- */

Test(format, tensor_entries)
{
    tmodel t;
    image im = base_image(&t);
    image orig = image_alloc(im.len);
    memcpy(orig.b, im.b, im.len);
    size_t n = n_entries(&im);
    cr_assert_eq(n, t.n);
    size_t q = model_find(&t, "model.layers.1.self_attn.q_proj.weight");
#define MUTATE(want, stmt)                                                              \
    do {                                                                                \
        memcpy(im.b, orig.b, im.len);                                                   \
        qrr_tensor_disk *e = entry(&im, q);                                             \
        (void)e;                                                                        \
        stmt;                                                                           \
        reseal(&im);                                                                    \
        qrr_diag d_;                                                                    \
        int rc_ = load(&im, 0, &d_);                                                    \
        cr_assert_eq(rc_, want, "%s: expected %s, got %s (%s)", #stmt,                  \
                     qrr_status_str(want), qrr_status_str(rc_), d_.msg);                \
    } while (0)
    MUTATE(QRR_OK, (void)0);
    /* names */
    MUTATE(QRR_ERR_BAD_TENSOR, memset(e->name, 'a', sizeof e->name));
    MUTATE(QRR_ERR_BAD_TENSOR, memset(e->name, 0, sizeof e->name));
    MUTATE(QRR_ERR_BAD_TENSOR, e->name[63] = 'x');   /* after the NUL */
    MUTATE(QRR_ERR_BAD_TENSOR, e->name[50] = 1);     /* after the NUL */
    MUTATE(QRR_ERR_BAD_TENSOR, e->name[3] = ' ');
    MUTATE(QRR_ERR_BAD_TENSOR, e->name[3] = '\x7f');
    MUTATE(QRR_ERR_BAD_TENSOR, e->name[3] = '\xc3');
    /* dtype, dims, size */
    MUTATE(QRR_ERR_BAD_TENSOR, e->dtype = QRR_DTYPE_COUNT);
    MUTATE(QRR_ERR_BAD_TENSOR, e->dtype = 0xFFFFFFFFu);
    MUTATE(QRR_ERR_BAD_TENSOR, e->ndim = 0);
    MUTATE(QRR_ERR_BAD_TENSOR, e->ndim = 5);
    MUTATE(QRR_ERR_BAD_TENSOR, e->dims[3] = 1);      /* unused dim not zero */
    MUTATE(QRR_ERR_BAD_TENSOR, e->dims[1] = 0);      /* zero dim */
    MUTATE(QRR_ERR_BAD_TENSOR, (e->dims[0] = 1ull << 40, e->dims[1] = 1ull << 40));
    MUTATE(QRR_ERR_BAD_TENSOR, (e->ndim = 4, e->dims[2] = 1ull << 31, e->dims[3] = 1ull << 31));
    MUTATE(QRR_ERR_BAD_TENSOR, e->size += 4);
    MUTATE(QRR_ERR_BAD_TENSOR, e->dtype = QRR_DTYPE_F16); /* size now twice dims * 2 */
    /* offsets */
    MUTATE(QRR_ERR_ALIGNMENT, e->offset += 4);
    MUTATE(QRR_ERR_ALIGNMENT, e->offset = UINT64_MAX);
    MUTATE(QRR_ERR_TENSOR_BOUNDS, e->offset = hdr(&im)->file_size);
    MUTATE(QRR_ERR_TENSOR_BOUNDS, e->offset = 1ull << 62);
    MUTATE(QRR_ERR_TENSOR_BOUNDS, e->offset = sec(&im, QRR_SECTION_DATA)->offset - 64);
    MUTATE(QRR_ERR_TENSOR_BOUNDS, e->offset = 0);
    /* offset + size wrapping: a consistent 1-D int8 tensor of nearly 2^64 bytes */
    MUTATE(QRR_ERR_TENSOR_BOUNDS, (e->dtype = QRR_DTYPE_I8, e->ndim = 1, e->dims[1] = 0,
                                   e->dims[0] = e->size = UINT64_MAX - 63));
    /* overlapping: two entries at one offset; an entry out of order */
    MUTATE(QRR_ERR_OVERLAP, e->offset = entry(&im, q - 1)->offset);
    MUTATE(QRR_ERR_OVERLAP, e->offset -= 64);
    /* a table out of offset order: the entry that jumps ahead leaves a hole */
    MUTATE(QRR_ERR_HOLE, swap_entries(&im, q, q + 1));
    /* duplicate names */
    MUTATE(QRR_ERR_DUPLICATE, memcpy(e->name, entry(&im, 0)->name, 64));
    MUTATE(QRR_ERR_DUPLICATE, memcpy(entry(&im, n - 1)->name, entry(&im, 1)->name, 64));
    /* a renamed tensor: the schema's name is missing (checked before unexpected ones);
     * a shape that disagrees */
    MUTATE(QRR_ERR_MISSING_TENSOR, e->name[7] = 'X');
    MUTATE(QRR_ERR_SHAPE, (e->dims[0] = 16, e->dims[1] = 48));
#undef MUTATE
    free(orig.b);
    free(im.b);
    model_free(&t);
}

Test(format, holes)
{
    tmodel t;
    model_init(&t, QRR_DTYPE_F32, 0);
    size_t k = model_find(&t, "model.layers.0.mlp.up_proj.weight");
    t.gap_before[k] = 64;
    image im = assemble(&t);
    expect_load(&im, 0, QRR_ERR_HOLE);
    free(im.b);

    t.gap_before[k] = 0;
    t.gap_before[0] = 4096; /* between DATA's start and the first tensor */
    im = assemble(&t);
    expect_load(&im, 0, QRR_ERR_HOLE);
    free(im.b);
    t.gap_before[0] = 0;

    /* after the last tensor: 64 zero bytes that DATA and the file claim */
    image ref = assemble(&t);
    im = image_alloc(ref.len + 64);
    memcpy(im.b, ref.b, ref.len);
    hdr(&im)->file_size += 64;
    sec(&im, QRR_SECTION_DATA)->size += 64;
    sec(&im, QRR_SECTION_DATA)->raw_size += 64;
    reseal(&im);
    expect_load(&im, 0, QRR_ERR_HOLE);
    free(im.b);
    free(ref.b);
    model_free(&t);
}

Test(format, tensor_padding_not_zero)
{
    tmodel t;
    image im = base_image(&t); /* H = 24: many tensors end off a 64-byte boundary */
    size_t n = n_entries(&im), found = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        uint64_t end = entry(&im, i)->offset + entry(&im, i)->size;
        if (end < entry(&im, i + 1)->offset) {
            im.b[end] = 0x01;
            expect_load(&im, 0, QRR_ERR_PADDING);
            im.b[end] = 0;
            found++;
        }
    }
    cr_assert(found >= 3, "the test image has padding between tensors (%zu)", found);
    expect_load(&im, 0, QRR_OK);
    free(im.b);
    model_free(&t);
}

/* A file of 270 MB is hashed on several threads (one per 64 MiB, at most one per CPU):
 * damage anywhere is still found, and the first damaged tensor in table order is named
 * whatever the threads' timing. */
Test(format, tensor_checksums_on_threads)
{
    vocab_override = 2800000; /* embedding [2.8M, 24] f32 = 269 MB */
    tmodel t;
    image im = base_image(&t);
    vocab_override = 0;
    size_t q = model_find(&t, "model.layers.0.self_attn.q_proj.weight");
    size_t head = model_find(&t, "head.weight");
    size_t emb = model_find(&t, "model.embed_tokens.weight");
    expect_load(&im, 0, QRR_OK);
    for (int round = 0; round < 3; round++) {
        uint8_t *a = im.b + entry(&im, head)->offset + 3, *b = im.b + entry(&im, q)->offset + 9;
        uint8_t *c = im.b + entry(&im, emb)->offset + entry(&im, emb)->size - 1;
        *a ^= 1, *b ^= 1, *c ^= 1;
        qrr_diag d;
        cr_assert_eq(load(&im, 0, &d), QRR_ERR_CHECKSUM);
        cr_assert(strstr(d.msg, "model.embed_tokens.weight") != NULL,
                  "the first damaged tensor must be named: %s", d.msg);
        *c ^= 1;
        cr_assert_eq(load(&im, 0, &d), QRR_ERR_CHECKSUM);
        cr_assert(strstr(d.msg, "model.layers.0.self_attn.q_proj.weight") != NULL, "%s", d.msg);
        *a ^= 1, *b ^= 1;
    }
    expect_load(&im, 0, QRR_OK);
    free(im.b);
    model_free(&t);
}

Test(format, tensor_checksums)
{
    tmodel t;
    image im = base_image(&t);
    size_t w = model_find(&t, "model.layers.1.mlp.down_proj.weight");
    size_t nrm = model_find(&t, "model.layers.1.post_attention_layernorm.weight");
    size_t head = model_find(&t, "head.weight");
    uint8_t *p = im.b + entry(&im, w)->offset + 77;
    *p ^= 4;
    expect_load(&im, 0, QRR_ERR_CHECKSUM);
    expect_load(&im, QRR_LOAD_SKIP_WEIGHT_CHECKSUMS, QRR_OK); /* only the weight one skipped */
    reseal_tensor(&im, w);
    expect_load(&im, 0, QRR_OK); /* the checksum alone caught it */
    *p ^= 4;
    reseal_tensor(&im, w);
    for (size_t i = 0; i < 2; i++) {
        uint8_t *q = im.b + entry(&im, i == 0 ? nrm : head)->offset + 5;
        *q ^= 1;
        expect_load(&im, 0, QRR_ERR_CHECKSUM);
        expect_load(&im, QRR_LOAD_SKIP_WEIGHT_CHECKSUMS, QRR_ERR_CHECKSUM);
        *q ^= 1;
    }
    /* a wrong checksum field (the table resealed) */
    entry(&im, w)->checksum ^= 1;
    reseal(&im);
    expect_load(&im, 0, QRR_ERR_CHECKSUM);
    expect_load(&im, QRR_LOAD_SKIP_WEIGHT_CHECKSUMS, QRR_OK);
    entry(&im, w)->checksum ^= 1;
    reseal(&im);

    double secs = -1;
    qrr_file *f;
    qrr_diag d;
    cr_assert_eq(qrr_file_load(im.b, im.len, 0, &f, &secs, &d), QRR_OK, "%s", d.msg);
    cr_assert(secs >= 0.0 && secs < 10.0, "verify time %g", secs);
    qrr_file_free(f);
    cr_assert_eq(qrr_file_load(im.b, im.len, 1u << 7, &f, NULL, &d), QRR_ERR_INVALID_ARG);
    free(im.b);
    model_free(&t);
}

/* ---- schema against the file ------------------------------------------------------ */

Test(format, schema_shape)
{
    tmodel t;
    model_init(&t, QRR_DTYPE_F32, 0);
    size_t q = model_find(&t, "model.layers.1.self_attn.q_proj.weight");
    model_reshape(&t, q, QRR_DTYPE_F32, 2, 32, 16);
    image im = assemble(&t);
    qrr_diag d;
    cr_assert_eq(load(&im, 0, &d), QRR_ERR_SHAPE);
    cr_assert_str_eq(d.msg, "model.layers.1.self_attn.q_proj.weight: shape [32, 16], "
                            "expected [32, 24]");
    free(im.b);
    model_reshape(&t, q, QRR_DTYPE_F32, 1, 32 * 24, 0);
    im = assemble(&t);
    cr_assert_eq(load(&im, 0, &d), QRR_ERR_SHAPE);
    cr_assert(strstr(d.msg, "shape [768], expected [32, 24]"), "%s", d.msg);
    free(im.b);
    model_reshape(&t, q, QRR_DTYPE_F16, 2, 32, 24);
    im = assemble(&t);
    cr_assert_eq(load(&im, 0, &d), QRR_ERR_SHAPE);
    cr_assert(strstr(d.msg, "dtype f16, expected f32"), "%s", d.msg);
    free(im.b);
    model_free(&t);

    /* norms stay F32 in a half-precision file */
    model_init(&t, QRR_DTYPE_F16, 0);
    size_t nrm = model_find(&t, "model.norm.weight");
    model_reshape(&t, nrm, QRR_DTYPE_F16, 1, 24, 0);
    im = assemble(&t);
    expect_load(&im, 0, QRR_ERR_SHAPE);
    free(im.b);
    model_free(&t);
}

Test(format, schema_missing_and_unexpected)
{
    tmodel t;
    model_init(&t, QRR_DTYPE_F32, 0);
    qrr_diag d;
    /* the metadata claims a third layer the file lacks */
    t.meta.fixed.n_layers = 3;
    image im = assemble(&t);
    cr_assert_eq(load(&im, 0, &d), QRR_ERR_MISSING_TENSOR, "%s", d.msg);
    cr_assert(strstr(d.msg, "model.layers.2.input_layernorm.weight"), "%s", d.msg);
    free(im.b);
    /* the metadata claims one layer: layer 1's tensors are unexpected */
    t.meta.fixed.n_layers = 1;
    im = assemble(&t);
    cr_assert_eq(load(&im, 0, &d), QRR_ERR_UNEXPECTED_TENSOR, "%s", d.msg);
    cr_assert(strstr(d.msg, "model.layers.1."), "%s", d.msg);
    free(im.b);
    t.meta.fixed.n_layers = 2;

    /* one tensor dropped */
    tmodel u = t;
    size_t up_i = model_find(&t, "model.layers.1.mlp.up_proj.weight");
    memmove(&u.e[up_i], &u.e[up_i + 1], (u.n - up_i - 1) * sizeof u.e[0]);
    memmove(&u.data[up_i], &u.data[up_i + 1], (u.n - up_i - 1) * sizeof u.data[0]);
    u.n--;
    im = assemble(&u);
    cr_assert_eq(load(&im, 0, &d), QRR_ERR_MISSING_TENSOR, "%s", d.msg);
    cr_assert(strstr(d.msg, "model.layers.1.mlp.up_proj.weight"), "%s", d.msg);
    free(im.b);

    /* one tensor added */
    u = t;
    u.n++;
    memset(&u.e[u.n - 1], 0, sizeof u.e[0]);
    snprintf(u.e[u.n - 1].name, 64, "lm_head.weight");
    u.e[u.n - 1].dtype = QRR_DTYPE_F32;
    u.e[u.n - 1].ndim = 1;
    u.e[u.n - 1].dims[0] = 16;
    u.e[u.n - 1].size = 64;
    u.data[u.n - 1] = calloc(1, 64);
    im = assemble(&u);
    cr_assert_eq(load(&im, 0, &d), QRR_ERR_UNEXPECTED_TENSOR, "%s", d.msg);
    cr_assert(strstr(d.msg, "lm_head.weight"), "%s", d.msg);
    free(im.b);
    free(u.data[u.n - 1]);
    model_free(&t);

    /* an int8 file without one scale */
    model_init(&t, QRR_DTYPE_I8, 0);
    u = t;
    size_t sc = model_find(&t, "model.layers.0.self_attn.k_proj.weight_scale");
    memmove(&u.e[sc], &u.e[sc + 1], (u.n - sc - 1) * sizeof u.e[0]);
    memmove(&u.data[sc], &u.data[sc + 1], (u.n - sc - 1) * sizeof u.data[0]);
    u.n--;
    im = assemble(&u);
    cr_assert_eq(load(&im, 0, &d), QRR_ERR_MISSING_TENSOR, "%s", d.msg);
    cr_assert(strstr(d.msg, "k_proj.weight_scale"), "%s", d.msg);
    free(im.b);
    model_free(&t);
}

Test(format, scales)
{
    float bad[] = {NAN, 0.0f, -0.0f, INFINITY, -INFINITY};
    for (int quant_block = 0; quant_block <= 8; quant_block += 8)
        for (size_t b = 0; b < sizeof bad / sizeof *bad; b++) {
            tmodel t;
            model_init(&t, QRR_DTYPE_I8, (uint32_t)quant_block);
            size_t s = model_find(&t, "model.layers.1.mlp.gate_proj.weight_scale");
            memcpy(t.data[s] + t.e[s].size - 4, &bad[b], 4); /* the last one */
            image im = assemble(&t);
            qrr_diag d;
            int rc = load(&im, 0, &d);
            cr_assert_eq(rc, QRR_ERR_BAD_SCALE, "scale %g: %s (%s)", (double)bad[b],
                         qrr_status_str(rc), d.msg);
            cr_assert_eq(load(&im, QRR_LOAD_SKIP_WEIGHT_CHECKSUMS, &d), QRR_ERR_BAD_SCALE);
            free(im.b);
            model_free(&t);
        }
    /* negative scales are fine (symmetric int8 only needs them non-zero) */
    tmodel t;
    model_init(&t, QRR_DTYPE_I8, 0);
    size_t s = model_find(&t, "model.embed_tokens.weight_scale");
    float neg = -0.5f;
    memcpy(t.data[s], &neg, 4);
    image im = assemble(&t);
    expect_load(&im, 0, QRR_OK);
    free(im.b);
    model_free(&t);
}

/* ---- every byte is covered -------------------------------------------------------- */

static void flip_every_byte(uint32_t weight_dtype, uint32_t quant_block)
{
    tmodel t;
    model_init(&t, weight_dtype, quant_block);
    image im = assemble(&t);
    expect_load(&im, 0, QRR_OK);
    qrr_diag d;
    for (size_t i = 0; i < im.len; i++) {
        uint8_t bit = (uint8_t)(1u << (i * 5 % 8));
        im.b[i] ^= bit;
        int rc = load(&im, 0, &d);
        cr_assert_neq(rc, QRR_OK, "flipping bit %u of byte %zu of %zu went unnoticed",
                      bit, i, im.len);
        im.b[i] ^= bit;
    }
    expect_load(&im, 0, QRR_OK);
    free(im.b);
    model_free(&t);
}

Test(format, bit_flip_every_byte_f32) { flip_every_byte(QRR_DTYPE_F32, 0); }
Test(format, bit_flip_every_byte_i8) { flip_every_byte(QRR_DTYPE_I8, 8); }

/* Random damage to the header and the tensor table, resealed so that the structural
 * checks (not the checksums) must catch it: the loader may accept only an image whose
 * damage the reseal undid, and must never crash (run under SANITIZE=address,undefined). */
Test(format, random_resealed_damage)
{
    tmodel t;
    model_init(&t, QRR_DTYPE_I8, 0);
    image orig = assemble(&t);
    image im = image_alloc(orig.len);
    uint64_t tab = sec(&orig, QRR_SECTION_TENSORS)->offset;
    uint64_t tab_len = sec(&orig, QRR_SECTION_TENSORS)->size;
    rng_state = 99;
    int rejected = 0;
    qrr_diag d;
    for (int iter = 0; iter < 20000; iter++) {
        memcpy(im.b, orig.b, orig.len);
        int hits = 1 + (int)(rnd() % 3);
        for (int h = 0; h < hits; h++) {
            uint64_t at = rnd() % 2 ? rnd() % 248 : tab + rnd() % tab_len;
            uint32_t r = rnd();
            /* a random byte, or a nearby value of a 64-bit field */
            if (r % 4) im.b[at] = (uint8_t)(r >> 8);
            else im.b[at & ~7ull] += (uint8_t)(r >> 8) % 3 - 1;
        }
        reseal(&im);
        int rc = load(&im, 0, &d);
        if (rc != QRR_OK) rejected++;
        else {
            /* accepted: the damage hit only checksum fields the reseal recomputed */
            cr_assert_eq(memcmp(im.b, orig.b, orig.len), 0, "iteration %d accepted damage",
                         iter);
        }
    }
    cr_assert(rejected > 15000, "rejected %d", rejected);
    free(im.b);
    free(orig.b);
    model_free(&t);
}

/* ---- the writer ------------------------------------------------------------------- */

Test(format, writer_abort_leaves_nothing)
{
    tmodel t;
    model_init(&t, QRR_DTYPE_F32, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/model.qrr", tmpdir);
    qrr_diag d;
    qrr_writer *w;
    cr_assert_eq(qrr_writer_open(path, &w, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(dir_entries(), 1, "the temporary file exists while writing");
    cr_assert_eq(qrr_writer_set_meta(w, &t.meta, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(qrr_writer_set_tokenizer(w, t.tok, t.tok_len, &d), QRR_OK, "%s", d.msg);
    size_t idx;
    cr_assert_eq(qrr_writer_add_tensor(w, t.e[0].name, t.e[0].dtype, t.e[0].ndim, t.e[0].dims,
                                       &idx, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(qrr_writer_write(w, 0, t.data[0], 10, &d), QRR_OK, "%s", d.msg);
    qrr_writer_abort(w);
    cr_assert_eq(dir_entries(), 0, "abort leaves no file");
    qrr_writer_abort(NULL);

    /* an existing file at the target stays as it was when a writer fails */
    FILE *fp = fopen(path, "wb");
    fputs("old", fp);
    fclose(fp);
    cr_assert_eq(qrr_writer_open(path, &w, &d), QRR_OK);
    cr_assert_eq(qrr_writer_set_meta(w, &t.meta, &d), QRR_OK);
    cr_assert_eq(qrr_writer_set_tokenizer(w, t.tok, t.tok_len, &d), QRR_OK);
    qrr_writer_abort(w);
    image old = read_image(path);
    cr_assert(old.len == 3 && !memcmp(old.b, "old", 3));
    free(old.b);
    unlink(path);
    model_free(&t);
}

Test(format, writer_incomplete_tensor_fails)
{
    tmodel t;
    model_init(&t, QRR_DTYPE_F32, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/model.qrr", tmpdir);
    qrr_diag d;
    qrr_writer *w;
    cr_assert_eq(qrr_writer_open(path, &w, &d), QRR_OK);
    cr_assert_eq(qrr_writer_set_meta(w, &t.meta, &d), QRR_OK);
    cr_assert_eq(qrr_writer_set_tokenizer(w, t.tok, t.tok_len, &d), QRR_OK);
    for (size_t i = 0; i < 2; i++)
        cr_assert_eq(qrr_writer_add_tensor(w, t.e[i].name, t.e[i].dtype, t.e[i].ndim,
                                           t.e[i].dims, NULL, &d), QRR_OK);
    cr_assert_eq(qrr_writer_write(w, 0, t.data[0], t.e[0].size, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(qrr_writer_write(w, 1, t.data[1], t.e[1].size - 4, &d), QRR_OK);
    cr_assert_neq(qrr_writer_finish(w, &d), QRR_OK);
    cr_assert(strstr(d.msg, t.e[1].name), "%s", d.msg);
    cr_assert_eq(dir_entries(), 0, "a failed finish leaves no file");

    /* a tensor declared but never written */
    cr_assert_eq(qrr_writer_open(path, &w, &d), QRR_OK);
    cr_assert_eq(qrr_writer_set_meta(w, &t.meta, &d), QRR_OK);
    cr_assert_eq(qrr_writer_set_tokenizer(w, t.tok, t.tok_len, &d), QRR_OK);
    cr_assert_eq(qrr_writer_add_tensor(w, t.e[0].name, t.e[0].dtype, t.e[0].ndim,
                                       t.e[0].dims, NULL, &d), QRR_OK);
    cr_assert_neq(qrr_writer_finish(w, &d), QRR_OK);
    cr_assert_eq(dir_entries(), 0);
    model_free(&t);
}

Test(format, writer_refuses_bad_input)
{
    tmodel t;
    model_init(&t, QRR_DTYPE_F32, 0);
    char path[512];
    snprintf(path, sizeof path, "%s/model.qrr", tmpdir);
    qrr_diag d;
    qrr_writer *w;
    uint64_t dims[4] = {4, 4, 0, 0};
    struct { const char *name; uint32_t dtype, ndim; uint64_t d0; int want; } bad[] = {
        {"", QRR_DTYPE_F32, 2, 4, QRR_ERR_BAD_TENSOR},
        {"has space", QRR_DTYPE_F32, 2, 4, QRR_ERR_BAD_TENSOR},
        {"a.name.that.is.far.too.long.for.the.sixty.four.byte.name.field.x", QRR_DTYPE_F32, 2,
         4, QRR_ERR_BAD_TENSOR},
        {"ok", 17, 2, 4, QRR_ERR_BAD_TENSOR},
        {"ok", QRR_DTYPE_F32, 0, 4, QRR_ERR_BAD_TENSOR},
        {"ok", QRR_DTYPE_F32, 5, 4, QRR_ERR_BAD_TENSOR},
        {"ok", QRR_DTYPE_F32, 2, 0, QRR_ERR_BAD_TENSOR},
        {"ok", QRR_DTYPE_F32, 2, 1ull << 62, QRR_ERR_BAD_TENSOR},
        {"dup", QRR_DTYPE_F32, 2, 4, QRR_ERR_DUPLICATE},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        cr_assert_eq(qrr_writer_open(path, &w, &d), QRR_OK);
        cr_assert_eq(qrr_writer_set_meta(w, &t.meta, &d), QRR_OK);
        cr_assert_eq(qrr_writer_set_tokenizer(w, t.tok, t.tok_len, &d), QRR_OK);
        cr_assert_eq(qrr_writer_add_tensor(w, "dup", QRR_DTYPE_F32, 1, dims, NULL, &d), QRR_OK);
        dims[0] = bad[i].d0;
        int rc = qrr_writer_add_tensor(w, bad[i].name, bad[i].dtype, bad[i].ndim, dims, NULL, &d);
        dims[0] = 4;
        cr_assert_eq(rc, bad[i].want, "case %zu: %s (%s)", i, qrr_status_str(rc), d.msg);
        cr_assert_eq(dir_entries(), 0, "the failed writer removed its temporary file");
        cr_assert_neq(qrr_writer_finish(w, &d), QRR_OK, "the failure is sticky");
        cr_assert_eq(dir_entries(), 0);
    }

    /* too many bytes, out of order, invalid metadata */
    cr_assert_eq(qrr_writer_open(path, &w, &d), QRR_OK);
    cr_assert_eq(qrr_writer_set_meta(w, &t.meta, &d), QRR_OK);
    cr_assert_eq(qrr_writer_set_tokenizer(w, t.tok, t.tok_len, &d), QRR_OK);
    cr_assert_eq(qrr_writer_add_tensor(w, "a", QRR_DTYPE_I8, 1, dims, NULL, &d), QRR_OK);
    cr_assert_eq(qrr_writer_add_tensor(w, "b", QRR_DTYPE_I8, 1, dims, NULL, &d), QRR_OK);
    cr_assert_eq(qrr_writer_write(w, 0, "abcde", 5, &d), QRR_ERR_INVALID_ARG);
    cr_assert_eq(dir_entries(), 0);
    qrr_writer_abort(w);

    cr_assert_eq(qrr_writer_open(path, &w, &d), QRR_OK);
    cr_assert_eq(qrr_writer_set_meta(w, &t.meta, &d), QRR_OK);
    cr_assert_eq(qrr_writer_set_tokenizer(w, t.tok, t.tok_len, &d), QRR_OK);
    cr_assert_eq(qrr_writer_add_tensor(w, "a", QRR_DTYPE_I8, 1, dims, NULL, &d), QRR_OK);
    cr_assert_eq(qrr_writer_add_tensor(w, "b", QRR_DTYPE_I8, 1, dims, NULL, &d), QRR_OK);
    cr_assert_eq(qrr_writer_write(w, 1, "abcd", 4, &d), QRR_ERR_INVALID_ARG);
    cr_assert_eq(dir_entries(), 0);
    qrr_writer_abort(w);

    cr_assert_eq(qrr_writer_open(path, &w, &d), QRR_OK);
    t.meta.fixed.head_dim = 15;
    cr_assert_eq(qrr_writer_set_meta(w, &t.meta, &d), QRR_ERR_BAD_META);
    cr_assert_eq(dir_entries(), 0);
    qrr_writer_abort(w);

    snprintf(path, sizeof path, "%s/no/such/dir/model.qrr", tmpdir);
    cr_assert_eq(qrr_writer_open(path, &w, &d), QRR_ERR_IO);
    model_free(&t);
}
