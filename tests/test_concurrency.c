/* test_concurrency.c — one qrr_model shared by 8 threads, each with its own qrr_ctx (one
 * compute thread), each scoring its own requests (queries, documents, instructions differ)
 * several times: every result must be bit-identical to the same request scored alone on one
 * thread beforehand. Also: tokenizing through the shared model, qrr_last_error() being
 * per thread, and an int8 model's first contexts made by several threads at once. Built with
 * SANITIZE=thread this is the data-race check of the model; since Criterion's runner cannot
 * start under ThreadSanitizer (its shared arena fails to map), that build has its own main()
 * that runs the same tests one after the other. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>

#include "qrr.h"
#include "qrr_test_util.h"

#if defined(__SANITIZE_THREAD__)
#define STANDALONE 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STANDALONE 1
#endif
#endif

/* cr_assert under Criterion; print and exit in the standalone build. */
#ifdef STANDALONE
#define CHECK(cond, ...)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "test_concurrency: %s:%d: FAILED: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                         \
            fputc('\n', stderr);                                                  \
            exit(1);                                                              \
        }                                                                         \
    } while (0)
#define TEST(name) static void name(void)
#else
#define CHECK(cond, ...) cr_assert(cond, __VA_ARGS__)
#define TEST(name) Test(concurrency, name)
#endif

#define N_THREADS 8
#define N_ROUNDS 4
#define N_DOCS 5

static char tmp[256], path[1024];
static qrr_model *model;

typedef struct request {
    char query[128], instruction[128];
    char *docs[N_DOCS];
    qrr_score_params sp;
    float expect_s[N_DOCS], expect_l[N_DOCS]; /* scored alone, single-threaded */
    int32_t expect_ids[64];
    size_t n_expect_ids;
} request;

static request reqs[N_THREADS];

typedef struct worker {
    int index;
    int failures;
    char first_failure[512];
} worker;

/* The tiny-untied reference model at f16, converted by $QRR_BUILD/qconvert (the same steps as
 * qrr_test_util.h's tu_convert, without Criterion's asserts). */
static void setup(void)
{
    snprintf(tmp, sizeof tmp, "/tmp/qrr-test-XXXXXX");
    CHECK(mkdtemp(tmp) != NULL, "mkdtemp failed");
    char dir[512], why[1600];
    snprintf(dir, sizeof dir, "%s/tiny-untied", tmp);
    snprintf(path, sizeof path, "%s/tiny-untied-f16.qrr", tmp);
    CHECK(tu_model_links("tiny-untied", dir, why, sizeof why) == 0, "%s", why);
    CHECK(tu_system("'%s/qconvert' '%s' -o '%s' --dtype f16 --quiet", tu_build(), dir,
                    path) == 0,
          "could not convert tiny-untied (QRR_BUILD=%s, QRR_REFERENCE=%s)", tu_build(),
          tu_reference());
    CHECK(qrr_model_open(path, qrr_model_default_params(), &model) == QRR_OK, "%s",
          qrr_last_error());
}

static void teardown(void)
{
    for (int t = 0; t < N_THREADS; t++)
        for (int i = 0; i < N_DOCS; i++) {
            free(reqs[t].docs[i]);
            reqs[t].docs[i] = NULL;
        }
    qrr_model_close(model);
    tu_system("rm -rf '%s'", tmp);
}

#ifndef STANDALONE
TestSuite(concurrency, .init = setup, .fini = teardown, .timeout = 300);
#endif

static qrr_ctx *one_thread_ctx(void)
{
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = 1;
    qrr_ctx *c = NULL;
    return qrr_ctx_create(model, cp, &c) == QRR_OK ? c : NULL;
}

/* Request t: its own query, instruction (or the default), max_length and documents of
 * different lengths, some long enough to be truncated. */
static void make_request(int t, request *r)
{
    static const char *const topics[] = {"rivers", "capitals", "gravity", "北京", "music",
                                         "numbers", "emoji 😀", "whitespace"};
    snprintf(r->query, sizeof r->query, "Tell me about %s, question %d?", topics[t], t);
    snprintf(r->instruction, sizeof r->instruction, "Judge document relevance for topic %d", t);
    r->sp = qrr_score_default_params();
    r->sp.instruction = t % 3 == 0 ? NULL : r->instruction;
    r->sp.max_length = t % 2 ? 0 : 160 + 16 * t;
    for (int i = 0; i < N_DOCS; i++) {
        size_t reps = 1 + (size_t)((t * 7 + i * 13) % 40);
        char piece[96];
        int k = snprintf(piece, sizeof piece, "%s fact %d-%d. ", topics[(t + i) % 8], t, i);
        r->docs[i] = malloc((size_t)k * reps + 1);
        for (size_t j = 0; j < reps; j++) memcpy(r->docs[i] + (size_t)k * j, piece, (size_t)k);
        r->docs[i][(size_t)k * reps] = '\0';
    }
}

