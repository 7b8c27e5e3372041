/* convert.c — the conversion pipeline: check every input first (config, prompts,
 * checkpoint headers, labels, tensor shapes, tokenizer), hash the sources for the
 * provenance while scanning for f16 overflow, then stream tensor by tensor through
 * qrr_writer in chunks of a few MiB, dropping consumed checkpoint pages as it goes. */
#include "path.h"
#include "convert.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "qrr.h"
#include "qrr_format.h"
#include "qrr_impl.h"
#include "qrr_meta.h"
#include "qrr_schema.h"
#include "qrr_writer.h"
#include "quantize.h"
#include "safetensors.h"
#include "tokenizer.h"
#include "tokenizer_import.h"

#define CHUNK_ELEMS (1u << 20)          /* elements converted per step: 4 MiB of f32 */
#define HASH_CHUNK (8u << 20)           /* bytes hashed per step */
#define MAX_SMALL_FILE (256u << 20)     /* config and tokenizer files */

static const char *const src_names[QRR_ST_DTYPE_COUNT] = {"f32", "f16", "bf16"};

qrr_convert_opts qrr_convert_default_opts(void)
{
    qrr_convert_opts o;
    memset(&o, 0, sizeof o);
    o.dtype = QRR_DTYPE_F16;
    return o;
}

/* Where one tensor of the schema comes from. */
typedef struct source {
    const qrr_st_file *file;
    const qrr_st_tensor *t;   /* NULL for a produced scale tensor */
    uint32_t rows[2];         /* HEAD: source rows to take */
    uint32_t nrows;
} source;

typedef struct job {
    const qrr_convert_opts *o;
    qrr_convert_report *r;
    char *dir;
    int out_exists;           /* o->out_path exists (a regular file): its identity follows */
    dev_t out_dev;
    ino_t out_ino;
    qrr_hf_config cfg;
    uint32_t max_length;      /* the file's default prompt length, resolved from the options */
    qrr_hf_prompts prompts;
    qrr_st_set *set;
    json_t *tok_json;         /* tokenizer.json, parsed once for the labels and the blob */
    qrr_hf_vocab *vocab;
    qrr_label_decision lab;
    qrr_meta meta;
    qrr_schema_entry *schema;
    size_t nschema;
    source *src;
    uint8_t *tok_blob;
    size_t tok_len;
    char *provenance;
    json_t *sources;          /* provenance: [{file, bytes, xxh3_64}] */
    uint64_t inexact;
    void *buf;                /* conversion output, CHUNK_ELEMS * 4 bytes */
    float *scales;            /* int8 scales of the weight just written */
    size_t nscales;
} job;

static int exists(const char *dir, const char *name)
{
    char *p = qrr__path_join(dir, name);
    int ok = p && access(p, F_OK) == 0;
    free(p);
    return ok;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* ---- the output path ---------------------------------------------------------------- */

/* The files of the model directory the conversion may read, shards aside: the small ones
 * in the provenance's order (the index last), then the single-file checkpoint. */
#define N_SMALL_FILES 5
static const char *const model_files[N_SMALL_FILES + 1] = {
    "config.json", "config_sentence_transformers.json", "tokenizer.json",
    "tokenizer_config.json", "model.safetensors.index.json", "model.safetensors"};

static const char *file_kind(mode_t m)
{
    if (S_ISDIR(m)) return "a directory";
    if (S_ISCHR(m)) return "a character device";
    if (S_ISBLK(m)) return "a block device";
    if (S_ISFIFO(m)) return "a FIFO";
    if (S_ISSOCK(m)) return "a socket";
    return "not a regular file";
}

/* Mark a failure as the caller's (an option or the output path): exit code 2. */
static int usage_fail(job *j, int st)
{
    j->r->usage_error = 1;
    return st;
}

#define OTHER_NAME "HINT: write the .qrr to another name"

/* Refuse when the output is the file at path (the same inode: the file itself, a hard link
 * to it or a symbolic link to it), since renaming the result over it would destroy it. */
static int check_not_input(job *j, const char *path, qrr_diag *d)
{
    struct stat sb;
    if (!j->out_exists || stat(path, &sb) != 0) return QRR_OK;
    if (sb.st_dev != j->out_dev || sb.st_ino != j->out_ino) return QRR_OK;
    const char *out = j->o->out_path;
    if (strcmp(out, path) == 0)
        return usage_fail(j, qrr_fail(d, QRR_ERR_INVALID_ARG, "%s is an input file of this "
                                      "conversion; refusing to replace it\n" OTHER_NAME, out));
    return usage_fail(j, qrr_fail(d, QRR_ERR_INVALID_ARG, "%s is the same file as %s, an input "
                                  "file of this conversion; refusing to replace it\n" OTHER_NAME,
                                  out, path));
}

/* Before anything is read: the output may exist only as a regular file, and not as one of
 * the model directory's fixed-name files (the shards are checked once the index names them,
 * in check_not_shard). Whatever the path leads to through symbolic links counts. */
static int check_output(job *j, qrr_diag *d)
{
    struct stat sb;
    if (stat(j->o->out_path, &sb) != 0) return QRR_OK; /* absent: the writer reports the rest */
    if (!S_ISREG(sb.st_mode))
        return usage_fail(j, qrr_fail(d, QRR_ERR_INVALID_ARG, "%s exists and is %s; qconvert "
                                      "replaces only regular files", j->o->out_path,
                                      file_kind(sb.st_mode)));
    j->out_exists = 1;
    j->out_dev = sb.st_dev;
    j->out_ino = sb.st_ino;
    int st = QRR_OK;
    for (size_t i = 0; st == QRR_OK && i < sizeof model_files / sizeof *model_files; i++) {
        char *p = qrr__path_join(j->o->model_dir, model_files[i]);
        if (!p) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
        st = check_not_input(j, p, d);
        free(p);
    }
    return st;
}

static int check_not_shard(job *j, qrr_diag *d)
{
    int st = QRR_OK;
    for (size_t i = 0; st == QRR_OK && i < qrr_st_set_file_count(j->set); i++)
        st = check_not_input(j, qrr_st_set_file(j->set, i)->path, d);
    return st;
}

/* ---- provenance -------------------------------------------------------------------- */

static int add_source(job *j, const char *name, uint64_t bytes, uint64_t hash, qrr_diag *d)
{
    char hex[17];
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)hash);
    json_t *e = json_pack("{s:s, s:I, s:s}", "file", name, "bytes", (json_int_t)bytes, "xxh3_64", hex);
    if (!e || json_array_append_new(j->sources, e) != 0)
        return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    return QRR_OK;
}

