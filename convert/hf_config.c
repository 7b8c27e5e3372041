/* hf_config.c — config.json and config_sentence_transformers.json parsing, the yes/no
 * token lookup in tokenizer.json and the label rules. Every refusal names the file and
 * the key, what was expected and what was found. */
#include "hf_config.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qrr_format.h"
#include "qrr_open.h"

/* path opened as a stream into *f if it is a regular file (st filled), else a status. */
static int open_stream(const char *path, struct stat *st, FILE **f, qrr_diag *d)
{
    int fd = qrr_open_regular(path, st, d);
    if (fd < 0) return fd;
    if (!(*f = fdopen(fd, "rb"))) {
        close(fd);
        return qrr_fail(d, QRR_ERR_NOMEM, "%s: out of memory", path);
    }
    return QRR_OK;
}

int qrr_hf_read_file(const char *path, size_t cap, char **out, size_t *len, qrr_diag *d)
{
    *out = NULL;
    *len = 0;
    struct stat sb;
    FILE *f = NULL;
    int st = open_stream(path, &sb, &f, d);
    if (st != QRR_OK) return st;
    if ((uint64_t)sb.st_size > cap) {
        fclose(f);
        return qrr_fail(d, QRR_ERR_IO, "%s: %lld bytes, more than the %zu-byte cap", path,
                        (long long)sb.st_size, cap);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return qrr_fail(d, QRR_ERR_NOMEM, "%s: out of memory", path);
    }
    if (n && fread(buf, 1, n, f) != n) {
        free(buf);
        fclose(f);
        return qrr_fail(d, QRR_ERR_IO, "%s: short read", path);
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return QRR_OK;
}

int qrr_hf_load_json(const char *path, size_t flags, json_t **out, qrr_diag *d)
{
    *out = NULL;
    struct stat sb;
    FILE *f = NULL;
    int st = open_stream(path, &sb, &f, d);
    if (st != QRR_OK) return st;
    json_error_t err;
    *out = json_loadf(f, flags, &err);
    fclose(f);
    if (!*out)
        return qrr_fail(d, QRR_ERR_JSON, "%s: not valid JSON: line %d column %d: %s", path,
                        err.line, err.column, err.text);
    return QRR_OK;
}

/* ---- config.json ------------------------------------------------------------------- */

static const char *json_type_name(const json_t *v)
{
    if (!v) return "nothing";
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: return "true";
    case JSON_FALSE: return "false";
    case JSON_NULL: return "null";
    }
    return "?";
}

static int get_uint(const json_t *root, const char *label, const char *key, uint32_t lo,
                    uint32_t hi, uint32_t *out, qrr_diag *d)
{
    json_t *v = json_object_get(root, key);
    if (!v) return qrr_fail(d, QRR_ERR_CONFIG, "%s: key \"%s\" is missing (expected an integer)", label, key);
    if (!json_is_integer(v))
        return qrr_fail(d, QRR_ERR_CONFIG, "%s: \"%s\" is %s, expected an integer", label, key,
                        json_type_name(v));
    json_int_t x = json_integer_value(v);
    if (x < (json_int_t)lo || x > (json_int_t)hi)
        return qrr_fail(d, QRR_ERR_CONFIG, "%s: \"%s\" is %lld, expected %u..%u", label, key,
                        (long long)x, lo, hi);
    *out = (uint32_t)x;
    return QRR_OK;
}

static int get_pos_real(const json_t *root, const char *label, const char *key, double *out,
                        qrr_diag *d)
{
    json_t *v = json_object_get(root, key);
    if (!v) return qrr_fail(d, QRR_ERR_CONFIG, "%s: key \"%s\" is missing (expected a number)", label, key);
    if (!json_is_number(v))
        return qrr_fail(d, QRR_ERR_CONFIG, "%s: \"%s\" is %s, expected a number", label, key,
                        json_type_name(v));
    double x = json_number_value(v);
    if (!isfinite(x) || x <= 0)
        return qrr_fail(d, QRR_ERR_CONFIG, "%s: \"%s\" is %g, expected a finite number > 0", label,
                        key, x);
    *out = x;
    return QRR_OK;
}

static int copy_label(char dst[QRR_HF_LABEL_MAX], const char *src, const char *label,
                      const char *what, qrr_diag *d)
{
    size_t n = strlen(src);
    if (n == 0 || n >= QRR_HF_LABEL_MAX)
        return qrr_fail(d, QRR_ERR_CONFIG, "%s: %s \"%.40s\" must be 1..%u bytes", label, what, src,
                        QRR_HF_LABEL_MAX - 1);
    memcpy(dst, src, n + 1);
    return QRR_OK;
}

