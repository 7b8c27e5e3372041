/* qrr_meta.c — check, serialise and parse the model description (qrr_meta).
 * The META section's layout is qrr_meta_disk then QRR_META_STRING_COUNT strings, each a
 * uint32 length and its bytes. Compression and checksums belong to the writer and loader. */
#include "qrr_meta.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qrr_checked.h"

static const char *const string_names[QRR_META_STRING_COUNT] = {
    [QRR_STR_PREFIX] = "prefix",
    [QRR_STR_SUFFIX] = "suffix",
    [QRR_STR_QUERY_TEMPLATE] = "query template",
    [QRR_STR_DOCUMENT_TEMPLATE] = "document template",
    [QRR_STR_INSTRUCTION] = "instruction",
    [QRR_STR_LABEL_NO] = "label no",
    [QRR_STR_LABEL_YES] = "label yes",
    [QRR_STR_LABEL_REASON] = "label reason",
    [QRR_STR_PROVENANCE] = "provenance",
};

/* Strict UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF) and no NUL.
 * Returns the offset of the first bad byte, or len when the text is clean. */
static size_t utf8_bad_at(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        if (c == 0) return i;
        if (c < 0x80) { i++; continue; }
        size_t n;
        uint32_t cp, min;
        if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; min = 0x80; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; min = 0x800; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; min = 0x10000; }
        else return i;
        if (len - i <= n) return i;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += n + 1;
    }
    return len;
}

static int check_range(uint32_t v, uint32_t lo, uint32_t hi, const char *what, qrr_diag *d)
{
    if (v < lo || v > hi)
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: %s = %u, expected %u..%u", what, v, lo, hi);
    return QRR_OK;
}

int qrr_meta_validate(const qrr_meta *m, qrr_diag *d)
{
    if (!m) return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_meta_validate: NULL metadata");
    const qrr_meta_disk *f = &m->fixed;
    int rc;

    if (f->arch >= QRR_ARCH_COUNT)
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: unknown architecture %u", f->arch);
    if (f->head_kind >= QRR_HEAD_COUNT)
        return qrr_fail(d, QRR_ERR_BAD_LABEL, "metadata: unknown head kind %u", f->head_kind);
    if (f->label_source >= QRR_LABELS_COUNT)
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: unknown label source %u", f->label_source);
    if (f->weight_dtype >= QRR_DTYPE_COUNT)
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: unknown weight dtype %u", f->weight_dtype);

    if ((rc = check_range(f->n_layers, 1, QRR_MAX_LAYERS, "n_layers", d))) return rc;
    if ((rc = check_range(f->hidden, 1, QRR_MAX_HIDDEN, "hidden", d))) return rc;
    if ((rc = check_range(f->n_heads, 1, QRR_MAX_HEADS, "n_heads", d))) return rc;
    if ((rc = check_range(f->n_kv_heads, 1, f->n_heads, "n_kv_heads", d))) return rc;
    if ((rc = check_range(f->head_dim, 2, QRR_MAX_HEAD_DIM, "head_dim", d))) return rc;
    if ((rc = check_range(f->intermediate, 1, QRR_MAX_INTERMEDIATE, "intermediate", d))) return rc;
    if ((rc = check_range(f->vocab_size, 1, QRR_MAX_VOCAB, "vocab_size", d))) return rc;
    if ((rc = check_range(f->max_position, 1, QRR_MAX_POSITION, "max_position", d))) return rc;
    if ((rc = check_range(f->max_length, 1, f->max_position, "max_length", d))) return rc;
    if ((rc = check_range(f->tied, 0, 1, "tied", d))) return rc;
    if (f->n_heads % f->n_kv_heads)
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: n_kv_heads %u does not divide n_heads %u",
                        f->n_kv_heads, f->n_heads);
    if (f->head_dim % 2)
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: head_dim %u is odd", f->head_dim);
    /* Q*D is the width of the attention output: keep it within the hidden-size cap. */
    if ((uint64_t)f->n_heads * f->head_dim > QRR_MAX_HIDDEN)
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: n_heads * head_dim = %llu over %u",
                        (unsigned long long)f->n_heads * f->head_dim, QRR_MAX_HIDDEN);

    if (f->weight_dtype != QRR_DTYPE_I8) {
        if (f->quant_block)
            return qrr_fail(d, QRR_ERR_BAD_META, "metadata: quant_block %u without int8 weights",
                            f->quant_block);
    } else if (f->quant_block) {
        /* Every int8 weight's input width must split into whole blocks. */
        uint32_t in[3] = {f->hidden, f->n_heads * f->head_dim, f->intermediate};
        const char *in_name[3] = {"hidden", "n_heads * head_dim", "intermediate"};
        for (int i = 0; i < 3; i++)
            if (in[i] % f->quant_block)
                return qrr_fail(d, QRR_ERR_BAD_META,
                                "metadata: quant_block %u does not divide %s %u",
                                f->quant_block, in_name[i], in[i]);
    }

    if (!isfinite(f->rms_eps) || !(f->rms_eps > 0) || !(f->rms_eps < 1))
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: rms_eps %g, expected finite in (0, 1)",
                        f->rms_eps);
    if (!isfinite(f->rope_theta) || !(f->rope_theta > 0))
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: rope_theta %g, expected finite > 0",
                        f->rope_theta);

    if (f->head_kind == QRR_HEAD_YES_NO) {
        if (f->yes_id >= f->vocab_size || f->no_id >= f->vocab_size)
            return qrr_fail(d, QRR_ERR_BAD_LABEL,
                            "metadata: yes id %u / no id %u outside the vocabulary of %u",
                            f->yes_id, f->no_id, f->vocab_size);
        if (f->yes_id == f->no_id)
            return qrr_fail(d, QRR_ERR_BAD_LABEL, "metadata: yes and no are one token (%u)",
                            f->yes_id);
    } else if (f->yes_id != QRR_NO_TOKEN || f->no_id != QRR_NO_TOKEN) {
        return qrr_fail(d, QRR_ERR_BAD_LABEL,
                        "metadata: single-logit head with yes id %u / no id %u (expected none)",
                        f->yes_id, f->no_id);
    }

    if (f->reserved0 || !qrr__all_zero(f->reserved, sizeof f->reserved))
        return qrr_fail(d, QRR_ERR_PADDING, "metadata: reserved bytes are not zero");

    for (int i = 0; i < QRR_META_STRING_COUNT; i++) {
        const qrr_str *s = &m->strings[i];
        if (s->len > QRR_MAX_STRING_BYTES)
            return qrr_fail(d, QRR_ERR_BAD_META, "metadata: %s string is %zu bytes, cap %u",
                            string_names[i], s->len, QRR_MAX_STRING_BYTES);
        if (s->len && !s->ptr)
            return qrr_fail(d, QRR_ERR_BAD_META, "metadata: %s string has no bytes",
                            string_names[i]);
        size_t bad = s->len ? utf8_bad_at((const uint8_t *)s->ptr, s->len) : 0;
        if (bad != s->len)
            return qrr_fail(d, QRR_ERR_BAD_META,
                            "metadata: %s string is not NUL-free UTF-8 (byte %zu)",
                            string_names[i], bad);
    }
    return QRR_OK;
}