/* Requests first .. first + n - 1 into reqs[0 .. n), each scored alone on c: what every
 * later call for it must return, bit for bit. */
static void expect_alone(qrr_ctx *c, int n, int first)
{
    for (int t = 0; t < n; t++) {
        make_request(first + t, &reqs[t]);
        CHECK(qrr_ctx_score(c, reqs[t].query, (const char *const *)reqs[t].docs, N_DOCS,
                            reqs[t].sp, reqs[t].expect_s, reqs[t].expect_l) == QRR_OK, "%s",
              qrr_last_error());
    }
}

static int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

static void fail(worker *w, const char *fmt, int a, int b)
{
    if (!w->failures++) snprintf(w->first_failure, sizeof w->first_failure, fmt, w->index, a, b);
}

static void *run_worker(void *arg)
{
    worker *w = arg;
    request *r = &reqs[w->index];
    qrr_ctx *c = one_thread_ctx();
    if (!c) {
        fail(w, "thread %d: qrr_ctx_create failed (%d %d)", 0, 0);
        return NULL;
    }
    for (int round = 0; round < N_ROUNDS; round++) {
        float s[N_DOCS], l[N_DOCS];
        int rc = qrr_ctx_score(c, r->query, (const char *const *)r->docs, N_DOCS, r->sp, s, l);
        if (rc != QRR_OK) fail(w, "thread %d round %d: status %d", round, rc);
        else if (!same_bits(s, r->expect_s, N_DOCS) || !same_bits(l, r->expect_l, N_DOCS))
            fail(w, "thread %d round %d: results differ from single-threaded ones (%d)", round, 0);

        /* Tokenizing and prompt building share the model's tokenizer. */
        int32_t ids[64];
        size_t n = 0;
        rc = qrr_model_tokenize(model, r->query, strlen(r->query), ids, 64, &n);
        if (rc != QRR_OK || n != r->n_expect_ids || memcmp(ids, r->expect_ids, n * sizeof *ids))
            fail(w, "thread %d round %d: tokenize differs (%d)", round, rc);

        /* An error here must show in this thread's message only. */
        const char *bad[] = {r->docs[0], r->docs[1], NULL};
        bad[w->index % 2] = NULL;
        rc = qrr_ctx_score(c, r->query, bad, 3, r->sp, s, l);
        char want[64];
        snprintf(want, sizeof want, "document %d is NULL", w->index % 2);
        if (rc != QRR_ERR_INVALID_ARG || !strstr(qrr_last_error(), want))
            fail(w, "thread %d round %d: wrong error %d for a NULL document", round, rc);
    }
    qrr_ctx_free(c);
    return NULL;
}

TEST(eight_threads_one_model_bit_identical)
{
    /* The expected results: every request alone, one thread, before any concurrency. */
    qrr_ctx *c = one_thread_ctx();
    CHECK(c != NULL, "%s", qrr_last_error());
    for (int t = 0; t < N_THREADS; t++) {
        request *r = &reqs[t];
        make_request(t, r);
        CHECK(qrr_ctx_score(c, r->query, (const char *const *)r->docs, N_DOCS, r->sp,
                            r->expect_s, r->expect_l) == QRR_OK, "%s", qrr_last_error());
        for (int i = 0; i < N_DOCS; i++)
            CHECK(isfinite(r->expect_s[i]), "doc %d: %g", i, (double)r->expect_s[i]);
        CHECK(qrr_model_tokenize(model, r->query, strlen(r->query), r->expect_ids, 64,
                                 &r->n_expect_ids) == QRR_OK, "%s", qrr_last_error());
    }
    /* Requests differ, so equal results would mean the test checks nothing. */
    CHECK(!same_bits(reqs[0].expect_s, reqs[1].expect_s, N_DOCS), "requests 0 and 1 score alike");
    qrr_ctx_free(c);

    pthread_t th[N_THREADS];
    worker w[N_THREADS];
    for (int t = 0; t < N_THREADS; t++) {
        w[t] = (worker){.index = t};
        CHECK(pthread_create(&th[t], NULL, run_worker, &w[t]) == 0, "pthread_create");
    }
    for (int t = 0; t < N_THREADS; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < N_THREADS; t++)
        CHECK(w[t].failures == 0, "thread %d: %d failures; first: %s", t, w[t].failures,
              w[t].first_failure);
}

