/* cmd_info.c — `qrr info`: open (and verify) a .qrr file and show what it holds: header,
 * hyper-parameters, labels and how they were decided, prompts, tokenizer, tensors and
 * provenance; as text or as one JSON document (--json). */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* A metadata string as JSON (it may be any UTF-8; the loader refused NUL bytes). */
static json_t *jmeta(const qrr_model *m, const char *key)
{
    size_t len = 0;
    const char *s = qrr_model_meta_str(m, key, &len);
    return json_stringn_nocheck(s ? s : "", s ? len : 0);
}

static json_t *describe(const qrr_model *m, const qrr_model_info *f, double open_seconds)
{
    json_t *tensors = json_array();
    for (size_t i = 0; i < f->n_tensors; i++) {
        qrr_tensor_info t;
        if (qrr_model_tensor(m, i, &t) != QRR_OK) continue;
        json_t *shape = json_array();
        for (int k = 0; k < t.ndim; k++) json_array_append_new(shape, json_integer((json_int_t)t.dims[k]));
        json_array_append_new(tensors, json_pack("{s:s,s:s,s:o,s:I}", "name", t.name, "type",
                                                 t.dtype, "shape", shape, "bytes", (json_int_t)t.bytes));
    }
    size_t prov_len = 0;
    const char *prov = qrr_model_meta_str(m, "provenance", &prov_len);
    json_t *provenance = json_loadb(prov ? prov : "", prov_len, 0, NULL);
    if (!provenance) provenance = jmeta(m, "provenance");
    int yes_no = !strcmp(f->head_kind, "yes/no");
    json_t *head = json_pack("{s:s,s:s,s:o,s:o,s:o}", "kind", f->head_kind,
                             "source", f->label_source, "reason", jmeta(m, "label_reason"),
                             "no", jmeta(m, "label_no"), "yes", jmeta(m, "label_yes"));
    if (yes_no) {
        json_object_set_new(head, "no_id", json_integer(f->no_id));
        json_object_set_new(head, "yes_id", json_integer(f->yes_id));
    }
    return json_pack(
        "{s:{s:i,s:i,s:I},s:{s:s,s:s,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:i,s:f,s:f,s:b,s:i,s:i},"
        "s:o,s:{s:o,s:o,s:o,s:o,s:o,s:I,s:I},s:{s:I,s:I,s:I},s:o,s:I,s:I,s:o,s:{s:f,s:f}}",
        "file", "version", (int)f->format_version, "quant_version", (int)f->quant_version,
        "bytes", (json_int_t)f->file_bytes,
        "model", "arch", f->arch, "weights", f->weight_dtype,
        "layers", f->n_layers, "hidden", f->hidden, "heads", f->n_heads,
        "kv_heads", f->n_kv_heads, "head_dim", f->head_dim,
        "intermediate", f->intermediate, "vocab", f->vocab_size,
        "max_position", f->max_position, "rms_eps", f->rms_eps, "rope_theta", f->rope_theta,
        "tied", f->tied, "max_length", f->max_length, "quant_block", f->quant_block,
        "head", head,
        "prompts", "prefix", jmeta(m, "prefix"), "suffix", jmeta(m, "suffix"),
        "query", jmeta(m, "query_template"), "document", jmeta(m, "document_template"),
        "instruction", jmeta(m, "instruction"), "prefix_tokens", (json_int_t)f->n_prefix_ids,
        "suffix_tokens", (json_int_t)f->n_suffix_ids,
        "tokenizer", "ids", (json_int_t)f->tokenizer_ids,
        "merges", (json_int_t)f->tokenizer_merges, "added", (json_int_t)f->tokenizer_added,
        "tensors", tensors, "tensor_count", (json_int_t)f->n_tensors,
        "tensor_bytes", (json_int_t)f->tensor_bytes,
        "provenance", provenance,
        "timing", "open_seconds", open_seconds, "verify_seconds", f->verify_seconds);
}

static void print_quoted(const char *label, const qrr_model *m, const char *key)
{
    size_t len = 0;
    const char *s = qrr_model_meta_str(m, key, &len);
    printf("  %-12s \"", label);
    for (size_t i = 0; s && i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n') fputs("\\n", stdout);
        else if (c == '"') fputs("\\\"", stdout);
        else if (c == '\\') fputs("\\\\", stdout);
        else if (c < 0x20) printf("\\x%02x", c);
        else putchar(c);
    }
    printf("\"\n");
}