static int hash_small_file(job *j, const char *name, qrr_diag *d)
{
    char *path = qrr__path_join(j->dir, name);
    if (!path) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    char *text;
    size_t len;
    int st = qrr_hf_read_file(path, MAX_SMALL_FILE, &text, &len, d);
    free(path);
    if (st != QRR_OK) return st;
    st = add_source(j, name, len, XXH3_64bits(text, len), d);
    free(text);
    return st;
}

/* Does this schema entry's source need the f16 scan (narrowing into f16)? */
static int needs_f16_scan(const job *j, size_t i)
{
    return j->schema[i].role == QRR_ROLE_WEIGHT && j->schema[i].dtype == QRR_DTYPE_F16 &&
           j->src[i].t && j->src[i].t->dtype != QRR_ST_F16;
}

/* One pass over each checkpoint file: XXH3-64 of the whole file for the provenance and,
 * for tensors going to f16, the overflow check and the count of rounded values, so that
 * a refusal comes before any output exists. Pages are dropped behind the pass. */
static int prepass_file(job *j, const qrr_st_file *f, qrr_diag *d)
{
    XXH3_state_t *hs = XXH3_createState();
    if (!hs) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    XXH3_64bits_reset(hs);
    int st = QRR_OK;
    for (size_t a = 0; a < f->size; a += HASH_CHUNK) {
        size_t b = f->size - a < HASH_CHUNK ? f->size : a + HASH_CHUNK;
        XXH3_64bits_update(hs, f->map + a, b - a);
        for (size_t i = 0; i < j->nschema && st == QRR_OK; i++) {
            if (j->src[i].file != f || !needs_f16_scan(j, i)) continue;
            const qrr_st_tensor *t = j->src[i].t;
            uint64_t tb = f->data_start + t->begin, te = f->data_start + t->end;
            if (te <= a || tb >= b) continue;
            size_t es = qrr_st_dtype_size(t->dtype);
            uint64_t lo = (a > tb ? a : tb) - tb, hi = (b < te ? b : te) - tb;
            uint64_t e0 = (lo + es - 1) / es, e1 = (hi + es - 1) / es;
            for (uint64_t e = e0; e < e1; e += CHUNK_ELEMS) {
                size_t n = (size_t)(e1 - e < CHUNK_ELEMS ? e1 - e : CHUNK_ELEMS);
                qrr_conv_result cr = qrr_convert_to_f16(qrr_st_data(f, t) + e * es, (int)t->dtype, n, j->buf);
                j->inexact += cr.inexact;
                if (cr.status != QRR_OK)
                    st = qrr_fail(d, cr.status,
                                  "%s: tensor '%s' element %llu is %g, %s", f->path, t->name,
                                  (unsigned long long)(e + cr.bad_index), (double)cr.bad_value,
                                  cr.status == QRR_ERR_OVERFLOW
                                      ? "beyond the f16 range (|v| > 65504)\nHINT: convert with "
                                        "--dtype bf16 or f32 to keep this value"
                                      : "not finite");
            }
        }
        qrr_st_file_release(f, f->map + a, b - a);
        if (st != QRR_OK) break;
    }
    if (st == QRR_OK) st = add_source(j, base_name(f->path), f->size, XXH3_64bits_digest(hs), d);
    XXH3_freeState(hs);
    return st;
}

