/* test_convert.c — qconvert end to end: the three reference checkpoints convert at f32,
 * f16 and int8 and load; labels, head rows and int8 error are checked against the source
 * tensors; every malformed input (built here, from the reference files) is refused with
 * its status and leaves no output; the program's exit codes. Also the scalar conversions. */
#include <criterion/criterion.h>
#include "qrr_test_util.h"

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "convert.h"
#include "qrr.h"
#include "qrr_file.h"
#include "qrr_writer.h"
#include "quantize.h"
#include "safetensors.h"

/* ---- helpers ----------------------------------------------------------------------- */

static const char *reference(void)
{
    const char *r = getenv("QRR_REFERENCE");
    return r && *r ? r : "../shared/reference";
}

static char *fmt(const char *f, const char *a, const char *b)
{
    size_t n = strlen(f) + strlen(a) + (b ? strlen(b) : 0) + 1;
    char *s = malloc(n);
    cr_assert_not_null(s);
    snprintf(s, n, f, a, b ? b : "");
    return s;
}

/* tu_tmpdir's directory, so that a failed test's is removed too. */
static char *make_tmpdir(void)
{
    char d[64];
    tu_tmpdir(d, sizeof d);
    return strdup(d);
}

static void link_into(const char *dir, const char *src_dir, const char *name)
{
    char *src = fmt("%s/%s", src_dir, name), *dst = fmt("%s/%s", dir, name);
    char *abs = realpath(src, NULL);
    cr_assert_not_null(abs, "missing reference file %s", src);
    cr_assert_eq(symlink(abs, dst), 0, "symlink %s", dst);
    free(abs);
    free(src);
    free(dst);
}

