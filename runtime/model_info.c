/* model_info.c — the accessors of qrr.h: what an opened model holds (hyper-parameters,
 * labels and how they were found, prompts, tokenizer and tensor summary, metadata strings
 * by key, the tensor list), so that tools and bindings never include private headers. */
#include "model.h"

#include <string.h>

_Static_assert(sizeof ((qrr_tensor_info *)0)->dims / sizeof(uint64_t) == QRR_MAX_DIMS,
               "qrr_tensor_info.dims holds every dimension a file may have");

int qrr_model_get_info(const qrr_model *m, qrr_model_info *out)
{
    if (!m || !out) return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_model_get_info: NULL argument");
    const qrr_header_disk *h = qrr_file_header(m->file);
    const qrr_meta_disk *f = &m->meta->fixed;
    int yes_no = f->head_kind == QRR_HEAD_YES_NO;
    qrr_model_info i = {
        .format_version = h->version,
        .quant_version = h->quant_version,
        .file_bytes = h->file_size,
        .verify_seconds = m->verify_seconds,
        .arch = "qwen3",
        .n_layers = (int)f->n_layers,
        .hidden = (int)f->hidden,
        .n_heads = (int)f->n_heads,
        .n_kv_heads = (int)f->n_kv_heads,
        .head_dim = (int)f->head_dim,
        .intermediate = (int)f->intermediate,
        .vocab_size = (int)f->vocab_size,
        .max_position = (int)f->max_position,
        .rms_eps = f->rms_eps,
        .rope_theta = f->rope_theta,
        .tied = (int)f->tied,
        .weight_dtype = qrr_dtype_name(f->weight_dtype),
        .quant_block = (int)f->quant_block,
        .head_kind = qrr_head_kind_name(f->head_kind),
        .label_source = qrr_label_source_name(f->label_source),
        .yes_id = yes_no ? (int32_t)f->yes_id : -1,
        .no_id = yes_no ? (int32_t)f->no_id : -1,
        .max_length = m->max_length,
        .n_prefix_ids = m->n_prefix_ids,
        .n_suffix_ids = m->n_suffix_ids,
        .tokenizer_ids = qrr_tokenizer_vocab_size(m->tok),
        .tokenizer_merges = qrr_tokenizer_merge_count(m->tok),
        .tokenizer_added = qrr_tokenizer_added_count(m->tok),
        .n_tensors = qrr_file_tensor_count(m->file),
    };
    for (size_t t = 0; t < i.n_tensors; t++) i.tensor_bytes += qrr_file_tensor(m->file, t)->size;
    *out = i;
    return QRR_OK;
}

const char *qrr_model_meta_key(size_t i)
{
    return i < QRR_META_STRING_COUNT ? qrr_meta_string_name((uint32_t)i) : NULL;
}

const char *qrr_model_meta_str(const qrr_model *m, const char *key, size_t *len)
{
    if (!m || !key) {
        qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_model_meta_str: NULL argument");
        return NULL;
    }
    for (uint32_t i = 0; i < QRR_META_STRING_COUNT; i++) {
        if (strcmp(key, qrr_meta_string_name(i)) != 0) continue;
        if (len) *len = m->meta->strings[i].len; /* the copy holds no NUL: the loader refuses them */
        return m->strings[i];
    }
    qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_model_meta_str: no metadata string '%s' "
                "(qrr_model_meta_key lists the keys)", key);
    return NULL;
}

int qrr_model_tensor(const qrr_model *m, size_t i, qrr_tensor_info *out)
{
    if (!m || !out) return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_model_tensor: NULL argument");
    size_t n = qrr_file_tensor_count(m->file);
    if (i >= n) return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_model_tensor: index %zu, the file has %zu tensors", i, n);
    const qrr_tensor_view *v = qrr_file_tensor(m->file, i);
    qrr_tensor_info t = {.name = v->name, .dtype = qrr_dtype_name(v->dtype), .ndim = (int)v->ndim,
                         .bytes = v->size};
    for (uint32_t k = 0; k < v->ndim; k++) t.dims[k] = v->dims[k];
    *out = t;
    return QRR_OK;
}