static int build_provenance(job *j, qrr_diag *d)
{
    const qrr_convert_opts *o = j->o;
    char date[32];
    time_t now = time(NULL);
    const char *sde = getenv("SOURCE_DATE_EPOCH"); /* reproducible output when set */
    if (sde && *sde) now = (time_t)strtoll(sde, NULL, 10);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tm);
    /* The checkpoint type of the weights the dtype option applies to: "bf16", "f16",
     * "f32", or "mixed" (tells readers whether f16/bf16 storage was lossless). */
    const char *src_dtype = NULL;
    for (size_t i = 0; i < j->nschema; i++) {
        if (j->schema[i].role != QRR_ROLE_WEIGHT || !j->src[i].t) continue;
        const char *n = src_names[j->src[i].t->dtype];
        src_dtype = !src_dtype || strcmp(src_dtype, n) == 0 ? n : "mixed";
    }
    json_t *root = json_pack(
        "{s:s, s:s, s:s?, s:{s:s, s:s?, s:s?, s:b, s:i, s:i}, s:s, s:s?, s:O, s:I, s:s, s:s}",
        "converter", "qconvert " QRR_CONVERTER_VERSION, "date_utc", date,
        "command_line", o->command_line,
        "options", "dtype", qrr_dtype_name(o->dtype), "label_no", o->label_no,
        "label_yes", o->label_yes, "force", o->force, "max_length", (int)j->meta.fixed.max_length,
        "quant_block", (int)o->quant_block,
        "architecture", j->cfg.architecture, "source_dtype", src_dtype, "sources", j->sources,
        "rounded_values", (json_int_t)j->inexact, "prompts", j->prompts.source, "labels", j->lab.reason);
    if (!root) return qrr_fail(d, QRR_ERR_NOMEM, "cannot build the provenance JSON");
    j->provenance = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (!j->provenance) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    j->meta.strings[QRR_STR_PROVENANCE].ptr = j->provenance;
    j->meta.strings[QRR_STR_PROVENANCE].len = strlen(j->provenance);
    return QRR_OK;
}

/* ---- inputs ------------------------------------------------------------------------ */

static void set_string(qrr_meta *m, int i, const char *s)
{
    m->strings[i].ptr = s;
    m->strings[i].len = s ? strlen(s) : 0;
}

/* The longest prompt the file may score: max_position_embeddings, or a sliding window that
 * applies and is shorter. Up to the window, full attention is what Transformers computes;
 * past it, it is not, so the runtime refuses such prompts (a request's own max_length or
 * ids included) as it refuses prompts past the model's positions. */
static uint32_t positions_scored_exactly(const qrr_hf_config *c)
{
    return c->sliding_window && c->sliding_window < c->max_position ? c->sliding_window
                                                                      : c->max_position;
}

static int build_meta(job *j, qrr_diag *d)
{
    qrr_meta_disk *f = &j->meta.fixed;
    const qrr_hf_config *c = &j->cfg;
    memset(&j->meta, 0, sizeof j->meta);
    f->arch = QRR_ARCH_QWEN3;
    f->head_kind = j->lab.head_kind;
    f->label_source = j->lab.label_source;
    f->weight_dtype = j->o->dtype;
    f->n_layers = c->n_layers;
    f->hidden = c->hidden;
    f->n_heads = c->n_heads;
    f->n_kv_heads = c->n_kv_heads;
    f->head_dim = c->head_dim;
    f->intermediate = c->intermediate;
    f->vocab_size = c->vocab;
    f->max_position = positions_scored_exactly(c);
    f->max_length = j->max_length;
    f->yes_id = j->lab.yes_id;
    f->no_id = j->lab.no_id;
    f->tied = (uint32_t)c->tied;
    f->quant_block = j->o->dtype == QRR_DTYPE_I8 ? j->o->quant_block : 0;
    f->rms_eps = c->rms_eps;
    f->rope_theta = c->rope_theta;
    set_string(&j->meta, QRR_STR_PREFIX, j->prompts.prefix);
    set_string(&j->meta, QRR_STR_SUFFIX, j->prompts.suffix);
    set_string(&j->meta, QRR_STR_QUERY_TEMPLATE, j->prompts.query_template);
    set_string(&j->meta, QRR_STR_DOCUMENT_TEMPLATE, j->prompts.document_template);
    set_string(&j->meta, QRR_STR_INSTRUCTION, j->prompts.instruction);
    set_string(&j->meta, QRR_STR_LABEL_NO, j->lab.label_no);
    set_string(&j->meta, QRR_STR_LABEL_YES, j->lab.label_yes);
    set_string(&j->meta, QRR_STR_LABEL_REASON, j->lab.reason);
    int st = qrr_meta_validate(&j->meta, d);
    if (st != QRR_OK) {
        char msg[sizeof d->msg];
        snprintf(msg, sizeof msg, "%s", d ? d->msg : "");
        return qrr_fail(d, QRR_ERR_CONFIG, "%s/config.json (with the options given): %s", j->dir, msg);
    }
    return QRR_OK;
}

