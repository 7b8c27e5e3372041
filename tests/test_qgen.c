// Tests for the checkpoint generator: runs $QRR_BUILD/qgen (default build/qgen) into temp
// directories and checks what it wrote: config.json against the reference configs' keys,
// safetensors headers, sharding, determinism, tokenizer files, weight statistics, exit codes.

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <criterion/criterion.h>
#include "qrr_test_util.h"
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------
// Helpers: running qgen, temp dirs, reading files.

static const char *build_dir(void) {
    const char *b = getenv("QRR_BUILD");
    return b && *b ? b : "build";
}

static const char *reference_dir(void) {
    const char *r = getenv("QRR_REFERENCE");
    return r && *r ? r : "../shared/reference";
}

// Runs qgen with the given arguments (NULL-terminated), output silenced; returns its exit
// status, or -1 when it did not exit normally.
static int run_qgen(const char *const *args) {
    char prog[4096];
    snprintf(prog, sizeof prog, "%s/qgen", build_dir());
    cr_assert(access(prog, X_OK) == 0, "%s is missing: build it with make first", prog);
    const char *argv[64];
    int n = 0;
    argv[n++] = prog;
    for (; args[n - 1]; n++) argv[n] = args[n - 1];
    argv[n] = NULL;
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int devnull = open("/dev/null", O_WRONLY);
        dup2(devnull, 1);
        dup2(devnull, 2);
        execv(prog, (char *const *)argv);
        _exit(127);
    }
    int st;
    cr_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define QGEN(...) run_qgen((const char *const[]){__VA_ARGS__, NULL})

typedef struct {
    char root[64];
} tmpdir;

// The test's temp dir (tu_tmpdir's: removed when the test ends, even by a failed assertion).
static tmpdir tmp_make(void) {
    tmpdir t;
    tu_tmpdir(t.root, sizeof t.root);
    return t;
}

static void tmp_remove(tmpdir *t) {
    tu_rmtree(t->root);
}

// root/name into a static rotating buffer (enough for a few paths per expression).
static const char *at(const tmpdir *t, const char *name) {
    static char bufs[8][4096];
    static int k;
    char *b = bufs[k++ % 8];
    snprintf(b, 4096, "%s/%s", t->root, name);
    return b;
}

static bool same_file(const char *a, const char *b) {
    size_t na, nb;
    unsigned char *pa = (unsigned char *)tu_slurp(a, &na), *pb = (unsigned char *)tu_slurp(b, &nb);
    bool same = na == nb && memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return same;
}

static json_t *load_json(const char *path) {
    json_error_t err;
    json_t *j = json_load_file(path, 0, &err);
    cr_assert(j != NULL, "%s: %s (line %d)", path, err.text, err.line);
    return j;
}

// A parsed safetensors file: its header JSON and where the data starts.
typedef struct {
    json_t *header;
    size_t header_len, file_len;
    unsigned char *bytes;
} st_file;

static st_file st_open(const char *path) {
    st_file s;
    s.bytes = (unsigned char *)tu_slurp(path, &s.file_len);
    cr_assert(s.file_len >= 8);
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)s.bytes[i] << (8 * i);
    cr_assert(n <= s.file_len - 8, "header length %llu past the end", (unsigned long long)n);
    s.header_len = (size_t)n;
    json_error_t err;
    s.header = json_loadb((const char *)s.bytes + 8, s.header_len, 0, &err);
    cr_assert(s.header != NULL, "%s header: %s", path, err.text);
    return s;
}

static void st_close(st_file *s) {
    json_decref(s->header);
    free(s->bytes);
}

static uint64_t json_u64(json_t *arr, size_t i) {
    json_t *v = json_array_get(arr, i);
    cr_assert(json_is_integer(v));
    cr_assert(json_integer_value(v) >= 0);
    return (uint64_t)json_integer_value(v);
}