static int parse_labels(json_t *root, const char *label, qrr_hf_config *c, qrr_diag *d)
{
    json_t *i2l = json_object_get(root, "id2label");
    json_t *l2i = json_object_get(root, "label2id");
    if ((i2l && !json_is_object(i2l) && !json_is_null(i2l)) ||
        (l2i && !json_is_object(l2i) && !json_is_null(l2i)))
        return qrr_fail(d, QRR_ERR_CONFIG, "%s: \"id2label\"/\"label2id\" must be objects, found %s / %s",
                        label, json_type_name(i2l), json_type_name(l2i));
    size_t n = json_is_object(i2l) ? json_object_size(i2l) : 0;
    size_t m = json_is_object(l2i) ? json_object_size(l2i) : 0;
    if (n == 0 && m == 0) return QRR_OK;
    if (n && m && n != m)
        return qrr_fail(d, QRR_ERR_CONFIG, "%s: id2label has %zu labels but label2id has %zu", label, n, m);
    size_t count = n ? n : m;
    if (count > 2)
        return qrr_fail(d, QRR_ERR_CONFIG,
                        "%s: %zu labels in id2label/label2id; a reranker has one (a score) or two (no, yes)",
                        label, count);
    int seen[2] = {0, 0};
    const char *key;
    json_t *val;
    if (n) {
        json_object_foreach(i2l, key, val) {
            char *end;
            errno = 0;
            long id = strtol(key, &end, 10);
            if (*key == '\0' || *end != '\0' || id < 0 || (size_t)id >= count || !json_is_string(val))
                return qrr_fail(d, QRR_ERR_CONFIG,
                                "%s: id2label entry \"%s\": expected ids 0..%zu mapped to strings", label,
                                key, count - 1);
            if (seen[id]++)
                return qrr_fail(d, QRR_ERR_CONFIG, "%s: id2label lists id %ld twice", label, id);
            int st = copy_label(c->labels[id], json_string_value(val), label, "id2label name", d);
            if (st != QRR_OK) return st;
        }
    }
    if (m) {
        json_object_foreach(l2i, key, val) {
            json_int_t id = json_is_integer(val) ? json_integer_value(val) : -1;
            if (id < 0 || (size_t)id >= count)
                return qrr_fail(d, QRR_ERR_CONFIG,
                                "%s: label2id[\"%s\"] is %s, expected an id 0..%zu", label, key,
                                json_type_name(val), count - 1);
            if (n) {
                if (strcmp(c->labels[id], key) != 0)
                    return qrr_fail(d, QRR_ERR_CONFIG,
                                    "%s: label2id[\"%s\"] = %lld but id2label[\"%lld\"] = \"%s\"", label,
                                    key, (long long)id, (long long)id, c->labels[id]);
            } else {
                if (seen[id]++)
                    return qrr_fail(d, QRR_ERR_CONFIG, "%s: label2id maps two labels to id %lld", label,
                                    (long long)id);
                int st = copy_label(c->labels[id], key, label, "label2id name", d);
                if (st != QRR_OK) return st;
            }
        }
    }
    c->n_labels = (uint32_t)count;
    if (count == 2 && strcmp(c->labels[0], "LABEL_0") == 0 && strcmp(c->labels[1], "LABEL_1") == 0) {
        c->default_label_map = 1; /* what Transformers fills in when nobody set labels */
        c->n_labels = 0;
    }
    return QRR_OK;
}

/* architectures[0], with a message for each way the key can be wrong. */
static int get_architecture(json_t *root, const char *label, const char **out, qrr_diag *d)
{
    json_t *ar = json_object_get(root, "architectures");
    json_t *first = json_array_get(ar, 0);
    *out = json_string_value(first);
    if (*out) return QRR_OK;
    if (!ar)
        return qrr_fail(d, QRR_ERR_CONFIG, "%s: key \"architectures\" is missing; expected one "
                        "architecture such as [\"Qwen3ForCausalLM\"]", label);
    if (!json_is_array(ar))
        return qrr_fail(d, QRR_ERR_CONFIG, "%s: \"architectures\" is %s, expected an array such as "
                        "[\"Qwen3ForCausalLM\"]", label, json_type_name(ar));
    if (!first)
        return qrr_fail(d, QRR_ERR_CONFIG, "%s: \"architectures\" is empty; expected one "
                        "architecture such as Qwen3ForCausalLM", label);
    return qrr_fail(d, QRR_ERR_CONFIG, "%s: architectures[0] is %s, expected a string such as "
                    "\"Qwen3ForCausalLM\"", label, json_type_name(first));
}

/* Transformers' Qwen3 defaults for keys a config may leave out. */
#define HF_DEFAULT_SLIDING_WINDOW 4096u
#define HF_DEFAULT_MAX_WINDOW_LAYERS 28u

/* An optional non-negative integer key: absent leaves *out (the default); null sets *is_null. */
static int get_opt_uint(const json_t *root, const char *label, const char *key, uint32_t lo,
                        uint32_t *out, int *is_null, qrr_diag *d)
{
    json_t *v = json_object_get(root, key);
    *is_null = json_is_null(v);
    if (!v || *is_null) return QRR_OK;
    return get_uint(root, label, key, lo, 0x7fffffff, out, d);
}

/* The `count` layers flagged in sliding[0..n) as "layer 3", "layers 0, 2" or "layers
 * 28..35" (runs of three or more as ranges), cut with "..." at the buffer's end. */
