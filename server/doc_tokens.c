/* doc_tokens.c — see doc_tokens.h. The text of the first tokens is their decoding: their
 * bytes joined (the tokenizer's NFC form of the text). A character whose bytes the last token
 * splits decodes to U+FFFD, which is not the document's: it is left out. */
#include "doc_tokens.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ids decoded into a malloc'ed *text of *len bytes. */
static int decode(const qrr_model *m, const int32_t *ids, size_t n, char **text, size_t *len)
{
    *text = NULL;
    int rc = qrr_model_decode(m, ids, n, NULL, 0, len);
    if (rc != QRR_OK && rc != QRR_ERR_BUFFER_TOO_SMALL) return rc;
    if (!(*text = malloc(*len + 1))) return QRR_ERR_NOMEM;
    return qrr_model_decode(m, ids, n, *text, *len + 1, len);
}

int doc_first_tokens(const qrr_model *m, const char *doc, size_t len, size_t max, char **cut,
                     size_t *cut_len)
{
    static const char fffd[] = "\xEF\xBF\xBD";
    *cut = NULL;
    *cut_len = 0;
    /* A token holds at least one byte of the text in NFC, which takes at most 3 times the
     * bytes of the text as given (Unicode's bound for NFC); this also bounds the ids kept. */
    if (max / 3 >= len) return QRR_OK;
    int32_t *ids = malloc((max + 1) * sizeof *ids);
    if (!ids) return QRR_ERR_NOMEM;
    size_t n = 0;
    int rc = qrr_model_tokenize(m, doc, len, ids, max + 1, &n); /* the first max + 1 ids */
    if (rc == QRR_ERR_BUFFER_TOO_SMALL) rc = QRR_OK;
    if (rc == QRR_OK && n > max) rc = decode(m, ids, max, cut, cut_len);
    free(ids);
    if (rc != QRR_OK) {
        free(*cut);
        *cut = NULL;
        *cut_len = 0;
        return rc;
    }
    /* A U+FFFD at the end that the document does not have there is a character the last
     * token splits (in a text already in NFC, as nearly all are, the decoding is a prefix
     * of the document's bytes; in one that is not, a U+FFFD of its own that ends the cut is
     * taken for a split character too). */
    if (*cut && *cut_len >= 3 && !memcmp(*cut + *cut_len - 3, fffd, 3) &&
        (*cut_len > len || memcmp(*cut, doc, *cut_len) != 0)) {
        *cut_len -= 3;
        (*cut)[*cut_len] = '\0';
    }
    return QRR_OK;
}
