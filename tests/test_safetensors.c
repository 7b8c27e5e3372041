/* test_safetensors.c — the safetensors reader: the reference files parse with the shapes
 * and offsets their headers state; one hand-made header per rule is refused with
 * QRR_ERR_SAFETENSORS and a message naming the problem; sharded sets resolve tensors
 * through the index and refuse a map that lies. */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qrr_test_util.h"
#include "safetensors.h"

static const char *reference(void)
{
    const char *r = getenv("QRR_REFERENCE");
    return r && *r ? r : "../shared/reference";
}

/* An image: 8-byte length, header text, then data_len bytes of 0x11. */
static uint8_t *image(const char *header, size_t data_len, size_t *len)
{
    size_t h = strlen(header);
    *len = 8 + h + data_len;
    uint8_t *b = malloc(*len);
    cr_assert_not_null(b);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, header, h);
    memset(b + 8 + h, 0x11, data_len);
    return b;
}

static int parse(const char *header, size_t data_len, qrr_diag *d)
{
    size_t len;
    uint8_t *b = image(header, data_len, &len);
    qrr_st_tensor *t = NULL;
    size_t n = 0;
    uint64_t ds;
    int st = qrr_st_parse(b, len, "test.safetensors", &t, &n, &ds, d);
    if (st == QRR_OK) cr_assert_eq(ds, 8 + strlen(header));
    else cr_assert_null(t);
    free(t);
    free(b);
    return st;
}

static void refused(const char *header, size_t data_len, const char *needle)
{
    qrr_diag d;
    int st = parse(header, data_len, &d);
    cr_assert_eq(st, QRR_ERR_SAFETENSORS, "accepted: %s", header);
    cr_assert(strstr(d.msg, "test.safetensors"), "message does not name the file: %s", d.msg);
    cr_assert(strstr(d.msg, needle), "message '%s' lacks '%s'", d.msg, needle);
}

#define T(name, dtype, shape, b, e) "\"" name "\": {\"dtype\": \"" dtype "\", \"shape\": " shape ", \"data_offsets\": [" #b ", " #e "]}"

