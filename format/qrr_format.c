/* qrr_format.c — the names of qrr_format.h's enums, one table each: what messages,
 * qconvert's --dtype, `qrr info` and the public accessors (qrr_model_info) all spell. */
#include "qrr_format.h"

#include <string.h>

static const char *const dtype_names[QRR_DTYPE_COUNT] = {"f32", "f16", "bf16", "int8"};
static const char *const head_kind_names[QRR_HEAD_COUNT] = {"yes/no", "single-logit"};
static const char *const label_source_names[QRR_LABELS_COUNT] = {"config", "inferred", "user"};
static const char *const meta_string_names[QRR_META_STRING_COUNT] = {
    "prefix", "suffix", "query_template", "document_template", "instruction",
    "label_no", "label_yes", "label_reason", "provenance",
};

const char *qrr_dtype_name(uint32_t dtype)
{
    return dtype < QRR_DTYPE_COUNT ? dtype_names[dtype] : "?";
}

int qrr_dtype_parse(const char *name)
{
    for (int i = 0; name && i < QRR_DTYPE_COUNT; i++)
        if (!strcmp(name, dtype_names[i])) return i;
    return -1;
}

const char *qrr_head_kind_name(uint32_t kind)
{
    return kind < QRR_HEAD_COUNT ? head_kind_names[kind] : "?";
}

const char *qrr_label_source_name(uint32_t source)
{
    return source < QRR_LABELS_COUNT ? label_source_names[source] : "?";
}

const char *qrr_meta_string_name(uint32_t i)
{
    return i < QRR_META_STRING_COUNT ? meta_string_names[i] : NULL;
}