static void write_file(const char *dir, const char *name, const void *bytes, size_t len)
{
    char *p = fmt("%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f, "create %s", p);
    cr_assert_eq(fwrite(bytes, 1, len, f), len);
    fclose(f);
    free(p);
}

static void write_text(const char *dir, const char *name, const char *text)
{
    write_file(dir, name, text, strlen(text));
}

/* A model directory: the reference checkpoint's files (all but those in skip) linked in,
 * plus the reference tokenizer. */
static char *model_dir(const char *model, const char *skip)
{
    char *dir = make_tmpdir();
    char *src = fmt("%s/models/%s", reference(), model);
    const char *files[] = {"config.json", "model.safetensors", "model.safetensors.index.json",
                           "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char *p = fmt("%s/%s", src, files[i]);
        if (access(p, F_OK) == 0 && !(skip && strstr(skip, files[i]))) link_into(dir, src, files[i]);
        free(p);
    }
    char *tok = fmt("%s/tokenizer", reference(), NULL);
    link_into(dir, tok, "tokenizer.json");
    link_into(dir, tok, "tokenizer_config.json");
    free(tok);
    free(src);
    return dir;
}

static int file_exists(const char *p) { return access(p, F_OK) == 0; }

/* Remove a test's model directory (links, written files, outputs). */
static void cleanup(char *dir)
{
    char *cmd = fmt("rm -rf '%s'", dir, NULL);
    cr_assert_eq(system(cmd), 0);
    free(cmd);
    free(dir);
}

/* No file at out, and no temporary file beside it. */
static void assert_no_output(const char *dir, const char *out)
{
    cr_assert(!file_exists(out), "%s exists after a failed conversion", out);
    char *cmd = fmt("ls %s | grep -c 'out.qrr' > /dev/null", dir, NULL);
    cr_assert_neq(system(cmd), 0, "a temporary output file was left in %s", dir);
    free(cmd);
}

static int convert(const char *dir, const char *out, uint32_t dtype, int force, qrr_diag *d,
                   qrr_convert_report *r)
{
    qrr_convert_opts o = qrr_convert_default_opts();
    o.model_dir = dir;
    o.out_path = out;
    o.dtype = dtype;
    o.force = force;
    return qrr_convert(&o, r, d);
}

typedef struct loaded {
    void *map;
    size_t len;
    qrr_file *f;
} loaded;

static loaded load_qrr(const char *path)
{
    loaded l = {0};
    int fd = open(path, O_RDONLY);
    cr_assert(fd >= 0, "open %s", path);
    struct stat sb;
    fstat(fd, &sb);
    l.len = (size_t)sb.st_size;
    l.map = mmap(NULL, l.len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    cr_assert_neq(l.map, MAP_FAILED);
    qrr_diag d;
    int st = qrr_file_load(l.map, l.len, 0, &l.f, NULL, &d);
    cr_assert_eq(st, QRR_OK, "qrr_file_load(%s): %s (%s)", path, d.msg, qrr_status_str(st));
    return l;
}

static void unload(loaded *l)
{
    qrr_file_free(l->f);
    munmap(l->map, l->len);
}

static float src_value(const qrr_st_file *f, const qrr_st_tensor *t, uint64_t i)
{
    const uint8_t *p = qrr_st_data(f, t);
    if (t->dtype == QRR_ST_F32) {
        float v;
        memcpy(&v, p + i * 4, 4);
        return v;
    }
    uint16_t h;
    memcpy(&h, p + i * 2, 2);
    return t->dtype == QRR_ST_BF16 ? qrr_bf16_to_f32(h) : qrr_f16_to_f32(h);
}

static float qrr_value(const qrr_tensor_view *v, uint64_t i)
{
    const uint8_t *p = v->data;
    uint16_t h;
    float f;
    switch (v->dtype) {
    case QRR_DTYPE_F32: memcpy(&f, p + i * 4, 4); return f;
    case QRR_DTYPE_F16: memcpy(&h, p + i * 2, 2); return qrr_f16_to_f32(h);
    case QRR_DTYPE_BF16: memcpy(&h, p + i * 2, 2); return qrr_bf16_to_f32(h);
    default: return NAN;
    }
}

/* Open the checkpoint of a reference model for comparisons. */
static qrr_st_set *open_source(const char *model)
{
    char *dir = fmt("%s/models/%s", reference(), model);
    qrr_st_set *s;
    qrr_diag d;
    cr_assert_eq(qrr_st_set_open(dir, &s, &d), QRR_OK, "%s", d.msg);
    free(dir);
    return s;
}

static void src_find(const qrr_st_set *s, const char *name, const qrr_st_file **f, const qrr_st_tensor **t)
{
    cr_assert_eq(qrr_st_set_find(s, name, f, t), 0, "source tensor %s", name);
}

/* Every tensor of the .qrr against its source: exact for f32 widening and f16 from bf16,
 * round-to-nearest-even for narrowing, within scale/2 for int8. */
static uint64_t check_weights(const char *model, loaded *l)
{
    uint64_t rounded = 0;
    qrr_st_set *s = open_source(model);
    size_t n = qrr_file_tensor_count(l->f);
    cr_assert_gt(n, 0);
    for (size_t i = 0; i < n; i++) {
        const qrr_tensor_view *v = qrr_file_tensor(l->f, i);
        if (strcmp(v->name, "head.weight") == 0 || strstr(v->name, "_scale")) continue;
        const qrr_st_file *f;
        const qrr_st_tensor *t;
        src_find(s, v->name, &f, &t);
        uint64_t count = t->count;
        if (v->dtype == QRR_DTYPE_I8) {
            char sname[96];
            snprintf(sname, sizeof sname, "%s_scale", v->name);
            const qrr_tensor_view *sv = qrr_file_find(l->f, sname);
            cr_assert_not_null(sv, "%s missing", sname);
            cr_assert_eq(sv->dims[0], v->dims[0]);
            uint64_t cols = v->dims[1];
            uint64_t nb = sv->ndim == 2 ? sv->dims[1] : 1; /* scales per row */
            cr_assert_eq(cols % nb, 0);
            const int8_t *q = v->data;
            const float *sc = sv->data;
            for (uint64_t k = 0; k < count; k++) {
                double scale = sc[(k / cols) * nb + (k % cols) / (cols / nb)];
                cr_assert(scale > 0 && isfinite(scale));
                double w = src_value(f, t, k);
                cr_assert(q[k] >= -127 && q[k] <= 127);
                /* the same quotient the quantizer rounds: |w/scale - q| <= 1/2 */
                cr_assert_leq(fabs(w / scale - q[k]), 0.5, "%s[%llu]: w %g q %d scale %g", v->name,
                              (unsigned long long)k, w, q[k], scale);
            }
            continue;
        }
        for (uint64_t k = 0; k < count; k++) {
            float w = src_value(f, t, k), got = qrr_value(v, k);
            float want = w;
            if (v->dtype == QRR_DTYPE_F16) want = qrr_f16_to_f32(qrr_f32_to_f16(w));
            if (v->dtype == QRR_DTYPE_BF16) want = qrr_bf16_to_f32(qrr_f32_to_bf16(w));
            cr_assert(memcmp(&got, &want, 4) == 0, "%s[%llu]: %a, expected %a", v->name,
                      (unsigned long long)k, (double)got, (double)want);
            if (memcmp(&got, &w, 4) != 0) {
                /* bf16 -> f16 loses bits only below f16's normal range */
                if (t->dtype == QRR_ST_BF16)
                    cr_assert(fabsf(w) < 0x1p-14f, "%s[%llu] = %a not exact", v->name,
                              (unsigned long long)k, (double)w);
                if (strstr(v->name, "norm") == NULL) rounded++;
            }
        }
    }
    qrr_st_set_close(s);
    return rounded;
}

/* head.weight row r equals source row src_row of tensor name, bit for bit. */
static void check_head_row(const char *model, loaded *l, uint32_t r, const char *name, uint64_t src_row)
{
    qrr_st_set *s = open_source(model);
    const qrr_st_file *f;
    const qrr_st_tensor *t;
    src_find(s, name, &f, &t);
    const qrr_tensor_view *h = qrr_file_find(l->f, "head.weight");
    cr_assert_not_null(h);
    cr_assert_eq(h->dtype, QRR_DTYPE_F32);
    uint64_t H = h->dims[1];
    cr_assert_eq(t->dims[1], H);
    const float *row = (const float *)h->data + r * H;
    for (uint64_t k = 0; k < H; k++) {
        float want = src_value(f, t, src_row * H + k);
        cr_assert(memcmp(&row[k], &want, 4) == 0, "head row %u [%llu]: %a vs %s row %llu: %a", r,
                  (unsigned long long)k, (double)row[k], name, (unsigned long long)src_row, (double)want);
    }
    qrr_st_set_close(s);
}

static void convert_block(const char *model, uint32_t dtype, uint32_t block,
                          void (*check)(loaded *, const qrr_meta *))
{
    char *dir = model_dir(model, NULL);
    char *out = fmt("%s/out.qrr", dir, NULL);
    qrr_diag d;
    qrr_convert_report r;
    qrr_convert_opts o = qrr_convert_default_opts();
    o.model_dir = dir;
    o.out_path = out;
    o.dtype = dtype;
    o.quant_block = block;
    int st = qrr_convert(&o, &r, &d);
    cr_assert_eq(st, QRR_OK, "%s at %s: %s (%s)", model, qrr_dtype_name(dtype), d.msg,
                 qrr_status_str(st));
    cr_assert_gt(r.tensors, 0);
    cr_assert_gt(r.file_bytes, r.tensor_bytes);
    loaded l = load_qrr(out);
    const qrr_meta *m = qrr_file_meta(l.f);
    cr_assert_eq(m->fixed.weight_dtype, dtype);
    cr_assert_eq(m->fixed.quant_block, block);
    cr_assert_eq(qrr_file_tensor_count(l.f), r.tensors);
    /* provenance: JSON naming the converter and every source with its hash */
    json_error_t je;
    json_t *pv = json_loadb(m->strings[QRR_STR_PROVENANCE].ptr, m->strings[QRR_STR_PROVENANCE].len, 0, &je);
    cr_assert_not_null(pv, "provenance is not JSON: %s", je.text);
    cr_assert_str_eq(json_string_value(json_object_get(pv, "converter")), "qconvert " QRR_CONVERTER_VERSION);
    cr_assert_str_eq(json_string_value(json_object_get(pv, "source_dtype")),
                     strcmp(model, "tiny-seqcls") == 0 ? "f32" : "bf16");
    json_t *srcs = json_object_get(pv, "sources");
    cr_assert_geq(json_array_size(srcs), 4); /* config, tokenizer x2, >= 1 safetensors */
    int saw_config = 0;
    for (size_t i = 0; i < json_array_size(srcs); i++) {
        json_t *e = json_array_get(srcs, i);
        cr_assert_eq(strlen(json_string_value(json_object_get(e, "xxh3_64"))), 16);
        if (strcmp(json_string_value(json_object_get(e, "file")), "config.json") == 0) saw_config = 1;
    }
    cr_assert(saw_config);
    json_decref(pv);
    /* the rounded values the report (and the provenance) count are the ones found here */
    uint64_t rounded = check_weights(model, &l);
    cr_assert_eq(r.inexact, rounded, "report says %llu values rounded, found %llu",
                 (unsigned long long)r.inexact, (unsigned long long)rounded);
    if (dtype == QRR_DTYPE_F32) cr_assert_eq(rounded, 0);
    if (check) check(&l, m);
    unload(&l);
    unlink(out);
    free(out);
    cleanup(dir);
}

static void convert_ok(const char *model, uint32_t dtype, void (*check)(loaded *, const qrr_meta *))
{
    convert_block(model, dtype, 0, check);
}

/* ---- the reference checkpoints ----------------------------------------------------- */

static void tied_checks(loaded *l, const qrr_meta *m)
{
    cr_assert_eq(m->fixed.label_source, QRR_LABELS_INFERRED);
    cr_assert_eq(m->fixed.head_kind, QRR_HEAD_YES_NO);
    cr_assert_eq(m->fixed.tied, 1);
    cr_assert_eq(m->fixed.yes_id, 9693);
    cr_assert_eq(m->fixed.no_id, 2152);
    const qrr_str *reason = &m->strings[QRR_STR_LABEL_REASON];
    cr_assert(reason->len > 0 && memmem(reason->ptr, reason->len, "inferred", 8), "reason: %.*s",
              (int)reason->len, reason->ptr);
    cr_assert(memmem(reason->ptr, reason->len, "9693", 4) && memmem(reason->ptr, reason->len, "2152", 4));
    cr_assert_eq(m->strings[QRR_STR_LABEL_NO].len, 2);
    cr_assert(memcmp(m->strings[QRR_STR_LABEL_NO].ptr, "no", 2) == 0);
    cr_assert(memcmp(m->strings[QRR_STR_LABEL_YES].ptr, "yes", 3) == 0);
    cr_assert_eq(m->strings[QRR_STR_PREFIX].len, strlen(QRR_DEFAULT_PREFIX));
    cr_assert_eq(m->fixed.max_length, 8192);
    check_head_row("tiny-tied", l, 0, "model.embed_tokens.weight", 2152);
    check_head_row("tiny-tied", l, 1, "model.embed_tokens.weight", 9693);
}

static void untied_checks(loaded *l, const qrr_meta *m)
{
    cr_assert_eq(m->fixed.label_source, QRR_LABELS_FROM_CONFIG);
    cr_assert_eq(m->fixed.head_kind, QRR_HEAD_YES_NO);
    cr_assert_eq(m->fixed.tied, 0);
    check_head_row("tiny-untied", l, 0, "lm_head.weight", 2152);
    check_head_row("tiny-untied", l, 1, "lm_head.weight", 9693);
    cr_assert_null(qrr_file_find(l->f, "lm_head.weight"));
}

static void seqcls_checks(loaded *l, const qrr_meta *m)
{
    cr_assert_eq(m->fixed.head_kind, QRR_HEAD_SINGLE_LOGIT);
    cr_assert_eq(m->fixed.label_source, QRR_LABELS_FROM_CONFIG);
    cr_assert_eq(m->fixed.yes_id, QRR_NO_TOKEN);
    const qrr_tensor_view *h = qrr_file_find(l->f, "head.weight");
    cr_assert_eq(h->dims[0], 1);
    check_head_row("tiny-seqcls", l, 0, "score.weight", 0);
}

Test(convert, tied_f32) { convert_ok("tiny-tied", QRR_DTYPE_F32, tied_checks); }
Test(convert, tied_f16) { convert_ok("tiny-tied", QRR_DTYPE_F16, tied_checks); }
Test(convert, tied_int8) { convert_ok("tiny-tied", QRR_DTYPE_I8, tied_checks); }
Test(convert, untied_f32) { convert_ok("tiny-untied", QRR_DTYPE_F32, untied_checks); }
Test(convert, untied_f16) { convert_ok("tiny-untied", QRR_DTYPE_F16, untied_checks); }
Test(convert, untied_int8) { convert_ok("tiny-untied", QRR_DTYPE_I8, untied_checks); }
Test(convert, seqcls_f32) { convert_ok("tiny-seqcls", QRR_DTYPE_F32, seqcls_checks); }
Test(convert, seqcls_f16) { convert_ok("tiny-seqcls", QRR_DTYPE_F16, seqcls_checks); }
Test(convert, seqcls_int8) { convert_ok("tiny-seqcls", QRR_DTYPE_I8, seqcls_checks); }
Test(convert, tied_bf16) { convert_ok("tiny-tied", QRR_DTYPE_BF16, tied_checks); }
Test(convert, tied_int8_block16) { convert_block("tiny-tied", QRR_DTYPE_I8, 16, tied_checks); }

static int run_qconvert(const char *args);

/* A --quant-block this model's rows cannot be cut into is an option it cannot take, like a
 * --max-length above its positions: a usage error (exit 2) naming the size it misses. */
Test(convert, quant_block_must_divide)
{
    char *dir = model_dir("tiny-tied", NULL);
    char *out = fmt("%s/out.qrr", dir, NULL);
    qrr_convert_opts o = qrr_convert_default_opts();
    o.model_dir = dir;
    o.out_path = out;
    o.dtype = QRR_DTYPE_I8;
    o.quant_block = 24; /* does not divide hidden 32 */
    qrr_diag d;
    qrr_convert_report r;
    cr_assert_eq(qrr_convert(&o, &r, &d), QRR_ERR_INVALID_ARG, "%s", d.msg);
    cr_assert(r.usage_error);
    cr_assert(strstr(d.msg, "--quant-block 24") && strstr(d.msg, "hidden_size 32"), "%s", d.msg);
    assert_no_output(dir, out);
    char *args = fmt("%s -o %s --quiet --dtype int8 --quant-block 24", dir, out);
    cr_assert_eq(run_qconvert(args), 2);
    assert_no_output(dir, out);
    free(args);
    free(out);
    cleanup(dir);
}

Test(convert, user_labels_win)
{
    char *dir = model_dir("tiny-tied", NULL);
    char *out = fmt("%s/out.qrr", dir, NULL);
    qrr_convert_opts o = qrr_convert_default_opts();
    o.model_dir = dir;
    o.out_path = out;
    o.label_no = "No";
    o.label_yes = " yes"; /* byte-level: "Ġyes" */
    qrr_diag d;
    cr_assert_eq(qrr_convert(&o, NULL, &d), QRR_OK, "%s", d.msg);
    loaded l = load_qrr(out);
    const qrr_meta *m = qrr_file_meta(l.f);
    cr_assert_eq(m->fixed.label_source, QRR_LABELS_FROM_USER);
    cr_assert_neq(m->fixed.yes_id, 9693);
    cr_assert_neq(m->fixed.no_id, 2152);
    check_head_row("tiny-tied", &l, 0, "model.embed_tokens.weight", m->fixed.no_id);
    check_head_row("tiny-tied", &l, 1, "model.embed_tokens.weight", m->fixed.yes_id);
    unload(&l);
    o.label_no = "no";
    o.label_yes = "surely-not-a-token";
    unlink(out);
    cr_assert_eq(qrr_convert(&o, NULL, &d), QRR_ERR_NOT_RERANKER);
    assert_no_output(dir, out);
    free(out);
    cleanup(dir);
}

Test(convert, prompts_from_sentence_transformers_config)
{
    char *dir = model_dir("tiny-tied", NULL);
    char *out = fmt("%s/out.qrr", dir, NULL);
    /* the whole chat opening in the query prompt, as seq-cls conversions ship it */
    write_text(dir, "config_sentence_transformers.json",
               "{\"prompts\": {\"query\": \"<|im_start|>system\\nBe brief.<|im_end|>\\n<|im_start|>user\\n"
               "<Instruct>: {instruction}\\n<Query>: \", \"document\": \"\\n<Document>: \"}}");
    qrr_diag d;
    cr_assert_eq(convert(dir, out, QRR_DTYPE_F16, 0, &d, NULL), QRR_OK, "%s", d.msg);
    loaded l = load_qrr(out);
    const qrr_meta *m = qrr_file_meta(l.f);
    const char *want_prefix = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n";
    cr_assert_eq(m->strings[QRR_STR_PREFIX].len, strlen(want_prefix));
    cr_assert(memcmp(m->strings[QRR_STR_PREFIX].ptr, want_prefix, strlen(want_prefix)) == 0);
    cr_assert_eq(m->strings[QRR_STR_QUERY_TEMPLATE].len, strlen(QRR_DEFAULT_QUERY_TEMPLATE));
    cr_assert_eq(m->strings[QRR_STR_SUFFIX].len, strlen(QRR_DEFAULT_SUFFIX));
    unload(&l);
    free(out);
    cleanup(dir);
}

Test(convert, embedding_lookalike_refused_unless_forced)
{
    char *dir = model_dir("tiny-tied", NULL);
    char *out = fmt("%s/out.qrr", dir, NULL);
    write_text(dir, "modules.json", "[{\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"x\"}]");
    char *pool = fmt("%s/1_Pooling", dir, NULL);
    cr_assert_eq(mkdir(pool, 0755), 0);
    write_text(pool, "config.json", "{\"pooling_mode_lasttoken\": true}");
    qrr_diag d;
    cr_assert_eq(convert(dir, out, QRR_DTYPE_F16, 0, &d, NULL), QRR_ERR_NOT_RERANKER);
    cr_assert(strstr(d.msg, "embedding") && strstr(d.msg, "modules.json") && strstr(d.msg, "--force"),
              "message: %s", d.msg);
    assert_no_output(dir, out);
    cr_assert_eq(convert(dir, out, QRR_DTYPE_F16, 1, &d, NULL), QRR_OK, "%s", d.msg);
    loaded l = load_qrr(out);
    const qrr_meta *m = qrr_file_meta(l.f);
    cr_assert_eq(m->fixed.label_source, QRR_LABELS_INFERRED);
    cr_assert(memmem(m->strings[QRR_STR_LABEL_REASON].ptr, m->strings[QRR_STR_LABEL_REASON].len, "--force", 7));
    unload(&l);
    free(pool);
    free(out);
    cleanup(dir);
}

/* ---- malformed safetensors, built from the reference tiny-tied file ------------------ */

typedef struct st_image {
    json_t *header;
    uint8_t *data;
    size_t data_len;
} st_image;

static st_image st_read(const char *path)
{
    st_image im = {0};
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    uint8_t n8[8];
    cr_assert_eq(fread(n8, 1, 8, f), 8);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | n8[i];
    char *h = malloc(hlen);
    cr_assert_eq(fread(h, 1, hlen, f), hlen);
    json_error_t e;
    im.header = json_loadb(h, hlen, 0, &e);
    cr_assert_not_null(im.header);
    free(h);
    fseek(f, 0, SEEK_END);
    im.data_len = (size_t)ftell(f) - 8 - hlen;
    im.data = malloc(im.data_len);
    fseek(f, (long)(8 + hlen), SEEK_SET);
    cr_assert_eq(fread(im.data, 1, im.data_len, f), im.data_len);
    fclose(f);
    return im;
}

/* Write header text (as given) and data as dir/model.safetensors. */
static void st_write_raw(const char *dir, const char *htext, uint64_t hlen_field, const uint8_t *data, size_t n)
{
    size_t hl = strlen(htext);
    uint8_t *buf = malloc(8 + hl + n);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hlen_field >> (8 * i));
    memcpy(buf + 8, htext, hl);
    if (n) memcpy(buf + 8 + hl, data, n);
    write_file(dir, "model.safetensors", buf, 8 + hl + n);
    free(buf);
}

static void st_write(const char *dir, const st_image *im)
{
    char *h = json_dumps(im->header, JSON_COMPACT);
    st_write_raw(dir, h, strlen(h), im->data, im->data_len);
    free(h);
}

static json_t *entry(st_image *im, const char *name)
{
    json_t *e = json_object_get(im->header, name);
    cr_assert_not_null(e, "%s", name);
    return e;
}

static void set_offsets(st_image *im, const char *name, json_int_t b, json_int_t e)
{
    json_object_set_new(entry(im, name), "data_offsets", json_pack("[I, I]", b, e));
}

static json_int_t offset_of(st_image *im, const char *name, int which)
{
    return json_integer_value(json_array_get(json_object_get(entry(im, name), "data_offsets"), which));
}

#define Q "model.layers.0.self_attn.q_proj.weight"
#define K "model.layers.0.self_attn.k_proj.weight"

/* Build tiny-tied with a mutated model.safetensors, convert, expect status and no file. */
/* The refusal's message is returned (valid until the next call). */
static const char *expect_refusal(void (*mutate)(const char *dir, st_image *im), int want,
                                  const char *needle)
{
    static char message[sizeof ((qrr_diag *)0)->msg];
    char *dir = model_dir("tiny-tied", "model.safetensors");
    char *out = fmt("%s/out.qrr", dir, NULL);
    char *src = fmt("%s/models/tiny-tied/model.safetensors", reference(), NULL);
    st_image im = st_read(src);
    mutate(dir, &im);
    qrr_diag d;
    int st = convert(dir, out, QRR_DTYPE_F16, 0, &d, NULL);
    cr_assert_eq(st, want, "got %s (%s), expected %s", qrr_status_str(st), d.msg, qrr_status_str(want));
    if (needle) cr_assert(strstr(d.msg, needle), "message '%s' lacks '%s'", d.msg, needle);
    assert_no_output(dir, out);
    json_decref(im.header);
    free(im.data);
    free(src);
    free(out);
    cleanup(dir);
    snprintf(message, sizeof message, "%s", d.msg);
    return message;
}

static void m_hlen_past_eof(const char *dir, st_image *im)
{
    char *h = json_dumps(im->header, JSON_COMPACT);
    st_write_raw(dir, h, (uint64_t)strlen(h) + im->data_len + 1, im->data, im->data_len);
    free(h);
}
static void m_not_json(const char *dir, st_image *im)
{
    st_write_raw(dir, "{\"a\": [1, 2", 11, im->data, im->data_len);
}
static void m_outside(const char *dir, st_image *im)
{
    json_int_t len = offset_of(im, Q, 1) - offset_of(im, Q, 0);
    set_offsets(im, Q, (json_int_t)im->data_len - len + 2, (json_int_t)im->data_len + 2);
    st_write(dir, im);
}
static void m_begin_after_end(const char *dir, st_image *im)
{
    set_offsets(im, Q, offset_of(im, Q, 1), offset_of(im, Q, 0));
    st_write(dir, im);
}
static void m_size_mismatch(const char *dir, st_image *im)
{
    json_object_set_new(entry(im, Q), "shape", json_pack("[i, i]", 256, 31));
    st_write(dir, im);
}
static void m_overlap(const char *dir, st_image *im)
{
    json_int_t klen = offset_of(im, K, 1) - offset_of(im, K, 0);
    json_int_t b = offset_of(im, Q, 0) + 64;
    set_offsets(im, K, b, b + klen);
    st_write(dir, im);
}
static void m_i64(const char *dir, st_image *im)
{
    json_object_set_new(entry(im, "model.norm.weight"), "dtype", json_string("I64"));
    json_object_set_new(entry(im, "model.norm.weight"), "shape", json_pack("[i]", 8));
    st_write(dir, im);
}
static void m_duplicate(const char *dir, st_image *im)
{
    char *h = json_dumps(im->header, JSON_COMPACT);
    char *one = json_dumps(entry(im, "model.norm.weight"), JSON_COMPACT);
    size_t n = strlen(h) + strlen(one) + 64;
    char *dup = malloc(n);
    snprintf(dup, n, "{\"model.norm.weight\":%s,%s", one, h + 1);
    st_write_raw(dir, dup, strlen(dup), im->data, im->data_len);
    free(dup);
    free(one);
    free(h);
}
static void m_missing_k(const char *dir, st_image *im)
{
    json_object_del(im->header, "model.layers.1.self_attn.k_proj.weight");
    st_write(dir, im);
}
static void m_wrong_shape(const char *dir, st_image *im)
{
    json_object_set_new(entry(im, Q), "shape", json_pack("[i, i]", 128, 64));
    st_write(dir, im);
}
static void m_overflow(const char *dir, st_image *im)
{
    /* 65536 in bf16 (0x4780): beyond f16's largest finite value 65504 */
    size_t at = (size_t)offset_of(im, Q, 0) + 2 * 37;
    im->data[at] = 0x80;
    im->data[at + 1] = 0x47;
    st_write(dir, im);
}

Test(malformed, header_length_past_eof) { expect_refusal(m_hlen_past_eof, QRR_ERR_SAFETENSORS, "past the end"); }
Test(malformed, header_not_json) { expect_refusal(m_not_json, QRR_ERR_SAFETENSORS, "JSON"); }
Test(malformed, offsets_outside_file) { expect_refusal(m_outside, QRR_ERR_SAFETENSORS, Q); }
Test(malformed, begin_after_end) { expect_refusal(m_begin_after_end, QRR_ERR_SAFETENSORS, "begin"); }
Test(malformed, size_disagrees_with_shape) { expect_refusal(m_size_mismatch, QRR_ERR_SAFETENSORS, Q); }
Test(malformed, overlapping_tensors) { expect_refusal(m_overlap, QRR_ERR_SAFETENSORS, "overlap"); }
Test(malformed, unknown_dtype) { expect_refusal(m_i64, QRR_ERR_SAFETENSORS, "I64"); }
Test(malformed, duplicate_name) { expect_refusal(m_duplicate, QRR_ERR_SAFETENSORS, "twice"); }
Test(malformed, missing_tensor) { expect_refusal(m_missing_k, QRR_ERR_MISSING_TENSOR, "model.layers.1.self_attn.k_proj.weight"); }
Test(malformed, wrong_shape) { expect_refusal(m_wrong_shape, QRR_ERR_SHAPE, "[128, 64]"); }
static void m_nan(const char *dir, st_image *im)
{
    size_t at = (size_t)offset_of(im, Q, 0) + 2 * 37; /* a quiet NaN in bf16 (0x7fc0) */
    im->data[at] = 0xc0;
    im->data[at + 1] = 0x7f;
    st_write(dir, im);
}

/* A value beyond f16's range is kept by another dtype, which the hint says; a NaN is refused
 * by every dtype, so its message gives no such hint. */
Test(malformed, bf16_overflow_to_f16)
{
    const char *msg = expect_refusal(m_overflow, QRR_ERR_OVERFLOW, "65536");
    cr_assert(strstr(msg, "HINT: convert with --dtype bf16 or f32"), "%s", msg);
}
Test(malformed, nan_weight)
{
    const char *msg = expect_refusal(m_nan, QRR_ERR_NUMERIC, "is nan, not finite");
    cr_assert(!strstr(msg, "HINT"), "%s", msg);
}

Test(malformed, index_names_missing_shard)
{
    char *dir = model_dir("tiny-untied", "model.safetensors.index.json");
    char *out = fmt("%s/out.qrr", dir, NULL);
    char *idx = fmt("%s/models/tiny-untied/model.safetensors.index.json", reference(), NULL);
    json_error_t e;
    json_t *root = json_load_file(idx, 0, &e);
    cr_assert_not_null(root);
    json_object_set_new(json_object_get(root, "weight_map"), "model.norm.weight",
                        json_string("model-00003-of-00002.safetensors"));
    char *text = json_dumps(root, 0);
    write_text(dir, "model.safetensors.index.json", text);
    qrr_diag d;
    cr_assert_eq(convert(dir, out, QRR_DTYPE_F16, 0, &d, NULL), QRR_ERR_SAFETENSORS, "%s", d.msg);
    cr_assert(strstr(d.msg, "model-00003-of-00002.safetensors"), "%s", d.msg);
    assert_no_output(dir, out);
    free(text);
    json_decref(root);
    free(idx);
    free(out);
    cleanup(dir);
}

/* ---- malformed config.json ----------------------------------------------------------- */

static void expect_config_refusal(const char *(*mutate)(json_t *cfg), int want, const char *needle)
{
    char *dir = model_dir("tiny-tied", "config.json");
    char *out = fmt("%s/out.qrr", dir, NULL);
    char *cp = fmt("%s/models/tiny-tied/config.json", reference(), NULL);
    json_error_t e;
    json_t *cfg = json_load_file(cp, 0, &e);
    cr_assert_not_null(cfg);
    const char *raw = mutate(cfg);
    if (raw) {
        if (*raw) write_text(dir, "config.json", raw);
    } else {
        char *text = json_dumps(cfg, 0);
        write_text(dir, "config.json", text);
        free(text);
    }
    qrr_diag d;
    int st = convert(dir, out, QRR_DTYPE_F16, 0, &d, NULL);
    cr_assert_eq(st, want, "got %s (%s)", qrr_status_str(st), d.msg);
    cr_assert(strstr(d.msg, needle), "message '%s' lacks '%s'", d.msg, needle);
    cr_assert(strstr(d.msg, "config.json"), "message '%s' does not name the file", d.msg);
    assert_no_output(dir, out);
    json_decref(cfg);
    free(cp);
    free(out);
    cleanup(dir);
}

static const char *c_missing(json_t *c) { (void)c; return ""; }
static const char *c_not_json(json_t *c) { (void)c; return "{\"model_type\": \"qwen3\",,}"; }
static const char *c_model_type(json_t *c) { json_object_set_new(c, "model_type", json_string("llama")); return NULL; }
static const char *c_no_hidden(json_t *c) { json_object_del(c, "hidden_size"); return NULL; }
static const char *c_hidden_string(json_t *c) { json_object_set_new(c, "hidden_size", json_string("32")); return NULL; }
static const char *c_rope(json_t *c)
{
    json_object_set_new(c, "rope_scaling", json_pack("{s:s, s:f}", "rope_type", "yarn", "factor", 4.0));
    return NULL;
}

Test(malformed, config_missing) { expect_config_refusal(c_missing, QRR_ERR_CONFIG, "config.json: No such file or directory"); }
Test(malformed, config_not_json) { expect_config_refusal(c_not_json, QRR_ERR_JSON, "not valid JSON"); }
Test(malformed, config_wrong_model_type) { expect_config_refusal(c_model_type, QRR_ERR_CONFIG, "llama"); }
Test(malformed, config_missing_hidden_size) { expect_config_refusal(c_no_hidden, QRR_ERR_CONFIG, "hidden_size"); }
Test(malformed, config_hidden_size_string) { expect_config_refusal(c_hidden_string, QRR_ERR_CONFIG, "a string"); }
Test(malformed, config_rope_scaling) { expect_config_refusal(c_rope, QRR_ERR_CONFIG, "yarn"); }

Test(malformed, tokenizer_missing)
{
    char *dir = model_dir("tiny-tied", NULL);
    char *out = fmt("%s/out.qrr", dir, NULL);
    char *tj = fmt("%s/tokenizer.json", dir, NULL);
    unlink(tj);
    qrr_diag d;
    cr_assert_eq(convert(dir, out, QRR_DTYPE_F16, 0, &d, NULL), QRR_ERR_BAD_TOKENIZER, "%s", d.msg);
    cr_assert(strstr(d.msg, "tokenizer.json"));
    assert_no_output(dir, out);
    free(tj);
    free(out);
    cleanup(dir);
}

/* A FIFO in place of any input file (a JSON file or a shard) is refused at once, not waited
 * on for a writer that never comes, and nothing is written. */
Test(malformed, input_that_is_a_fifo_is_refused_without_waiting, .timeout = 60)
{
    const char *names[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                           "config_sentence_transformers.json", "model.safetensors"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char *dir = model_dir("tiny-tied", NULL);
        char *out = fmt("%s/out.qrr", dir, NULL), *p = fmt("%s/%s", dir, names[i]);
        unlink(p);
        cr_assert_eq(mkfifo(p, 0644), 0);
        qrr_diag d;
        cr_expect_neq(convert(dir, out, QRR_DTYPE_F16, 0, &d, NULL), QRR_OK, "%s", names[i]);
        cr_expect(strstr(d.msg, names[i]) && strstr(d.msg, "not a regular file"), "%s: %s",
                  names[i], d.msg);
        assert_no_output(dir, out);
        free(p);
        free(out);
        cleanup(dir);
    }
}

/* ---- the program --------------------------------------------------------------------- */

static int run_qconvert(const char *args)
{
    const char *b = getenv("QRR_BUILD");
    char *cmd = fmt("%s/qconvert %s >/dev/null 2>&1", b && *b ? b : "build", args);
    int rc = system(cmd);
    free(cmd);
    cr_assert(WIFEXITED(rc));
    return WEXITSTATUS(rc);
}

Test(program, exit_codes)
{
    char *dir = model_dir("tiny-tied", NULL);
    char *args = fmt("%s -o %s/out.qrr --quiet", dir, dir);
    cr_assert_eq(run_qconvert(args), 0);
    char *out = fmt("%s/out.qrr", dir, NULL);
    cr_assert(file_exists(out));
    cr_assert_eq(run_qconvert(""), 2);
    cr_assert_eq(run_qconvert("--help"), 0);
    char *bad = fmt("%s -o %s/x.qrr --dtype f8", dir, dir);
    cr_assert_eq(run_qconvert(bad), 2);
    char *nolab = fmt("%s -o %s/x.qrr --labels yes", dir, dir);
    cr_assert_eq(run_qconvert(nolab), 2);
    char *input = fmt("%s/nowhere -o %s/x.qrr", dir, dir);
    cr_assert_eq(run_qconvert(input), 1);
    char *output = fmt("%s -o %s/no/such/dir/x.qrr --quiet", dir, dir);
    cr_assert_eq(run_qconvert(output), 3);
    free(args); free(out); free(bad); free(nolab); free(input); free(output);
    cleanup(dir);
}

/* Run qconvert with args; its stderr goes to err_path. Returns the exit code. */
static int run_qconvert_err(const char *args, const char *err_path)
{
    const char *b = getenv("QRR_BUILD");
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s/qconvert %s >/dev/null 2>'%s'", b && *b ? b : "build", args, err_path);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc), "%s did not exit", cmd);
    return WEXITSTATUS(rc);
}

/* qconvert DIR -o TARGET exits 2 with a message holding needle, and TARGET is the same
 * file as before (inode, size, modification time) with no temporary file beside it. */
static void expect_output_refused(const char *dir, const char *target, const char *needle)
{
    struct stat before, after;
    cr_assert_eq(stat(target, &before), 0, "%s", target);
    char *args = fmt("%s -o '%s' --quiet", dir, target);
    char *err = fmt("%s.err", dir, NULL);
    int rc = run_qconvert_err(args, err);
    char *msg = tu_slurp(err, NULL);
    cr_assert_eq(rc, 2, "-o %s: exit %d, expected 2 (%s)", target, rc, msg);
    cr_assert(strstr(msg, needle), "-o %s: message '%s' lacks '%s'", target, msg, needle);
    cr_assert_eq(stat(target, &after), 0, "%s is gone", target);
    cr_assert(before.st_ino == after.st_ino && before.st_size == after.st_size &&
              before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
              before.st_mtim.tv_nsec == after.st_mtim.tv_nsec, "%s was replaced or changed", target);
    char *ls = fmt("ls -a '%s' | grep -q '\\.tmp\\.'", dir, NULL);
    cr_assert_neq(system(ls), 0, "a temporary file was left in %s", dir);
    unlink(err);
    free(ls);
    free(msg);
    free(err);
    free(args);
}

/* The output may not be one of the files the conversion reads: by name, through a symbolic
 * link or a hard link (same inode), in a single-file or a sharded checkpoint. */
Test(program, refuses_to_overwrite_an_input)
{
    char *dir = model_dir("tiny-untied", NULL);
    write_text(dir, "config_sentence_transformers.json", "{\"prompts\": {}}");
    const char *inputs[] = {"config.json", "config_sentence_transformers.json", "tokenizer.json",
                            "tokenizer_config.json", "model.safetensors.index.json",
                            "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"};
    for (size_t i = 0; i < sizeof inputs / sizeof *inputs; i++) {
        char *p = fmt("%s/%s", dir, inputs[i]);
        expect_output_refused(dir, p, "input");
        free(p);
    }
    char *hard = fmt("%s/hard.qrr", dir, NULL), *soft = fmt("%s/soft.qrr", dir, NULL);
    char *cst = fmt("%s/config_sentence_transformers.json", dir, NULL);
    cr_assert_eq(link(cst, hard), 0);
    cr_assert_eq(symlink("model-00002-of-00002.safetensors", soft), 0);
    expect_output_refused(dir, hard, "input");
    expect_output_refused(dir, soft, "input");
    free(hard);
    free(soft);
    free(cst);
    cleanup(dir);

    /* a single-file checkpoint, and the library call: status and message */
    dir = model_dir("tiny-tied", NULL);
    char *st = fmt("%s/model.safetensors", dir, NULL);
    expect_output_refused(dir, st, "input");
    qrr_diag d;
    qrr_convert_report r;
    cr_assert_eq(convert(dir, st, QRR_DTYPE_F16, 0, &d, &r), QRR_ERR_INVALID_ARG, "%s", d.msg);
    cr_assert(r.usage_error);
    cr_assert(strstr(d.msg, "model.safetensors"), "%s", d.msg);
    free(st);
    cleanup(dir);
}

/* An output that exists and is not a regular file (a directory, a FIFO, a device, or a link
 * to one) is refused before any work; nothing replaces it. */
Test(program, refuses_a_non_regular_output)
{
    char *dir = model_dir("tiny-tied", NULL);
    char *sub = fmt("%s/sub.qrr", dir, NULL), *fifo = fmt("%s/fifo.qrr", dir, NULL);
    char *null = fmt("%s/null.qrr", dir, NULL), *dev = fmt("%s/nulldev", dir, NULL);
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(mkfifo(fifo, 0644), 0);
    cr_assert_eq(symlink("/dev/null", null), 0);
    expect_output_refused(dir, sub, "directory");
    expect_output_refused(dir, fifo, "FIFO");
    expect_output_refused(dir, null, "character device");
    if (mknod(dev, S_IFCHR | 0644, makedev(1, 3)) == 0) /* needs root */
        expect_output_refused(dir, dev, "character device");
    struct stat sb;
    cr_assert(stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode));
    cr_assert(lstat(null, &sb) == 0 && S_ISLNK(sb.st_mode));
    free(sub);
    free(fifo);
    free(null);
    free(dev);
    cleanup(dir);
}