int qrr_meta_encode(const qrr_meta *m, uint8_t **out, size_t *out_len, qrr_diag *d)
{
    if (!m || !out || !out_len)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_meta_encode: NULL argument");
    *out = NULL;
    *out_len = 0;
    int rc = qrr_meta_validate(m, d);
    if (rc != QRR_OK) return rc;

    size_t total = sizeof(qrr_meta_disk);
    for (int i = 0; i < QRR_META_STRING_COUNT; i++)
        if (qrr__add_size(total, sizeof(uint32_t), &total) ||
            qrr__add_size(total, m->strings[i].len, &total))
            return qrr_fail(d, QRR_ERR_BAD_META, "metadata: size overflows");
    if (total > QRR_MAX_META_BYTES)
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: %zu bytes, cap %u", total,
                        QRR_MAX_META_BYTES);

    uint8_t *buf = malloc(total);
    if (!buf) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory encoding metadata");
    size_t pos = 0;
    memcpy(buf, &m->fixed, sizeof m->fixed);
    pos += sizeof m->fixed;
    for (int i = 0; i < QRR_META_STRING_COUNT; i++) {
        uint32_t len = (uint32_t)m->strings[i].len; /* <= QRR_MAX_STRING_BYTES, checked */
        memcpy(buf + pos, &len, sizeof len);
        pos += sizeof len;
        if (len) memcpy(buf + pos, m->strings[i].ptr, len);
        pos += len;
    }
    *out = buf;
    *out_len = total;
    return QRR_OK;
}

int qrr_meta_decode(const uint8_t *bytes, size_t len, qrr_meta *out, qrr_diag *d)
{
    if (!out || (!bytes && len))
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_meta_decode: NULL argument");
    memset(out, 0, sizeof *out);
    if (len > QRR_MAX_META_BYTES)
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: %zu bytes, cap %u", len,
                        QRR_MAX_META_BYTES);
    if (len < sizeof(qrr_meta_disk))
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: %zu bytes, the fixed part alone is %zu",
                        len, sizeof(qrr_meta_disk));
    memcpy(&out->fixed, bytes, sizeof out->fixed);
    size_t pos = sizeof(qrr_meta_disk);
    for (int i = 0; i < QRR_META_STRING_COUNT; i++) {
        uint32_t n;
        if (len - pos < sizeof n)
            return qrr_fail(d, QRR_ERR_BAD_META,
                            "metadata: %s string length at byte %zu runs past the end (%zu bytes)",
                            string_names[i], pos, len);
        memcpy(&n, bytes + pos, sizeof n);
        pos += sizeof n;
        if (n > QRR_MAX_STRING_BYTES)
            return qrr_fail(d, QRR_ERR_BAD_META, "metadata: %s string is %u bytes, cap %u",
                            string_names[i], n, QRR_MAX_STRING_BYTES);
        if (n > len - pos)
            return qrr_fail(d, QRR_ERR_BAD_META,
                            "metadata: %s string of %u bytes at byte %zu runs past the end "
                            "(%zu bytes)", string_names[i], n, pos, len);
        out->strings[i].ptr = (const char *)bytes + pos; /* never NULL after decode */
        out->strings[i].len = n;
        pos += n;
    }
    if (pos != len)
        return qrr_fail(d, QRR_ERR_BAD_META, "metadata: %zu bytes after the last string",
                        len - pos);
    return qrr_meta_validate(out, d);
}