static void print_text(const qrr_model *m, const qrr_model_info *f, json_t *info, int show_tensors)
{
    printf("file         qrr format %u, quantization layout %u, %.1f MiB\n", f->format_version,
           f->quant_version, (double)f->file_bytes / (1 << 20));
    printf("model        %s, %d layers, hidden %d, heads %d/%d (q/kv), head_dim %d, "
           "intermediate %d, vocab %d\n", f->arch, f->n_layers, f->hidden, f->n_heads,
           f->n_kv_heads, f->head_dim, f->intermediate, f->vocab_size);
    printf("             rms_eps %g, rope_theta %g, max_position %d, %s embeddings\n",
           f->rms_eps, f->rope_theta, f->max_position, f->tied ? "tied" : "untied");
    printf("weights      %s%s\n", f->weight_dtype,
           !strcmp(f->weight_dtype, "int8") ? (f->quant_block ? " (per-block scales)" : " (per-channel scales)") : "");
    if (!strcmp(f->head_kind, "yes/no"))
        printf("head         yes/no: \"%s\" = %d, \"%s\" = %d; labels %s\n",
               qrr_model_meta_str(m, "label_yes", NULL), (int)f->yes_id,
               qrr_model_meta_str(m, "label_no", NULL), (int)f->no_id, f->label_source);
    else
        printf("head         single logit (sequence classification); labels %s\n", f->label_source);
    printf("             %s\n", qrr_model_meta_str(m, "label_reason", NULL));
    printf("prompts      max_length %d, prefix %zu tokens, suffix %zu tokens\n", f->max_length,
           f->n_prefix_ids, f->n_suffix_ids);
    print_quoted("prefix", m, "prefix");
    print_quoted("query", m, "query_template");
    print_quoted("document", m, "document_template");
    print_quoted("suffix", m, "suffix");
    print_quoted("instruction", m, "instruction");
    printf("tokenizer    %zu ids, %zu merges, %zu added tokens\n", f->tokenizer_ids,
           f->tokenizer_merges, f->tokenizer_added);
    json_t *timing = json_object_get(info, "timing");
    printf("opened       in %.3f s (checksum pass %.3f s)\n",
           json_real_value(json_object_get(timing, "open_seconds")), f->verify_seconds);
    printf("tensors      %zu, %.1f MiB\n", f->n_tensors, (double)f->tensor_bytes / (1 << 20));
    json_t *tensors = json_object_get(info, "tensors"), *t;
    size_t i;
    json_array_foreach(tensors, i, t) {
        if (!show_tensors) break;
        /* The shape as JSON writes an array: "[1024, 64]". */
        char *shape = json_dumps(json_object_get(t, "shape"), 0);
        printf("  %-48s %-5s %s %lld bytes\n", json_string_value(json_object_get(t, "name")),
               json_string_value(json_object_get(t, "type")), shape ? shape : "[]",
               (long long)json_integer_value(json_object_get(t, "bytes")));
        free(shape);
    }
    printf("provenance   %s\n", qrr_model_meta_str(m, "provenance", NULL));
}

static void help(void)
{
    printf("usage: qrr info MODEL.qrr [--json] [--no-verify] [--no-tensors]\n\n"
           "Opens the file, checks it (every checksum unless --no-verify, which skips those of\n"
           "the linear layers and the embedding; the small norm, head and scale tensors are\n"
           "still checked) and prints its header, hyper-parameters, labels and how they were\n"
           "decided, prompts, tokenizer summary, tensors and provenance; --json as one JSON\n"
           "document, --no-tensors without the list of tensors.\n"
           "Exit: 0 ok, 1 the file failed a check, 2 usage.\n");
}

int qrr_cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int as_json = 0, show_tensors = 1;
    cli_model_opts mo = cli_model_opts_default();
    for (int i = 1; i < argc; i++) {
        int r = cli_common_option("info", CLI_OPT_VERIFY, help, argc, argv, &i, &mo);
        if (r == CLI_OPT_TAKEN) continue;
        if (r != CLI_OPT_OTHER) return r;
        if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(argv[i], "--no-tensors")) {
            show_tensors = 0;
        } else if (argv[i][0] == '-') {
            return cli_usage_error("info", "unknown option '%s'", argv[i]);
        } else if (!path && !cli_is_split_value(argv[i])) {
            path = argv[i];
        } else {
            return cli_unexpected_argument("info", argv, i);
        }
    }
    if (!path) return cli_usage_error("info", "missing MODEL.qrr");
    double t0 = qrr_time_seconds();
    qrr_model *m = cli_open_model("info", path, mo.verify);
    double open_s = qrr_time_seconds() - t0;
    if (!m) return QRR_EXIT_FAIL;
    qrr_model_info f;
    qrr_model_get_info(m, &f);
    json_t *info = describe(m, &f, open_s);
    if (as_json) {
        if (!show_tensors) json_object_del(info, "tensors"); /* tensor_count and _bytes stay */
        char *s = json_dumps(info, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
        if (s) puts(s);
        free(s);
    } else {
        print_text(m, &f, info, show_tensors);
    }
    json_decref(info);
    qrr_model_close(m);
    return QRR_EXIT_OK;
}