// Checks one file's structure: format metadata, 8-byte space padding, tensors contiguous
// from 0 in header order, sizes = numel * element size, file ends where the data ends.
// Returns the sum of the tensor bytes.
static uint64_t check_safetensors(const st_file *s, const char *dtype, size_t esz) {
    cr_assert_eq(s->header_len % 8, 0, "header length %zu is not a multiple of 8", s->header_len);
    const char *h = (const char *)s->bytes + 8;
    size_t end = s->header_len;
    while (end > 0 && h[end - 1] == ' ') end--;
    cr_assert(end > 0 && h[end - 1] == '}', "header padding must be spaces after the JSON");
    cr_assert(s->header_len - end < 8, "more padding than alignment needs");
    json_t *meta = json_object_get(s->header, "__metadata__");
    cr_assert_str_eq(json_string_value(json_object_get(meta, "format")), "pt");

    // jansson keeps insertion order, so iteration follows the header.
    uint64_t off = 0;
    const char *name;
    json_t *t;
    json_object_foreach(s->header, name, t) {
        if (!strcmp(name, "__metadata__")) continue;
        cr_assert_str_eq(json_string_value(json_object_get(t, "dtype")), dtype, "%s dtype", name);
        json_t *shape = json_object_get(t, "shape"), *offs = json_object_get(t, "data_offsets");
        uint64_t numel = 1;
        for (size_t i = 0; i < json_array_size(shape); i++) numel *= json_u64(shape, i);
        cr_assert_eq(json_u64(offs, 0), off, "%s does not start where the previous tensor ends", name);
        cr_assert_eq(json_u64(offs, 1) - json_u64(offs, 0), numel * esz, "%s size", name);
        off = json_u64(offs, 1);
    }
    cr_assert_eq(s->file_len, 8 + s->header_len + off, "file size disagrees with the header");
    return off;
}

static void expect_shape(json_t *header, const char *name, int64_t d0, int64_t d1) {
    json_t *t = json_object_get(header, name);
    cr_assert(t != NULL, "tensor %s missing", name);
    json_t *shape = json_object_get(t, "shape");
    size_t nd = d1 ? 2 : 1;
    cr_assert_eq(json_array_size(shape), nd, "%s rank", name);
    cr_assert_eq((int64_t)json_u64(shape, 0), d0, "%s dim 0", name);
    if (d1) cr_assert_eq((int64_t)json_u64(shape, 1), d1, "%s dim 1", name);
}

static int64_t cfg_int(json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    cr_assert(json_is_integer(v), "config %s is not an integer", key);
    return json_integer_value(v);
}

// The key set and value types of a reference config must appear in ours.
static void expect_reference_keys(json_t *cfg, const char *ref_model) {
    char path[4096];
    snprintf(path, sizeof path, "%s/models/%s/config.json", reference_dir(), ref_model);
    json_t *ref = load_json(path);
    const char *key;
    json_t *v;
    json_object_foreach(ref, key, v) {
        json_t *ours = json_object_get(cfg, key);
        cr_assert(ours != NULL, "config.json lacks \"%s\" (the reference %s has it)", key, ref_model);
        bool num = json_is_number(v) && json_is_number(ours);
        cr_assert(json_typeof(ours) == json_typeof(v) || num, "config \"%s\" has another type", key);
    }
    cr_assert_eq(json_object_size(cfg), json_object_size(ref), "config.json has keys the reference lacks");
    // What does not depend on the shape must equal the reference.
    static const char *const fixed[] = {"attention_bias", "attention_dropout", "hidden_act", "initializer_range",
                                        "max_position_embeddings", "model_type", "rms_norm_eps", "rope_scaling",
                                        "rope_theta", "sliding_window", "use_cache", "use_sliding_window"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        cr_assert(json_equal(json_object_get(cfg, fixed[i]), json_object_get(ref, fixed[i])), "config \"%s\"",
                  fixed[i]);
    json_decref(ref);
}

static float bf16_to_f32(const unsigned char *p) {
    uint32_t u = (uint32_t)(p[0] | (p[1] << 8)) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Mean and standard deviation of one tensor's values.
static void tensor_stats(const st_file *s, const char *name, bool bf16, double *mean, double *sd, size_t *count) {
    json_t *t = json_object_get(s->header, name);
    cr_assert(t != NULL, "tensor %s missing", name);
    json_t *offs = json_object_get(t, "data_offsets");
    const unsigned char *p = s->bytes + 8 + s->header_len + json_u64(offs, 0);
    size_t esz = bf16 ? 2 : 4, n = (json_u64(offs, 1) - json_u64(offs, 0)) / esz;
    double sum = 0, sum2 = 0;
    for (size_t i = 0; i < n; i++) {
        float f;
        if (bf16) f = bf16_to_f32(p + 2 * i);
        else memcpy(&f, p + 4 * i, 4);
        cr_assert(isfinite(f));
        sum += f;
        sum2 += (double)f * f;
    }
    *mean = sum / n;
    *sd = sqrt(sum2 / n - *mean * *mean);
    *count = n;
}

// ---------------------------------------------------------------------------------------
// The tests.

Test(qgen, tiny_config_has_the_reference_keys) {
    tmpdir t = tmp_make();
    cr_assert_eq(QGEN("-o", at(&t, "m"), "--quiet"), 0);
    json_t *cfg = load_json(at(&t, "m/config.json"));
    expect_reference_keys(cfg, "tiny-tied");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0)), "Qwen3ForCausalLM");
    cr_assert_eq(cfg_int(cfg, "num_hidden_layers"), 2);
    cr_assert_eq(cfg_int(cfg, "hidden_size"), 64);
    cr_assert_eq(cfg_int(cfg, "num_attention_heads"), 4);
    cr_assert_eq(cfg_int(cfg, "num_key_value_heads"), 2);
    cr_assert_eq(cfg_int(cfg, "head_dim"), 128);
    cr_assert_eq(cfg_int(cfg, "intermediate_size"), 192);
    cr_assert(json_is_true(json_object_get(cfg, "tie_word_embeddings")));
    cr_assert_str_eq(json_string_value(json_object_get(cfg, "torch_dtype")), "bfloat16");
    json_decref(cfg);
    tmp_remove(&t);
}