/* Shell-quote one argument the way a reader would retype it: bare when it holds only
 * characters no shell treats specially, else in single quotes. */
static void sh_word(char *out, size_t cap, const char *a)
{
    size_t k = 0;
    int bare = *a != '\0';
    for (const char *c = a; *c; c++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-./:=,+@%", *c))
            bare = 0;
    if (bare) {
        snprintf(out, cap, "%s", a);
        return;
    }
    out[k++] = '\'';
    for (const char *c = a; *c && k + 5 < cap; c++) {
        if (*c == '\'') {
            memcpy(out + k, "'\\''", 4);
            k += 4;
        } else {
            out[k++] = *c;
        }
    }
    out[k++] = '\'';
    out[k] = '\0';
}

/* The command line recorded in the provenance of the .qrr at path (to free). */
static char *recorded_command_line(const char *path)
{
    loaded l = load_qrr(path);
    const qrr_str *pv = &qrr_file_meta(l.f)->strings[QRR_STR_PROVENANCE];
    json_error_t je;
    json_t *root = json_loadb(pv->ptr, pv->len, 0, &je);
    cr_assert_not_null(root, "provenance is not JSON: %s", je.text);
    const char *got = json_string_value(json_object_get(root, "command_line"));
    cr_assert_not_null(got);
    char *copy = strdup(got);
    json_decref(root);
    unload(&l);
    return copy;
}

/* The provenance records the command line in the order it was typed (getopt reorders argv
 * while parsing), with words that need it quoted. */
Test(program, provenance_command_line_as_typed)
{
    char *dir = model_dir("tiny-tied", NULL);
    char *out = fmt("%s/my out's.qrr", dir, NULL);
    const char *b = getenv("QRR_BUILD");
    char *prog = fmt("%s/qconvert", b && *b ? b : "build", NULL);
    const char *argv[] = {prog, dir, "--dtype", "f32", "-o", out, "--quiet"};
    char want[4096] = "", cmd[4096] = "", w[1024];
    for (size_t i = 0; i < sizeof argv / sizeof *argv; i++) {
        sh_word(w, sizeof w, argv[i]);
        strcat(want, i ? " " : "");
        strcat(want, w);
    }
    snprintf(cmd, sizeof cmd, "%s >/dev/null 2>&1", want);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    char *got = recorded_command_line(out);
    cr_assert_str_eq(got, want);
    free(got);
    free(prog);
    free(out);
    cleanup(dir);
}

/* An output name that is not UTF-8 (a file name in another encoding) converts, and the
 * command line in the provenance has U+FFFD for each byte that is not valid UTF-8: the
 * provenance is JSON, which holds only UTF-8. */
Test(program, output_name_not_utf8)
{
    char *dir = model_dir("tiny-tied", NULL);
    char *out = fmt("%s/out\xff\xc3.qrr", dir, NULL);
    const char *b = getenv("QRR_BUILD");
    char line[4096];
    snprintf(line, sizeof line, "%s/qconvert '%s' -o '%s' --dtype f32 --quiet >/dev/null 2>&1",
             b && *b ? b : "build", dir, out);
    cr_assert_eq(system(line), 0, "%s", line);
    char *got = recorded_command_line(out);
    cr_assert(strstr(got, "/out\xef\xbf\xbd\xef\xbf\xbd.qrr'"), "command line: %s", got);
    free(got);
    free(out);
    cleanup(dir);
}

/* ---- max length and the attention window ---------------------------------------------- */

/* A tiny-tied directory whose config.json is the reference one with the keys of patch
 * (a JSON object) set. */
static char *patched_model_dir(const char *patch)
{
    char *dir = model_dir("tiny-tied", "config.json");
    char *cp = fmt("%s/models/tiny-tied/config.json", reference(), NULL);
    json_error_t e;
    json_t *cfg = json_load_file(cp, 0, &e), *p = json_loads(patch, 0, &e);
    cr_assert(cfg && p, "%s", e.text);
    cr_assert_eq(json_object_update(cfg, p), 0);
    char *text = json_dumps(cfg, 0);
    write_text(dir, "config.json", text);
    free(text);
    json_decref(p);
    json_decref(cfg);
    free(cp);
    return dir;
}

/* Convert dir with max_length (0: the default); on success return the file's max_length. */
static int convert_max_length(const char *dir, uint32_t max_length, uint32_t *file_max, qrr_diag *d,
                              qrr_convert_report *r)
{
    char *out = fmt("%s/out.qrr", dir, NULL);
    unlink(out);
    qrr_convert_opts o = qrr_convert_default_opts();
    o.model_dir = dir;
    o.out_path = out;
    o.max_length = max_length;
    int st = qrr_convert(&o, r, d);
    if (st == QRR_OK) {
        loaded l = load_qrr(out);
        *file_max = qrr_file_meta(l.f)->fixed.max_length;
        unload(&l);
    } else {
        assert_no_output(dir, out);
    }
    free(out);
    return st;
}

/* Tokens of the default prefix plus suffix, counted by the runtime on a converted file. */
static size_t frame_tokens(const char *qrr_path)
{
    qrr_model *m;
    cr_assert_eq(qrr_model_open(qrr_path, qrr_model_default_params(), &m), QRR_OK, "%s", qrr_last_error());
    int32_t ids[256];
    size_t np, ns;
    cr_assert_eq(qrr_model_tokenize(m, QRR_DEFAULT_PREFIX, strlen(QRR_DEFAULT_PREFIX), ids, 256, &np), QRR_OK);
    cr_assert_eq(qrr_model_tokenize(m, QRR_DEFAULT_SUFFIX, strlen(QRR_DEFAULT_SUFFIX), ids, 256, &ns), QRR_OK);
    qrr_model_close(m);
    return np + ns;
}

/* --max-length must leave room for one body token after the prefix and suffix: the smallest
 * accepted value scores a pair with the default parameters, one less is refused. */
Test(convert, max_length_must_hold_the_prompt_frame)
{
    char *dir = model_dir("tiny-tied", NULL);
    char *out = fmt("%s/out.qrr", dir, NULL);
    qrr_diag d;
    qrr_convert_report r;
    uint32_t got = 0;
    cr_assert_eq(convert_max_length(dir, 0, &got, &d, &r), QRR_OK, "%s", d.msg);
    size_t frame = frame_tokens(out);
    cr_assert_gt(frame, 10);
    uint32_t too_small[] = {1, 10, (uint32_t)frame};
    for (size_t i = 0; i < 3; i++) {
        int st = convert_max_length(dir, too_small[i], &got, &d, &r);
        cr_assert_eq(st, QRR_ERR_INVALID_ARG, "max_length %u: %s (%s)", too_small[i], qrr_status_str(st), d.msg);
        cr_assert(r.usage_error);
        cr_assert(strstr(d.msg, "--max-length") && strstr(d.msg, "prefix"), "%s", d.msg);
    }
    cr_assert_eq(convert_max_length(dir, (uint32_t)frame + 1, &got, &d, &r), QRR_OK, "%s", d.msg);
    cr_assert_eq(got, frame + 1);
    qrr_model *m;
    qrr_ctx *c;
    cr_assert_eq(qrr_model_open(out, qrr_model_default_params(), &m), QRR_OK, "%s", qrr_last_error());
    cr_assert_eq(qrr_ctx_create(m, qrr_ctx_default_params(), &c), QRR_OK, "%s", qrr_last_error());
    const char *docs[] = {"a document"};
    float score = -1, logit;
    cr_assert_eq(qrr_ctx_score(c, "a query", docs, 1, qrr_score_default_params(), &score, &logit), QRR_OK,
                 "%s", qrr_last_error());
    cr_assert(score >= 0 && score <= 1);
    qrr_ctx_free(c);
    qrr_model_close(m);
    /* the program: exit 2 */
    char *args = fmt("%s -o %s/x.qrr --quiet --max-length 10", dir, dir);
    cr_assert_eq(run_qconvert(args), 2);
    free(args);
    free(out);
    cleanup(dir);
}

/* Copy the .qrr file src to dst through the format's writer, with the default max_length
 * changed: a file qconvert would refuse to write. */
static void rewrite_max_length(const char *src, const char *dst, uint32_t max_length)
{
    loaded l = load_qrr(src);
    qrr_meta meta = *qrr_file_meta(l.f);
    meta.fixed.max_length = max_length;
    size_t tok_len;
    const uint8_t *tok = qrr_file_tokenizer(l.f, &tok_len);
    qrr_writer *w;
    qrr_diag d;
    cr_assert_eq(qrr_writer_open(dst, &w, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(qrr_writer_set_meta(w, &meta, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(qrr_writer_set_tokenizer(w, tok, tok_len, &d), QRR_OK, "%s", d.msg);
    size_t n = qrr_file_tensor_count(l.f);
    for (size_t i = 0; i < n; i++) {
        const qrr_tensor_view *t = qrr_file_tensor(l.f, i);
        cr_assert_eq(qrr_writer_add_tensor(w, t->name, t->dtype, t->ndim, t->dims, NULL, &d),
                     QRR_OK, "%s", d.msg);
    }
    for (size_t i = 0; i < n; i++) {
        const qrr_tensor_view *t = qrr_file_tensor(l.f, i);
        cr_assert_eq(qrr_writer_write(w, i, t->data, t->size, &d), QRR_OK, "%s", d.msg);
    }
    cr_assert_eq(qrr_writer_finish(w, &d), QRR_OK, "%s", d.msg);
    unload(&l);
}

/* A file whose own default max_length cannot hold the prompt's frame (made by hand: qconvert
 * refuses to write one) is refused at open, with the reason; one token more opens and scores. */
Test(convert, a_file_whose_max_length_cannot_hold_the_frame_is_refused_at_open)
{
    char *dir = model_dir("tiny-tied", NULL);
    char *out = fmt("%s/out.qrr", dir, NULL), *bad = fmt("%s/bad.qrr", dir, NULL),
         *good = fmt("%s/good.qrr", dir, NULL);
    qrr_diag d;
    qrr_convert_report r;
    uint32_t got = 0;
    cr_assert_eq(convert_max_length(dir, 0, &got, &d, &r), QRR_OK, "%s", d.msg);
    size_t frame = frame_tokens(out);
    rewrite_max_length(out, bad, (uint32_t)frame);
    rewrite_max_length(out, good, (uint32_t)frame + 1);
    qrr_model *m = NULL;
    int st = qrr_model_open(bad, qrr_model_default_params(), &m);
    cr_assert_eq(st, QRR_ERR_BAD_META, "%s (%s)", qrr_status_str(st), qrr_last_error());
    cr_assert_null(m);
    cr_assert(strstr(qrr_last_error(), "max_length") && strstr(qrr_last_error(), "prefix and suffix"),
              "%s", qrr_last_error());
    cr_assert_eq(qrr_model_open(good, qrr_model_default_params(), &m), QRR_OK, "%s", qrr_last_error());
    qrr_ctx *c;
    cr_assert_eq(qrr_ctx_create(m, qrr_ctx_default_params(), &c), QRR_OK, "%s", qrr_last_error());
    const char *docs[] = {"a document"};
    float score = -1;
    cr_assert_eq(qrr_ctx_score(c, "a query", docs, 1, qrr_score_default_params(), &score, NULL),
                 QRR_OK, "%s", qrr_last_error());
    cr_assert(score >= 0 && score <= 1);
    qrr_ctx_free(c);
    qrr_model_close(m);
    free(good);
    free(bad);
    free(out);
    cleanup(dir);
}

/* The default 8192 comes down to a smaller max_position_embeddings, with a note; an explicit
 * --max-length above it is refused; one the frame cannot fit in is a config refusal. */
Test(convert, max_length_within_max_position_embeddings)
{
    char *dir = patched_model_dir("{\"max_position_embeddings\": 1000}");
    qrr_diag d;
    qrr_convert_report r;
    uint32_t got = 0;
    cr_assert_eq(convert_max_length(dir, 0, &got, &d, &r), QRR_OK, "%s", d.msg);
    cr_assert_eq(got, 1000);
    cr_assert_eq(convert_max_length(dir, 1000, &got, &d, &r), QRR_OK, "%s", d.msg);
    cr_assert_eq(got, 1000);
    cr_assert_eq(convert_max_length(dir, 1001, &got, &d, &r), QRR_ERR_INVALID_ARG, "%s", d.msg);
    cr_assert(r.usage_error);
    cr_assert(strstr(d.msg, "max_position_embeddings") && strstr(d.msg, "1000"), "%s", d.msg);
    /* the program: a note on stderr for the default, exit 2 for the explicit value */
    char *args = fmt("%s -o %s/x.qrr --quiet", dir, dir), *err = fmt("%s.err", dir, NULL);
    cr_assert_eq(run_qconvert_err(args, err), 0);
    char *msg = tu_slurp(err, NULL);
    cr_assert(strstr(msg, "max_position_embeddings") && strstr(msg, "1000"), "stderr: %s", msg);
    free(msg);
    free(args);
    args = fmt("%s -o %s/x.qrr --quiet --max-length 8192", dir, dir);
    cr_assert_eq(run_qconvert_err(args, err), 2);
    unlink(err);
    free(err);
    free(args);
    cleanup(dir);

    dir = patched_model_dir("{\"max_position_embeddings\": 40}");
    cr_assert_eq(convert_max_length(dir, 0, &got, &d, &r), QRR_ERR_CONFIG, "%s", d.msg);
    cr_assert(strstr(d.msg, "max_position_embeddings"), "%s", d.msg);
    cleanup(dir);
}

/* Transformers applies a sliding window to layers max_window_layers.. when use_sliding_window
 * is true; qrr computes full attention, so a window shorter than the max length is refused. */
Test(convert, sliding_window_refused_where_it_would_apply)
{
    qrr_diag d;
    qrr_convert_report r;
    uint32_t got = 0;
    char *dir = patched_model_dir("{\"use_sliding_window\": true, \"sliding_window\": 4096, "
                                  "\"max_window_layers\": 1}");
    int st = convert_max_length(dir, 0, &got, &d, &r);
    cr_assert_eq(st, QRR_ERR_CONFIG, "%s (%s)", qrr_status_str(st), d.msg);
    cr_assert(strstr(d.msg, "sliding_window") && strstr(d.msg, "4096") && strstr(d.msg, "config.json"),
              "%s", d.msg);
    cr_assert(strstr(d.msg, "limits layers 1, 2 to"), "%s", d.msg); /* the model has 3 layers */
    /* a max length the window covers: the window never takes effect */
    cr_assert_eq(convert_max_length(dir, 4096, &got, &d, &r), QRR_OK, "%s", d.msg);
    cr_assert_eq(r.window_positions, 4096);
    /* nor can a request that asks for more: the file's positions end at the window */
    char *out = fmt("%s/out.qrr", dir, NULL);
    qrr_model *m;
    qrr_ctx *ctx;
    cr_assert_eq(qrr_model_open(out, qrr_model_default_params(), &m), QRR_OK, "%s", qrr_last_error());
    qrr_model_info info;
    qrr_model_get_info(m, &info);
    cr_assert_eq(info.max_position, 4096);
    cr_assert_eq(qrr_ctx_create(m, qrr_ctx_default_params(), &ctx), QRR_OK, "%s", qrr_last_error());
    const char *doc = "d";
    float score;
    qrr_score_params sp = qrr_score_default_params();
    sp.max_length = 4097;
    cr_assert_eq(qrr_ctx_score(ctx, "q", &doc, 1, sp, &score, NULL), QRR_ERR_INVALID_ARG);
    cr_assert(strstr(qrr_last_error(), "4096"), "%s", qrr_last_error());
    sp.max_length = 4096;
    cr_assert_eq(qrr_ctx_score(ctx, "q", &doc, 1, sp, &score, NULL), QRR_OK, "%s", qrr_last_error());
    qrr_ctx_free(ctx);
    qrr_model_close(m);
    free(out);
    cr_assert_eq(convert_max_length(dir, 4097, &got, &d, &r), QRR_ERR_CONFIG, "%s", d.msg);
    cleanup(dir);
    /* the window on no layer, or switched off: accepted */
    const char *fine[] = {
        "{\"use_sliding_window\": true, \"sliding_window\": 4096, \"max_window_layers\": 3}",
        "{\"use_sliding_window\": false, \"sliding_window\": 4096, \"max_window_layers\": 0}",
        "{\"use_sliding_window\": true, \"sliding_window\": null, \"max_window_layers\": 0}"};
    for (size_t i = 0; i < 3; i++) {
        dir = patched_model_dir(fine[i]);
        cr_assert_eq(convert_max_length(dir, 0, &got, &d, &r), QRR_OK, "%s: %s", fine[i], d.msg);
        cr_assert_eq(got, 8192);
        cr_assert_eq(r.window_positions, 0, "%s", fine[i]);
        cleanup(dir);
    }
    /* an explicit layer_types wins over max_window_layers, as in Transformers */
    dir = patched_model_dir("{\"use_sliding_window\": true, \"sliding_window\": 512, \"max_window_layers\": 3, "
                            "\"layer_types\": [\"full_attention\", \"sliding_attention\", \"full_attention\"]}");
    cr_assert_eq(convert_max_length(dir, 0, &got, &d, &r), QRR_ERR_CONFIG, "%s", d.msg);
    cr_assert(strstr(d.msg, "limits layer 1 to"), "%s", d.msg);
    cleanup(dir);
}

/* ---- scalar conversions ----------------------------------------------------------------- */

Test(quantize, f16_roundtrip_all_values)
{
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00) continue; /* Inf, NaN */
        float f = qrr_f16_to_f32((uint16_t)h);
        cr_assert_eq(qrr_f32_to_f16(f), h, "f16 %04x -> %a -> %04x", h, (double)f, qrr_f32_to_f16(f));
        _Float16 ref = (_Float16)f;
        cr_assert_eq((float)ref, f);
    }
}

Test(quantize, f16_rounding_matches_compiler)
{
    /* every bf16 value, and a sweep of f32 bit patterns, against the compiler's RNE */
    for (uint32_t b = 0; b < 0x10000; b++) {
        float f = qrr_bf16_to_f32((uint16_t)b);
        if (!isfinite(f)) continue;
        _Float16 ref = (_Float16)f;
        uint16_t rb;
        memcpy(&rb, &ref, 2);
        cr_assert_eq(qrr_f32_to_f16(f), rb, "bf16 %04x (%a)", b, (double)f);
    }
    for (uint64_t u = 0; u < 0x7f800000u; u += 4099) {
        uint32_t x = (uint32_t)u;
        float f;
        memcpy(&f, &x, 4);
        _Float16 ref = (_Float16)f;
        uint16_t rb;
        memcpy(&rb, &ref, 2);
        cr_assert_eq(qrr_f32_to_f16(f), rb, "f32 %08x", x);
    }
}

Test(quantize, bf16_overflow_and_inexact)
{
    uint16_t src[4] = {0x3f80 /* 1 */, 0x477f /* 65280 */, 0x3380 /* 2^-24 */, 0x3300 /* 2^-25 */};
    uint16_t out[4];
    qrr_conv_result r = qrr_convert_to_f16(src, QRR_SRC_BF16, 4, out);
    cr_assert_eq(r.status, QRR_OK);
    cr_assert_eq(r.inexact, 1); /* 2^-25 is half the least f16 subnormal: rounds to 0 */
    cr_assert_eq(out[2], 0x0001);
    cr_assert_eq(out[3], 0x0000);
    uint16_t big[2] = {0x3f80, 0xc780 /* -65536 */};
    r = qrr_convert_to_f16(big, QRR_SRC_BF16, 2, out);
    cr_assert_eq(r.status, QRR_ERR_OVERFLOW);
    cr_assert_eq(r.bad_index, 1);
    cr_assert_float_eq(r.bad_value, -65536.0f, 0.0f);
    uint16_t nan[1] = {0x7fc0};
    cr_assert_eq(qrr_convert_to_f32(nan, QRR_SRC_BF16, 1, (float *)out).status, QRR_ERR_NUMERIC);
}

Test(quantize, int8_rows)
{
    float w[2][4] = {{0.5f, -1.0f, 0.25f, 0.0f}, {0, 0, 0, 0}};
    int8_t q[8];
    float s[2];
    qrr_conv_result r = qrr_quantize_i8(w, QRR_SRC_F32, 2, 4, 0, q, s);
    cr_assert_eq(r.status, QRR_OK);
    cr_assert_float_eq(s[0], 1.0f / 127.0f, 0.0f);
    cr_assert_eq(s[1], 1.0f); /* all-zero row: scale 1, never 0 */
    cr_assert_eq(q[1], -127);
    cr_assert_eq(q[0], 64); /* 0.5 / fl(1/127) is just above 63.5 */
    cr_assert_eq(q[4], 0);
    /* per block: two blocks of two */
    r = qrr_quantize_i8(w, QRR_SRC_F32, 1, 4, 2, q, s);
    cr_assert_eq(r.status, QRR_OK);
    cr_assert_float_eq(s[0], 1.0f / 127.0f, 0.0f);
    cr_assert_float_eq(s[1], 0.25f / 127.0f, 0.0f);
    cr_assert_eq(q[2], 127);
}

Test(quantize, bf16_to_f16_fast_path_matches_scalar)
{
    /* every finite bf16 value that fits f16, through the batch call, against the scalar rule */
    static uint16_t src[0x10000], out[0x10000];
    size_t n = 0;
    for (uint32_t b = 0; b < 0x10000; b++) {
        float f = qrr_bf16_to_f32((uint16_t)b);
        if (isfinite(f) && fabsf(f) <= 65504.0f) src[n++] = (uint16_t)b;
    }
    qrr_conv_result r = qrr_convert_to_f16(src, QRR_SRC_BF16, n, out);
    cr_assert_eq(r.status, QRR_OK);
    uint64_t inexact = 0;
    for (size_t i = 0; i < n; i++) {
        float f = qrr_bf16_to_f32(src[i]);
        cr_assert_eq(out[i], qrr_f32_to_f16(f), "bf16 %04x", src[i]);
        inexact += qrr_f16_to_f32(out[i]) != f;
    }
    cr_assert_eq(r.inexact, inexact);
    cr_assert_gt(inexact, 0);
}

Test(convert, reproducible_with_source_date_epoch)
{
    setenv("SOURCE_DATE_EPOCH", "1700000000", 1);
    char *dir = model_dir("tiny-untied", NULL);
    char *out = fmt("%s/out.qrr", dir, NULL);
    qrr_diag d;
    cr_assert_eq(convert(dir, out, QRR_DTYPE_I8, 0, &d, NULL), QRR_OK, "%s", d.msg);
    size_t n1, n2;
    uint8_t *a = (uint8_t *)tu_slurp(out, &n1);
    cr_assert_eq(convert(dir, out, QRR_DTYPE_I8, 0, &d, NULL), QRR_OK, "%s", d.msg);
    uint8_t *b = (uint8_t *)tu_slurp(out, &n2);
    cr_assert_eq(n1, n2);
    cr_assert(memcmp(a, b, n1) == 0, "two runs differ");
    free(a);
    free(b);
    free(out);
    cleanup(dir);
}

/* ---- what the converter leaves the runtime to do ----------------------------------- */

/* The logit of one pair scored by the model at path, with instruction (NULL: the default);
 * the status, and the logit in *logit when QRR_OK. */
static int score_one(const char *path, const char *instruction, float *logit)
{
    qrr_model *m;
    qrr_ctx *c;
    cr_assert_eq(qrr_model_open(path, qrr_model_default_params(), &m), QRR_OK, "%s", qrr_last_error());
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = 1;
    cr_assert_eq(qrr_ctx_create(m, cp, &c), QRR_OK, "%s", qrr_last_error());
    const char *doc = "Beijing is the capital of China.";
    qrr_score_params sp = qrr_score_default_params();
    sp.instruction = instruction;
    float score;
    int rc = qrr_ctx_score(c, "What is the capital of China?", &doc, 1, sp, &score, logit);
    qrr_ctx_free(c);
    qrr_model_close(m);
    return rc;
}

/* A seq-cls conversion's Sentence Transformers prompts with the instruction written out in
 * the query prompt: the file scores as one without them (the same prompt), and a request's
 * own instruction replaces the written-out one, as it does in the recipe's template. Prompts
 * with no place for an instruction refuse a request that gives one, rather than ignore it. */
Test(convert, an_instruction_written_out_in_the_prompts_can_still_be_replaced, .timeout = 120)
{
    static const char *const plain_prompts =
        "{\"prompts\": {\"query\": \"<|im_start|>system\\nJudge whether the Document meets the "
        "requirements based on the Query and the Instruct provided. Note that the answer can only "
        "be \\\"yes\\\" or \\\"no\\\".<|im_end|>\\n<|im_start|>user\\n<Instruct>: Given a web search "
        "query, retrieve relevant passages that answer the query\\n<Query>: \", \"document\": "
        "\"\\n<Document>: \"}}";
    char *plain = model_dir("tiny-seqcls", NULL), *st = model_dir("tiny-seqcls", NULL);
    char *fixed = model_dir("tiny-seqcls", NULL);
    write_text(st, "config_sentence_transformers.json", plain_prompts);
    write_text(fixed, "config_sentence_transformers.json",
               "{\"prompts\": {\"query\": \"Query: \", \"document\": \"\\nDocument: \"}}");
    char *outs[3] = {fmt("%s/out.qrr", plain, NULL), fmt("%s/out.qrr", st, NULL),
                     fmt("%s/out.qrr", fixed, NULL)};
    char *dirs[3] = {plain, st, fixed};
    for (int i = 0; i < 3; i++) {
        qrr_convert_opts o = qrr_convert_default_opts();
        o.model_dir = dirs[i];
        o.out_path = outs[i];
        qrr_diag d;
        cr_assert_eq(qrr_convert(&o, NULL, &d), QRR_OK, "%s", d.msg);
    }
    float a, b;
    cr_assert_eq(score_one(outs[0], NULL, &a), QRR_OK);
    cr_assert_eq(score_one(outs[1], NULL, &b), QRR_OK);
    cr_expect_eq(a, b, "default instruction: %g without the prompts file, %g with it", a, b);
    const char *other = "Judge whether the document names a river";
    cr_assert_eq(score_one(outs[0], other, &a), QRR_OK);
    cr_assert_eq(score_one(outs[1], other, &b), QRR_OK);
    cr_expect_eq(a, b, "another instruction: %g without the prompts file, %g with it", a, b);
    float c;
    cr_assert_eq(score_one(outs[1], NULL, &c), QRR_OK);
    cr_expect_neq(b, c, "the request's instruction changed nothing");

    cr_assert_eq(score_one(outs[2], NULL, &a), QRR_OK);
    cr_expect_eq(score_one(outs[2], other, &a), QRR_ERR_INVALID_ARG);
    cr_expect(strstr(qrr_last_error(), "instruction is fixed"), "%s", qrr_last_error());
    for (int i = 0; i < 3; i++) {
        free(outs[i]);
        cleanup(dirs[i]);
    }
}

/* A tokenizer with ids the embedding has no row for: refused before any output (the runtime
 * refuses such a file, so it could never be opened). */
Test(convert, a_tokenizer_larger_than_the_embedding_is_refused, .timeout = 120)
{
    char *dir = make_tmpdir(), *out = fmt("%s/out.qrr", dir, NULL);
    /* qgen's own small tokenizer and an embedding of 10,000 rows, then the real tokenizer
     * (151,669 ids; "yes" and "no" within the 10,000) in its place */
    cr_assert_eq(tu_system("'%s/qgen' -o '%s/m' --vocab 10000 > /dev/null 2>&1 && cp '%s/tokenizer/tokenizer.json' "
                           "'%s/tokenizer/tokenizer_config.json' '%s/m/'", tu_build(), dir, reference(),
                           reference(), dir), 0);
    char *src = fmt("%s/m", dir, NULL);
    qrr_convert_opts o = qrr_convert_default_opts();
    o.model_dir = src;
    o.out_path = out;
    qrr_diag d;
    cr_assert_eq(qrr_convert(&o, NULL, &d), QRR_ERR_CONFIG, "%s", d.msg);
    cr_expect(strstr(d.msg, "151669 ids") && strstr(d.msg, "vocab_size") && strstr(d.msg, "10000"),
              "%s", d.msg);
    assert_no_output(dir, out);
    free(src);
    free(out);
    cleanup(dir);
}
