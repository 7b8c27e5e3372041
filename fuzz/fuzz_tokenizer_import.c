/* fuzz_tokenizer_import.c — libFuzzer target: qrr_tokenizer_import on a tokenizer.json and,
 * when the input holds the separator line "@@tokenizer_config.json@@", the
 * tokenizer_config.json after it. The importer reads paths, so each part goes through an
 * in-memory file. A blob it returns must load in the runtime tokenizer. */
#include <string.h>

#include "fuzz_util.h"
#include "tokenizer.h"
#include "tokenizer_import.h"

#define SEP "\n@@tokenizer_config.json@@\n"

static fuzz_memfile tok_file, cfg_file;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    if (fuzz_memfile_open(&tok_file, "tokenizer.json") || fuzz_memfile_open(&cfg_file, "tokenizer_config.json")) {
        perror("memfd_create");
        exit(1);
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *sep = memmem(data, size, SEP, sizeof SEP - 1);
    size_t tok_len = sep ? (size_t)(sep - data) : size;
    if (fuzz_memfile_set(&tok_file, data, tok_len)) return 0;
    if (sep) {
        const uint8_t *cfg = sep + sizeof SEP - 1;
        if (fuzz_memfile_set(&cfg_file, cfg, size - (size_t)(cfg - data))) return 0;
    }
    uint8_t *blob = NULL;
    size_t len = 0;
    qrr_diag d;
    qrr_diag_clear(&d);
    int rc = qrr_tokenizer_import(tok_file.path, sep ? cfg_file.path : NULL, &blob, &len, &d);
    if (rc != QRR_OK) {
        FUZZ_CHECK(rc < 0 && d.msg[0] && !blob, "status %d without a message", rc);
        return 0;
    }
    qrr_tokenizer *t = NULL;
    rc = qrr_tokenizer_load(blob, len, &t, &d);
    FUZZ_CHECK(rc == QRR_OK, "imported blob does not load: %s", d.msg);
    static const char text[] = "Hello <|im_end|> yes, no! 42";
    int32_t ids[128];
    size_t n = 0;
    if (qrr_tokenizer_encode(t, text, sizeof text - 1, ids, 128, &n, &d) == QRR_OK) {
        char out[512];
        size_t nb = 0;
        qrr_tokenizer_decode(t, ids, n, out, sizeof out, &nb, &d);
    }
    qrr_tokenizer_free(t);
    free(blob);
    return 0;
}
