/* model.c — open a .qrr (mmap or caller memory), check it through the format loader, load
 * its tokenizer and bind the weights of every layer. Also the per-thread last error.
 * Scoring lives in score.c, the forward pass in qwen3.c. */
#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "qrr_open.h"

static _Thread_local char last_error[512];

int qrr__set_error(const qrr_diag *d)
{
    snprintf(last_error, sizeof last_error, "%s", d->msg);
    return d->status;
}

int qrr__errorf(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return status;
}

const char *qrr_last_error(void) { return last_error; }
const char *qrr_version(void) { return QRR_VERSION_STRING; }

qrr_model_params qrr_model_default_params(void)
{
    qrr_model_params p = {.verify_weights = 1};
    return p;
}

static char *dup_str(qrr_str s)
{
    char *out = malloc(s.len + 1);
    if (!out) return NULL;
    if (s.len) memcpy(out, s.ptr, s.len);
    out[s.len] = '\0';
    return out;
}

/* Bind a schema-checked tensor; the loader already guaranteed it exists with its shape. */
static const qrr_tensor_view *need(const qrr_model *m, const char *name, qrr_diag *d)
{
    const qrr_tensor_view *t = qrr_file_find(m->file, name);
    if (!t) qrr_fail(d, QRR_ERR_MISSING_TENSOR, "tensor %s missing", name);
    return t;
}

static int bind_weight(const qrr_model *m, const char *name, qrr_cpu_weight *w, qrr_diag *d)
{
    const qrr_tensor_view *t = need(m, name, d);
    if (!t) return d->status;
    w->dtype = t->dtype;
    w->data = t->data;
    w->n = (int)t->dims[0];
    w->k = (int)t->dims[1];
    w->scale = NULL;
    w->block = (int)m->meta->fixed.quant_block;
    w->packed = NULL;
    if (t->dtype == QRR_DTYPE_I8) {
        char sname[QRR_TENSOR_NAME_MAX + 8];
        snprintf(sname, sizeof sname, "%s_scale", name);
        const qrr_tensor_view *s = need(m, sname, d);
        if (!s) return d->status;
        w->scale = s->data;
    }
    return QRR_OK;
}

static int bind_f32(const qrr_model *m, const char *name, const float **out, qrr_diag *d)
{
    const qrr_tensor_view *t = need(m, name, d);
    if (!t) return d->status;
    *out = t->data;
    return QRR_OK;
}

static int bind_layers(qrr_model *m, qrr_diag *d)
{
    m->layers = calloc((size_t)m->n_layers, sizeof *m->layers);
    if (!m->layers) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory binding layers");
    char name[QRR_TENSOR_NAME_MAX];
    int rc = bind_weight(m, "model.embed_tokens.weight", &m->embed, d);
    for (int l = 0; rc == QRR_OK && l < m->n_layers; l++) {
        qrr_layer *L = &m->layers[l];
#define W(field, suffix) \
        if (rc == QRR_OK) { snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix); \
                            rc = bind_weight(m, name, &L->field, d); }
#define F(field, suffix) \
        if (rc == QRR_OK) { snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix); \
                            rc = bind_f32(m, name, &L->field, d); }
        F(attn_norm, "input_layernorm.weight")
        F(q_norm, "self_attn.q_norm.weight")
        F(k_norm, "self_attn.k_norm.weight")
        F(mlp_norm, "post_attention_layernorm.weight")
        W(q, "self_attn.q_proj.weight")
        W(k, "self_attn.k_proj.weight")
        W(v, "self_attn.v_proj.weight")
        W(o, "self_attn.o_proj.weight")
        W(gate, "mlp.gate_proj.weight")
        W(up, "mlp.up_proj.weight")
        W(down, "mlp.down_proj.weight")
#undef W
#undef F
    }
    if (rc == QRR_OK) rc = bind_f32(m, "model.norm.weight", &m->final_norm, d);
    if (rc == QRR_OK) rc = bind_f32(m, "head.weight", &m->head, d);
    return rc;
}

static int tokenize_alloc(const qrr_model *m, qrr_str s, int32_t **ids, size_t *n, qrr_diag *d)
{
    size_t need_n = 0;
    int rc = qrr_tokenizer_encode(m->tok, s.ptr ? s.ptr : "", s.len, NULL, 0, &need_n, d);
    if (rc != QRR_OK && rc != QRR_ERR_BUFFER_TOO_SMALL) return rc;
    *ids = malloc((need_n ? need_n : 1) * sizeof **ids);
    if (!*ids) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory tokenizing the prompt");
    return qrr_tokenizer_encode(m->tok, s.ptr ? s.ptr : "", s.len, *ids, need_n, n, d);
}