Test(qgen, overrides_reach_config_and_shapes) {
    tmpdir t = tmp_make();
    cr_assert_eq(QGEN("-o", at(&t, "m"), "--quiet", "--layers", "3", "--hidden", "48", "--heads", "6",
                      "--kv-heads", "3", "--head-dim", "16", "--intermediate", "80", "--vocab", "1000",
                      "--dtype", "f32"), 0);
    json_t *cfg = load_json(at(&t, "m/config.json"));
    cr_assert_eq(cfg_int(cfg, "num_hidden_layers"), 3);
    cr_assert_eq(cfg_int(cfg, "max_window_layers"), 3);
    cr_assert_eq(cfg_int(cfg, "hidden_size"), 48);
    cr_assert_eq(cfg_int(cfg, "head_dim"), 16);
    cr_assert_eq(cfg_int(cfg, "vocab_size"), 1000);
    cr_assert_str_eq(json_string_value(json_object_get(cfg, "torch_dtype")), "float32");
    st_file s = st_open(at(&t, "m/model.safetensors"));
    check_safetensors(&s, "F32", 4);
    cr_assert_eq(json_object_size(s.header), 1 + 1 + 3 * 11 + 1, "metadata + embed + 3 layers + norm");
    expect_shape(s.header, "model.embed_tokens.weight", 1000, 48);
    expect_shape(s.header, "model.layers.2.self_attn.q_proj.weight", 96, 48);
    expect_shape(s.header, "model.layers.2.self_attn.k_proj.weight", 48, 48);
    expect_shape(s.header, "model.layers.2.self_attn.o_proj.weight", 48, 96);
    expect_shape(s.header, "model.layers.0.self_attn.q_norm.weight", 16, 0);
    expect_shape(s.header, "model.layers.1.mlp.down_proj.weight", 48, 80);
    cr_assert_null(json_object_get(s.header, "lm_head.weight"), "tied: no lm_head");
    st_close(&s);
    json_decref(cfg);
    tmp_remove(&t);
}

