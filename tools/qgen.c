// qgen: writes a Hugging Face style Qwen3 model directory (config.json, safetensors
// weights, tokenizer files) filled with seeded random weights, at the real Qwen3-Reranker
// shapes or any other. A stand-alone tool (libc + libm); it shares no code with libqrr.

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

enum { EXIT_USAGE = 2, EXIT_IO = 3 };

#define QGEN_MAX_SHARDS 999
#define QGEN_MAX_TOKENIZER_BYTES (256u << 20) // Qwen3's tokenizer.json is 11 MiB
#define QGEN_CHUNK_BYTES (8u << 20)           // write buffer
#define QGEN_WEIGHT_STD 0.02
#define QGEN_NORM_STD 0.05 // norms are 1 + N(0, this)

// ---------------------------------------------------------------------------------------
// Errors: programs may exit; every message names what to do.

static const char *g_prog = "qgen";

static void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die(int code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", g_prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (code == EXIT_USAGE) fprintf(stderr, "---> HINT: run '%s --help' for the options\n", g_prog);
    exit(code);
}

static uint64_t mul_or_die(uint64_t a, uint64_t b, const char *what) {
    uint64_t r;
    if (__builtin_mul_overflow(a, b, &r)) die(EXIT_USAGE, "%s: size overflows 64 bits", what);
    return r;
}

static uint64_t add_or_die(uint64_t a, uint64_t b, const char *what) {
    uint64_t r;
    if (__builtin_add_overflow(a, b, &r)) die(EXIT_USAGE, "%s: size overflows 64 bits", what);
    return r;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) die(EXIT_IO, "out of memory (%zu bytes)", n);
    return p;
}

// ---------------------------------------------------------------------------------------
// A growable byte buffer for the JSON we write.

typedef struct {
    char *p;
    size_t len, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->cap - b->len < n + 1) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap - b->len < n + 1) {
            if (cap > SIZE_MAX / 2) die(EXIT_IO, "out of memory");
            cap *= 2;
        }
        char *p = realloc(b->p, cap);
        if (!p) die(EXIT_IO, "out of memory (%zu bytes)", cap);
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = 0;
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof tmp) die(EXIT_IO, "internal: formatted string too long");
    sb_put(b, tmp, (size_t)n);
}

// Writes s as a JSON string literal (UTF-8 passes through; controls are escaped).
static void sb_json_str(sbuf *b, const char *s, size_t n) {
    sb_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"') sb_put(b, "\\\"", 2);
        else if (c == '\\') sb_put(b, "\\\\", 2);
        else if (c == '\n') sb_put(b, "\\n", 2);
        else if (c == '\r') sb_put(b, "\\r", 2);
        else if (c == '\t') sb_put(b, "\\t", 2);
        else if (c < 0x20) sb_printf(b, "\\u%04x", c);
        else sb_put(b, (const char *)&c, 1);
    }
    sb_put(b, "\"", 1);
}

// ---------------------------------------------------------------------------------------
// Files.

static void path_join(char *out, size_t cap, const char *dir, const char *name) {
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap) die(EXIT_USAGE, "path too long: %s/%s", dir, name);
}

static void write_all(int fd, const void *p, size_t n, const char *path) {
    const char *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            die(EXIT_IO, "cannot write %s: %s", path, strerror(errno));
        }
        c += w;
        n -= (size_t)w;
    }
}

static int open_out(const char *path) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) die(EXIT_IO, "cannot create %s: %s", path, strerror(errno));
    return fd;
}

static void close_out(int fd, const char *path) {
    if (close(fd) != 0) die(EXIT_IO, "cannot close %s: %s", path, strerror(errno));
}

static void write_file(const char *dir, const char *name, const char *data, size_t n) {
    char path[4096];
    path_join(path, sizeof path, dir, name);
    int fd = open_out(path);
    write_all(fd, data, n, path);
    close_out(fd, path);
}

// Reads a whole file (at most cap bytes) into a NUL-terminated buffer.
static char *read_file(const char *path, size_t cap, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) die(EXIT_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) die(EXIT_IO, "cannot stat %s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode)) die(EXIT_IO, "%s is not a regular file", path);
    if (st.st_size < 0 || (uint64_t)st.st_size > cap)
        die(EXIT_IO, "%s: %lld bytes, more than the %zu this tool reads", path, (long long)st.st_size, cap);
    size_t n = (size_t)st.st_size;
    char *buf = xmalloc(n + 1); // n <= cap, far below SIZE_MAX
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, buf + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) die(EXIT_IO, "cannot read %s: %s", path, strerror(errno));
        if (r == 0) die(EXIT_IO, "%s shrank while being read", path);
        got += (size_t)r;
    }
    close(fd);
    buf[n] = 0;
    *len = n;
    return buf;
}

static void mkdir_p(const char *path) {
    char tmp[4096];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof tmp) die(EXIT_USAGE, "bad output directory '%s'", path);
    memcpy(tmp, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != 0) continue;
        char c = tmp[i];
        tmp[i] = 0;
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            die(EXIT_IO, "cannot create directory %s: %s", tmp, strerror(errno));
        tmp[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) die(EXIT_IO, "%s is not a directory", path);
}

static bool dir_is_empty(const char *path) {
    DIR *d = opendir(path);
    if (!d) die(EXIT_IO, "cannot open directory %s: %s", path, strerror(errno));
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = false;
            break;
        }
    }
    closedir(d);
    return empty;
}

// With --force, files an earlier run left that this run would not rewrite (other shard
// counts, an index, embedding markers) are removed so the directory stays consistent.
static void remove_stale(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) die(EXIT_IO, "cannot open directory %s: %s", dir, strerror(errno));
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        size_t len = strlen(n);
        bool ours = (strncmp(n, "model", 5) == 0 && len > 12 &&
                     (strcmp(n + len - 12, ".safetensors") == 0 ||
                      strcmp(n, "model.safetensors.index.json") == 0)) ||
                    strcmp(n, "modules.json") == 0;
        if (!ours) continue;
        path_join(path, sizeof path, dir, n);
        if (unlink(path) != 0) die(EXIT_IO, "cannot remove stale %s: %s", path, strerror(errno));
    }
    closedir(d);
    path_join(path, sizeof path, dir, "1_Pooling/config.json");
    if (unlink(path) == 0) {
        path_join(path, sizeof path, dir, "1_Pooling");
        rmdir(path); // fine if something else lives there
    }
}