static void describe_layers(const unsigned char *sliding, uint32_t n, uint32_t count, char *buf,
                            size_t cap)
{
    size_t len = (size_t)snprintf(buf, cap, "layer%s ", count == 1 ? "" : "s");
    const char *sep = "";
    for (uint32_t i = 0; i < n && len < cap; i++) {
        if (!sliding[i]) continue;
        uint32_t end = i;
        while (end + 1 < n && sliding[end + 1]) end++;
        if (end < i + 2) end = i; /* a run of one or two layers is listed layer by layer */
        len += (size_t)(end > i ? snprintf(buf + len, cap - len, "%s%u..%u", sep, i, end)
                                : snprintf(buf + len, cap - len, "%s%u", sep, i));
        sep = ", ";
        i = end;
    }
    if (len >= cap && cap > 4) memcpy(buf + cap - 4, "...", 4);
}

/* Which layers Transformers gives a sliding window: with use_sliding_window true, the
 * window is sliding_window (4096 when the key is absent, none when null) on the layers
 * that layer_types names "sliding_attention", or without layer_types on the layers from
 * max_window_layers (default 28) on. */
static int parse_sliding_window(const json_t *root, const char *label, qrr_hf_config *c,
                                qrr_diag *d)
{
    json_t *use = json_object_get(root, "use_sliding_window");
    if (use && !json_is_boolean(use) && !json_is_null(use))
        return qrr_fail(d, QRR_ERR_CONFIG, "%s: \"use_sliding_window\" is %s, expected true or false",
                        label, json_type_name(use));
    uint32_t window = HF_DEFAULT_SLIDING_WINDOW, from = HF_DEFAULT_MAX_WINDOW_LAYERS;
    int window_null, from_null, st;
    if ((st = get_opt_uint(root, label, "sliding_window", 1, &window, &window_null, d)) ||
        (st = get_opt_uint(root, label, "max_window_layers", 0, &from, &from_null, d)))
        return st;
    json_t *types = json_object_get(root, "layer_types");
    unsigned char *sliding = calloc(c->n_layers ? c->n_layers : 1, 1);
    if (!sliding) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    uint32_t any = 0;
    if (types && !json_is_null(types)) {
        if (!json_is_array(types) || json_array_size(types) != c->n_layers) {
            free(sliding);
            return qrr_fail(d, QRR_ERR_CONFIG, "%s: \"layer_types\" is %s, expected an array of %u "
                            "strings (one per layer)", label, json_type_name(types), c->n_layers);
        }
        for (uint32_t i = 0; i < c->n_layers; i++) {
            const char *t = json_string_value(json_array_get(types, i));
            if (t && strcmp(t, "sliding_attention") == 0) {
                sliding[i] = 1;
                any++;
            } else if (!t || strcmp(t, "full_attention") != 0) {
                free(sliding);
                return qrr_fail(d, QRR_ERR_CONFIG, "%s: layer_types[%u] is not \"full_attention\" or "
                                "\"sliding_attention\"", label, i);
            }
        }
    } else if (!from_null) {
        for (uint32_t i = from; i < c->n_layers; i++) sliding[i] = 1, any++;
    }
    c->sliding_window = 0;
    if (json_is_true(use) && !window_null && any) {
        c->sliding_window = window;
        describe_layers(sliding, c->n_layers, any, c->sliding_layers,
                        sizeof c->sliding_layers);
    }
    free(sliding);
    return QRR_OK;
}

/* Plain RoPE only, and its theta, from either layout Transformers writes: v4's top-level
 * "rope_theta" with an optional "rope_scaling", v5's "rope_parameters" object ({"rope_type":
 * "default", "rope_theta": ...}). As Transformers reads them, rope_parameters' theta wins over
 * the top-level one, and with neither theta is 10000. A scaling object may hold its type
 * ("rope_type" or "type", which must be "default") and a theta, nothing else. */
static int parse_rope(const json_t *root, const char *label, qrr_hf_config *c, qrr_diag *d)
{
    static const char *const keys[] = {"rope_scaling", "rope_parameters"};
    const json_t *theta_from = NULL;
    for (size_t i = 0; i < 2; i++) {
        json_t *rs = json_object_get(root, keys[i]);
        if (!rs || json_is_null(rs)) continue;
        json_t *ty = json_is_object(rs) ? json_object_get(rs, "rope_type") : NULL;
        if (!ty && json_is_object(rs)) ty = json_object_get(rs, "type");
        json_t *th = json_is_object(rs) ? json_object_get(rs, "rope_theta") : NULL;
        size_t known = (ty != NULL) + (th != NULL);
        if (!json_is_object(rs) || (ty && !(json_is_string(ty) && !strcmp(json_string_value(ty), "default"))) ||
            json_object_size(rs) != known)
            return qrr_fail(d, QRR_ERR_CONFIG,
                            "%s: \"%s\" is %s%s%.30s%s, only plain RoPE (null, or rope_type "
                            "\"default\" with an optional rope_theta) is supported", label, keys[i],
                            json_type_name(rs), json_is_string(ty) ? " of type \"" : "",
                            json_is_string(ty) ? json_string_value(ty) : "", json_is_string(ty) ? "\"" : "");
        if (th && (i == 1 || !theta_from)) theta_from = rs;
    }
    if (!theta_from && json_object_get(root, "rope_theta")) theta_from = root;
    if (!theta_from) {
        c->rope_theta = QRR_HF_DEFAULT_ROPE_THETA;
        return QRR_OK;
    }
    return get_pos_real(theta_from, label, "rope_theta", &c->rope_theta, d);
}

