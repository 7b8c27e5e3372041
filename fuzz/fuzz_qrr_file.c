/* fuzz_qrr_file.c — libFuzzer target: the .qrr loader on an image held in memory, then, when
 * the image loads, libqrr opens it as a model and scores one tiny pair. Unless the input's
 * header checksum field is zero, the harness first rewrites every checksum (tensors, then
 * sections, then header) so that mutations reach the checks behind the hashes. */
#include <string.h>
#include <xxhash.h>

#include "fuzz_util.h"
#include "qrr.h"
#include "qrr_file.h"

/* Recompute tensor, section and header checksums in place wherever the fields point inside
 * the image; fields pointing elsewhere are left for the loader to refuse. */
static void fix_checksums(uint8_t *img, size_t len)
{
    if (len < QRR_HEADER_SIZE) return;
    qrr_header_disk h;
    memcpy(&h, img, sizeof h);
    if (h.header_checksum == 0) return; /* raw mode: the loader sees the bytes as they are */
    for (int s = 0; s < QRR_SECTION_COUNT; s++) {
        uint64_t off = h.sections[s].offset, size = h.sections[s].size, end;
        if (__builtin_add_overflow(off, size, &end) || end > len) continue;
        if (s == QRR_SECTION_TENSORS) {
            for (uint64_t e = off; e + sizeof(qrr_tensor_disk) <= end; e += sizeof(qrr_tensor_disk)) {
                qrr_tensor_disk t;
                memcpy(&t, img + e, sizeof t);
                uint64_t tend;
                if (__builtin_add_overflow(t.offset, t.size, &tend) || tend > len) continue;
                t.checksum = XXH3_64bits(img + t.offset, (size_t)t.size);
                memcpy(img + e + offsetof(qrr_tensor_disk, checksum), &t.checksum, 8);
            }
        }
        if (s == QRR_SECTION_DATA) continue;
        h.sections[s].checksum = XXH3_64bits(img + off, (size_t)size);
    }
    memcpy(img, &h, sizeof h);
    h.header_checksum = XXH3_64bits(img, offsetof(qrr_header_disk, header_checksum));
    memcpy(img + offsetof(qrr_header_disk, header_checksum), &h.header_checksum, 8);
}

/* What the loader promises about a file it accepted: every view lies inside the image. */
static void check_views(const qrr_file *f, const uint8_t *img, size_t len)
{
    size_t n = qrr_file_tensor_count(f);
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < n; i++) {
        const qrr_tensor_view *v = qrr_file_tensor(f, i);
        const uint8_t *p = v->data;
        FUZZ_CHECK(p >= img && v->size <= len && (size_t)(p - img) <= len - v->size,
                   "tensor %zu outside the image", i);
        FUZZ_CHECK(qrr_file_find(f, v->name) == v, "tensor %s not found by name", v->name);
        if (v->size) sink ^= p[0] ^ p[v->size - 1]; /* ASan checks both ends */
    }
    size_t tok_len = 0;
    const uint8_t *tok = qrr_file_tokenizer(f, &tok_len);
    if (tok_len) sink ^= tok[0] ^ tok[tok_len - 1];
    (void)sink;
}

static void score_one(const uint8_t *img, size_t len)
{
    qrr_model_params mp = qrr_model_default_params();
    qrr_model *m = NULL;
    int rc = qrr_model_open_memory(img, len, mp, &m);
    if (rc != QRR_OK) {
        FUZZ_CHECK(rc < 0 && qrr_last_error()[0], "open failed without a message (%d)", rc);
        return;
    }
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = 1;
    qrr_ctx *c = NULL;
    if (qrr_ctx_create(m, cp, &c) == QRR_OK) {
        const char *docs[] = {"Paris is in France.", ""};
        float scores[2] = {-1, -1}, logits[2];
        qrr_score_params sp = qrr_score_default_params();
        sp.max_length = 128;
        rc = qrr_ctx_score(c, "where is paris?", docs, 2, sp, scores, logits);
        if (rc == QRR_OK)
            for (int i = 0; i < 2; i++)
                FUZZ_CHECK(scores[i] >= 0 && scores[i] <= 1 && logits[i] == logits[i],
                           "score %d is %g (logit %g)", i, scores[i], logits[i]);
        qrr_ctx_free(c);
    }
    qrr_model_close(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (64u << 20)) return 0;
    /* Page-aligned like a mapping, and exactly size bytes so ASan sees any overread. */
    void *img = NULL;
    if (posix_memalign(&img, 4096, size ? size : 1) != 0) return 0;
    memcpy(img, data, size);
    fix_checksums(img, size);
    qrr_file *f = NULL;
    qrr_diag d;
    qrr_diag_clear(&d);
    int rc = qrr_file_load(img, size, 0, &f, NULL, &d);
    if (rc == QRR_OK) {
        check_views(f, img, size);
        qrr_file_free(f);
        score_one(img, size);
    } else {
        FUZZ_CHECK(rc < 0 && d.status == rc && d.msg[0], "status %d without a message", rc);
        FUZZ_CHECK(f == NULL, "failed load left a file behind");
    }
    free(img);
    return 0;
}