Test(qgen, safetensors_header_names_order_shapes) {
    tmpdir t = tmp_make();
    cr_assert_eq(QGEN("-o", at(&t, "m"), "--quiet", "--untied"), 0);
    json_t *cfg = load_json(at(&t, "m/config.json"));
    int64_t V = cfg_int(cfg, "vocab_size");
    st_file s = st_open(at(&t, "m/model.safetensors"));
    check_safetensors(&s, "BF16", 2);
    // The order real checkpoints use.
    static const char *const per_layer[] = {"input_layernorm", "self_attn.q_proj", "self_attn.k_proj",
                                            "self_attn.v_proj", "self_attn.o_proj", "self_attn.q_norm",
                                            "self_attn.k_norm", "post_attention_layernorm", "mlp.gate_proj",
                                            "mlp.up_proj", "mlp.down_proj"};
    char expected[64][96];
    int n = 0;
    strcpy(expected[n++], "__metadata__");
    strcpy(expected[n++], "model.embed_tokens.weight");
    for (int l = 0; l < 2; l++)
        for (int k = 0; k < 11; k++) snprintf(expected[n++], 96, "model.layers.%d.%s.weight", l, per_layer[k]);
    strcpy(expected[n++], "model.norm.weight");
    strcpy(expected[n++], "lm_head.weight");
    cr_assert_eq((int)json_object_size(s.header), n);
    int i = 0;
    const char *name;
    json_t *v;
    json_object_foreach(s.header, name, v) cr_assert_str_eq(name, expected[i++]);
    expect_shape(s.header, "model.embed_tokens.weight", V, 64);
    expect_shape(s.header, "lm_head.weight", V, 64);
    expect_shape(s.header, "model.layers.1.self_attn.q_proj.weight", 512, 64);
    expect_shape(s.header, "model.layers.1.self_attn.k_proj.weight", 256, 64);
    expect_shape(s.header, "model.layers.1.mlp.gate_proj.weight", 192, 64);
    expect_shape(s.header, "model.norm.weight", 64, 0);
    cr_assert(json_is_false(json_object_get(cfg, "tie_word_embeddings")));
    st_close(&s);
    json_decref(cfg);
    tmp_remove(&t);
}

Test(qgen, same_seed_same_bytes_other_seed_differs) {
    tmpdir t = tmp_make();
    cr_assert_eq(QGEN("-o", at(&t, "a"), "--quiet", "--seed", "7"), 0);
    cr_assert_eq(QGEN("-o", at(&t, "b"), "--quiet", "--seed", "7"), 0);
    cr_assert_eq(QGEN("-o", at(&t, "c"), "--quiet", "--seed", "8"), 0);
    static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"};
    for (int i = 0; i < 4; i++) {
        char a[64], b[64];
        snprintf(a, sizeof a, "a/%s", files[i]);
        snprintf(b, sizeof b, "b/%s", files[i]);
        cr_assert(same_file(at(&t, a), at(&t, b)), "%s differs between two runs with one seed", files[i]);
    }
    cr_assert(same_file(at(&t, "a/config.json"), at(&t, "c/config.json")));
    cr_assert_not(same_file(at(&t, "a/model.safetensors"), at(&t, "c/model.safetensors")),
                  "seeds 7 and 8 gave the same weights");
    tmp_remove(&t);
}

Test(qgen, shards_and_index_agree) {
    tmpdir t = tmp_make();
    cr_assert_eq(QGEN("-o", at(&t, "one"), "--quiet", "--untied", "--seed", "3"), 0);
    cr_assert_eq(QGEN("-o", at(&t, "m"), "--quiet", "--untied", "--seed", "3", "--shards", "3"), 0);
    cr_assert_eq(access(at(&t, "m/model.safetensors"), F_OK), -1, "no single file beside the shards");
    json_t *idx = load_json(at(&t, "m/model.safetensors.index.json"));
    json_t *map = json_object_get(idx, "weight_map");
    st_file one = st_open(at(&t, "one/model.safetensors"));
    uint64_t total = 0;
    size_t names = 0;
    for (int k = 1; k <= 3; k++) {
        char fname[64];
        snprintf(fname, sizeof fname, "model-%05d-of-00003.safetensors", k);
        char rel[96];
        snprintf(rel, sizeof rel, "m/%s", fname);
        st_file s = st_open(at(&t, rel));
        uint64_t bytes = check_safetensors(&s, "BF16", 2);
        cr_assert(bytes > 0, "shard %d is empty", k);
        total += bytes;
        const char *name;
        json_t *v;
        json_object_foreach(s.header, name, v) {
            if (!strcmp(name, "__metadata__")) continue;
            names++;
            cr_assert_str_eq(json_string_value(json_object_get(map, name)), fname, "weight_map[%s]", name);
            // A tensor's bytes do not depend on the shard layout.
            json_t *o1 = json_object_get(json_object_get(one.header, name), "data_offsets");
            json_t *o2 = json_object_get(v, "data_offsets");
            size_t len = json_u64(o2, 1) - json_u64(o2, 0);
            cr_assert_eq(memcmp(one.bytes + 8 + one.header_len + json_u64(o1, 0),
                                s.bytes + 8 + s.header_len + json_u64(o2, 0), len), 0,
                         "%s differs from the single-file run", name);
        }
        st_close(&s);
    }
    cr_assert_eq(names, json_object_size(map), "weight_map names tensors no shard holds");
    cr_assert_eq(names, json_object_size(one.header) - 1);
    json_t *ts = json_object_get(json_object_get(idx, "metadata"), "total_size");
    cr_assert_eq((uint64_t)json_integer_value(ts), total, "metadata.total_size");
    st_close(&one);
    json_decref(idx);
    tmp_remove(&t);
}