// ---------------------------------------------------------------------------------------
// Random numbers. Each tensor has its own counter-based stream keyed by (seed, name), so a
// tensor's bytes do not depend on the shard layout or on the tensors written before it.
// Normal variates come from inverse-transform sampling with a 65537-point table of the normal
// quantile function: f32 values take 32 random bits (16 pick the cell, 16 interpolate in it),
// bf16 values 16 bits (the cell's middle, already finer than bf16). Tails end at 4.6 sigma.

#define QTAB_BITS 16
#define QTAB_N (1u << QTAB_BITS)
static float g_qtab[QTAB_N + 1];

static uint64_t mix64(uint64_t z) { // splitmix64's finaliser
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t hash_name(const char *s) { // FNV-1a
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 0x100000001b3ull;
    return h;
}

static double normal_cdf(double x) { return 0.5 * erfc(-x / sqrt(2.0)); }

// Quantile of the standard normal: safeguarded Newton on the CDF inside a bracket.
static double normal_quantile(double p) {
    double lo = -40, hi = 40, x = 0;
    for (int it = 0; it < 200; it++) {
        double f = normal_cdf(x) - p;
        if (f < 0) lo = x; else hi = x;
        double d = exp(-0.5 * x * x) / sqrt(2.0 * M_PI);
        double nx = d > 0 ? x - f / d : 0.5 * (lo + hi);
        if (!(nx > lo && nx < hi)) nx = 0.5 * (lo + hi);
        if (fabs(nx - x) <= 1e-15 * (1 + fabs(x))) return nx;
        x = nx;
    }
    return x;
}

static void qtab_init(void) {
    for (uint32_t i = 0; i <= QTAB_N; i++) {
        double p = (double)i / QTAB_N;
        if (i == 0) p = 0.25 / QTAB_N;
        if (i == QTAB_N) p = 1 - 0.25 / QTAB_N;
        g_qtab[i] = (float)normal_quantile(p);
    }
}

static inline float normal_from_u32(uint32_t r) {
    uint32_t i = r >> (32 - QTAB_BITS);
    float f = (float)(r & (QTAB_N - 1)) * (1.0f / QTAB_N);
    return g_qtab[i] + f * (g_qtab[i + 1] - g_qtab[i]);
}

static inline uint16_t bf16_rne(float x) { // round to nearest even; no NaN reaches here
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// ---------------------------------------------------------------------------------------
// The model: shape, tensors, options.

typedef enum { DT_BF16, DT_F32 } dtype;

typedef struct {
    char name[96];
    uint64_t shape[2];
    int ndim;
    bool is_norm;
    uint64_t nbytes; // numel * element size
    int shard;
} tensor;

typedef struct {
    const char *out_dir;
    const char *shape_name;
    int64_t layers, hidden, heads, kv_heads, head_dim, inter, vocab; // -1 = from shape
    uint64_t seed;
    dtype dt;
    int shards;
    int tied; // -1 = from shape
    bool seqcls, labels, quiet, force, embedding_lookalike;
    const char *tokenizer_dir;
} options;

typedef struct {
    const char *name;
    int64_t layers, hidden, heads, kv_heads, head_dim, inter, vocab; // vocab 0 = tokenizer's
    bool tied;
} shape_preset;

static const shape_preset g_shapes[] = {
    {"tiny", 2, 64, 4, 2, 128, 192, 0, true},
    {"0.6b", 28, 1024, 16, 8, 128, 3072, 151669, true},
    {"4b", 36, 2560, 32, 8, 128, 9728, 151669, true},
    {"8b", 36, 4096, 32, 8, 128, 12288, 151669, false},
};

// What the tokenizer tells the config: its size and the ids config.json names.
typedef struct {
    int64_t max_id;       // largest id in vocab or added tokens
    int64_t endoftext_id; // -1 when absent
    int64_t im_end_id;
    bool has_yes, has_no;
} tok_info;

// ---------------------------------------------------------------------------------------
// The built-in tokenizer: byte-level BPE in the structure Qwen3's tokenizer.json has, with
// the 256 byte symbols, merges that form whole words (first " yes", " no", "yes" and "no",
// so that each is one token whatever else merges), and Qwen3's chat tokens as added tokens.

static const char *const g_tok_words[] = {
    // first: the two answer tokens after a space and bare, each then one token
    " yes", " no", "yes", "no",
    // the official prompt's words
    "system", "user", "assistant", "Judge", " whether", " the", " Document", " meets",
    " requirements", " based", " on", " Query", " and", " Instruct", " provided", ".",
    " Note", " that", " answer", " can", " only", " be", " or", "Instruct", "Query",
    "Document", ">:", " \"", "\".", "\n\n", " Given", " a", " web", " search", " query",
    " retrieve", " relevant", " passages", ",",
    // some common English
    " of", " to", " in", " is", " for", " what", " What", " how", " How", " it", " with",
    " as", " are", " was", " this", " by", " from", " at", " an", " not", " which", " you",
    " capital", " city", " China", " Beijing", " model", " token", " tokens", " data",
    "The", " The", "This", "ing", "ed", "er", "  ", "    ", "\n", " (", ")", "123", "00",
};

// GPT-2's byte -> printable code point map, in the order Qwen's vocabulary lists it.
static void byte_symbols(uint32_t order[256], uint32_t cp_of_byte[256]) {
    int n = 0, extra = 0;
    bool printable[256] = {false};
    for (int b = '!'; b <= '~'; b++) printable[b] = true;
    for (int b = 0xA1; b <= 0xAC; b++) printable[b] = true;
    for (int b = 0xAE; b <= 0xFF; b++) printable[b] = true;
    for (int b = 0; b < 256; b++)
        if (printable[b]) { order[n++] = (uint32_t)b; cp_of_byte[b] = (uint32_t)b; }
    for (int b = 0; b < 256; b++)
        if (!printable[b]) { order[n++] = (uint32_t)b; cp_of_byte[b] = 256u + (uint32_t)extra++; }
}

static size_t utf8_put(char *out, uint32_t cp) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2; // byte symbols stay below U+0800
}

typedef struct {
    char s[128];
} tok_str;

static void build_tokenizer(sbuf *tj, sbuf *tc, tok_info *ti) {
    uint32_t order[256], cp_of_byte[256];
    byte_symbols(order, cp_of_byte);

    enum { MAX_TOK = 2048 };
    static tok_str vocab[MAX_TOK];
    static int merge_a[MAX_TOK], merge_b[MAX_TOK];
    int nv = 0, nm = 0;
    for (int i = 0; i < 256; i++) {
        size_t k = utf8_put(vocab[nv].s, cp_of_byte[order[i]]);
        vocab[nv++].s[k] = 0;
    }
    // Each word is merged left to right: ((w0 w1) w2) ...; a token string is thus always
    // made by the same merge, so a token already present needs no new merge.
    for (size_t w = 0; w < sizeof g_tok_words / sizeof g_tok_words[0]; w++) {
        const unsigned char *word = (const unsigned char *)g_tok_words[w];
        char cur[128];
        size_t cl = utf8_put(cur, cp_of_byte[word[0]]);
        cur[cl] = 0;
        int cur_id = -1;
        for (int v = 0; v < nv; v++) if (!strcmp(vocab[v].s, cur)) cur_id = v;
        for (size_t j = 1; word[j]; j++) {
            char sym[4];
            size_t sl = utf8_put(sym, cp_of_byte[word[j]]);
            sym[sl] = 0;
            int sym_id = -1;
            for (int v = 0; v < 256; v++) if (!strcmp(vocab[v].s, sym)) sym_id = v;
            if (cl + sl >= sizeof cur) die(EXIT_IO, "internal: tokenizer word too long");
            memcpy(cur + cl, sym, sl + 1);
            cl += sl;
            int found = -1;
            for (int v = 0; v < nv; v++) if (!strcmp(vocab[v].s, cur)) found = v;
            if (found < 0) {
                if (nv >= MAX_TOK) die(EXIT_IO, "internal: tokenizer vocabulary full");
                merge_a[nm] = cur_id;
                merge_b[nm] = sym_id;
                nm++;
                memcpy(vocab[nv].s, cur, cl + 1);
                found = nv++;
            }
            cur_id = found;
        }
    }

    static const struct { const char *content; bool special; } added[] = {
        {"<|endoftext|>", true}, {"<|im_start|>", true}, {"<|im_end|>", true},
        {"<think>", false}, {"</think>", false},
    };
    const int na = (int)(sizeof added / sizeof added[0]);

    // tokenizer.json, keys in the order Hugging Face writes them.
    sb_printf(tj, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n"
                  "  \"added_tokens\": [");
    for (int i = 0; i < na; i++) {
        sb_printf(tj, "%s\n    {\n      \"id\": %d,\n      \"content\": ", i ? "," : "", nv + i);
        sb_json_str(tj, added[i].content, strlen(added[i].content));
        sb_printf(tj, ",\n      \"single_word\": false,\n      \"lstrip\": false,\n"
                      "      \"rstrip\": false,\n      \"normalized\": false,\n"
                      "      \"special\": %s\n    }", added[i].special ? "true" : "false");
    }
    sb_printf(tj, "\n  ],\n  \"normalizer\": {\n    \"type\": \"NFC\"\n  },\n");
    sb_printf(tj, "  \"pre_tokenizer\": {\n    \"type\": \"Sequence\",\n    \"pretokenizers\": [\n"
                  "      {\n        \"type\": \"Split\",\n        \"pattern\": {\n          \"Regex\": ");
    static const char regex[] =
        "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
        "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    sb_json_str(tj, regex, strlen(regex));
    static const char byte_level[] =
        "\"type\": \"ByteLevel\",\n%s\"add_prefix_space\": false,\n%s\"trim_offsets\": false,\n"
        "%s\"use_regex\": false\n";
    sb_printf(tj, "\n        },\n        \"behavior\": \"Isolated\",\n        \"invert\": false\n"
                  "      },\n      {\n        ");
    sb_printf(tj, byte_level, "        ", "        ", "        ");
    sb_printf(tj, "      }\n    ]\n  },\n  \"post_processor\": {\n    ");
    sb_printf(tj, byte_level, "    ", "    ", "    ");
    sb_printf(tj, "  },\n  \"decoder\": {\n    ");
    sb_printf(tj, byte_level, "    ", "    ", "    ");
    sb_printf(tj, "  },\n  \"model\": {\n    \"type\": \"BPE\",\n    \"dropout\": null,\n"
                  "    \"unk_token\": null,\n    \"continuing_subword_prefix\": \"\",\n"
                  "    \"end_of_word_suffix\": \"\",\n    \"fuse_unk\": false,\n"
                  "    \"byte_fallback\": false,\n    \"ignore_merges\": false,\n    \"vocab\": {");
    for (int v = 0; v < nv; v++) {
        sb_printf(tj, "%s\n      ", v ? "," : "");
        sb_json_str(tj, vocab[v].s, strlen(vocab[v].s));
        sb_printf(tj, ": %d", v);
    }
    sb_printf(tj, "\n    },\n    \"merges\": [");
    for (int m = 0; m < nm; m++) {
        sb_printf(tj, "%s\n      [\n        ", m ? "," : "");
        sb_json_str(tj, vocab[merge_a[m]].s, strlen(vocab[merge_a[m]].s));
        sb_printf(tj, ",\n        ");
        sb_json_str(tj, vocab[merge_b[m]].s, strlen(vocab[merge_b[m]].s));
        sb_printf(tj, "\n      ]");
    }
    sb_printf(tj, "\n    ]\n  }\n}");

    // tokenizer_config.json, the fields Qwen3's has (no chat template: qrr builds prompts).
    sb_printf(tc, "{\n  \"add_bos_token\": false,\n  \"add_prefix_space\": false,\n"
                  "  \"added_tokens_decoder\": {");
    for (int i = 0; i < na; i++) {
        sb_printf(tc, "%s\n    \"%d\": {\n      \"content\": ", i ? "," : "", nv + i);
        sb_json_str(tc, added[i].content, strlen(added[i].content));
        sb_printf(tc, ",\n      \"lstrip\": false,\n      \"normalized\": false,\n"
                      "      \"rstrip\": false,\n      \"single_word\": false,\n"
                      "      \"special\": %s\n    }", added[i].special ? "true" : "false");
    }
    sb_printf(tc, "\n  },\n  \"additional_special_tokens\": [\n    \"<|im_start|>\",\n"
                  "    \"<|im_end|>\"\n  ],\n  \"bos_token\": null,\n"
                  "  \"clean_up_tokenization_spaces\": false,\n  \"eos_token\": \"<|im_end|>\",\n"
                  "  \"errors\": \"replace\",\n  \"model_max_length\": 131072,\n"
                  "  \"pad_token\": \"<|endoftext|>\",\n  \"split_special_tokens\": false,\n"
                  "  \"tokenizer_class\": \"Qwen2Tokenizer\",\n  \"unk_token\": null\n}\n");

    ti->max_id = nv + na - 1;
    ti->endoftext_id = nv;
    ti->im_end_id = nv + 2;
    ti->has_yes = ti->has_no = true;
}

// ---------------------------------------------------------------------------------------
// Reading a copied tokenizer.json: a small validating JSON walk that only remembers the
// largest id in model.vocab and added_tokens, and the ids of the tokens config.json names.

typedef struct {
    const char *start, *p, *end, *path;
    int depth;
    tok_info *ti;
} jscan;

static void js_fail(jscan *j, const char *what) {
    die(EXIT_IO, "%s: not valid JSON at byte %td (%s)", j->path, j->p - j->start, what);
}

static void js_ws(jscan *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

// Consumes a string; returns its raw (still escaped) bytes.
static void js_string(jscan *j, const char **s, size_t *n) {
    if (j->p >= j->end || *j->p != '"') js_fail(j, "expected a string");
    const char *start = ++j->p;
    while (j->p < j->end && *j->p != '"') {
        if ((unsigned char)*j->p < 0x20) js_fail(j, "control character in a string");
        if (*j->p == '\\') {
            j->p++;
            if (j->p >= j->end) break;
        }
        j->p++;
    }
    if (j->p >= j->end) js_fail(j, "unterminated string");
    *s = start;
    *n = (size_t)(j->p - start);
    j->p++;
}

static bool js_eq(const char *s, size_t n, const char *lit) { return n == strlen(lit) && !memcmp(s, lit, n); }

// Parses one value. role: 0 other, 1 a value in model.vocab, 2 an entry of added_tokens,
// 3 the "model" object, 4 the top level.
static void js_value(jscan *j, int role, int64_t *int_out) {
    js_ws(j);
    if (j->p >= j->end) js_fail(j, "unexpected end");
    if (++j->depth > 64) js_fail(j, "nested too deeply");
    char c = *j->p;
    if (c == '{') {
        j->p++;
        const char *content = NULL;
        size_t content_n = 0;
        int64_t id = -1;
        js_ws(j);
        if (j->p < j->end && *j->p == '}') j->p++;
        else for (;;) {
            const char *k;
            size_t kn;
            js_ws(j);
            js_string(j, &k, &kn);
            js_ws(j);
            if (j->p >= j->end || *j->p != ':') js_fail(j, "expected ':'");
            j->p++;
            int sub = 0;
            if (role == 4 && js_eq(k, kn, "model")) sub = 3;
            else if (role == 4 && js_eq(k, kn, "added_tokens")) sub = 5;
            else if (role == 3 && js_eq(k, kn, "vocab")) sub = 6;
            else if (role == 6) sub = 1;
            int64_t v = -1;
            if (role == 2 && js_eq(k, kn, "content")) {
                js_ws(j);
                js_string(j, &content, &content_n);
            } else {
                js_value(j, sub, &v);
            }
            if (role == 6) {
                if (v < 0) js_fail(j, "a vocabulary id that is not a non-negative integer");
                if (v > j->ti->max_id) j->ti->max_id = v;
                if (js_eq(k, kn, "yes")) j->ti->has_yes = true;
                if (js_eq(k, kn, "no")) j->ti->has_no = true;
            }
            if (role == 2 && js_eq(k, kn, "id")) id = v;
            js_ws(j);
            if (j->p < j->end && *j->p == ',') { j->p++; continue; }
            if (j->p < j->end && *j->p == '}') { j->p++; break; }
            js_fail(j, "expected ',' or '}'");
        }
        if (role == 2) {
            if (id < 0) js_fail(j, "an added token without a non-negative integer id");
            if (id > j->ti->max_id) j->ti->max_id = id;
            if (content && js_eq(content, content_n, "<|endoftext|>")) j->ti->endoftext_id = id;
            if (content && js_eq(content, content_n, "<|im_end|>")) j->ti->im_end_id = id;
        }
    } else if (c == '[') {
        j->p++;
        js_ws(j);
        if (j->p < j->end && *j->p == ']') j->p++;
        else for (;;) {
            js_value(j, role == 5 ? 2 : 0, NULL);
            js_ws(j);
            if (j->p < j->end && *j->p == ',') { j->p++; continue; }
            if (j->p < j->end && *j->p == ']') { j->p++; break; }
            js_fail(j, "expected ',' or ']'");
        }
    } else if (c == '"') {
        const char *s;
        size_t n;
        js_string(j, &s, &n);
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        const char *s = j->p;
        if (*j->p == '-') j->p++;
        if (j->p >= j->end || !isdigit((unsigned char)*j->p)) js_fail(j, "bad number");
        bool integer = true;
        for (; j->p < j->end; j->p++) {
            char d = *j->p;
            if (isdigit((unsigned char)d)) continue;
            if (d != '.' && d != 'e' && d != 'E' && d != '+' && d != '-') break;
            integer = false;
        }
        if (int_out && integer && *s != '-' && j->p - s <= 12) *int_out = strtoll(s, NULL, 10);
    } else {
        static const char *const lits[] = {"true", "false", "null"};
        size_t i;
        for (i = 0; i < 3; i++) {
            size_t n = strlen(lits[i]);
            if ((size_t)(j->end - j->p) >= n && !memcmp(j->p, lits[i], n)) { j->p += n; break; }
        }
        if (i == 3) js_fail(j, "unexpected character");
    }
    j->depth--;
}

static void scan_tokenizer(const char *path, const char *data, size_t n, tok_info *ti) {
    jscan j = {data, data, data + n, path, 0, ti};
    ti->max_id = -1;
    ti->endoftext_id = ti->im_end_id = -1;
    ti->has_yes = ti->has_no = false;
    js_value(&j, 4, NULL);
    js_ws(&j);
    if (j.p != j.end) js_fail(&j, "text after the top-level value");
    if (ti->max_id < 0) die(EXIT_IO, "%s: no vocabulary found (model.vocab must be an object of ids)", path);
}

// ---------------------------------------------------------------------------------------
// Tensors, in the order Hugging Face checkpoints list them.

static void add_tensor(tensor *t, int *c, const char *name, uint64_t d0, uint64_t d1, bool norm,
                       uint64_t esz) {
    tensor *x = &t[(*c)++];
    snprintf(x->name, sizeof x->name, "%s", name);
    x->shape[0] = d0;
    x->shape[1] = d1;
    x->ndim = d1 ? 2 : 1;
    x->is_norm = norm;
    x->nbytes = mul_or_die(mul_or_die(d0, d1 ? d1 : 1, name), esz, name);
}

static tensor *build_tensors(const options *o, int *count) {
    uint64_t L = (uint64_t)o->layers, H = (uint64_t)o->hidden, Q = (uint64_t)o->heads;
    uint64_t K = (uint64_t)o->kv_heads, D = (uint64_t)o->head_dim, I = (uint64_t)o->inter;
    uint64_t V = (uint64_t)o->vocab;
    uint64_t QD = mul_or_die(Q, D, "heads * head_dim"), KD = mul_or_die(K, D, "kv_heads * head_dim");
    uint64_t esz = o->dt == DT_BF16 ? 2 : 4;
    tensor *t = xmalloc((L * 11 + 3) * sizeof *t); // L <= 1024
    int c = 0;
    add_tensor(t, &c, "model.embed_tokens.weight", V, H, false, esz);
    static const struct { const char *name; int rows, cols; bool norm; } per_layer[] = {
        // dims: 'H' hidden, 'Q' heads*head_dim, 'K' kv_heads*head_dim, 'D' head_dim,
        // 'I' intermediate, 0 none (a vector)
        {"input_layernorm", 'H', 0, true},
        {"self_attn.q_proj", 'Q', 'H', false},
        {"self_attn.k_proj", 'K', 'H', false},
        {"self_attn.v_proj", 'K', 'H', false},
        {"self_attn.o_proj", 'H', 'Q', false},
        {"self_attn.q_norm", 'D', 0, true},
        {"self_attn.k_norm", 'D', 0, true},
        {"post_attention_layernorm", 'H', 0, true},
        {"mlp.gate_proj", 'I', 'H', false},
        {"mlp.up_proj", 'I', 'H', false},
        {"mlp.down_proj", 'H', 'I', false},
    };
    for (uint64_t l = 0; l < L; l++) {
        for (size_t k = 0; k < sizeof per_layer / sizeof per_layer[0]; k++) {
            uint64_t dim[2];
            int sym[2] = {per_layer[k].rows, per_layer[k].cols};
            for (int d = 0; d < 2; d++)
                dim[d] = sym[d] == 'H' ? H : sym[d] == 'Q' ? QD : sym[d] == 'K' ? KD
                       : sym[d] == 'D' ? D : sym[d] == 'I' ? I : 0;
            char name[96];
            snprintf(name, sizeof name, "model.layers.%" PRIu64 ".%s.weight", l, per_layer[k].name);
            add_tensor(t, &c, name, dim[0], dim[1], per_layer[k].norm, esz);
        }
    }
    add_tensor(t, &c, "model.norm.weight", H, 0, true, esz);
    if (o->seqcls) add_tensor(t, &c, "score.weight", 1, H, false, esz);
    else if (!o->tied) add_tensor(t, &c, "lm_head.weight", V, H, false, esz);
    *count = c;
    return t;
}

// Splits the tensors over the shards by where each tensor's middle byte falls, keeping
// shards contiguous and none empty.
static void assign_shards(tensor *t, int n, int shards, uint64_t total) {
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        uint64_t mid = pos + t[i].nbytes / 2;
        int s = (int)((long double)mid * shards / (total ? total : 1));
        if (s > shards - 1) s = shards - 1;
        if (i > 0 && s < t[i - 1].shard) s = t[i - 1].shard;
        if (i > 0 && s > t[i - 1].shard + 1) s = t[i - 1].shard + 1;
        if (i == 0) s = 0;
        if (s < shards - (n - i)) s = shards - (n - i); // leave a tensor for every later shard
        t[i].shard = s;
        pos += t[i].nbytes;
    }
}

// ---------------------------------------------------------------------------------------
// Writing weights.

typedef struct {
    uint64_t done, total;
    int last_pct;
    bool quiet, tty; // percentages only on a terminal
} progress;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress_add(progress *p, uint64_t n) {
    p->done += n;
    if (p->quiet || p->total == 0) return;
    int pct = (int)((long double)p->done * 100 / p->total);
    if (pct != p->last_pct && p->tty) {
        p->last_pct = pct;
        fprintf(stderr, "\r%s: weights %3d%% (%.2f / %.2f GB)", g_prog, pct, (double)p->done / 1e9,
                (double)p->total / 1e9);
        fflush(stderr);
    }
}

// Generates one tensor's values into buf, chunk by chunk, and writes them to fd.
static void write_tensor(int fd, const char *path, const tensor *t, const options *o, char *buf,
                         progress *pg) {
    uint64_t key = mix64(o->seed ^ mix64(hash_name(t->name)));
    float mean = t->is_norm ? 1.0f : 0.0f;
    float std = t->is_norm ? (float)QGEN_NORM_STD : (float)QGEN_WEIGHT_STD;
    size_t esz = o->dt == DT_BF16 ? 2 : 4;
    uint64_t numel = t->nbytes / esz;
    size_t per_chunk = QGEN_CHUNK_BYTES / esz; // a multiple of 4: draws never straddle chunks
    uint64_t counter = 0;                      // index of the next 64-bit draw
    static uint16_t tab16[QTAB_N];             // bf16 values of the quantile midpoints
    if (o->dt == DT_BF16)
        for (uint32_t i = 0; i < QTAB_N; i++)
            tab16[i] = bf16_rne(mean + std * 0.5f * (g_qtab[i] + g_qtab[i + 1]));
    for (uint64_t at = 0; at < numel; at += per_chunk) {
        size_t n = numel - at < per_chunk ? (size_t)(numel - at) : per_chunk;
            if (o->dt == DT_BF16) { // 16 random bits per value: four values per draw
            uint16_t *out = (uint16_t *)buf;
            size_t i = 0;
            for (; i + 4 <= n; i += 4) {
                uint64_t r = mix64(key + (counter++) * 0x9e3779b97f4a7c15ull);
                out[i] = tab16[r & 0xffff];
                out[i + 1] = tab16[(r >> 16) & 0xffff];
                out[i + 2] = tab16[(r >> 32) & 0xffff];
                out[i + 3] = tab16[r >> 48];
            }
            uint64_t r = mix64(key + (counter++) * 0x9e3779b97f4a7c15ull);
            for (; i < n; i++, r >>= 16) out[i] = tab16[r & 0xffff];
        } else { // 32 random bits per value, interpolated between quantiles
            float *out = (float *)buf;
            for (size_t i = 0; i < n; i += 2) {
                uint64_t r = mix64(key + (counter++) * 0x9e3779b97f4a7c15ull);
                out[i] = mean + std * normal_from_u32((uint32_t)r);
                if (i + 1 < n) out[i + 1] = mean + std * normal_from_u32((uint32_t)(r >> 32));
            }
        }
        write_all(fd, buf, n * esz, path);
        progress_add(pg, n * esz);
    }
}

static void write_shard(const char *dir, const char *fname, const tensor *t, int n, int shard,
                        const options *o, char *buf, progress *pg) {
    sbuf h = {0};
    uint64_t off = 0;
    sb_printf(&h, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < n; i++) {
        if (t[i].shard != shard) continue;
        sb_printf(&h, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t[i].name, o->dt == DT_BF16 ? "BF16" : "F32");
        if (t[i].ndim == 2) sb_printf(&h, "%" PRIu64 ",%" PRIu64, t[i].shape[0], t[i].shape[1]);
        else sb_printf(&h, "%" PRIu64, t[i].shape[0]);
        uint64_t end = add_or_die(off, t[i].nbytes, "shard size");
        sb_printf(&h, "],\"data_offsets\":[%" PRIu64 ",%" PRIu64 "]}", off, end);
        off = end;
    }
    sb_put(&h, "}", 1);
    while (h.len % 8) sb_put(&h, " ", 1); // the header is padded to 8 bytes with spaces
    char path[4096];
    path_join(path, sizeof path, dir, fname);
    int fd = open_out(path);
    unsigned char len_le[8];
    for (int i = 0; i < 8; i++) len_le[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    write_all(fd, len_le, 8, path);
    write_all(fd, h.p, h.len, path);
    free(h.p);
    for (int i = 0; i < n; i++)
        if (t[i].shard == shard) write_tensor(fd, path, &t[i], o, buf, pg);
    close_out(fd, path);
}

// ---------------------------------------------------------------------------------------
// config.json, keyed and ordered like the Qwen3 configs.

static void put_id_or_null(sbuf *b, const char *key, int64_t id) {
    if (id >= 0) sb_printf(b, "  \"%s\": %" PRId64 ",\n", key, id);
    else sb_printf(b, "  \"%s\": null,\n", key);
}

static void build_config(sbuf *b, const options *o, const tok_info *ti) {
    sb_printf(b, "{\n  \"architectures\": [\n    \"%s\"\n  ],\n",
              o->seqcls ? "Qwen3ForSequenceClassification" : "Qwen3ForCausalLM");
    sb_printf(b, "  \"attention_bias\": false,\n  \"attention_dropout\": 0.0,\n");
    put_id_or_null(b, "bos_token_id", ti->endoftext_id);
    put_id_or_null(b, "eos_token_id", ti->im_end_id);
    sb_printf(b, "  \"head_dim\": %" PRId64 ",\n  \"hidden_act\": \"silu\",\n", o->head_dim);
    sb_printf(b, "  \"hidden_size\": %" PRId64 ",\n  \"initializer_range\": 0.02,\n", o->hidden);
    sb_printf(b, "  \"intermediate_size\": %" PRId64 ",\n  \"max_position_embeddings\": 40960,\n", o->inter);
    sb_printf(b, "  \"max_window_layers\": %" PRId64 ",\n  \"model_type\": \"qwen3\",\n", o->layers);
    sb_printf(b, "  \"num_attention_heads\": %" PRId64 ",\n  \"num_hidden_layers\": %" PRId64 ",\n",
              o->heads, o->layers);
    sb_printf(b, "  \"num_key_value_heads\": %" PRId64 ",\n  \"rms_norm_eps\": 1e-06,\n", o->kv_heads);
    sb_printf(b, "  \"rope_scaling\": null,\n  \"rope_theta\": 1000000,\n  \"sliding_window\": null,\n");
    sb_printf(b, "  \"tie_word_embeddings\": %s,\n  \"torch_dtype\": \"%s\",\n", o->tied ? "true" : "false",
              o->dt == DT_BF16 ? "bfloat16" : "float32");
    sb_printf(b, "  \"use_cache\": true,\n  \"use_sliding_window\": false,\n");
    sb_printf(b, "  \"vocab_size\": %" PRId64, o->vocab);
    if (o->labels)
        sb_printf(b, ",\n  \"id2label\": {\n    \"0\": \"no\",\n    \"1\": \"yes\"\n  },\n"
                     "  \"label2id\": {\n    \"no\": 0,\n    \"yes\": 1\n  }");
    if (o->seqcls) {
        sb_printf(b, ",\n  \"id2label\": {\n    \"0\": \"LABEL_0\"\n  },\n"
                     "  \"label2id\": {\n    \"LABEL_0\": 0\n  }");
        if (ti->endoftext_id >= 0) sb_printf(b, ",\n  \"pad_token_id\": %" PRId64, ti->endoftext_id);
    }
    sb_printf(b, "\n}");
}

// Files a sentence-transformers embedding model has, so converters can be tested on
// refusing a directory that looks like Qwen3-Embedding.
static void write_embedding_lookalike(const char *dir, int64_t hidden) {
    static const char modules[] =
        "[\n  {\n    \"idx\": 0,\n    \"name\": \"0\",\n    \"path\": \"\",\n"
        "    \"type\": \"sentence_transformers.models.Transformer\"\n  },\n"
        "  {\n    \"idx\": 1,\n    \"name\": \"1\",\n    \"path\": \"1_Pooling\",\n"
        "    \"type\": \"sentence_transformers.models.Pooling\"\n  },\n"
        "  {\n    \"idx\": 2,\n    \"name\": \"2\",\n    \"path\": \"2_Normalize\",\n"
        "    \"type\": \"sentence_transformers.models.Normalize\"\n  }\n]";
    write_file(dir, "modules.json", modules, strlen(modules));
    char sub[4096];
    path_join(sub, sizeof sub, dir, "1_Pooling");
    mkdir_p(sub);
    sbuf b = {0};
    sb_printf(&b, "{\n  \"word_embedding_dimension\": %" PRId64 ",\n", hidden);
    sb_printf(&b, "  \"pooling_mode_cls_token\": false,\n  \"pooling_mode_mean_tokens\": false,\n"
                  "  \"pooling_mode_max_tokens\": false,\n  \"pooling_mode_mean_sqrt_len_tokens\": false,\n"
                  "  \"pooling_mode_weightedmean_tokens\": false,\n  \"pooling_mode_lasttoken\": true,\n"
                  "  \"include_prompt\": true\n}");
    write_file(sub, "config.json", b.p, b.len);
    free(b.p);
}

// ---------------------------------------------------------------------------------------
// Command line.

static void usage(FILE *f) {
    fprintf(f,
        "usage: %s -o DIR [options]\n"
        "Writes a Hugging Face style Qwen3 model directory with seeded random weights.\n"
        "\n"
        "  -o, --out DIR          output directory (created; must be empty unless --force)\n"
        "  --shape NAME           tiny (default) | 0.6b | 4b | 8b (the Qwen3-Reranker shapes)\n"
        "  --layers N --hidden H --heads Q --kv-heads K --head-dim D --intermediate I --vocab V\n"
        "                         override any part of the shape (vocab defaults to the\n"
        "                         tokenizer's size for tiny, 151669 otherwise)\n"
        "  --seed S               random seed (default 0); same seed, same bytes\n"
        "  --dtype bf16|f32       weight type (default bf16)\n"
        "  --shards N             N files model-0000i-of-0000N.safetensors + index (default 1)\n"
        "  --tied | --untied      share the embedding with the LM head or write lm_head.weight\n"
        "                         (default: tied for tiny/0.6b/4b, untied for 8b)\n"
        "  --seqcls               Qwen3ForSequenceClassification with score.weight [1, H]\n"
        "                         (no LM head; tie_word_embeddings still follows the shape)\n"
        "  --labels               add id2label/label2id {0: no, 1: yes}\n"
        "  --tokenizer SRC_DIR    copy tokenizer.json and tokenizer_config.json from SRC_DIR\n"
        "                         (default: write a small byte-level BPE tokenizer)\n"
        "  --embedding-lookalike  also write modules.json and 1_Pooling/config.json\n"
        "  --force                write into a non-empty DIR (replaces qgen's own files)\n"
        "  --quiet                no progress on stderr\n"
        "  -h, --help             this text\n"
        "Exit codes: 0 ok, 2 usage error, 3 I/O error or unreadable tokenizer.\n",
        g_prog);
}

static int64_t parse_int(const char *flag, const char *s, int64_t lo, int64_t hi) {
    if (!s) die(EXIT_USAGE, "%s needs a value", flag);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        die(EXIT_USAGE, "%s: '%s' is not an integer in [%" PRId64 ", %" PRId64 "]", flag, s, lo, hi);
    return (int64_t)v;
}

static void parse_args(int argc, char **argv, options *o) {
    *o = (options){.shape_name = "tiny", .layers = -1, .hidden = -1, .heads = -1, .kv_heads = -1,
                   .head_dim = -1, .inter = -1, .vocab = -1, .dt = DT_BF16, .shards = 1, .tied = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define TAKE(...) (i++, __VA_ARGS__)
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) { usage(stdout); exit(0); }
        else if (!strcmp(a, "-o") || !strcmp(a, "--out")) { if (!v) die(EXIT_USAGE, "%s needs a directory", a); o->out_dir = TAKE(v); }
        else if (!strcmp(a, "--shape")) { if (!v) die(EXIT_USAGE, "--shape needs a name"); o->shape_name = TAKE(v); }
        else if (!strcmp(a, "--layers")) o->layers = TAKE(parse_int(a, v, 1, 1024));
        else if (!strcmp(a, "--hidden")) o->hidden = TAKE(parse_int(a, v, 1, 1 << 17));
        else if (!strcmp(a, "--heads")) o->heads = TAKE(parse_int(a, v, 1, 1024));
        else if (!strcmp(a, "--kv-heads")) o->kv_heads = TAKE(parse_int(a, v, 1, 1024));
        else if (!strcmp(a, "--head-dim")) o->head_dim = TAKE(parse_int(a, v, 2, 4096));
        else if (!strcmp(a, "--intermediate")) o->inter = TAKE(parse_int(a, v, 1, 1 << 20));
        else if (!strcmp(a, "--vocab")) o->vocab = TAKE(parse_int(a, v, 1, INT32_MAX));
        else if (!strcmp(a, "--seed")) o->seed = (uint64_t)TAKE(parse_int(a, v, 0, INT64_MAX));
        else if (!strcmp(a, "--shards")) o->shards = (int)TAKE(parse_int(a, v, 1, QGEN_MAX_SHARDS));
        else if (!strcmp(a, "--dtype")) {
            if (!v) die(EXIT_USAGE, "--dtype needs bf16 or f32");
            if (!strcmp(v, "bf16")) o->dt = DT_BF16;
            else if (!strcmp(v, "f32")) o->dt = DT_F32;
            else die(EXIT_USAGE, "--dtype: '%s' is not bf16 or f32", v);
            i++;
        }
        else if (!strcmp(a, "--tied")) o->tied = 1;
        else if (!strcmp(a, "--untied")) o->tied = 0;
        else if (!strcmp(a, "--seqcls")) o->seqcls = true;
        else if (!strcmp(a, "--labels")) o->labels = true;
        else if (!strcmp(a, "--tokenizer")) { if (!v) die(EXIT_USAGE, "--tokenizer needs a directory"); o->tokenizer_dir = TAKE(v); }
        else if (!strcmp(a, "--embedding-lookalike")) o->embedding_lookalike = true;
        else if (!strcmp(a, "--force")) o->force = true;
        else if (!strcmp(a, "--quiet")) o->quiet = true;
        else die(EXIT_USAGE, "unknown argument '%s'", a);
#undef TAKE
    }
    if (!o->out_dir) die(EXIT_USAGE, "no output directory: pass -o DIR");
    const shape_preset *sp = NULL;
    for (size_t i = 0; i < sizeof g_shapes / sizeof g_shapes[0]; i++)
        if (!strcmp(o->shape_name, g_shapes[i].name)) sp = &g_shapes[i];
    if (!sp) die(EXIT_USAGE, "--shape: '%s' is not tiny, 0.6b, 4b or 8b", o->shape_name);
    if (o->layers < 0) o->layers = sp->layers;
    if (o->hidden < 0) o->hidden = sp->hidden;
    if (o->heads < 0) o->heads = sp->heads;
    if (o->kv_heads < 0) o->kv_heads = sp->kv_heads;
    if (o->head_dim < 0) o->head_dim = sp->head_dim;
    if (o->inter < 0) o->inter = sp->inter;
    if (o->vocab < 0) o->vocab = sp->vocab; // 0: the tokenizer's size, filled in later
    if (o->tied < 0) o->tied = sp->tied;
    if (o->heads % o->kv_heads)
        die(EXIT_USAGE, "--kv-heads %" PRId64 " must divide --heads %" PRId64, o->kv_heads, o->heads);
    if (o->head_dim % 2) die(EXIT_USAGE, "--head-dim must be even (rotary embedding pairs)");
    if (o->seqcls && o->labels)
        die(EXIT_USAGE, "--seqcls writes a one-label head; --labels (no/yes) is for the causal LM");
}

static void describe(const options *o, uint64_t total, int ntensors) {
    fprintf(stderr, "%s: %s shape: %" PRId64 " layers, hidden %" PRId64 ", heads %" PRId64 "/%" PRId64
            ", head_dim %" PRId64 ", intermediate %" PRId64 ", vocab %" PRId64 ", %s, %s%s\n",
            g_prog, o->shape_name, o->layers, o->hidden, o->heads, o->kv_heads, o->head_dim, o->inter,
            o->vocab, o->tied ? "tied" : "untied", o->dt == DT_BF16 ? "bf16" : "f32",
            o->seqcls ? ", seq-cls" : "");
    fprintf(stderr, "%s: %d tensors, %.3f GB in %d file%s -> %s\n", g_prog, ntensors, (double)total / 1e9,
            o->shards, o->shards > 1 ? "s" : "", o->out_dir);
}

int main(int argc, char **argv) {
    options o;
    parse_args(argc, argv, &o);

    // Tokenizer first: the vocabulary size and special ids come from it.
    sbuf tj = {0}, tc = {0};
    tok_info ti;
    char *src_tj = NULL, *src_tc = NULL;
    size_t src_tj_n = 0, src_tc_n = 0;
    char path[4096];
    if (o.tokenizer_dir) {
        path_join(path, sizeof path, o.tokenizer_dir, "tokenizer.json");
        src_tj = read_file(path, QGEN_MAX_TOKENIZER_BYTES, &src_tj_n);
        scan_tokenizer(path, src_tj, src_tj_n, &ti);
        path_join(path, sizeof path, o.tokenizer_dir, "tokenizer_config.json");
        src_tc = read_file(path, QGEN_MAX_TOKENIZER_BYTES, &src_tc_n);
    } else {
        build_tokenizer(&tj, &tc, &ti);
    }
    if (o.vocab == 0) o.vocab = ti.max_id + 1;
    if (o.vocab < ti.max_id + 1)
        die(EXIT_USAGE, "vocab %" PRId64 " is smaller than the tokenizer's largest id + 1 (%" PRId64
            "); pass --vocab %" PRId64 " or more", o.vocab, ti.max_id + 1, ti.max_id + 1);
    if (!o.quiet && (!ti.has_yes || !ti.has_no))
        fprintf(stderr, "%s: warning: the tokenizer has no single \"yes\"/\"no\" token; rerankers need them\n", g_prog);

    int nt;
    tensor *t = build_tensors(&o, &nt);
    if (o.shards > nt) die(EXIT_USAGE, "--shards %d: only %d tensors to spread", o.shards, nt);
    uint64_t total = 0;
    for (int i = 0; i < nt; i++) total = add_or_die(total, t[i].nbytes, "total size");
    assign_shards(t, nt, o.shards, total);

    // The directory.
    struct stat st;
    bool existed = stat(o.out_dir, &st) == 0;
    if (existed && !S_ISDIR(st.st_mode)) die(EXIT_IO, "%s exists and is not a directory", o.out_dir);
    mkdir_p(o.out_dir);
    if (existed && !dir_is_empty(o.out_dir)) {
        if (!o.force) die(EXIT_USAGE, "%s is not empty; pass --force to write into it", o.out_dir);
        remove_stale(o.out_dir);
    }
    struct statvfs vfs;
    if (statvfs(o.out_dir, &vfs) == 0) {
        long double avail = (long double)vfs.f_bavail * vfs.f_frsize;
        if (avail < (long double)total + (64u << 20))
            die(EXIT_IO, "%s: %.1f MB needed (the files and 64 MiB to spare), %.1f MB free",
                o.out_dir, (double)(total + (64u << 20)) / 1e6, (double)(avail / 1e6));
    }
    if (!o.quiet) describe(&o, total, nt);

    // Small files.
    sbuf cfg = {0};
    build_config(&cfg, &o, &ti);
    write_file(o.out_dir, "config.json", cfg.p, cfg.len);
    if (o.tokenizer_dir) {
        write_file(o.out_dir, "tokenizer.json", src_tj, src_tj_n);
        write_file(o.out_dir, "tokenizer_config.json", src_tc, src_tc_n);
    } else {
        write_file(o.out_dir, "tokenizer.json", tj.p, tj.len);
        write_file(o.out_dir, "tokenizer_config.json", tc.p, tc.len);
    }
    if (o.embedding_lookalike) write_embedding_lookalike(o.out_dir, o.hidden);

    // Weights.
    qtab_init();
    char *buf = xmalloc(QGEN_CHUNK_BYTES);
    progress pg = {.total = total, .last_pct = -1, .quiet = o.quiet, .tty = isatty(2)};
    double t0 = now_s();
    if (o.shards == 1) {
        write_shard(o.out_dir, "model.safetensors", t, nt, 0, &o, buf, &pg);
    } else {
        sbuf idx = {0};
        sb_printf(&idx, "{\n  \"metadata\": {\n    \"total_size\": %" PRIu64 "\n  },\n  \"weight_map\": {", total);
        for (int s = 0; s < o.shards; s++) {
            char fname[64];
            snprintf(fname, sizeof fname, "model-%05d-of-%05d.safetensors", s + 1, o.shards);
            write_shard(o.out_dir, fname, t, nt, s, &o, buf, &pg);
        }
        for (int i = 0; i < nt; i++)
            sb_printf(&idx, "%s\n    \"%s\": \"model-%05d-of-%05d.safetensors\"", i ? "," : "", t[i].name,
                      t[i].shard + 1, o.shards);
        sb_printf(&idx, "\n  }\n}");
        write_file(o.out_dir, "model.safetensors.index.json", idx.p, idx.len);
        free(idx.p);
    }
    double dt = now_s() - t0;
    if (!o.quiet)
        fprintf(stderr, "%s%s: done: %.3f GB in %.2f s (%.0f MB/s)\n", pg.tty ? "\n" : "", g_prog, (double)total / 1e9, dt,
                dt > 0 ? (double)total / 1e6 / dt : 0.0);
    free(buf);
    free(cfg.p);
    free(tj.p);
    free(tc.p);
    free(src_tj);
    free(src_tc);
    free(t);
    return 0;
}