static int prepare(qrr_model *m, qrr_diag *d)
{
    const qrr_meta *meta = m->meta;
    const qrr_meta_disk *f = &meta->fixed;
    m->n_layers = (int)f->n_layers;
    m->H = (int)f->hidden;
    m->Q = (int)f->n_heads;
    m->K = (int)f->n_kv_heads;
    m->D = (int)f->head_dim;
    m->I = (int)f->intermediate;
    m->V = (int)f->vocab_size;
    m->rms_eps = (float)f->rms_eps;
    m->head_rows = f->head_kind == QRR_HEAD_YES_NO ? 2 : 1;
    m->max_length = (int)f->max_length;

    size_t tok_len = 0;
    const uint8_t *tok_blob = qrr_file_tokenizer(m->file, &tok_len);
    int rc = qrr_tokenizer_load(tok_blob, tok_len, &m->tok, d);
    if (rc != QRR_OK) return rc;
    if (qrr_tokenizer_vocab_size(m->tok) > (size_t)m->V)
        return qrr_fail(d, QRR_ERR_BAD_TOKENIZER,
                        "tokenizer has %zu ids but the embedding only %d rows",
                        qrr_tokenizer_vocab_size(m->tok), m->V);

    m->inv_freq = malloc((size_t)(m->D / 2) * sizeof *m->inv_freq);
    if (!m->inv_freq) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    /* As Transformers: inv_freq = 1 / theta^(2i/D), computed here in double then rounded. */
    for (int i = 0; i < m->D / 2; i++)
        m->inv_freq[i] = (float)(1.0 / pow(f->rope_theta, (2.0 * i) / m->D));

    rc = bind_layers(m, d);
    if (rc != QRR_OK) return rc;

    for (int i = 0; i < QRR_META_STRING_COUNT; i++)
        if (!(m->strings[i] = dup_str(meta->strings[i])))
            return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    m->query_template = m->strings[QRR_STR_QUERY_TEMPLATE];
    m->document_template = m->strings[QRR_STR_DOCUMENT_TEMPLATE];
    m->default_instruction = m->strings[QRR_STR_INSTRUCTION];
    rc = tokenize_alloc(m, meta->strings[QRR_STR_PREFIX], &m->prefix_ids, &m->n_prefix_ids, d);
    if (rc == QRR_OK)
        rc = tokenize_alloc(m, meta->strings[QRR_STR_SUFFIX], &m->suffix_ids, &m->n_suffix_ids, d);
    /* qconvert writes no such file; one that holds it could score nothing with its own
     * default, and every request would fail with a message about a limit it never gave */
    if (rc == QRR_OK && (size_t)m->max_length <= m->n_prefix_ids + m->n_suffix_ids)
        rc = qrr_fail(d, QRR_ERR_BAD_META, "metadata: max_length %d leaves no room for a "
                      "document: the prompt's prefix and suffix alone take %zu tokens",
                      m->max_length, m->n_prefix_ids + m->n_suffix_ids);
    return rc;
}

static int open_image(const void *data, size_t len, qrr_model_params params, qrr_model *m)
{
    qrr_diag d;
    qrr_diag_clear(&d);
    unsigned flags = params.verify_weights ? 0 : QRR_LOAD_SKIP_WEIGHT_CHECKSUMS;
    int rc = qrr_file_load(data, len, flags, &m->file, &m->verify_seconds, &d);
    if (rc == QRR_OK) {
        m->meta = qrr_file_meta(m->file);
        rc = prepare(m, &d);
    }
    return rc == QRR_OK ? QRR_OK : qrr__set_error(&d);
}

int qrr_model_open_memory(const void *data, size_t len, qrr_model_params params,
                          qrr_model **out)
{
    if (!out || (!data && len)) return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_model_open_memory: NULL argument");
    *out = NULL;
    /* the format aligns every tensor to 64 bytes from the file's start: the kernels read
     * weights as floats and halves, which a base off that alignment would misalign */
    if ((uintptr_t)data % QRR_MEMORY_ALIGN)
        return qrr__errorf(QRR_ERR_ALIGNMENT,
                           "qrr_model_open_memory: the buffer at %p is not aligned to %d bytes "
                           "(allocate it with aligned_alloc or posix_memalign)",
                           data, QRR_MEMORY_ALIGN);
    qrr_model *m = calloc(1, sizeof *m);
    if (!m) return qrr__errorf(QRR_ERR_NOMEM, "out of memory");
    int rc = open_image(data, len, params, m);
    if (rc != QRR_OK) {
        qrr_model_close(m);
        return rc;
    }
    *out = m;
    return QRR_OK;
}

int qrr_model_open(const char *path, qrr_model_params params, qrr_model **out)
{
    if (!path || !out) return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_model_open: NULL argument");
    *out = NULL;
    struct stat st;
    qrr_diag d;
    qrr_diag_clear(&d);
    int fd = qrr_open_regular(path, &st, &d);
    if (fd < 0) return qrr__set_error(&d);
    size_t len = (size_t)st.st_size;
    void *map = NULL;
    if (len > 0) {
        map = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) {
            int e = errno;
            close(fd);
            /* no address space left (ulimit -v, a 32-bit process) is no fault of the file */
            return qrr__errorf(e == ENOMEM ? QRR_ERR_NOMEM : QRR_ERR_IO, "%s: mmap failed: %s",
                               path, strerror(e));
        }
    }
    close(fd);
    qrr_model *m = calloc(1, sizeof *m);
    if (!m) {
        if (map) munmap(map, len);
        return qrr__errorf(QRR_ERR_NOMEM, "out of memory");
    }
    m->map = map;
    m->map_len = len;
    int rc = open_image(map ? map : "", len, params, m);
    if (rc != QRR_OK) {
        char msg[600];
        snprintf(msg, sizeof msg, "%s: %s", path, qrr_last_error());
        qrr_model_close(m);
        return qrr__errorf(rc, "%s", msg);
    }
    *out = m;
    return QRR_OK;
}

void qrr_model_close(qrr_model *m)
{
    if (!m) return;
    qrr_tokenizer_free(m->tok);
    qrr_file_free(m->file);
    free(m->layers);
    free(m->inv_freq);
    free(m->prefix_ids);
    free(m->suffix_ids);
    for (int i = 0; i < QRR_META_STRING_COUNT; i++) free(m->strings[i]);
    if (m->map) munmap(m->map, m->map_len);
    free(m->cpu_packed_weights);
    free(m);
}