Test(qgen, builtin_tokenizer_is_a_small_qwen_style_bpe) {
    tmpdir t = tmp_make();
    cr_assert_eq(QGEN("-o", at(&t, "m"), "--quiet"), 0);
    json_t *tok = load_json(at(&t, "m/tokenizer.json"));
    json_t *model = json_object_get(tok, "model");
    cr_assert_str_eq(json_string_value(json_object_get(model, "type")), "BPE");
    json_t *vocab = json_object_get(model, "vocab");
    cr_assert(json_object_size(vocab) > 256);
    cr_assert(json_is_integer(json_object_get(vocab, "yes")), "\"yes\" must be one token");
    cr_assert(json_is_integer(json_object_get(vocab, "no")), "\"no\" must be one token");
    cr_assert(json_is_integer(json_object_get(vocab, "\xc4\xa0")), "byte symbol for ' ' (U+0120)");
    cr_assert(json_array_size(json_object_get(model, "merges")) > 0);
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(tok, "normalizer"), "type")), "NFC");

    // The pre-tokenizer is the reference's, verbatim.
    char ref_path[4096];
    snprintf(ref_path, sizeof ref_path, "%s/tokenizer/tokenizer.json", reference_dir());
    json_t *ref = load_json(ref_path);
    cr_assert(json_equal(json_object_get(tok, "pre_tokenizer"), json_object_get(ref, "pre_tokenizer")));
    cr_assert(json_equal(json_object_get(tok, "decoder"), json_object_get(ref, "decoder")));

    // Added tokens follow the vocabulary, with Qwen3's special flags.
    json_t *cfg = load_json(at(&t, "m/config.json"));
    int64_t nv = (int64_t)json_object_size(vocab);
    json_t *added = json_object_get(tok, "added_tokens");
    cr_assert_eq(json_array_size(added), 5);
    int64_t max_id = nv - 1;
    size_t i;
    json_t *a;
    json_array_foreach(added, i, a) {
        const char *content = json_string_value(json_object_get(a, "content"));
        int64_t id = json_integer_value(json_object_get(a, "id"));
        cr_assert_eq(id, nv + (int64_t)i);
        if (id > max_id) max_id = id;
        bool special = json_is_true(json_object_get(a, "special"));
        // The same flag as in Qwen3's own tokenizer.
        size_t j;
        json_t *r;
        bool found = false;
        json_array_foreach(json_object_get(ref, "added_tokens"), j, r) {
            if (strcmp(json_string_value(json_object_get(r, "content")), content)) continue;
            found = true;
            cr_assert_eq(special, json_is_true(json_object_get(r, "special")), "%s special flag", content);
        }
        cr_assert(found, "%s is not a Qwen3 added token", content);
        if (!strcmp(content, "<|endoftext|>")) cr_assert_eq(cfg_int(cfg, "bos_token_id"), id);
        if (!strcmp(content, "<|im_end|>")) cr_assert_eq(cfg_int(cfg, "eos_token_id"), id);
    }
    cr_assert_eq(cfg_int(cfg, "vocab_size"), max_id + 1, "tiny: vocab is the tokenizer's size");

    json_t *tc = load_json(at(&t, "m/tokenizer_config.json"));
    cr_assert_str_eq(json_string_value(json_object_get(tc, "eos_token")), "<|im_end|>");
    cr_assert_eq(json_object_size(json_object_get(tc, "added_tokens_decoder")), 5);
    json_decref(tc);
    json_decref(cfg);
    json_decref(ref);
    json_decref(tok);
    tmp_remove(&t);
}