/* --quant-block must divide every row length a scale block runs along (hidden size, the
 * attention output's heads × head_dim, intermediate size): another value is an option this
 * model cannot take, as a --max-length above its positions is. */
static int check_quant_block(job *j, qrr_diag *d)
{
    uint32_t k = j->o->dtype == QRR_DTYPE_I8 ? j->o->quant_block : 0;
    const qrr_hf_config *c = &j->cfg;
    const struct { const char *name; uint64_t n; } rows[] = {
        {"hidden_size", c->hidden},
        {"num_attention_heads x head_dim", (uint64_t)c->n_heads * c->head_dim},
        {"intermediate_size", c->intermediate}};
    for (size_t i = 0; k && i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].n % k != 0)
            return usage_fail(j, qrr_fail(d, QRR_ERR_INVALID_ARG, "--quant-block %u does not "
                                          "divide %s %llu in %s/config.json", k, rows[i].name,
                                          (unsigned long long)rows[i].n, j->dir));
    return QRR_OK;
}

/* The file's max length: --max-length, else the default brought down to
 * max_position_embeddings (noted in the report). A longer prompt would have no positions. */
static int resolve_max_length(job *j, qrr_diag *d)
{
    uint32_t want = j->o->max_length, max_pos = j->cfg.max_position;
    if (want > max_pos)
        return usage_fail(j, qrr_fail(d, QRR_ERR_INVALID_ARG, "--max-length %u is above "
                                      "max_position_embeddings %u in %s/config.json: the model has "
                                      "no positions beyond it", want, max_pos, j->dir));
    j->max_length = want ? want : QRR_DEFAULT_MAX_LENGTH;
    if (j->max_length > max_pos) {
        j->max_length = max_pos;
        j->r->max_length_clamped = 1;
    }
    j->r->max_length = j->max_length;
    if (positions_scored_exactly(&j->cfg) < j->cfg.max_position)
        j->r->window_positions = positions_scored_exactly(&j->cfg);
    return QRR_OK;
}

/* qrr attends to every position in every layer. Where Transformers would limit some layers
 * to a sliding window shorter than the max length, prompts longer than the window would
 * score differently: refuse rather than compute something else. */
static int check_sliding_window(job *j, qrr_diag *d)
{
    const qrr_hf_config *c = &j->cfg;
    if (!c->sliding_window || c->sliding_window >= j->max_length) return QRR_OK;
    return qrr_fail(d, QRR_ERR_CONFIG,
                    "%s/config.json: use_sliding_window is true, so Transformers limits %s "
                    "to a sliding window of the last %u positions (sliding_window), shorter than the "
                    "max length %u; qrr computes full attention only\nHINT: --max-length %u or less "
                    "keeps every prompt inside the window",
                    j->dir, c->sliding_layers, c->sliding_window, j->max_length, c->sliding_window);
}

/* Tokens of text (NUL-terminated) under t. */
static int count_tokens(const qrr_tokenizer *t, const char *text, size_t *n, qrr_diag *d)
{
    int st = qrr_tokenizer_encode(t, text, strlen(text), NULL, 0, n, d);
    return st == QRR_ERR_BUFFER_TOO_SMALL ? QRR_OK : st;
}

/* The prefix and suffix are never truncated: the max length must hold them and at least one
 * token of the body, or every prompt at the file's default length would be refused. They are
 * counted with the tokenizer being embedded, as the runtime will count them. */
static int check_prompt_frame(job *j, qrr_diag *d)
{
    qrr_tokenizer *t;
    size_t np = 0, ns = 0;
    int st = qrr_tokenizer_load(j->tok_blob, j->tok_len, &t, d);
    if (st != QRR_OK) return st;
    /* The runtime refuses a tokenizer with ids the embedding has no row for: refused here,
     * before any output, rather than written into a file that never opens. */
    size_t ids = qrr_tokenizer_vocab_size(t);
    if (ids > j->cfg.vocab) {
        qrr_tokenizer_free(t);
        return qrr_fail(d, QRR_ERR_CONFIG, "%s: tokenizer.json has %zu ids but config.json's "
                        "vocab_size (the embedding's rows) is %u: this tokenizer is not the model's",
                        j->dir, ids, j->cfg.vocab);
    }
    st = count_tokens(t, j->prompts.prefix, &np, d);
    if (st == QRR_OK) st = count_tokens(t, j->prompts.suffix, &ns, d);
    qrr_tokenizer_free(t);
    if (st != QRR_OK || j->max_length > np + ns) return st;
    if (j->o->max_length)
        return usage_fail(j, qrr_fail(d, QRR_ERR_INVALID_ARG,
                                      "--max-length %u leaves no room for the query and document: "
                                      "the prompt's prefix and suffix alone take %zu tokens (%zu + "
                                      "%zu); use at least %zu", j->max_length, np + ns, np, ns,
                                      np + ns + 1));
    return qrr_fail(d, QRR_ERR_CONFIG,
                    "%s/config.json: max_position_embeddings %u cannot hold a prompt: its prefix and "
                    "suffix alone take %zu tokens", j->dir, j->cfg.max_position, np + ns);
}