int qrr_hf_config_parse(const char *text, size_t len, const char *label, qrr_hf_config *c,
                        qrr_diag *d)
{
    memset(c, 0, sizeof *c);
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return qrr_fail(d, QRR_ERR_JSON, "%s: not valid JSON: %s (line %d, column %d)", label, err.text,
                        err.line, err.column);
    int st = QRR_OK;
    if (!json_is_object(root)) {
        st = qrr_fail(d, QRR_ERR_CONFIG, "%s: top level is %s, expected an object", label,
                      json_type_name(root));
        goto out;
    }
    json_t *mt = json_object_get(root, "model_type");
    if (!json_is_string(mt) || strcmp(json_string_value(mt), "qwen3") != 0) {
        st = qrr_fail(d, QRR_ERR_CONFIG, "%s: \"model_type\" is %s%s%s, expected \"qwen3\"", label,
                      json_is_string(mt) ? "\"" : json_type_name(mt),
                      json_is_string(mt) ? json_string_value(mt) : "", json_is_string(mt) ? "\"" : "");
        goto out;
    }
    const char *arch;
    if ((st = get_architecture(root, label, &arch, d))) goto out;
    if (strcmp(arch, "Qwen3ForCausalLM") == 0) {
        c->seqcls = 0;
    } else if (strcmp(arch, "Qwen3ForSequenceClassification") == 0) {
        c->seqcls = 1;
    } else {
        st = qrr_fail(d, QRR_ERR_CONFIG,
                      "%s: architectures[0] is \"%.60s\", expected Qwen3ForCausalLM or "
                      "Qwen3ForSequenceClassification", label, arch);
        goto out;
    }
    snprintf(c->architecture, sizeof c->architecture, "%s", arch);

    if ((st = get_uint(root, label, "hidden_size", 1, QRR_MAX_HIDDEN, &c->hidden, d)) ||
        (st = get_uint(root, label, "num_hidden_layers", 1, QRR_MAX_LAYERS, &c->n_layers, d)) ||
        (st = get_uint(root, label, "num_attention_heads", 1, QRR_MAX_HEADS, &c->n_heads, d)) ||
        (st = get_uint(root, label, "num_key_value_heads", 1, QRR_MAX_HEADS, &c->n_kv_heads, d)) ||
        (st = get_uint(root, label, "intermediate_size", 1, QRR_MAX_INTERMEDIATE, &c->intermediate, d)) ||
        (st = get_uint(root, label, "vocab_size", 1, QRR_MAX_VOCAB, &c->vocab, d)) ||
        (st = get_uint(root, label, "max_position_embeddings", 1, 0x7fffffff, &c->max_position, d)) ||
        (st = get_pos_real(root, label, "rms_norm_eps", &c->rms_eps, d)) ||
        (st = parse_rope(root, label, c, d)))
        goto out;
    /* Without the key, Transformers' Qwen3Config has head_dim 128 (not hidden / heads). */
    c->head_dim = QRR_HF_DEFAULT_HEAD_DIM;
    if (json_object_get(root, "head_dim") && !json_is_null(json_object_get(root, "head_dim")) &&
        (st = get_uint(root, label, "head_dim", 2, QRR_MAX_HEAD_DIM, &c->head_dim, d)))
        goto out;
    if (c->n_heads % c->n_kv_heads != 0) {
        st = qrr_fail(d, QRR_ERR_CONFIG,
                      "%s: num_attention_heads %u is not a multiple of num_key_value_heads %u", label,
                      c->n_heads, c->n_kv_heads);
        goto out;
    }
    if (c->head_dim % 2 != 0) {
        st = qrr_fail(d, QRR_ERR_CONFIG, "%s: head_dim %u is odd; rotary embeddings need it even",
                      label, c->head_dim);
        goto out;
    }
    json_t *tie = json_object_get(root, "tie_word_embeddings");
    if (tie && !json_is_boolean(tie)) {
        st = qrr_fail(d, QRR_ERR_CONFIG, "%s: \"tie_word_embeddings\" is %s, expected true or false",
                      label, json_type_name(tie));
        goto out;
    }
    c->tied = json_is_true(tie);
    json_t *act = json_object_get(root, "hidden_act");
    if (act && (!json_is_string(act) || strcmp(json_string_value(act), "silu") != 0)) {
        st = qrr_fail(d, QRR_ERR_CONFIG, "%s: \"hidden_act\" is %s%.20s%s, only \"silu\" is supported",
                      label, json_is_string(act) ? "\"" : json_type_name(act),
                      json_is_string(act) ? json_string_value(act) : "", json_is_string(act) ? "\"" : "");
        goto out;
    }
    json_t *ab = json_object_get(root, "attention_bias");
    if (ab && !json_is_false(ab) && !json_is_null(ab)) {
        st = qrr_fail(d, QRR_ERR_CONFIG, "%s: \"attention_bias\" is %s, only false is supported", label,
                      json_type_name(ab));
        goto out;
    }
    if ((st = parse_sliding_window(root, label, c, d))) goto out;
    st = parse_labels(root, label, c, d);
out:
    json_decref(root);
    return st;
}