Test(parse, good_header)
{
    const char *h = "{\"__metadata__\": {\"format\": \"pt\"}, " T("b", "F32", "[2, 2]", 16, 32) ", "
                    T("a", "BF16", "[4]", 0, 8) ", " T("empty", "F16", "[0, 3]", 8, 8) "}";
    size_t len;
    uint8_t *img = image(h, 32, &len);
    qrr_st_tensor *t;
    size_t n;
    uint64_t ds;
    qrr_diag d;
    cr_assert_eq(qrr_st_parse(img, len, "x", &t, &n, &ds, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(n, 3);
    cr_assert_str_eq(t[0].name, "a"); /* sorted by name */
    cr_assert_eq(t[0].dtype, QRR_ST_BF16);
    cr_assert_eq(t[0].count, 4);
    cr_assert_str_eq(t[1].name, "b");
    cr_assert_eq(t[1].ndim, 2);
    cr_assert_eq(t[1].dims[1], 2);
    cr_assert_eq(t[1].begin, 16);
    cr_assert_eq(t[2].count, 0);
    free(t);
    free(img);
}

Test(parse, too_short)
{
    qrr_st_tensor *t;
    size_t n;
    uint64_t ds;
    qrr_diag d;
    cr_assert_eq(qrr_st_parse((const uint8_t *)"abc", 3, "s", &t, &n, &ds, &d), QRR_ERR_SAFETENSORS);
    cr_assert(strstr(d.msg, "too short"), "%s", d.msg);
}

Test(parse, header_length_past_end)
{
    size_t len;
    uint8_t *b = image("{}", 0, &len);
    b[0] = 200; /* claims 200 header bytes, the file has 2 */
    qrr_st_tensor *t;
    size_t n;
    uint64_t ds;
    qrr_diag d;
    cr_assert_eq(qrr_st_parse(b, len, "test.safetensors", &t, &n, &ds, &d), QRR_ERR_SAFETENSORS);
    cr_assert(strstr(d.msg, "past the end"), "%s", d.msg);
    b[0] = 0;
    b[7] = 0x80; /* 2^63: wraps any naive 8 + length */
    cr_assert_eq(qrr_st_parse(b, len, "test.safetensors", &t, &n, &ds, &d), QRR_ERR_SAFETENSORS);
    free(b);
}

Test(parse, header_not_json) { refused("{\"a\": ", 0, "not valid JSON"); }
Test(parse, header_not_object) { refused("[1, 2]", 0, "JSON object"); }
Test(parse, entry_not_object) { refused("{\"a\": 3}", 0, "not a JSON object"); }
Test(parse, metadata_not_object) { refused("{\"__metadata__\": 3}", 0, "__metadata__"); }
Test(parse, dtype_missing) { refused("{\"a\": {\"shape\": [1], \"data_offsets\": [0, 4]}}", 4, "dtype"); }
Test(parse, dtype_unknown) { refused("{" T("a", "I64", "[1]", 0, 8) "}", 8, "I64"); }
Test(parse, shape_negative) { refused("{" T("a", "F32", "[-1]", 0, 4) "}", 4, "shape[0]"); }
Test(parse, shape_not_array) { refused("{\"a\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 16]}}", 16, "shape"); }
Test(parse, too_many_dims) { refused("{" T("a", "F32", "[1,1,1,1,1,1,1,1,1]", 0, 4) "}", 4, "dimensions"); }
Test(parse, shape_overflow)
{
    refused("{" T("a", "F32", "[4294967296, 4294967296, 16]", 0, 4) "}", 4, "overflows");
}
Test(parse, bytes_overflow) /* count fits, count * 4 does not */
{
    refused("{" T("a", "F32", "[4611686018427387904]", 0, 4) "}", 4, "expected");
}
Test(parse, offsets_not_pair) { refused("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4, "data_offsets"); }
Test(parse, offsets_negative) { refused("{" T("a", "F32", "[1]", -4, 0) "}", 4, "data_offsets"); }
Test(parse, begin_after_end) { refused("{" T("a", "F32", "[1]", 8, 4) "}", 8, "begin 8 > end 4"); }
Test(parse, end_past_data) { refused("{" T("a", "F32", "[2]", 0, 8) "}", 4, "past the data area"); }
Test(parse, size_mismatch) { refused("{" T("a", "F32", "[3]", 0, 8) "}", 8, "expected 12"); }
Test(parse, overlap) { refused("{" T("a", "F32", "[2]", 0, 8) ", " T("b", "F32", "[2]", 4, 12) "}", 12, "overlap"); }
Test(parse, duplicate) { refused("{" T("a", "F32", "[1]", 0, 4) ", " T("a", "F32", "[1]", 4, 8) "}", 8, "twice"); }
Test(parse, empty_name) { refused("{" T("", "F32", "[1]", 0, 4) "}", 4, "empty name"); }

Test(parse, overlap_behind_empty_tensor) /* an empty tensor between two overlapping ones */
{
    refused("{" T("a", "F32", "[4]", 0, 16) ", " T("e", "F32", "[0]", 8, 8) ", " T("b", "F32", "[1]", 12, 16) "}",
            16, "overlap");
}

Test(file, reference_single)
{
    char path[512];
    snprintf(path, sizeof path, "%s/models/tiny-tied/model.safetensors", reference());
    qrr_st_file *f;
    qrr_diag d;
    cr_assert_eq(qrr_st_file_open(path, &f, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(f->count, 1 + 3 * 11 + 1); /* embedding, 3 layers of 11, final norm */
    const qrr_st_tensor *e = qrr_st_file_find(f, "model.embed_tokens.weight");
    cr_assert_not_null(e);
    cr_assert_eq(e->dtype, QRR_ST_BF16);
    cr_assert_eq(e->dims[0], 151669);
    cr_assert_eq(e->dims[1], 32);
    cr_assert_null(qrr_st_file_find(f, "lm_head.weight"));
    /* releasing pages keeps the contents readable */
    uint8_t first = qrr_st_data(f, e)[0];
    qrr_st_file_release(f, qrr_st_data(f, e), (size_t)(e->end - e->begin));
    cr_assert_eq(qrr_st_data(f, e)[0], first);
    qrr_st_file_close(f);
}

Test(file, missing_file)
{
    qrr_st_file *f;
    qrr_diag d;
    cr_assert_eq(qrr_st_file_open("/nonexistent/x.safetensors", &f, &d), QRR_ERR_IO);
    cr_assert(strstr(d.msg, "/nonexistent/x.safetensors"));
}

Test(set, reference_sharded)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s/models/tiny-untied", reference());
    qrr_st_set *s;
    qrr_diag d;
    cr_assert_eq(qrr_st_set_open(dir, &s, &d), QRR_OK, "%s", d.msg);
    cr_assert_eq(qrr_st_set_file_count(s), 2);
    cr_assert_not_null(qrr_st_set_index_path(s));
    const qrr_st_file *f;
    const qrr_st_tensor *t;
    cr_assert_eq(qrr_st_set_find(s, "lm_head.weight", &f, &t), 0);
    cr_assert(strstr(f->path, "model-00002-of-00002.safetensors"));
    cr_assert_eq(qrr_st_set_find(s, "model.embed_tokens.weight", &f, &t), 0);
    cr_assert(strstr(f->path, "model-00001-of-00002.safetensors"));
    cr_assert_eq(qrr_st_set_find(s, "no.such.tensor", &f, &t), -1);
    qrr_st_set_close(s);
}

/* A temporary directory (its path in dir) with links to tiny-untied's two shards and an
 * index holding weight_map_json. */
static void sharded_copy(const char *weight_map_json, char *dir, size_t n)
{
    tu_tmpdir(dir, n);
    char src[512], dst[512];
    for (int i = 1; i <= 2; i++) {
        snprintf(src, sizeof src, "%s/models/tiny-untied/model-0000%d-of-00002.safetensors", reference(), i);
        snprintf(dst, sizeof dst, "%s/model-0000%d-of-00002.safetensors", dir, i);
        char *abs = realpath(src, NULL);
        cr_assert_not_null(abs);
        cr_assert_eq(symlink(abs, dst), 0);
        free(abs);
    }
    snprintf(dst, sizeof dst, "%s/model.safetensors.index.json", dir);
    FILE *f = fopen(dst, "w");
    cr_assert_not_null(f, "cannot create %s", dst);
    fprintf(f, "{\"metadata\": {}, \"weight_map\": %s}", weight_map_json);
    fclose(f);
}

Test(set, index_names_missing_shard)
{
    char dir[64];
    sharded_copy("{\"model.norm.weight\": \"model-00009-of-00009.safetensors\"}", dir, sizeof dir);
    qrr_st_set *s;
    qrr_diag d;
    cr_assert_eq(qrr_st_set_open(dir, &s, &d), QRR_ERR_SAFETENSORS);
    cr_assert(strstr(d.msg, "model-00009-of-00009.safetensors") && strstr(d.msg, "does not exist"), "%s", d.msg);
}

Test(set, index_points_to_wrong_shard)
{
    char dir[64];
    sharded_copy("{\"lm_head.weight\": \"model-00001-of-00002.safetensors\"}", dir, sizeof dir);
    qrr_st_set *s;
    qrr_diag d;
    cr_assert_eq(qrr_st_set_open(dir, &s, &d), QRR_ERR_SAFETENSORS);
    cr_assert(strstr(d.msg, "lm_head.weight"), "%s", d.msg);
}

Test(set, index_path_escape)
{
    char dir[64];
    sharded_copy("{\"lm_head.weight\": \"../model-00002-of-00002.safetensors\"}", dir, sizeof dir);
    qrr_st_set *s;
    qrr_diag d;
    cr_assert_eq(qrr_st_set_open(dir, &s, &d), QRR_ERR_SAFETENSORS);
    cr_assert(strstr(d.msg, "shard file name"), "%s", d.msg);
}

Test(set, no_checkpoint)
{
    char dir[64];
    tu_tmpdir(dir, sizeof dir);
    qrr_st_set *s;
    qrr_diag d;
    cr_assert_eq(qrr_st_set_open(dir, &s, &d), QRR_ERR_SAFETENSORS);
    cr_assert(strstr(d.msg, "model.safetensors"), "%s", d.msg);
}