static int check_shape(const qrr_st_tensor *t, uint32_t ndim, const uint64_t *dims,
                       const char *where, qrr_diag *d)
{
    int same = t->ndim == ndim;
    for (uint32_t i = 0; same && i < ndim; i++) same = t->dims[i] == dims[i];
    if (same) return QRR_OK;
    char got[96], want[96];
    qrr_shape_format(got, sizeof got, t->ndim, t->dims);
    qrr_shape_format(want, sizeof want, ndim, dims);
    return qrr_fail(d, QRR_ERR_SHAPE, "%s: tensor '%s' has shape %s, expected %s from config.json",
                    where, t->name, got, want);
}

static int find_source(job *j, const char *name, const qrr_st_file **f, const qrr_st_tensor **t,
                       const char *why, qrr_diag *d)
{
    if (qrr_st_set_find(j->set, name, f, t) == 0) return QRR_OK;
    const char *where = qrr_st_set_index_path(j->set);
    return qrr_fail(d, QRR_ERR_MISSING_TENSOR, "%s: no tensor '%s'%s%s",
                    where ? where : qrr_st_set_file(j->set, 0)->path, name, why ? " " : "", why ? why : "");
}

/* Map every schema entry to its checkpoint tensor and check the shapes. */
static int map_sources(job *j, qrr_diag *d)
{
    j->src = calloc(j->nschema, sizeof *j->src);
    if (!j->src) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    uint64_t H = j->cfg.hidden, V = j->cfg.vocab;
    for (size_t i = 0; i < j->nschema; i++) {
        const qrr_schema_entry *e = &j->schema[i];
        source *s = &j->src[i];
        int st;
        if (e->role == QRR_ROLE_SCALE) continue;
        if (e->role != QRR_ROLE_HEAD) {
            if ((st = find_source(j, e->name, &s->file, &s->t, NULL, d))) return st;
            if ((st = check_shape(s->t, e->ndim, e->dims, s->file->path, d))) return st;
            continue;
        }
        uint64_t dims[2] = {0, H};
        const char *name;
        if (j->lab.from_score) {
            name = "score.weight";
            dims[0] = j->lab.head_kind == QRR_HEAD_SINGLE_LOGIT ? 1 : 2;
            s->rows[0] = j->lab.head_kind == QRR_HEAD_SINGLE_LOGIT ? 0 : j->lab.score_row_no;
            s->rows[1] = j->lab.score_row_yes;
        } else {
            name = j->cfg.tied ? "model.embed_tokens.weight" : "lm_head.weight";
            dims[0] = V;
            s->rows[0] = j->lab.no_id;
            s->rows[1] = j->lab.yes_id;
        }
        s->nrows = j->lab.head_kind == QRR_HEAD_SINGLE_LOGIT ? 1 : 2;
        if ((st = find_source(j, name, &s->file, &s->t,
                              j->cfg.tied || j->lab.from_score ? NULL
                                  : "(config.json says tie_word_embeddings false, so the yes/no rows "
                                    "come from lm_head.weight)", d)))
            return st;
        if ((st = check_shape(s->t, 2, dims, s->file->path, d))) return st;
        if (e->ndim != 2 || e->dims[0] != s->nrows || e->dims[1] != H)
            return qrr_fail(d, QRR_ERR_SHAPE, "internal: head schema entry disagrees with the labels");
    }
    return QRR_OK;
}