int qrr_hf_config_load(const char *path, qrr_hf_config *out, qrr_diag *d)
{
    char *text;
    size_t len;
    int st = qrr_hf_read_file(path, QRR_HF_MAX_CONFIG, &text, &len, d);
    if (st != QRR_OK) {
        if (st == QRR_ERR_NOMEM) return st;
        if (!d) return QRR_ERR_CONFIG;
        char msg[sizeof d->msg];
        memcpy(msg, d->msg, sizeof msg);
        return qrr_fail(d, QRR_ERR_CONFIG, "%s", msg);
    }
    st = qrr_hf_config_parse(text, len, path, out, d);
    free(text);
    return st;
}

/* ---- prompts ----------------------------------------------------------------------- */

void qrr_hf_prompts_free(qrr_hf_prompts *p)
{
    free(p->prefix);
    free(p->suffix);
    free(p->query_template);
    free(p->document_template);
    free(p->instruction);
    memset(p, 0, sizeof *p);
}

static int set_str(char **dst, const char *src, size_t n, qrr_diag *d)
{
    char *s = malloc(n + 1);
    if (!s) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    memcpy(s, src, n);
    s[n] = '\0';
    free(*dst);
    *dst = s;
    return QRR_OK;
}

int qrr_hf_prompts_default(qrr_hf_prompts *p, qrr_diag *d)
{
    memset(p, 0, sizeof *p);
    int st;
    if ((st = set_str(&p->prefix, QRR_DEFAULT_PREFIX, strlen(QRR_DEFAULT_PREFIX), d)) ||
        (st = set_str(&p->suffix, QRR_DEFAULT_SUFFIX, strlen(QRR_DEFAULT_SUFFIX), d)) ||
        (st = set_str(&p->query_template, QRR_DEFAULT_QUERY_TEMPLATE,
                      strlen(QRR_DEFAULT_QUERY_TEMPLATE), d)) ||
        (st = set_str(&p->document_template, QRR_DEFAULT_DOCUMENT_TEMPLATE,
                      strlen(QRR_DEFAULT_DOCUMENT_TEMPLATE), d)) ||
        (st = set_str(&p->instruction, QRR_DEFAULT_INSTRUCTION, strlen(QRR_DEFAULT_INSTRUCTION), d))) {
        qrr_hf_prompts_free(p);
        return st;
    }
    snprintf(p->source, sizeof p->source, "defaults");
    return QRR_OK;
}

static const char *prompt_string(json_t *prompts, const char *key, const char *label, int *st,
                                 qrr_diag *d)
{
    json_t *v = json_object_get(prompts, key);
    if (!v || json_is_null(v)) return NULL;
    if (!json_is_string(v)) {
        *st = qrr_fail(d, QRR_ERR_CONFIG, "%s: prompts[\"%s\"] is %s, expected a string", label, key,
                       json_type_name(v));
        return NULL;
    }
    if (json_string_length(v) > QRR_HF_MAX_PROMPT || strlen(json_string_value(v)) != json_string_length(v)) {
        *st = qrr_fail(d, QRR_ERR_CONFIG, "%s: prompts[\"%s\"] is longer than %u bytes or holds a NUL",
                       label, key, QRR_HF_MAX_PROMPT);
        return NULL;
    }
    return json_string_value(v);
}

#define USER_TURN "<|im_start|>user\n"
#define INSTRUCT_MARK "<Instruct>: "
#define QUERY_MARK "\n<Query>: "

/* A query template with the instruction written out, as seq-cls conversions carry it
 * ("<Instruct>: Given a web search query, ...\n<Query>: "): the instruction becomes the
 * default and "{instruction}" takes its place, so that a request's own instruction replaces
 * it as in the recipe. 1 when it did so. */
static int recover_instruction(qrr_hf_prompts *p, int *st, qrr_diag *d)
{
    char *t = p->query_template;
    char *at = strstr(t, INSTRUCT_MARK);
    if (strstr(t, "{instruction}") || !at) return 0;
    const char *text = at + strlen(INSTRUCT_MARK), *end = strstr(text, QUERY_MARK);
    if (!end || end == text) return 0;
    size_t head = (size_t)(text - t), tail = strlen(end);
    char *tmpl = malloc(head + strlen("{instruction}") + tail + 1);
    if (!tmpl || (*st = set_str(&p->instruction, text, (size_t)(end - text), d))) {
        free(tmpl);
        if (!tmpl) *st = qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
        return 0;
    }
    memcpy(tmpl, t, head);
    memcpy(tmpl + head, "{instruction}", strlen("{instruction}"));
    memcpy(tmpl + head + strlen("{instruction}"), end, tail + 1);
    free(p->query_template);
    p->query_template = tmpl;
    return 1;
}