/* Contexts with two compute threads each (their pools run at the same time), shared model:
 * results equal those of a context of the same size used alone. */
typedef struct pooled_job {
    const request *r;
    float s[N_DOCS], l[N_DOCS];
    int rc;
} pooled_job;

static qrr_ctx *two_thread_ctx(const qrr_model *m)
{
    qrr_ctx_params cp = qrr_ctx_default_params();
    cp.n_threads = 2;
    qrr_ctx *c = NULL;
    return qrr_ctx_create(m, cp, &c) == QRR_OK ? c : NULL;
}

static void *run_pooled(void *arg)
{
    pooled_job *j = arg;
    qrr_ctx *c = two_thread_ctx(model);
    j->rc = QRR_ERR_NOMEM;
    if (!c) return NULL;
    for (int round = 0; round < N_ROUNDS && (round == 0 || j->rc == QRR_OK); round++)
        j->rc = qrr_ctx_score(c, j->r->query, (const char *const *)j->r->docs, N_DOCS, j->r->sp,
                              j->s, j->l);
    qrr_ctx_free(c);
    return NULL;
}

TEST(pooled_contexts_in_parallel)
{
    enum { N = 3 };
    qrr_ctx *c = two_thread_ctx(model);
    CHECK(c != NULL, "%s", qrr_last_error());
    expect_alone(c, N, 3);
    qrr_ctx_free(c);
    pooled_job jobs[N];
    pthread_t th[N];
    for (int t = 0; t < N; t++) {
        jobs[t] = (pooled_job){.r = &reqs[t]};
        CHECK(pthread_create(&th[t], NULL, run_pooled, &jobs[t]) == 0, "pthread_create");
    }
    for (int t = 0; t < N; t++) pthread_join(th[t], NULL);
    for (int t = 0; t < N; t++) {
        CHECK(jobs[t].rc == QRR_OK, "job %d: %d", t, jobs[t].rc);
        CHECK(same_bits(jobs[t].s, reqs[t].expect_s, N_DOCS) &&
                  same_bits(jobs[t].l, reqs[t].expect_l, N_DOCS),
                  "job %d: results differ from the context used alone", t);
    }
}

/* One context used by two threads at once, against the rule of one thread at a time: a
 * call that finds the other running is refused with a message, and every call that runs
 * gives the results of the request scored alone (it used to overwrite the other's scratch
 * and return wrong scores without an error). */
typedef struct sharer {
    qrr_ctx *c;
    const request *r;
    atomic_int *refusals; /* by both threads: each runs until one was refused and its own
                           * call ran, or time is up */
    int ok, refused, wrong, other_error;
    char first_error[256];
} sharer;

static void *run_sharer(void *arg)
{
    sharer *sh = arg;
    const double until = tu_now() + 10.0;
    while (tu_now() < until && !(atomic_load(sh->refusals) > 0 && sh->ok > 0)) {
        float s[N_DOCS], l[N_DOCS];
        int rc = qrr_ctx_score(sh->c, sh->r->query, (const char *const *)sh->r->docs, N_DOCS,
                               sh->r->sp, s, l);
        if (rc == QRR_OK) {
            sh->ok++;
            sh->wrong += !same_bits(s, sh->r->expect_s, N_DOCS) ||
                         !same_bits(l, sh->r->expect_l, N_DOCS);
        } else if (rc == QRR_ERR_INVALID_ARG && strstr(qrr_last_error(), "in use by another")) {
            sh->refused++;
            atomic_fetch_add(sh->refusals, 1);
            usleep(200); /* let the other call finish, so that this one gets its turn */
        } else if (sh->other_error++ == 0) {
            snprintf(sh->first_error, sizeof sh->first_error, "%d %s", rc, qrr_last_error());
        }
    }
    return NULL;
}