Test(qgen, copied_tokenizer_sets_vocab) {
    tmpdir t = tmp_make();
    char src[2048];
    snprintf(src, sizeof src, "%s/tokenizer", reference_dir());
    cr_assert_eq(QGEN("-o", at(&t, "m"), "--quiet", "--tokenizer", src, "--hidden", "8", "--layers", "1",
                      "--intermediate", "8", "--heads", "1", "--kv-heads", "1"), 0);
    char a[4096];
    snprintf(a, sizeof a, "%s/tokenizer.json", src);
    cr_assert(same_file(a, at(&t, "m/tokenizer.json")));
    snprintf(a, sizeof a, "%s/tokenizer_config.json", src);
    cr_assert(same_file(a, at(&t, "m/tokenizer_config.json")));
    json_t *cfg = load_json(at(&t, "m/config.json"));
    // The Qwen3 tokenizer's largest id is 151668 (the README's 26 added tokens end there).
    cr_assert_eq(cfg_int(cfg, "vocab_size"), 151669);
    cr_assert_eq(cfg_int(cfg, "bos_token_id"), 151643);
    cr_assert_eq(cfg_int(cfg, "eos_token_id"), 151645);
    json_decref(cfg);
    // A vocabulary too small for that tokenizer is a usage error.
    cr_assert_eq(QGEN("-o", at(&t, "small"), "--quiet", "--tokenizer", src, "--vocab", "1000"), 2);
    tmp_remove(&t);
}

Test(qgen, seqcls_labels_and_embedding_lookalike) {
    tmpdir t = tmp_make();
    cr_assert_eq(QGEN("-o", at(&t, "s"), "--quiet", "--seqcls", "--dtype", "f32"), 0);
    json_t *cfg = load_json(at(&t, "s/config.json"));
    expect_reference_keys(cfg, "tiny-seqcls");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(cfg, "architectures"), 0)),
                     "Qwen3ForSequenceClassification");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(cfg, "id2label"), "0")), "LABEL_0");
    cr_assert_eq(cfg_int(cfg, "pad_token_id"), cfg_int(cfg, "bos_token_id"));
    st_file s = st_open(at(&t, "s/model.safetensors"));
    check_safetensors(&s, "F32", 4);
    expect_shape(s.header, "score.weight", 1, 64);
    cr_assert_null(json_object_get(s.header, "lm_head.weight"));
    st_close(&s);
    json_decref(cfg);

    cr_assert_eq(QGEN("-o", at(&t, "l"), "--quiet", "--labels", "--untied", "--shards", "2"), 0);
    cfg = load_json(at(&t, "l/config.json"));
    expect_reference_keys(cfg, "tiny-untied");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(cfg, "id2label"), "0")), "no");
    cr_assert_str_eq(json_string_value(json_object_get(json_object_get(cfg, "id2label"), "1")), "yes");
    cr_assert_eq(cfg_int(json_object_get(cfg, "label2id"), "yes"), 1);
    json_decref(cfg);
    cr_assert_eq(access(at(&t, "l/modules.json"), F_OK), -1);

    cr_assert_eq(QGEN("-o", at(&t, "e"), "--quiet", "--embedding-lookalike"), 0);
    json_t *mods = load_json(at(&t, "e/modules.json"));
    cr_assert(json_is_array(mods) && json_array_size(mods) >= 2);
    json_t *pool = load_json(at(&t, "e/1_Pooling/config.json"));
    cr_assert_eq(cfg_int(pool, "word_embedding_dimension"), 64);
    json_decref(pool);
    json_decref(mods);
    tmp_remove(&t);
}