int qrr_hf_prompts_parse(const char *text, size_t len, const char *label, qrr_hf_prompts *p,
                         qrr_diag *d)
{
    int st = qrr_hf_prompts_default(p, d);
    if (st != QRR_OK || !text) return st;
    json_error_t err;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
    if (!root) {
        qrr_hf_prompts_free(p);
        return qrr_fail(d, QRR_ERR_JSON, "%s: not valid JSON: %s (line %d, column %d)", label, err.text,
                        err.line, err.column);
    }
    json_t *prompts = json_is_object(root) ? json_object_get(root, "prompts") : NULL;
    if (!json_is_object(root) || (prompts && !json_is_object(prompts) && !json_is_null(prompts))) {
        st = qrr_fail(d, QRR_ERR_CONFIG, "%s: expected an object with an optional \"prompts\" object",
                      label);
        goto out;
    }
    if (!json_is_object(prompts)) goto out;
    const char *prefix = prompt_string(prompts, "prefix", label, &st, d);
    const char *suffix = prompt_string(prompts, "suffix", label, &st, d);
    const char *query = prompt_string(prompts, "query", label, &st, d);
    const char *doc = prompt_string(prompts, "document", label, &st, d);
    const char *instr = prompt_string(prompts, "instruction", label, &st, d);
    if (st != QRR_OK) goto out;
    char used[200] = "";
    if (prefix && (st = set_str(&p->prefix, prefix, strlen(prefix), d))) goto out;
    if (suffix && (st = set_str(&p->suffix, suffix, strlen(suffix), d))) goto out;
    if (instr && (st = set_str(&p->instruction, instr, strlen(instr), d))) goto out;
    if (query) {
        const char *q = query;
        if (strncmp(q, "{prefix}", 8) == 0) q += 8;
        /* A query prompt that carries the whole system turn: split it at the user turn so
         * the prefix is tokenized on its own, as the recipe does. */
        const char *u = strstr(q, USER_TURN);
        if (!prefix && strncmp(q, "<|im_start|>system", 18) == 0 && u) {
            size_t plen = (size_t)(u - q) + strlen(USER_TURN);
            if ((st = set_str(&p->prefix, q, plen, d))) goto out;
            q += plen;
        }
        const char *ph = strstr(q, "{query}");
        size_t qlen = ph ? (size_t)(ph - q) : strlen(q);
        if ((st = set_str(&p->query_template, q, qlen, d))) goto out;
        if (ph) {
            /* Text after {query} comes before the document template. */
            const char *after = ph + 7;
            if (strstr(after, "{query}")) {
                st = qrr_fail(d, QRR_ERR_CONFIG, "%s: prompts[\"query\"] holds {query} twice", label);
                goto out;
            }
            const char *dt = doc ? doc : p->document_template;
            size_t a = strlen(after), b = strlen(dt);
            char *joined = malloc(a + b + 1);
            if (!joined) {
                st = qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
                goto out;
            }
            memcpy(joined, after, a);
            memcpy(joined + a, dt, b + 1);
            free(p->document_template);
            p->document_template = joined;
            doc = NULL; /* consumed */
        }
    }
    if (doc && (st = set_str(&p->document_template, doc, strlen(doc), d))) goto out;
    int recovered = query && recover_instruction(p, &st, d);
    if (st != QRR_OK) goto out;
    {
        char *dt = p->document_template;
        char *ph = strstr(dt, "{document}");
        if (ph) {
            const char *after = ph + 10;
            if (*after) {
                /* Text after {document} is the suffix, which is tokenized on its own. */
                if (suffix && strcmp(after, suffix) != 0) {
                    st = qrr_fail(d, QRR_ERR_CONFIG,
                                  "%s: prompts[\"document\"] has text after {document} that differs from "
                                  "prompts[\"suffix\"]; qrr needs the document last in the body", label);
                    goto out;
                }
                if (strcmp(after, "{suffix}") != 0 && (st = set_str(&p->suffix, after, strlen(after), d)))
                    goto out;
            }
            *ph = '\0';
        }
    }
    snprintf(used, sizeof used, "%s%s%s%s%s%s", prefix ? " prefix" : "", suffix ? " suffix" : "",
             query ? " query" : "", json_object_get(prompts, "document") ? " document" : "",
             instr ? " instruction" : "",
             recovered ? " (the instruction written out in the query, made the default)" : "");
    snprintf(p->source, sizeof p->source, "config_sentence_transformers.json prompts:%s",
             used[0] ? used : " (none recognised)");
out:
    json_decref(root);
    if (st != QRR_OK) qrr_hf_prompts_free(p);
    return st;
}

/* ---- tokenizer vocabulary ---------------------------------------------------------- */

struct qrr_hf_vocab {
    json_t *root;
    json_t *vocab;  /* model.vocab: string -> id */
    json_t *added;  /* added_tokens: [{id, content}] */
};

