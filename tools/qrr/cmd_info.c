/* cmd_info.c — `qrr info`: open (and verify) a .qrr file and show what it holds: header,
 * hyper-parameters, labels and how they were decided, prompts, tokenizer, tensors and
 * provenance; as text or as one JSON document (--json). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "model.h"

static const char *dtype_name(uint32_t t)
{
    static const char *names[QRR_DTYPE_COUNT] = {"f32", "f16", "bf16", "int8"};
    return t < QRR_DTYPE_COUNT ? names[t] : "?";
}

static const char *label_source_name(uint32_t s)
{
    static const char *names[QRR_LABELS_COUNT] = {"config", "inferred", "user"};
    return s < QRR_LABELS_COUNT ? names[s] : "?";
}

static json_t *jstr(qrr_str s) { return json_stringn_nocheck(s.ptr ? s.ptr : "", s.len); }

static json_t *describe(const qrr_model *m, double open_seconds)
{
    const qrr_header_disk *h = qrr_file_header(m->file);
    const qrr_meta *meta = m->meta;
    const qrr_meta_disk *f = &meta->fixed;
    json_t *tensors = json_array();
    uint64_t weight_bytes = 0;
    for (size_t i = 0; i < qrr_file_tensor_count(m->file); i++) {
        const qrr_tensor_view *t = qrr_file_tensor(m->file, i);
        json_t *shape = json_array();
        for (uint32_t k = 0; k < t->ndim; k++) json_array_append_new(shape, json_integer((json_int_t)t->dims[k]));
        json_array_append_new(tensors, json_pack("{s:s,s:s,s:o,s:I}", "name", t->name, "type",
                                                 dtype_name(t->dtype), "shape", shape,
                                                 "bytes", (json_int_t)t->size));
        weight_bytes += t->size;
    }
    json_t *provenance = json_loadb(meta->strings[QRR_STR_PROVENANCE].ptr ? meta->strings[QRR_STR_PROVENANCE].ptr : "",
                                    meta->strings[QRR_STR_PROVENANCE].len, 0, NULL);
    if (!provenance) provenance = jstr(meta->strings[QRR_STR_PROVENANCE]);
    json_t *head = json_pack("{s:s,s:s,s:o,s:o,s:o}",
                             "kind", f->head_kind == QRR_HEAD_YES_NO ? "yes/no" : "single-logit",
                             "source", label_source_name(f->label_source),
                             "reason", jstr(meta->strings[QRR_STR_LABEL_REASON]),
                             "no", jstr(meta->strings[QRR_STR_LABEL_NO]),
                             "yes", jstr(meta->strings[QRR_STR_LABEL_YES]));
    if (f->head_kind == QRR_HEAD_YES_NO) {
        json_object_set_new(head, "no_id", json_integer(f->no_id));
        json_object_set_new(head, "yes_id", json_integer(f->yes_id));
    }
    return json_pack(
        "{s:{s:i,s:i,s:I},s:{s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:b,s:i,s:i},"
        "s:o,s:{s:o,s:o,s:o,s:o,s:o},s:{s:I,s:I,s:I},s:o,s:I,s:o,s:{s:f,s:f}}",
        "file", "version", (int)h->version, "quant_version", (int)h->quant_version,
        "bytes", (json_int_t)h->file_size,
        "model", "arch", "qwen3", "weights", dtype_name(f->weight_dtype),
        "layers", (int)f->n_layers, "hidden", (int)f->hidden, "heads", (int)f->n_heads,
        "kv_heads", (int)f->n_kv_heads, "head_dim", (int)f->head_dim,
        "intermediate", (int)f->intermediate, "vocab", (int)f->vocab_size,
        "max_position", (int)f->max_position, "rms_eps", f->rms_eps, "rope_theta", f->rope_theta,
        "tied", (int)f->tied, "max_length", (int)f->max_length, "quant_block", (int)f->quant_block,
        "head", head,
        "prompts", "prefix", jstr(meta->strings[QRR_STR_PREFIX]),
        "suffix", jstr(meta->strings[QRR_STR_SUFFIX]),
        "query", jstr(meta->strings[QRR_STR_QUERY_TEMPLATE]),
        "document", jstr(meta->strings[QRR_STR_DOCUMENT_TEMPLATE]),
        "instruction", jstr(meta->strings[QRR_STR_INSTRUCTION]),
        "tokenizer", "ids", (json_int_t)qrr_tokenizer_vocab_size(m->tok),
        "merges", (json_int_t)qrr_tokenizer_merge_count(m->tok),
        "added", (json_int_t)qrr_tokenizer_added_count(m->tok),
        "tensors", tensors, "tensor_bytes", (json_int_t)weight_bytes,
        "provenance", provenance,
        "timing", "open_seconds", open_seconds, "verify_seconds", m->verify_seconds);
}

static void print_quoted(const char *label, qrr_str s)
{
    printf("  %-12s \"", label);
    for (size_t i = 0; i < s.len; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '"') fputs("\\\"", stdout);
        else if (c == '\\') fputs("\\\\", stdout);
        else if (c < 0x20) printf("\\x%02x", c);
        else putchar(c);
    }
    printf("\"\n");
}

static void print_text(const qrr_model *m, json_t *info, int show_tensors)
{
    const qrr_meta *meta = m->meta;
    const qrr_meta_disk *f = &meta->fixed;
    const qrr_header_disk *h = qrr_file_header(m->file);
    printf("file         qrr format %u, quantization layout %u, %.1f MiB\n", h->version,
           h->quant_version, (double)h->file_size / (1 << 20));
    printf("model        qwen3, %u layers, hidden %u, heads %u/%u (q/kv), head_dim %u, "
           "intermediate %u, vocab %u\n", f->n_layers, f->hidden, f->n_heads, f->n_kv_heads,
           f->head_dim, f->intermediate, f->vocab_size);
    printf("             rms_eps %g, rope_theta %g, max_position %u, %s embeddings\n",
           f->rms_eps, f->rope_theta, f->max_position, f->tied ? "tied" : "untied");
    printf("weights      %s%s\n", dtype_name(f->weight_dtype),
           f->weight_dtype == QRR_DTYPE_I8 ? (f->quant_block ? " (per-block scales)" : " (per-channel scales)") : "");
    if (f->head_kind == QRR_HEAD_YES_NO)
        printf("head         yes/no: \"%.*s\" = %u, \"%.*s\" = %u; labels %s\n",
               (int)meta->strings[QRR_STR_LABEL_YES].len, meta->strings[QRR_STR_LABEL_YES].ptr, f->yes_id,
               (int)meta->strings[QRR_STR_LABEL_NO].len, meta->strings[QRR_STR_LABEL_NO].ptr, f->no_id,
               label_source_name(f->label_source));
    else
        printf("head         single logit (sequence classification); labels %s\n",
               label_source_name(f->label_source));
    printf("             %.*s\n", (int)meta->strings[QRR_STR_LABEL_REASON].len,
           meta->strings[QRR_STR_LABEL_REASON].ptr ? meta->strings[QRR_STR_LABEL_REASON].ptr : "");
    printf("prompts      max_length %u, prefix %zu tokens, suffix %zu tokens\n", f->max_length,
           m->n_prefix_ids, m->n_suffix_ids);
    print_quoted("prefix", meta->strings[QRR_STR_PREFIX]);
    print_quoted("query", meta->strings[QRR_STR_QUERY_TEMPLATE]);
    print_quoted("document", meta->strings[QRR_STR_DOCUMENT_TEMPLATE]);
    print_quoted("suffix", meta->strings[QRR_STR_SUFFIX]);
    print_quoted("instruction", meta->strings[QRR_STR_INSTRUCTION]);
    printf("tokenizer    %zu ids, %zu merges, %zu added tokens\n",
           qrr_tokenizer_vocab_size(m->tok), qrr_tokenizer_merge_count(m->tok),
           qrr_tokenizer_added_count(m->tok));
    json_t *timing = json_object_get(info, "timing");
    printf("opened       in %.3f s (checksum pass %.3f s)\n",
           json_real_value(json_object_get(timing, "open_seconds")), m->verify_seconds);
    size_t n = qrr_file_tensor_count(m->file);
    printf("tensors      %zu, %.1f MiB\n", n,
           (double)json_integer_value(json_object_get(info, "tensor_bytes")) / (1 << 20));
    for (size_t i = 0; show_tensors && i < n; i++) {
        const qrr_tensor_view *t = qrr_file_tensor(m->file, i);
        char shape[96] = "";
        for (uint32_t k = 0; k < t->ndim; k++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%llu", k ? ", " : "",
                     (unsigned long long)t->dims[k]);
        printf("  %-48s %-5s [%s] %llu bytes\n", t->name, dtype_name(t->dtype), shape,
               (unsigned long long)t->size);
    }
    printf("provenance   %.*s\n", (int)meta->strings[QRR_STR_PROVENANCE].len,
           meta->strings[QRR_STR_PROVENANCE].ptr ? meta->strings[QRR_STR_PROVENANCE].ptr : "");
}

static void help(void)
{
    printf("usage: qrr info MODEL.qrr [--json] [--no-verify] [--no-tensors]\n\n"
           "Opens the file, checks it (every checksum unless --no-verify, which skips the\n"
           "weights' checksums only) and prints its header, hyper-parameters, labels and how\n"
           "they were decided, prompts, tokenizer summary, tensors and provenance.\n"
           "Exit: 0 ok, 1 the file failed a check, 2 usage.\n");
}

int qrr_cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int as_json = 0, verify = 1, show_tensors = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            help();
            return QRR_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(argv[i], "--no-verify")) {
            verify = 0;
        } else if (!strcmp(argv[i], "--no-tensors")) {
            show_tensors = 0;
        } else if (argv[i][0] == '-') {
            return cli_usage_error("info", "unknown option '%s'", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            return cli_usage_error("info", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!path) return cli_usage_error("info", "missing MODEL.qrr");
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    qrr_model *m = cli_open_model("info", path, verify);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!m) return QRR_EXIT_FAIL;
    double open_s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    json_t *info = describe(m, open_s);
    if (as_json) {
        char *s = json_dumps(info, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        if (s) puts(s);
        free(s);
    } else {
        print_text(m, info, show_tensors);
    }
    json_decref(info);
    qrr_model_close(m);
    return QRR_EXIT_OK;
}