TEST(a_shared_context_refuses_a_second_thread)
{
    qrr_ctx *c = one_thread_ctx();
    CHECK(c != NULL, "%s", qrr_last_error());
    expect_alone(c, 2, 5);
    atomic_int refusals;
    atomic_init(&refusals, 0);
    sharer sh[2];
    pthread_t th[2];
    for (int t = 0; t < 2; t++) {
        sh[t] = (sharer){.c = c, .r = &reqs[t], .refusals = &refusals};
        CHECK(pthread_create(&th[t], NULL, run_sharer, &sh[t]) == 0, "pthread_create");
    }
    for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
    qrr_ctx_free(c);
    for (int t = 0; t < 2; t++) {
        printf("concurrency: shared context, thread %d: %d calls ran, %d refused\n", t, sh[t].ok,
               sh[t].refused);
        CHECK(sh[t].wrong == 0, "thread %d: %d of %d calls returned wrong scores", t,
              sh[t].wrong, sh[t].ok);
        CHECK(sh[t].other_error == 0, "thread %d: unexpected error %s", t, sh[t].first_error);
    }
    /* (a thread may be refused every time on a slow machine: only the total must show) */
    CHECK(sh[0].ok + sh[1].ok > 0, "no call ran");
    CHECK(sh[0].refused + sh[1].refused > 0, "no call was refused in 10 s of overlapping calls");
}

/* The first CPU contexts of an int8 model, made by four threads at once: one of them packs
 * the model's weights for the int8 GEMM (where this CPU's GEMM reads them packed) while the
 * others wait, and every thread's results equal those of the same model opened separately
 * and used from one thread. */
#define FIRST_CTX_THREADS 4

typedef struct first_ctx_job {
    const qrr_model *m;
    const request *r;
    atomic_int *ready; /* the threads start their qrr_ctx_create together */
    float s[N_DOCS], l[N_DOCS];
    int rc;
} first_ctx_job;

static void *run_first_ctx(void *arg)
{
    first_ctx_job *j = arg;
    atomic_fetch_add(j->ready, 1);
    while (atomic_load(j->ready) < FIRST_CTX_THREADS) usleep(100);
    qrr_ctx *c = two_thread_ctx(j->m);
    j->rc = c ? qrr_ctx_score(c, j->r->query, (const char *const *)j->r->docs, N_DOCS,
                              j->r->sp, j->s, j->l)
              : QRR_ERR_NOMEM;
    qrr_ctx_free(c);
    return NULL;
}

TEST(int8_first_contexts_made_at_once)
{
    enum { N = FIRST_CTX_THREADS };
    char dir[512], int8_path[1100];
    snprintf(dir, sizeof dir, "%s/tiny-untied", tmp);
    snprintf(int8_path, sizeof int8_path, "%s/tiny-untied-int8.qrr", tmp);
    CHECK(tu_system("'%s/qconvert' '%s' -o '%s' --dtype int8 --quiet", tu_build(), dir,
                    int8_path) == 0, "could not convert tiny-untied to int8");
    qrr_model *alone = NULL, *shared = NULL;
    CHECK(qrr_model_open(int8_path, qrr_model_default_params(), &alone) == QRR_OK, "%s",
          qrr_last_error());
    qrr_ctx *c = two_thread_ctx(alone);
    CHECK(c != NULL, "%s", qrr_last_error());
    expect_alone(c, N, 2);
    qrr_ctx_free(c);
    qrr_model_close(alone);
    CHECK(!same_bits(reqs[0].expect_s, reqs[1].expect_s, N_DOCS), "requests 0 and 1 score alike");

    CHECK(qrr_model_open(int8_path, qrr_model_default_params(), &shared) == QRR_OK, "%s",
          qrr_last_error());
    atomic_int ready;
    atomic_init(&ready, 0);
    first_ctx_job jobs[N];
    pthread_t th[N];
    for (int t = 0; t < N; t++) {
        jobs[t] = (first_ctx_job){.m = shared, .r = &reqs[t], .ready = &ready};
        CHECK(pthread_create(&th[t], NULL, run_first_ctx, &jobs[t]) == 0, "pthread_create");
    }
    for (int t = 0; t < N; t++) pthread_join(th[t], NULL);
    qrr_model_close(shared);
    for (int t = 0; t < N; t++) {
        CHECK(jobs[t].rc == QRR_OK, "thread %d: status %d", t, jobs[t].rc);
        CHECK(same_bits(jobs[t].s, reqs[t].expect_s, N_DOCS) &&
                  same_bits(jobs[t].l, reqs[t].expect_l, N_DOCS),
              "thread %d: results differ from the model used from one thread", t);
    }
}

#ifdef STANDALONE
int main(void)
{
    setup();
    eight_threads_one_model_bit_identical();
    teardown();
    setup();
    pooled_contexts_in_parallel();
    teardown();
    setup();
    a_shared_context_refuses_a_second_thread();
    teardown();
    setup();
    int8_first_contexts_made_at_once();
    teardown();
    printf("test_concurrency: 4 tests passed (standalone build)\n");
    return 0;
}
#endif
