/* fuzz_qrr_sections.c — libFuzzer target: the two zlib sections of a .qrr after
 * decompression, which mutations of a whole file rarely reach intact. The first byte picks
 * the parser: even = META (qrr_meta_decode), odd = TOKENIZER blob (qrr_tokenizer_load, then
 * encode and decode a short text through the tokenizer it built). */
#include <string.h>

#include "fuzz_util.h"
#include "qrr_meta.h"
#include "tokenizer.h"

static void fuzz_meta(const uint8_t *p, size_t n)
{
    qrr_meta m;
    qrr_diag d;
    qrr_diag_clear(&d);
    int rc = qrr_meta_decode(p, n, &m, &d);
    if (rc != QRR_OK) {
        FUZZ_CHECK(rc < 0 && d.msg[0], "status %d without a message", rc);
        return;
    }
    /* Accepted metadata must pass validation again, and its strings lie inside p. */
    FUZZ_CHECK(qrr_meta_validate(&m, &d) == QRR_OK, "decoded metadata fails validation: %s",
               d.msg);
    for (int i = 0; i < QRR_META_STRING_COUNT; i++) {
        const qrr_str s = m.strings[i];
        if (!s.len) continue;
        const uint8_t *sp = (const uint8_t *)s.ptr;
        FUZZ_CHECK(sp >= p && s.len <= n && (size_t)(sp - p) <= n - s.len,
                   "string %d outside the section", i);
    }
    /* And encode back to the very same bytes. */
    uint8_t *enc = NULL;
    size_t enc_len = 0;
    FUZZ_CHECK(qrr_meta_encode(&m, &enc, &enc_len, &d) == QRR_OK, "re-encode failed: %s", d.msg);
    FUZZ_CHECK(enc_len == n && memcmp(enc, p, n) == 0, "re-encoded metadata differs");
    free(enc);
}

static void fuzz_tokenizer_blob(const uint8_t *p, size_t n)
{
    qrr_tokenizer *t = NULL;
    qrr_diag d;
    qrr_diag_clear(&d);
    int rc = qrr_tokenizer_load(p, n, &t, &d);
    if (rc != QRR_OK) {
        FUZZ_CHECK(rc < 0 && d.msg[0] && !t, "status %d without a message", rc);
        return;
    }
    static const char text[] = "<|im_start|>user\nHello, wörld! 123 yes no\n<|im_end|>";
    int32_t ids[256];
    size_t n_ids = 0;
    rc = qrr_tokenizer_encode(t, text, sizeof text - 1, ids, 256, &n_ids, &d);
    if (rc == QRR_OK) {
        char out[1024];
        size_t n_bytes = 0;
        size_t vocab = qrr_tokenizer_vocab_size(t);
        for (size_t i = 0; i < n_ids; i++)
            FUZZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < vocab, "id %d outside [0, %zu)", ids[i], vocab);
        qrr_tokenizer_decode(t, ids, n_ids, out, sizeof out, &n_bytes, &d);
    }
    qrr_tokenizer_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    /* An exact-size copy, so that ASan sees a read one byte past the end. */
    size_t n = size - 1;
    uint8_t *p = malloc(n ? n : 1);
    if (!p) return 0;
    memcpy(p, data + 1, n);
    if (data[0] & 1) fuzz_tokenizer_blob(p, n);
    else fuzz_meta(p, n);
    free(p);
    return 0;
}