Test(qgen, weights_are_normal_002_and_norms_near_one) {
    tmpdir t = tmp_make();
    for (int f32 = 0; f32 < 2; f32++) {
        const char *dir = f32 ? at(&t, "f") : at(&t, "b");
        cr_assert_eq(QGEN("-o", dir, "--quiet", "--seed", "11", "--dtype", f32 ? "f32" : "bf16"), 0);
        char path[4096];
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        st_file s = st_open(path);
        double mean, sd;
        size_t n;
        // A weight: mean 0 within 5 standard errors, std 0.02 within 3 %.
        tensor_stats(&s, "model.embed_tokens.weight", !f32, &mean, &sd, &n);
        cr_assert(fabs(mean) < 5 * 0.02 / sqrt((double)n), "embedding mean %g", mean);
        cr_assert(fabs(sd - 0.02) < 0.0006, "embedding std %g", sd);
        tensor_stats(&s, "model.layers.1.mlp.up_proj.weight", !f32, &mean, &sd, &n);
        cr_assert(fabs(sd - 0.02) < 0.0006, "up_proj std %g", sd);
        // Norms: 1 + small noise, never constant.
        tensor_stats(&s, "model.layers.0.self_attn.q_norm.weight", !f32, &mean, &sd, &n);
        cr_assert(fabs(mean - 1) < 0.03 && sd > 0.01 && sd < 0.2, "q_norm mean %g std %g", mean, sd);
        tensor_stats(&s, "model.norm.weight", !f32, &mean, &sd, &n);
        cr_assert(fabs(mean - 1) < 0.03 && sd > 0.01 && sd < 0.2, "final norm mean %g std %g", mean, sd);
        st_close(&s);
    }
    tmp_remove(&t);
}

Test(qgen, usage_errors_exit_2) {
    tmpdir t = tmp_make();
    const char *m = at(&t, "m");
    cr_assert_eq(QGEN("--quiet"), 2, "no -o");
    cr_assert_eq(QGEN("-o", m, "--bogus"), 2);
    cr_assert_eq(QGEN("-o", m, "--shape", "3b"), 2);
    cr_assert_eq(QGEN("-o", m, "--heads", "4", "--kv-heads", "3"), 2);
    cr_assert_eq(QGEN("-o", m, "--dtype", "f16"), 2);
    cr_assert_eq(QGEN("-o", m, "--layers", "0"), 2);
    cr_assert_eq(QGEN("-o", m, "--layers", "2x"), 2);
    cr_assert_eq(QGEN("-o", m, "--hidden"), 2, "flag without its value");
    cr_assert_eq(QGEN("-o", m, "--seqcls", "--labels"), 2);
    cr_assert_eq(QGEN("-o", m, "--shards", "1000"), 2);
    cr_assert_eq(access(m, F_OK), -1, "usage errors write nothing");
    // A non-empty directory needs --force.
    cr_assert_eq(QGEN("-o", m, "--quiet"), 0);
    cr_assert_eq(QGEN("-o", m, "--quiet", "--seed", "1"), 2);
    cr_assert_eq(QGEN("-o", m, "--quiet", "--seed", "1", "--force", "--shards", "2"), 0);
    cr_assert_eq(access(at(&t, "m/model.safetensors"), F_OK), -1, "--force removes the stale single file");
    cr_assert_eq(access(at(&t, "m/model.safetensors.index.json"), F_OK), 0);
    cr_assert_eq(QGEN("--help"), 0);
    tmp_remove(&t);
}

Test(qgen, io_errors_exit_3) {
    tmpdir t = tmp_make();
    FILE *f = fopen(at(&t, "file"), "w");
    cr_assert(f != NULL);
    fclose(f);
    cr_assert_eq(QGEN("-o", at(&t, "file"), "--quiet"), 3, "output is a regular file");
    cr_assert_eq(QGEN("-o", at(&t, "file/sub"), "--quiet"), 3, "output under a regular file");
    cr_assert_eq(QGEN("-o", at(&t, "m"), "--quiet", "--tokenizer", at(&t, "nowhere")), 3);
    // A tokenizer.json that is not JSON.
    mkdir(at(&t, "badtok"), 0755);
    f = fopen(at(&t, "badtok/tokenizer.json"), "w");
    cr_assert(f != NULL);
    fputs("{\"model\": {\"vocab\": {\"a\": 0,}}", f);
    fclose(f);
    f = fopen(at(&t, "badtok/tokenizer_config.json"), "w");
    cr_assert(f != NULL);
    fputs("{}", f);
    fclose(f);
    cr_assert_eq(QGEN("-o", at(&t, "m2"), "--quiet", "--tokenizer", at(&t, "badtok")), 3);
    tmp_remove(&t);
}