static int load_inputs(job *j, qrr_diag *d)
{
    const qrr_convert_opts *o = j->o;
    struct stat sb;
    if (stat(o->model_dir, &sb) != 0)
        return qrr_fail(d, QRR_ERR_IO, "%s: not a model directory (%s)", o->model_dir,
                        strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return qrr_fail(d, QRR_ERR_IO, "%s: not a model directory (a file, not a directory)",
                        o->model_dir);
    j->dir = strdup(o->model_dir);
    j->sources = json_array();
    if (!j->dir || !j->sources) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");

    int st;
    char *p = qrr__path_join(j->dir, "config.json");
    if (!p) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    st = qrr_hf_config_load(p, &j->cfg, d);
    free(p);
    if (st != QRR_OK) return st;
    if ((st = resolve_max_length(j, d)) || (st = check_sliding_window(j, d)) ||
        (st = check_quant_block(j, d)))
        return st;

    char *text = NULL;
    size_t len = 0;
    if (exists(j->dir, "config_sentence_transformers.json")) {
        p = qrr__path_join(j->dir, "config_sentence_transformers.json");
        st = p ? qrr_hf_read_file(p, QRR_HF_MAX_CONFIG, &text, &len, d) : QRR_ERR_NOMEM;
        if (st == QRR_OK) st = qrr_hf_prompts_parse(text, len, p, &j->prompts, d);
        free(p);
        free(text);
    } else {
        st = qrr_hf_prompts_parse(NULL, 0, NULL, &j->prompts, d);
    }
    if (st != QRR_OK) return st;

    if ((st = qrr_st_set_open(j->dir, &j->set, d))) return st;
    if ((st = check_not_shard(j, d))) return st;

    if (!exists(j->dir, "tokenizer.json"))
        return qrr_fail(d, QRR_ERR_BAD_TOKENIZER,
                        "%s/tokenizer.json: missing\nHINT: copy tokenizer.json and tokenizer_config.json "
                        "of the model beside config.json", j->dir);
    char *tj = qrr__path_join(j->dir, "tokenizer.json");
    if (!tj) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    st = qrr_tokenizer_read_json(tj, &j->tok_json, d);
    if (st == QRR_ERR_IO) { /* unreadable: the tokenizer is what is missing */
        char why[sizeof d->msg];
        snprintf(why, sizeof why, "%s", d ? d->msg : tj);
        st = qrr_fail(d, QRR_ERR_BAD_TOKENIZER, "%s", why);
    }
    if (st == QRR_OK) st = qrr_hf_vocab_of(j->tok_json, tj, &j->vocab, d);
    if (st != QRR_OK) {
        free(tj);
        return st;
    }

    char evidence[96] = "";
    if (exists(j->dir, "modules.json")) strcat(evidence, "modules.json");
    if (exists(j->dir, "1_Pooling/config.json"))
        strcat(evidence, evidence[0] ? ", 1_Pooling/config.json" : "1_Pooling/config.json");
    qrr_label_inputs li = {&j->cfg, j->vocab, o->label_no, o->label_yes,
                           evidence[0] ? evidence : NULL, o->force};
    st = qrr_hf_decide_labels(&li, &j->lab, d);
    qrr_hf_vocab_free(j->vocab);
    j->vocab = NULL;
    if (st == QRR_OK) st = build_meta(j, d);
    if (st == QRR_OK) st = qrr_schema_build(&j->meta, &j->schema, &j->nschema, d);
    if (st == QRR_OK) st = map_sources(j, d);
    if (st == QRR_OK) {
        char *tc = exists(j->dir, "tokenizer_config.json")
                       ? qrr__path_join(j->dir, "tokenizer_config.json") : NULL;
        st = qrr_tokenizer_import_json(j->tok_json, tj, tc, &j->tok_blob, &j->tok_len, d);
        free(tc);
    }
    free(tj);
    json_decref(j->tok_json);
    j->tok_json = NULL;
    return st == QRR_OK ? check_prompt_frame(j, d) : st;
}

/* ---- streaming --------------------------------------------------------------------- */

static int conv_error(const source *s, uint64_t first, qrr_conv_result cr, const char *to, qrr_diag *d)
{
    return qrr_fail(d, cr.status, "%s: tensor '%s' element %llu is %g: %s", s->file->path, s->t->name,
                    (unsigned long long)(first + cr.bad_index), (double)cr.bad_value,
                    cr.status == QRR_ERR_OVERFLOW ? (strcmp(to, "f16") == 0
                                                         ? "beyond the f16 range (|v| > 65504)"
                                                         : "beyond the target range")
                                                  : "not finite");
}

/* Writer failures are output errors (exit 3); the rest are input errors. */
#define WRITE(j, w, idx, p, n, d)                                         \
    do {                                                                  \
        int _st = qrr_writer_write((w), (idx), (p), (n), (d));            \
        if (_st != QRR_OK) {                                              \
            (j)->r->output_error = 1;                                     \
            return _st;                                                   \
        }                                                                 \
    } while (0)

static int write_plain(job *j, qrr_writer *w, size_t idx, const qrr_schema_entry *e, const source *s,
                       uint64_t *bytes, qrr_diag *d)
{
    const qrr_st_tensor *t = s->t;
    size_t es = qrr_st_dtype_size(t->dtype), os = qrr_dtype_size(e->dtype);
    const uint8_t *base = qrr_st_data(s->file, t);
    for (uint64_t at = 0; at < t->count; at += CHUNK_ELEMS) {
        size_t n = (size_t)(t->count - at < CHUNK_ELEMS ? t->count - at : CHUNK_ELEMS);
        const uint8_t *p = base + at * es;
        qrr_conv_result cr;
        if (e->dtype == QRR_DTYPE_F32) cr = qrr_convert_to_f32(p, (int)t->dtype, n, j->buf);
        else if (e->dtype == QRR_DTYPE_F16) cr = qrr_convert_to_f16(p, (int)t->dtype, n, j->buf);
        else cr = qrr_convert_to_bf16(p, (int)t->dtype, n, j->buf);
        if (cr.status != QRR_OK) return conv_error(s, at, cr, qrr_dtype_name(e->dtype), d);
        if (e->role == QRR_ROLE_WEIGHT) j->r->inexact += cr.inexact;
        WRITE(j, w, idx, j->buf, n * os, d);
        qrr_st_file_release(s->file, p, n * es);
    }
    *bytes = t->count * os;
    return QRR_OK;
}

static int write_int8(job *j, qrr_writer *w, size_t idx, const qrr_schema_entry *e, const source *s,
                      uint64_t *bytes, qrr_diag *d)
{
    const qrr_st_tensor *t = s->t;
    size_t rows = (size_t)e->dims[0], cols = (size_t)e->dims[1];
    size_t block = j->meta.fixed.quant_block ? j->meta.fixed.quant_block : cols;
    size_t nb = cols / block, es = qrr_st_dtype_size(t->dtype);
    free(j->scales);
    j->nscales = rows * nb;
    j->scales = malloc(j->nscales * sizeof *j->scales);
    if (!j->scales) return qrr_fail(d, QRR_ERR_NOMEM, "out of memory for %zu scales", j->nscales);
    size_t step = cols >= CHUNK_ELEMS ? 1 : CHUNK_ELEMS / cols;
    const uint8_t *base = qrr_st_data(s->file, t);
    for (size_t r = 0; r < rows; r += step) {
        size_t n = rows - r < step ? rows - r : step;
        const uint8_t *p = base + r * cols * es;
        qrr_conv_result cr = qrr_quantize_i8(p, (int)t->dtype, n, cols, block, j->buf, j->scales + r * nb);
        if (cr.status != QRR_OK) return conv_error(s, (uint64_t)r * cols, cr, "int8", d);
        WRITE(j, w, idx, j->buf, n * cols, d);
        qrr_st_file_release(s->file, p, n * cols * es);
    }
    *bytes = (uint64_t)rows * cols;
    return QRR_OK;
}

static int write_head(job *j, qrr_writer *w, size_t idx, const source *s, uint64_t *bytes, qrr_diag *d)
{
    const qrr_st_tensor *t = s->t;
    size_t H = (size_t)t->dims[1], es = qrr_st_dtype_size(t->dtype);
    for (uint32_t k = 0; k < s->nrows; k++) {
        const uint8_t *p = qrr_st_data(s->file, t) + (size_t)s->rows[k] * H * es;
        qrr_conv_result cr = qrr_convert_to_f32(p, (int)t->dtype, H, j->buf);
        if (cr.status != QRR_OK) return conv_error(s, (uint64_t)s->rows[k] * H, cr, "f32", d);
        WRITE(j, w, idx, j->buf, H * 4, d);
    }
    *bytes = (uint64_t)s->nrows * H * 4;
    return QRR_OK;
}

/* Tell the caller where the temporary output is, or (NULL) that it is gone. */
static void tell_tmp(const job *j, const char *path)
{
    if (j->o->tmp_file) j->o->tmp_file(j->o->tmp_file_ctx, path);
}

/* Create the temporary output and tell the caller its path with the termination signals
 * blocked: a signal in between would leave a file the caller's handler does not know. */
static int open_output(job *j, qrr_writer **w, qrr_diag *d)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int st = qrr_writer_open(j->o->out_path, w, d);
    if (st == QRR_OK) tell_tmp(j, qrr_writer_tmp_path(*w));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (st != QRR_OK) j->r->output_error = 1;
    return st;
}