int qrr_hf_vocab_load(const char *path, qrr_hf_vocab **out, qrr_diag *d)
{
    *out = NULL;
    json_t *root = NULL;
    int st = qrr_hf_load_json(path, 0, &root, d);
    if (st == QRR_ERR_IO) { /* unreadable: the tokenizer is what is missing */
        char why[sizeof d->msg];
        snprintf(why, sizeof why, "%s", d ? d->msg : path);
        return qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "%s", why);
    }
    if (st == QRR_OK) st = qrr_hf_vocab_of(root, path, out, d);
    json_decref(root);
    return st;
}

int qrr_hf_vocab_of(json_t *root, const char *path, qrr_hf_vocab **out, qrr_diag *d)
{
    *out = NULL;
    json_t *model = json_object_get(root, "model");
    json_t *vocab = json_is_object(model) ? json_object_get(model, "vocab") : NULL;
    json_t *added = json_object_get(root, "added_tokens");
    if (!json_is_object(vocab) || (added && !json_is_array(added) && !json_is_null(added)))
        return qrr_fail(d, QRR_ERR_BAD_TOKENIZER,
                        "%s: expected \"model\": {\"vocab\": {...}} and an \"added_tokens\" array", path);
    qrr_hf_vocab *v = calloc(1, sizeof *v);
    if (!v) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    v->root = json_incref(root);
    v->vocab = vocab;
    v->added = json_is_array(added) ? added : NULL;
    *out = v;
    return QRR_OK;
}

void qrr_hf_vocab_free(qrr_hf_vocab *v)
{
    if (!v) return;
    json_decref(v->root);
    free(v);
}

/* GPT-2 byte-level alphabet: printable Latin-1 bytes stand for themselves, the others
 * take code points 256, 257, ... in byte order. */
static uint32_t byte_level_char(uint8_t b)
{
    if ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE)) return b;
    uint32_t n = 0;
    for (uint32_t x = 0; x < b; x++)
        if (!((x >= '!' && x <= '~') || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE))) n++;
    return 256 + n;
}

int64_t qrr_hf_vocab_find(const qrr_hf_vocab *v, const char *token)
{
    size_t i;
    json_t *e;
    if (v->added) {
        json_array_foreach(v->added, i, e) {
            const char *c = json_string_value(json_object_get(e, "content"));
            json_t *id = json_object_get(e, "id");
            if (c && strcmp(c, token) == 0 && json_is_integer(id) && json_integer_value(id) >= 0)
                return json_integer_value(id);
        }
    }
    size_t n = strlen(token);
    if (n >= QRR_HF_LABEL_MAX) return -1;
    char bl[QRR_HF_LABEL_MAX * 2 + 1];
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        uint32_t cp = byte_level_char((uint8_t)token[j]);
        if (cp < 0x80) {
            bl[k++] = (char)cp;
        } else { /* every byte-level code point is below 0x800: two UTF-8 bytes */
            bl[k++] = (char)(0xC0 | (cp >> 6));
            bl[k++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    bl[k] = '\0';
    json_t *id = json_object_get(v->vocab, bl);
    if (!json_is_integer(id) || json_integer_value(id) < 0) return -1;
    return json_integer_value(id);
}

/* ---- labels ------------------------------------------------------------------------ */

int qrr_hf_split_labels(const char *s, char no[QRR_HF_LABEL_MAX], char yes[QRR_HF_LABEL_MAX],
                        qrr_diag *d)
{
    const char *comma = s ? strchr(s, ',') : NULL;
    if (!comma || strchr(comma + 1, ','))
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "--labels expects two token strings, \"no\" first: NO,YES");
    size_t a = (size_t)(comma - s), b = strlen(comma + 1);
    if (a == 0 || b == 0 || a >= QRR_HF_LABEL_MAX || b >= QRR_HF_LABEL_MAX)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "--labels: each token string must be 1..%u bytes",
                        QRR_HF_LABEL_MAX - 1);
    memcpy(no, s, a);
    no[a] = '\0';
    memcpy(yes, comma + 1, b + 1);
    return QRR_OK;
}

static int lookup_pair(const qrr_label_inputs *in, const char *what, qrr_label_decision *o,
                       qrr_diag *d)
{
    int64_t no = qrr_hf_vocab_find(in->vocab, o->label_no);
    int64_t yes = qrr_hf_vocab_find(in->vocab, o->label_yes);
    if (no < 0 || yes < 0)
        return qrr_fail(d, QRR_ERR_NOT_RERANKER, "tokenizer.json has no token \"%s\" (%s)",
                        no < 0 ? o->label_no : o->label_yes, what);
    if ((uint64_t)no >= in->cfg->vocab || (uint64_t)yes >= in->cfg->vocab)
        return qrr_fail(d, QRR_ERR_NOT_RERANKER,
                        "token ids of \"%s\" (%lld) and \"%s\" (%lld) must be below config.json "
                        "vocab_size %u", o->label_no, (long long)no, o->label_yes, (long long)yes,
                        in->cfg->vocab);
    if (no == yes)
        return qrr_fail(d, QRR_ERR_NOT_RERANKER, "\"%s\" and \"%s\" are the same token (%lld)",
                        o->label_no, o->label_yes, (long long)no);
    o->no_id = (uint32_t)no;
    o->yes_id = (uint32_t)yes;
    return QRR_OK;
}

