/* fuzz_safetensors.c — libFuzzer target: the safetensors parser (qrr_st_parse) on a whole
 * file image: 8-byte header length, JSON header, data. A parse that succeeds is held to
 * what convert/safetensors.h promises about the tensors it returns. */
#include <string.h>

#include "fuzz_util.h"
#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *img = malloc(size ? size : 1); /* exact size: ASan sees any overread */
    if (!img) return 0;
    memcpy(img, data, size);
    qrr_st_tensor *ts = NULL;
    size_t n = 0;
    uint64_t data_start = 0;
    qrr_diag d;
    qrr_diag_clear(&d);
    int rc = qrr_st_parse(img, size, "fuzz.safetensors", &ts, &n, &data_start, &d);
    if (rc != QRR_OK) {
        FUZZ_CHECK(rc < 0 && d.msg[0] && !ts && !n, "status %d without a message", rc);
    } else {
        FUZZ_CHECK(data_start >= 8 && data_start <= size, "data_start %llu",
                   (unsigned long long)data_start);
        uint64_t data_len = size - data_start;
        for (size_t i = 0; i < n; i++) {
            const qrr_st_tensor *t = &ts[i];
            FUZZ_CHECK(memchr(t->name, 0, sizeof t->name) != NULL, "name not terminated");
            FUZZ_CHECK(i == 0 || strcmp(ts[i - 1].name, t->name) < 0, "names not sorted/unique");
            FUZZ_CHECK(t->dtype < QRR_ST_DTYPE_COUNT && t->ndim <= QRR_ST_MAX_DIMS, "dtype/ndim");
            FUZZ_CHECK(t->begin <= t->end && t->end <= data_len, "tensor %s [%llu, %llu) outside",
                       t->name, (unsigned long long)t->begin, (unsigned long long)t->end);
            FUZZ_CHECK(t->end - t->begin == t->count * qrr_st_dtype_size(t->dtype),
                       "tensor %s size", t->name);
            if (t->end > t->begin) { /* touch both ends of the bytes: ASan checks them */
                volatile uint8_t b = img[data_start + t->begin] ^ img[data_start + t->end - 1];
                (void)b;
            }
            for (size_t j = 0; j < i; j++) {
                const qrr_st_tensor *u = &ts[j];
                int overlap = t->begin < u->end && u->begin < t->end;
                FUZZ_CHECK(!overlap, "tensors %s and %s overlap", t->name, u->name);
            }
        }
    }
    free(ts);
    free(img);
    return 0;
}