static int declare_tensors(job *j, qrr_writer *w, qrr_diag *d)
{
    int st = qrr_writer_set_meta(w, &j->meta, d);
    if (st == QRR_OK) st = qrr_writer_set_tokenizer(w, j->tok_blob, j->tok_len, d);
    for (size_t i = 0; i < j->nschema && st == QRR_OK; i++) {
        size_t idx;
        st = qrr_writer_add_tensor(w, j->schema[i].name, j->schema[i].dtype, j->schema[i].ndim,
                                   j->schema[i].dims, &idx, d);
        if (st == QRR_OK && idx != i) st = qrr_fail(d, QRR_ERR_INVALID_ARG, "writer index %zu != %zu", idx, i);
    }
    if (st != QRR_OK) j->r->output_error = 1;
    return st;
}

static int write_tensors(job *j, qrr_writer *w, qrr_diag *d)
{
    for (size_t i = 0; i < j->nschema; i++) {
        const qrr_schema_entry *e = &j->schema[i];
        const source *s = &j->src[i];
        uint64_t bytes = 0;
        int st;
        if (e->role == QRR_ROLE_SCALE) {
            uint64_t want = 1;
            for (uint32_t k = 0; k < e->ndim; k++) want *= e->dims[k];
            if (!j->scales || want != j->nscales) {
                st = qrr_fail(d, QRR_ERR_INVALID_ARG, "internal: %s has no scales to write", e->name);
            } else {
                st = qrr_writer_write(w, i, j->scales, j->nscales * sizeof *j->scales, d);
                if (st != QRR_OK) j->r->output_error = 1;
                bytes = j->nscales * sizeof *j->scales;
            }
        } else if (e->role == QRR_ROLE_HEAD) {
            st = write_head(j, w, i, s, &bytes, d);
        } else if (e->dtype == QRR_DTYPE_I8) {
            st = write_int8(j, w, i, e, s, &bytes, d);
        } else {
            st = write_plain(j, w, i, e, s, &bytes, d);
        }
        if (st != QRR_OK) return st;
        j->r->tensors++;
        j->r->tensor_bytes += bytes;
        if (j->o->progress) {
            qrr_convert_progress pr = {i + 1, j->nschema, e->name,
                                       s->t ? src_names[s->t->dtype] : "-", qrr_dtype_name(e->dtype), bytes};
            j->o->progress(j->o->progress_ctx, &pr);
        }
    }
    return QRR_OK;
}

