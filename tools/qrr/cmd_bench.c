/* cmd_bench.c — `qrr bench`: time scoring on a synthetic, seeded request (one query and N
 * documents of varied length built from common words): open-to-first-score, tokens/s and
 * pairs/s for the whole request, one-pair latency, peak RSS; with and without the shared
 * prefix; the kernels that computed it. It can write the workload as JSON lines so a peer
 * runs the same prompts. */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "qrr.h"

static const char *const words[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by",
    "on", "not", "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an",
    "they", "you", "were", "her", "she", "there", "been", "one", "all", "we", "their", "has",
    "would", "when", "if", "so", "no", "will", "more", "can", "about", "said", "city", "river",
    "water", "capital", "country", "people", "history", "system", "energy", "market", "music",
    "science", "world", "school", "family", "health", "model", "data", "power", "light",
    "mountain", "island", "language", "government", "century", "population", "north", "south",
    "east", "west", "large", "small", "early", "later", "known", "used", "called", "found",
    "between", "during", "under", "after", "before", "because", "through", "across", "among",
    "China", "Beijing", "Paris", "France", "Seoul", "Korea", "gravity", "planet", "ocean",
};
#define N_WORDS (sizeof words / sizeof words[0])

static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* A document of about n_words words (one token each, mostly), ending with a period. */
static char *make_doc(uint64_t *seed, int n_words)
{
    size_t cap = (size_t)n_words * 12 + 8, len = 0;
    char *s = malloc(cap);
    if (!s) return NULL;
    for (int i = 0; i < n_words; i++) {
        const char *w = words[rng_next(seed) % N_WORDS];
        len += (size_t)snprintf(s + len, cap - len, "%s%s", i ? " " : "", w);
        if (i % 17 == 16 && i + 1 < n_words) len += (size_t)snprintf(s + len, cap - len, ".");
    }
    snprintf(s + len, cap - len, ".");
    if (n_words > 0) s[0] = (char)(s[0] >= 'a' && s[0] <= 'z' ? s[0] - 32 : s[0]);
    return s;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct bench_opts {
    const char *path, *workload_out;
    cli_model_opts model;  /* --threads, --no-verify */
    int docs, min_words, max_words, repeat, as_json, compare_share;
    uint64_t seed;
} bench_opts;

/* Median seconds of `repeat` runs scoring all documents; tokens from the last run. */
static int time_request(qrr_ctx *ctx, const char *query, const char **docs, int n, int repeat,
                        double *seconds, qrr_stats *stats)
{
    float *scores = malloc((size_t)n * sizeof *scores);
    double *t = malloc((size_t)repeat * sizeof *t);
    int rc = scores && t ? QRR_OK : QRR_ERR_NOMEM;
    for (int r = 0; rc == QRR_OK && r < repeat; r++) {
        double t0 = qrr_time_seconds();
        rc = qrr_ctx_score(ctx, query, docs, (size_t)n, qrr_score_default_params(), scores, NULL);
        t[r] = qrr_time_seconds() - t0;
    }
    if (rc == QRR_OK) {
        *seconds = median(t, repeat);
        *stats = qrr_ctx_last_stats(ctx);
    }
    free(scores);
    free(t);
    return rc;
}

/* The mkstemp template of the temporary file beside path (malloc'ed; NULL without memory). */
static char *temp_template(const char *path)
{
    size_t len = strlen(path);
    char *tmp = malloc(len + sizeof ".tmp.XXXXXX");
    if (tmp) {
        memcpy(tmp, path, len);
        memcpy(tmp + len, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    }
    return tmp;
}

/* The workload as JSON lines into path, written whole or not at all: into a temporary file
 * beside it (mode 0644, as qconvert's output), renamed over path at the end. 0, or -1 with
 * errno set. */
static int write_workload(const char *path, const char *query, const char **docs, int n)
{
    char *tmp = temp_template(path);
    if (!tmp) return -1;
    int fd = mkstemp(tmp);
    FILE *f = fd >= 0 && fchmod(fd, 0644) == 0 ? fdopen(fd, "w") : NULL;
    int rc = f ? 0 : -1;
    if (!f && fd >= 0) close(fd);
    for (int i = 0; rc == 0 && i < n; i++) {
        json_t *o = json_pack("{s:s,s:s}", "query", query, "document", docs[i]);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
        if (!s) errno = ENOMEM;
        if (!s || fprintf(f, "%s\n", s) < 0) rc = -1;
        free(s);
        json_decref(o);
    }
    if (f && fclose(f) != 0) rc = -1;
    if (rc == 0 && rename(tmp, path) != 0) rc = -1;
    int err = errno;
    if (rc != 0 && fd >= 0) unlink(tmp);
    free(tmp);
    errno = err;
    return rc;
}

/* Why the workload cannot go to path, checked before the run (as qconvert checks -o): NULL
 * when it can. A usage error (*usage = 1): the model file itself, or something there that is
 * not a regular file (a directory, a device, a FIFO, or a link to one), which the rename at
 * the end would replace. Otherwise (*usage = 0): its directory cannot take a new file, found
 * by making (and removing) the temporary file the write will make: permission bits alone
 * say nothing to root, nor of a read-only or full file system. */
static const char *workload_refused(const char *path, const char *model, int *usage)
{
    struct stat sp, sm;
    *usage = 1;
    if (stat(path, &sp) == 0) {
        if (stat(model, &sm) == 0 && sp.st_dev == sm.st_dev && sp.st_ino == sm.st_ino)
            return "is the model file";
        if (!S_ISREG(sp.st_mode)) return "exists and is not a regular file";
    }
    *usage = 0;
    char *tmp = temp_template(path);
    if (!tmp) return strerror(ENOMEM);
    int fd = mkstemp(tmp), e = errno;
    if (fd >= 0) {
        close(fd);
        unlink(tmp);
    }
    free(tmp);
    return fd >= 0 ? NULL : strerror(e);
}

static int run(const bench_opts *o)
{
    const char *query = "What is known about the history and population of the capital city?";
    uint64_t seed = o->seed;
    const char **docs = calloc((size_t)o->docs, sizeof *docs);
    if (!docs) return QRR_EXIT_FAIL;
    for (int i = 0; i < o->docs; i++) {
        /* Lengths skewed towards short documents, as real result lists are: min + span·u^1.4
         * has mean min + span/2.4 (about 200 words for 50..400). */
        double u = (double)(rng_next(&seed) % 10001) / 10000.0;
        int n_words = o->min_words + (int)((o->max_words - o->min_words) * pow(u, 1.4));
        docs[i] = make_doc(&seed, n_words);
        if (!docs[i]) {
            fprintf(stderr, "qrr bench: out of memory making %d documents of up to %d words\n",
                    o->docs, o->max_words);
            for (int j = 0; j < i; j++) free((void *)docs[j]);
            free(docs);
            return QRR_EXIT_FAIL;
        }
    }

    double t_open0 = qrr_time_seconds();
    qrr_model *m = cli_open_model("bench", o->path, o->model.verify);
    if (!m) return QRR_EXIT_FAIL;
    qrr_ctx_params cp = o->model.ctx;
    qrr_ctx *ctx = NULL;
    int rc = qrr_ctx_create(m, cp, &ctx);
    /* Open-to-first-score: what a process that starts, opens the model and answers one
     * short request pays (warm page cache). */
    const char *first_doc = "The capital of China is Beijing.";
    float first;
    if (rc == QRR_OK)
        rc = qrr_ctx_score(ctx, query, &first_doc, 1, qrr_score_default_params(), &first, NULL);
    double open_to_first = qrr_time_seconds() - t_open0;
    qrr_stats st_first = qrr_ctx_last_stats(ctx);

    double t_batch = 0, t_noshare = 0, t_one = 0;
    qrr_stats st = {0, 0}, st_noshare = {0, 0}, st_one = {0, 0};
    if (rc == QRR_OK) rc = time_request(ctx, query, docs, o->docs, o->repeat, &t_batch, &st);
    if (rc == QRR_OK) rc = time_request(ctx, query, docs, 1, o->repeat, &t_one, &st_one);
    qrr_ctx *ctx2 = NULL;
    if (rc == QRR_OK && o->compare_share) {
        cp.share_prefix = 0;
        rc = qrr_ctx_create(m, cp, &ctx2);
        if (rc == QRR_OK) rc = time_request(ctx2, query, docs, o->docs, o->repeat, &t_noshare, &st_noshare);
    }
    if (rc != QRR_OK) {
        fprintf(stderr, "qrr bench: %s\n", qrr_last_error());
    } else {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        char device[512];
        qrr_ctx_describe(ctx, device, sizeof device); /* cut short at worst */
        json_t *r = json_pack("{s:s,s:s,s:s,s:i,s:i,s:I,s:I,s:f,s:f,s:f,s:f,s:I,s:f,s:I,s:f}",
                              "model", o->path, "device", device, "cpu_kernels", qrr_cpu_kernels(),
                              "threads", qrr_ctx_threads(ctx), "docs", o->docs,
                              "tokens", (json_int_t)st.tokens,
                              "tokens_computed", (json_int_t)st.tokens_computed,
                              "seconds", t_batch, "tokens_per_s", (double)st.tokens / t_batch,
                              "pairs_per_s", o->docs / t_batch, "latency_one_pair_s", t_one,
                              "latency_pair_tokens", (json_int_t)st_one.tokens,
                              "open_to_first_score_s", open_to_first,
                              "first_pair_tokens", (json_int_t)st_first.tokens,
                              "peak_rss_mib", ru.ru_maxrss / 1024.0);
        if (o->compare_share)
            json_object_set_new(r, "no_share", json_pack("{s:I,s:f,s:f}", "tokens_computed",
                                (json_int_t)st_noshare.tokens_computed, "seconds", t_noshare,
                                "tokens_per_s", (double)st_noshare.tokens / t_noshare));
        if (o->as_json) {
            cli_print_json(r);
        } else {
            printf("model            %s\n", o->path); /* threads in use: the device line */
            printf("device           %s\n", device);
            printf("cpu kernels      %s\n", qrr_cpu_kernels());
            printf("request          1 query x %d documents, %zu prompt tokens (%zu computed)\n",
                   o->docs, st.tokens, st.tokens_computed);
            printf("throughput       %.1f tokens/s, %.2f pairs/s (%.3f s per request, median of %d)\n",
                   (double)st.tokens / t_batch, o->docs / t_batch, t_batch, o->repeat);
            if (o->compare_share)
                printf("without sharing  %.1f tokens/s, %.3f s per request, %zu tokens computed (%.2fx slower)\n",
                       (double)st_noshare.tokens / t_noshare, t_noshare, st_noshare.tokens_computed,
                       t_noshare / t_batch);
            printf("latency          %.1f ms for one pair of %zu tokens\n", t_one * 1e3, st_one.tokens);
            printf("open-to-first    %.3f s (open, check every checksum%s, score one pair of %zu tokens)\n",
                   open_to_first, o->model.verify ? "" : " but the weights'", st_first.tokens);
            printf("peak RSS         %.1f MiB\n", ru.ru_maxrss / 1024.0);
        }
        json_decref(r);
    }
    /* Written once the run has succeeded, so that writing it times nothing and a failed run
     * leaves no file. */
    if (rc == QRR_OK && o->workload_out && write_workload(o->workload_out, query, docs, o->docs) != 0) {
        fprintf(stderr, "qrr bench: cannot write the workload to %s: %s\n", o->workload_out,
                strerror(errno));
        rc = QRR_ERR_IO;
    }
    qrr_ctx_free(ctx2);
    qrr_ctx_free(ctx);
    qrr_model_close(m);
    for (int i = 0; i < o->docs; i++) free((void *)docs[i]);
    free(docs);
    return rc == QRR_OK ? QRR_EXIT_OK : QRR_EXIT_FAIL;
}

static void help(void)
{
    printf("usage: qrr bench MODEL.qrr [--threads N] [--docs N] [--min-words N] [--max-words N]\n"
           "                 [--repeat N] [--seed N] [--compare-share] [--no-verify] [--json]\n"
           "                 [--write-workload FILE.jsonl]\n\n"
           "Scores one synthetic query against --docs documents (default 32) of --min-words to\n"
           "--max-words words (default 50..400, skewed short: mean about 200 tokens), --repeat\n"
           "times (default 3), and prints the median throughput, one-pair latency,\n"
           "open-to-first-score time and peak RSS. --compare-share also times the request with\n"
           "the shared prompt prefix switched off. --write-workload saves the query and\n"
           "documents as JSON lines ({\"query\", \"document\"}) for a peer to score the same\n"
           "prompts, once the run has succeeded (written whole or not at all; refused before\n"
           "the run when it is MODEL.qrr or not a regular file).\n\n"
           "  --threads N   CPU threads (default: one per CPU)\n"
           "  --seed N      the documents' random seed (default 42)\n"
           "  --no-verify   skip the weight checksums at open\n"
           "  --json        one JSON object instead of the text lines\n\n"
           "Exit: 0 measured, 1 the model or a run failed (or the workload could not be\n"
           "written), 2 usage error.\n");
}

int qrr_cmd_bench(int argc, char **argv)
{
    bench_opts o = {.model = cli_model_opts_default(), .docs = 32, .min_words = 50,
                    .max_words = 400, .repeat = 3, .seed = 42};
    long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        int r = cli_common_option("bench", CLI_OPT_THREADS | CLI_OPT_VERIFY, help, argc, argv, &i,
                                  &o.model);
        if (r == CLI_OPT_TAKEN) continue;
        if (r != CLI_OPT_OTHER) return r;
#define INT_OPT(flag, field, lo, hi) \
        if (!strcmp(a, flag) && has) { \
            if (cli_parse_int(argv[++i], lo, hi, &v)) \
                return cli_usage_error("bench", flag " must be an integer in [%ld, %ld]", (long)(lo), (long)(hi)); \
            o.field = (int)v; \
            continue; \
        }
        INT_OPT("--docs", docs, 1, 100000)
        INT_OPT("--min-words", min_words, 1, 100000)
        INT_OPT("--max-words", max_words, 1, 100000)
        INT_OPT("--repeat", repeat, 1, 1000)
#undef INT_OPT
        if (!strcmp(a, "--seed") && has) {
            if (cli_parse_int(argv[++i], 0, 1L << 40, &v)) return cli_usage_error("bench", "--seed must be a non-negative integer");
            o.seed = (uint64_t)v;
        }
        else if (!strcmp(a, "--write-workload") && has) o.workload_out = argv[++i];
        else if (!strcmp(a, "--compare-share")) o.compare_share = 1;
        else if (!strcmp(a, "--json")) o.as_json = 1;
        else if (a[0] == '-') return cli_usage_error("bench", "unknown or incomplete option '%s'", a);
        else if (!o.path && !cli_is_split_value(a)) o.path = a;
        else return cli_unexpected_argument("bench", argv, i);
    }
    if (!o.path) return cli_usage_error("bench", "missing MODEL.qrr");
    if (o.min_words > o.max_words) return cli_usage_error("bench", "--min-words exceeds --max-words");
    int usage;
    const char *why = o.workload_out ? workload_refused(o.workload_out, o.path, &usage) : NULL;
    if (why && usage) return cli_usage_error("bench", "--write-workload %s %s", o.workload_out, why);
    if (why) {
        fprintf(stderr, "qrr bench: cannot write the workload to %s: %s\n", o.workload_out, why);
        return QRR_EXIT_FAIL;
    }
    return run(&o);
}