int qrr_hf_decide_labels(const qrr_label_inputs *in, qrr_label_decision *o, qrr_diag *d)
{
    const qrr_hf_config *c = in->cfg;
    memset(o, 0, sizeof *o);
    o->head_kind = QRR_HEAD_YES_NO;
    o->no_id = o->yes_id = QRR_NO_TOKEN;
    int st;

    /* 3. The user's word wins. */
    if (in->user_no && in->user_yes) {
        if (c->seqcls)
            return qrr_fail(d, QRR_ERR_NOT_RERANKER,
                            "--labels picks rows of the LM head, but config.json says %s, whose head is "
                            "score.weight; drop --labels", c->architecture);
        snprintf(o->label_no, sizeof o->label_no, "%s", in->user_no);
        snprintf(o->label_yes, sizeof o->label_yes, "%s", in->user_yes);
        if ((st = lookup_pair(in, "given with --labels", o, d))) return st;
        o->label_source = QRR_LABELS_FROM_USER;
        snprintf(o->reason, sizeof o->reason, "from --labels: '%s' (%u) and '%s' (%u); %s",
                 o->label_no, o->no_id, o->label_yes, o->yes_id, c->architecture);
        return QRR_OK;
    }

    /* 1. A label map in config.json. */
    if (c->n_labels == 1) {
        if (!c->seqcls)
            return qrr_fail(d, QRR_ERR_NOT_RERANKER,
                            "config.json: one label (\"%s\") on %s; a single-logit head needs "
                            "Qwen3ForSequenceClassification and its score.weight",
                            c->labels[0], c->architecture);
        o->head_kind = QRR_HEAD_SINGLE_LOGIT;
        o->label_source = QRR_LABELS_FROM_CONFIG;
        o->from_score = 1;
        snprintf(o->reason, sizeof o->reason,
                 "config.json has one label ('%s'); %s: single logit from score.weight",
                 c->labels[0], c->architecture);
        return QRR_OK;
    }
    if (c->n_labels == 2) {
        int no_first = strcmp(c->labels[0], "no") == 0 && strcmp(c->labels[1], "yes") == 0;
        int yes_first = strcmp(c->labels[0], "yes") == 0 && strcmp(c->labels[1], "no") == 0;
        if (!no_first && !yes_first)
            return qrr_fail(d, QRR_ERR_NOT_RERANKER,
                            "config.json: labels \"%s\" and \"%s\" do not name the tokens \"no\" and "
                            "\"yes\"\nHINT: pass --labels NO,YES with the two token strings",
                            c->labels[0], c->labels[1]);
        snprintf(o->label_no, sizeof o->label_no, "no");
        snprintf(o->label_yes, sizeof o->label_yes, "yes");
        if ((st = lookup_pair(in, "named by config.json's labels", o, d))) return st;
        o->label_source = QRR_LABELS_FROM_CONFIG;
        if (c->seqcls) {
            o->from_score = 1;
            o->score_row_no = no_first ? 0 : 1;
            o->score_row_yes = no_first ? 1 : 0;
        }
        snprintf(o->reason, sizeof o->reason,
                 "config.json labels {0: '%s', 1: '%s'}; %s; tokens 'no' (%u) and 'yes' (%u)%s",
                 c->labels[0], c->labels[1], c->architecture, o->no_id, o->yes_id,
                 c->seqcls ? "; rows of score.weight by label id" : "");
        return QRR_OK;
    }

    /* 2. No label map: a causal LM whose tokenizer has yes and no. */
    if (c->seqcls)
        return qrr_fail(d, QRR_ERR_NOT_RERANKER,
                        "config.json: %s without a one-label id2label; cannot tell which score.weight "
                        "row means what", c->architecture);
    if (in->embedding_evidence && !in->force)
        return qrr_fail(d, QRR_ERR_NOT_RERANKER,
                        "refusing: directory looks like an embedding model (%s) and config.json has no "
                        "labels\nHINT: pass --force if it really is a reranker, or --labels no,yes",
                        in->embedding_evidence);
    snprintf(o->label_no, sizeof o->label_no, "no");
    snprintf(o->label_yes, sizeof o->label_yes, "yes");
    if ((st = lookup_pair(in, "needed to infer the labels", o, d))) return st;
    o->label_source = QRR_LABELS_INFERRED;
    int k = snprintf(o->reason, sizeof o->reason,
                     "inferred: config.json has no label2id%s; %s; tokenizer has 'yes' (%u) and 'no' (%u)",
                     c->default_label_map ? " (only the default LABEL_0/LABEL_1)" : "", c->architecture,
                     o->yes_id, o->no_id);
    if (in->embedding_evidence && k > 0 && (size_t)k < sizeof o->reason)
        snprintf(o->reason + k, sizeof o->reason - (size_t)k,
                 "; looks like an embedding model (%s) but --force was given", in->embedding_evidence);
    return QRR_OK;
}