static int write_all(job *j, qrr_diag *d)
{
    qrr_writer *w = NULL;
    int st = open_output(j, &w, d);
    if (st != QRR_OK) return st;
    st = declare_tensors(j, w, d);
    if (st == QRR_OK) st = write_tensors(j, w, d);
    if (st == QRR_OK) {
        st = qrr_writer_finish(w, d); /* renames the file into place, or removes it */
        if (st != QRR_OK) j->r->output_error = 1;
    } else {
        qrr_writer_abort(w);
    }
    tell_tmp(j, NULL);
    if (st != QRR_OK) return st;
    struct stat sb;
    if (stat(j->o->out_path, &sb) == 0) j->r->file_bytes = (uint64_t)sb.st_size;
    return QRR_OK;
}

int qrr_convert(const qrr_convert_opts *o, qrr_convert_report *r, qrr_diag *d)
{
    qrr_convert_report local;
    if (!r) r = &local;
    memset(r, 0, sizeof *r);
    qrr_diag_clear(d);
    r->usage_error = 1; /* until the options pass */
    if (!o || !o->model_dir || !o->out_path)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_convert: model directory and output path are required");
    if (o->dtype >= QRR_DTYPE_COUNT)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_convert: unknown dtype %u", o->dtype);
    if (o->quant_block && o->dtype != QRR_DTYPE_I8)
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "--quant-block needs --dtype int8");
    if ((o->label_no == NULL) != (o->label_yes == NULL))
        return qrr_fail(d, QRR_ERR_INVALID_ARG, "qrr_convert: give both labels or neither");
    r->usage_error = 0;
    double t0 = qrr_time_seconds();
    job j;
    memset(&j, 0, sizeof j);
    j.o = o;
    j.r = r;
    int st = check_output(&j, d);
    if (st == QRR_OK) st = load_inputs(&j, d);
    if (st == QRR_OK) {
        j.buf = malloc((size_t)CHUNK_ELEMS * 4);
        if (!j.buf) st = qrr_fail(d, QRR_ERR_NOMEM, "out of memory");
    }
    /* Sources in a fixed order: config, prompts config, tokenizer files, index, shards. */
    for (size_t i = 0; st == QRR_OK && i < N_SMALL_FILES; i++) {
        if (i == N_SMALL_FILES - 1 && !qrr_st_set_index_path(j.set)) continue;
        if (exists(j.dir, model_files[i])) st = hash_small_file(&j, model_files[i], d);
    }
    for (size_t i = 0; st == QRR_OK && i < qrr_st_set_file_count(j.set); i++)
        st = prepass_file(&j, qrr_st_set_file(j.set, i), d);
    if (st == QRR_OK) st = build_provenance(&j, d);
    if (st == QRR_OK) st = write_all(&j, d);
    if (st == QRR_OK) {
        r->labels = j.lab;
        snprintf(r->prompts_source, sizeof r->prompts_source, "%s", j.prompts.source);
    }
    r->seconds = qrr_time_seconds() - t0;

    free(j.dir);
    qrr_hf_prompts_free(&j.prompts);
    qrr_st_set_close(j.set);
    qrr_hf_vocab_free(j.vocab);
    json_decref(j.tok_json);
    free(j.schema);
    free(j.src);
    free(j.tok_blob);
    free(j.provenance);
    json_decref(j.sources);
    free(j.buf);
    free(j.scales);
    return st;
}
