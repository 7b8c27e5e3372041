/* fuzz_tokenizer.c — libFuzzer target: the runtime tokenizer (the real Qwen3 one, imported
 * from the reference tokenizer.json at start-up) on arbitrary bytes. Encode; for valid
 * UTF-8, decode the ids and check that the decoded text encodes to the same ids; and decode
 * the input read as little-endian int32 ids (unknown ids must be refused, not read). */
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer.h"
#include "tokenizer_import.h"

static qrr_tokenizer *tok;
static size_t n_vocab;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char tj[1024], tc[1024];
    snprintf(tj, sizeof tj, "%s/tokenizer/tokenizer.json", fuzz_reference());
    snprintf(tc, sizeof tc, "%s/tokenizer/tokenizer_config.json", fuzz_reference());
    uint8_t *blob = NULL;
    size_t len = 0;
    qrr_diag d;
    qrr_diag_clear(&d);
    if (qrr_tokenizer_import(tj, tc, &blob, &len, &d) != QRR_OK ||
        qrr_tokenizer_load(blob, len, &tok, &d) != QRR_OK) {
        fprintf(stderr, "fuzz_tokenizer: %s (set QRR_REFERENCE)\n", d.msg);
        exit(1);
    }
    free(blob);
    n_vocab = qrr_tokenizer_vocab_size(tok);
    return 0;
}

/* Encode into a malloc'ed exact-size array (NULL and *n = 0 on failure). */
static int32_t *encode(const char *text, size_t len, size_t *n, int *rc)
{
    qrr_diag d;
    qrr_diag_clear(&d);
    *n = 0;
    *rc = qrr_tokenizer_encode(tok, text, len, NULL, 0, n, &d);
    if (*rc != QRR_OK && *rc != QRR_ERR_BUFFER_TOO_SMALL) {
        FUZZ_CHECK(d.msg[0], "encode failed (%d) without a message", *rc);
        return NULL;
    }
    int32_t *ids = malloc((*n ? *n : 1) * sizeof *ids);
    if (!ids) return NULL;
    size_t n2 = 0;
    *rc = qrr_tokenizer_encode(tok, text, len, ids, *n, &n2, &d);
    FUZZ_CHECK(*rc == QRR_OK && n2 == *n, "sizing pass said %zu ids, second pass %zu (%d: %s)",
               *n, n2, *rc, d.msg);
    return ids;
}

static char *decode(const int32_t *ids, size_t n, size_t *nb, int *rc)
{
    qrr_diag d;
    qrr_diag_clear(&d);
    *rc = qrr_tokenizer_decode(tok, ids, n, NULL, 0, nb, &d);
    if (*rc != QRR_OK && *rc != QRR_ERR_BUFFER_TOO_SMALL) return NULL;
    char *out = malloc(*nb ? *nb : 1);
    if (!out) return NULL;
    size_t nb2 = 0;
    *rc = qrr_tokenizer_decode(tok, ids, n, out, *nb, &nb2, &d);
    FUZZ_CHECK(*rc == QRR_OK && nb2 == *nb, "decode sizing %zu vs %zu (%d: %s)", *nb, nb2, *rc,
               d.msg);
    return out;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size ? size : 1); /* exact size, no terminator */
    if (!text) return 0;
    memcpy(text, data, size);
    size_t n = 0;
    int rc;
    int32_t *ids = encode(text, size, &n, &rc);
    if (ids && rc == QRR_OK) {
        for (size_t i = 0; i < n; i++)
            FUZZ_CHECK(ids[i] >= 0 && (size_t)ids[i] < n_vocab, "id %d outside [0, %zu)", ids[i], n_vocab);
        /* Small cap: the partial write must stop at cap. */
        if (n > 1) {
            int32_t few[2] = {-7, -7};
            size_t nf = 0;
            qrr_diag d;
            int r2 = qrr_tokenizer_encode(tok, text, size, few, 1, &nf, &d);
            FUZZ_CHECK(r2 == QRR_ERR_BUFFER_TOO_SMALL && nf == n && few[0] == ids[0] && few[1] == -7,
                       "cap 1: rc %d, n %zu of %zu", r2, nf, n);
        }
        size_t nb = 0;
        char *back = decode(ids, n, &nb, &rc);
        FUZZ_CHECK(back && rc == QRR_OK, "decoding encoded ids failed (%d)", rc);
        size_t n2 = 0;
        int32_t *again = encode(back, nb, &n2, &rc);
        FUZZ_CHECK(again && rc == QRR_OK, "re-encoding decoded text failed (%d)", rc);
        FUZZ_CHECK(n2 == n && memcmp(again, ids, n * sizeof *ids) == 0,
                   "decode then encode gives other ids (%zu vs %zu)", n2, n);
        free(again);
        free(back);
    }
    free(ids);

    /* The input as ids: in range ones decode, any other is refused. */
    size_t m = size / 4;
    int32_t *raw = malloc((m ? m : 1) * sizeof *raw);
    if (raw) {
        memcpy(raw, data, m * 4);
        int known = 1;
        for (size_t i = 0; i < m; i++) {
            if (i % 2 == 0 && raw[i] >= 0) raw[i] %= (int32_t)(n_vocab + 8); /* mostly valid */
            if (raw[i] < 0 || (size_t)raw[i] >= n_vocab) known = 0;
        }
        size_t nb = 0;
        char *out = decode(raw, m, &nb, &rc);
        if (known) FUZZ_CHECK(out && rc == QRR_OK, "decoding valid ids failed (%d)", rc);
        else FUZZ_CHECK(rc == QRR_ERR_INVALID_ARG, "unknown id not refused (%d)", rc);
        free(out);
        free(raw);
    }
    free(text);
    return 0;
}
