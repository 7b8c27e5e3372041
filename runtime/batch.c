/* batch.c — one scoring call's schedule: groups of token-id sequences (each group one
 * request, whose prompts share a prefix) are checked, each group's common prefix is run
 * once, just before the group's first chunk, and the rest of every group's sequences is
 * packed, in order, into forward chunks of at most max_batch_tokens tokens. A chunk may
 * hold the sequences of several groups, each attending to its own group's prefix. The
 * context's prompt head (prompt_head.c) is never run again: it is the prefix of a group
 * that starts with it and has no longer one, and the start of a longer one. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"

#define MAX_CHUNK_SEQS 4096
/* Prefix tokens whose keys/values one chunk may hold (each costs n_layers * 2 * K*D
 * floats: 229 KiB on the 0.6B shape), unless a single group's prefix is longer. */
#define LIVE_PREFIX_TOKENS 512

/* Where one group stands in the schedule. */
typedef struct group_plan {
    size_t prefix;  /* tokens of its shared prefix; 0 = none */
    size_t first;   /* index of its first result in the flat result array */
    int slot;       /* its prefix slot while in flight, else -1 */
    int on_head;    /* its prefix is the first `prefix` tokens of the context's prompt head */
    qrr_prefix_kv head_view; /* the part of the head its prefix starts with (n = 0: none);
                                on_head: all of its prefix (no slot needed) */
} group_plan;

/* The sequences of the chunk being built. */
typedef struct chunk {
    const int32_t **ids;
    int *lens;
    const qrr_prefix_kv **prefix; /* per sequence, NULL = none */
    size_t *out;                  /* per sequence, its index in the flat result array */
    int n;
    size_t tokens, prefix_tokens;
    int shared_prefix;            /* the prefix length of its sequences (CUDA: one for all) */
    const group_plan *prefix_group; /* CUDA: the one group with a prefix in the chunk */
} chunk;

/* Longest common prefix of all sequences, leaving every sequence at least one token. */
static size_t common_prefix(const int32_t *const *ids, const size_t *lens, size_t n)
{
    size_t p = lens[0] - 1;
    for (size_t i = 1; i < n && p > 0; i++) {
        size_t lim = lens[i] - 1 < p ? lens[i] - 1 : p;
        size_t j = 0;
        while (j < lim && ids[i][j] == ids[0][j]) j++;
        p = j;
    }
    return p;
}

/* "sequence 3" in a call of one group, "group 2, sequence 3" otherwise; in a text call's
 * block of documents from first_doc (>= 0), "document 259". */
static void name_sequence(char *buf, size_t cap, size_t n_groups, ptrdiff_t first_doc, size_t g,
                          size_t i)
{
    if (first_doc >= 0) snprintf(buf, cap, "document %zu", (size_t)first_doc + i);
    else if (n_groups == 1) snprintf(buf, cap, "sequence %zu", i);
    else snprintf(buf, cap, "group %zu, sequence %zu", g, i);
}

static int check_groups(const qrr_model *m, const qrr_group *groups, size_t n_groups,
                        ptrdiff_t first_doc, size_t *total_seqs, qrr_diag *d)
{
    size_t max_pos = m->meta->fixed.max_position, seqs = 0;
    char who[64];
    for (size_t g = 0; g < n_groups; g++) {
        const qrr_group *G = &groups[g];
        if (G->n && (!G->ids || !G->lens || (!G->scores && !G->logits)))
            return qrr_fail(d, QRR_ERR_INVALID_ARG, "group %zu: NULL ids, lens or both result "
                            "arrays", g);
        for (size_t i = 0; i < G->n; i++) {
            name_sequence(who, sizeof who, n_groups, first_doc, g, i);
            if (G->lens[i] == 0) return qrr_fail(d, QRR_ERR_INVALID_ARG, "%s is empty", who);
            if (!G->ids[i]) return qrr_fail(d, QRR_ERR_INVALID_ARG, "%s is NULL", who);
            if (G->lens[i] > max_pos)
                return qrr_fail(d, QRR_ERR_INVALID_ARG, "%s has %zu tokens; the model supports "
                                "%zu positions", who, G->lens[i], max_pos);
            for (size_t j = 0; j < G->lens[i]; j++)
                if (G->ids[i][j] < 0 || G->ids[i][j] >= m->V)
                    return qrr_fail(d, QRR_ERR_INVALID_ARG, "%s, token %zu: id %d outside the "
                                    "vocabulary [0, %d)", who, j, (int)G->ids[i][j], m->V);
        }
        seqs += G->n;
    }
    *total_seqs = seqs;
    return QRR_OK;
}

static int on_cuda(const qrr_ctx *c)
{
    return c->cuda != NULL;
}

/* Give group g a prefix slot and run its prefix into it. */
static int start_prefix(qrr_ctx *c, const qrr_group *G, group_plan *p, qrr_diag *d)
{
    int slot = 0;
    while (c->prefix[slot].n > 0) slot++; /* the caller checked that one is free */
    p->slot = slot;
    if (c->cuda) { /* the device holds one prefix; the slot only marks it in use */
        c->prefix[slot].n = (int)p->prefix;
        return c->cuda_fn->forward_prefix(c->m, c->cuda, G->ids[0], (int)p->prefix, d);
    }
    return qrr__forward_prefix(c->m, &c->scratch, c->pool, G->ids[0], (int)p->prefix,
                               p->head_view.n ? &p->head_view : NULL, &c->prefix[slot], d);
}

static int free_slots(const qrr_ctx *c)
{
    int n = 0;
    for (int i = 0; i < QRR_PREFIX_SLOTS; i++) n += c->prefix[i].n == 0;
    return n;
}

/* QRR_ERR_ABORTED when the context's abort callback asks to stop (before a forward pass). */
static int stop_asked(qrr_ctx *c, size_t passes, qrr_diag *d)
{
    if (!c->should_stop || !c->should_stop(c->stop_arg)) return QRR_OK;
    return qrr_fail(d, QRR_ERR_ABORTED, "stopped by the abort callback after %zu forward "
                    "pass%s", passes, passes == 1 ? "" : "es");
}

/* Whether sequence i of group G (plan p) may join chunk k; starts the group's prefix when
 * it is the group's first sequence in flight (*passes counts it). */
static int admit(qrr_ctx *c, chunk *k, const qrr_group *G, group_plan *p, size_t i, int *rc,
                 size_t *passes, qrr_diag *d)
{
    size_t len = G->lens[i] - p->prefix;
    if (k->n > 0) {
        if (k->n == MAX_CHUNK_SEQS) return 0;
        if (k->tokens + len > (size_t)c->params.max_batch_tokens) return 0;
        /* The device attends to one prefix per chunk, the same for every sequence. */
        if (on_cuda(c) && ((int)p->prefix != k->shared_prefix ||
                           (p->prefix && k->prefix_group && k->prefix_group != p)))
            return 0;
        if (p->prefix && !p->on_head && p->slot < 0 &&
            (!free_slots(c) || k->prefix_tokens + p->prefix > LIVE_PREFIX_TOKENS))
            return 0;
    }
    if (p->prefix && !p->on_head && p->slot < 0) {
        if ((*rc = stop_asked(c, *passes, d)) != QRR_OK) return 0;
        if ((*rc = start_prefix(c, G, p, d)) != QRR_OK) return 0;
        ++*passes;
        k->prefix_tokens += p->prefix;
    }
    k->shared_prefix = (int)p->prefix;
    if (p->prefix) k->prefix_group = p;
    k->ids[k->n] = G->ids[i] + p->prefix;
    k->lens[k->n] = (int)len;
    k->prefix[k->n] = p->on_head ? &p->head_view : p->prefix ? &c->prefix[p->slot] : NULL;
    k->out[k->n] = p->first + i;
    k->tokens += len;
    k->n++;
    return 1;
}

static int run_chunk(qrr_ctx *c, const chunk *k, double *delta, qrr_diag *d)
{
    if (c->cuda)
        return c->cuda_fn->forward_score(c->m, c->cuda, k->ids, k->lens, k->n, k->shared_prefix,
                                         delta, d);
    return qrr__forward_score(c->m, &c->scratch, c->pool, k->ids, k->lens, k->n, k->prefix,
                              delta, d);
}

static int schedule(qrr_ctx *c, const qrr_group *groups, size_t n_groups, group_plan *plan,
                    chunk *k, double *chunk_delta, double *result, qrr_diag *d)
{
    int rc = QRR_OK;
    size_t g = 0, i = 0, passes = 0; /* the next sequence to place; forward passes run */
    while (rc == QRR_OK && g < n_groups) {
        k->n = 0;
        k->tokens = k->prefix_tokens = 0;
        k->prefix_group = NULL;
        for (int s = 0; s < QRR_PREFIX_SLOTS; s++) /* prefixes carried over from the last chunk */
            if (c->prefix[s].n > 0) k->prefix_tokens += (size_t)c->prefix[s].n;
        while (rc == QRR_OK && g < n_groups) {
            if (i == groups[g].n) {
                g++, i = 0;
                continue;
            }
            if (!admit(c, k, &groups[g], &plan[g], i, &rc, &passes, d)) break;
            i++;
        }
        if (rc == QRR_OK) rc = stop_asked(c, passes, d);
        if (rc == QRR_OK) rc = run_chunk(c, k, chunk_delta, d);
        passes++;
        for (int s = 0; rc == QRR_OK && s < k->n; s++) result[k->out[s]] = chunk_delta[s];
        /* Groups done by now give their prefix slot back (the loop above stops either at
         * the end or before a sequence of group g, which is then not done). */
        for (size_t h = 0; h < n_groups && h <= g; h++)
            if (plan[h].slot >= 0 && (h < g || g == n_groups)) {
                c->prefix[plan[h].slot].n = 0;
                plan[h].slot = -1;
            }
    }
    return rc;
}

int qrr__score_groups(qrr_ctx *c, const qrr_group *groups, size_t n_groups, ptrdiff_t first_doc,
                      qrr_diag *d)
{
    size_t total = 0;
    int rc = check_groups(c->m, groups, n_groups, first_doc, &total, d);
    if (rc != QRR_OK || total == 0) return rc;
    for (int s = 0; s < QRR_PREFIX_SLOTS; s++) c->prefix[s].n = 0;

    group_plan *plan = calloc(n_groups, sizeof *plan);
    double *result = malloc(total * sizeof *result);
    size_t cap = total < MAX_CHUNK_SEQS ? total : MAX_CHUNK_SEQS;
    chunk k = {.ids = malloc(cap * sizeof *k.ids), .lens = malloc(cap * sizeof *k.lens),
               .prefix = malloc(cap * sizeof *k.prefix), .out = malloc(cap * sizeof *k.out)};
    double *chunk_delta = malloc(cap * sizeof *chunk_delta);
    if (!plan || !result || !k.ids || !k.lens || !k.prefix || !k.out || !chunk_delta)
        rc = qrr_fail(d, QRR_ERR_NOMEM, "out of memory scheduling %zu sequences", total);

    for (size_t g = 0, first = 0; rc == QRR_OK && g < n_groups; first += groups[g].n, g++) {
        const qrr_group *G = &groups[g];
        size_t P = c->params.share_prefix && G->n > 1 ? common_prefix(G->ids, G->lens, G->n) : 0;
        plan[g] = (group_plan){P >= MIN_SHARED_PREFIX ? P : 0, first, -1, 0, {0}};
        /* The part of the prompt head the group starts with is never computed again: it
         * is the whole prefix when the group has no longer one of its own, else where the
         * computing of its own prefix starts. */
        size_t h = qrr__head_prefix(c, G, &c->stats.tokens_computed);
        if (h && h >= plan[g].prefix) plan[g].prefix = h, plan[g].on_head = 1;
        if (h) plan[g].head_view = c->head, plan[g].head_view.n = (int)h;
        for (size_t i = 0; i < G->n; i++) c->stats.tokens += G->lens[i];
        c->stats.tokens_computed += G->n ? plan[g].prefix - h : 0;
        for (size_t i = 0; i < G->n; i++) c->stats.tokens_computed += G->lens[i] - plan[g].prefix;
    }
    if (rc == QRR_OK) rc = schedule(c, groups, n_groups, plan, &k, chunk_delta, result, d);

    /* No result is written unless every logit is finite. */
    for (size_t g = 0; rc == QRR_OK && g < n_groups; g++)
        for (size_t i = 0; rc == QRR_OK && i < groups[g].n; i++) {
            double x = result[plan[g].first + i];
            if (!isfinite(x)) {
                char who[64];
                name_sequence(who, sizeof who, n_groups, first_doc, g, i);
                rc = qrr_fail(d, QRR_ERR_NUMERIC, "%s: the logit is not finite (%g); the "
                              "model's weights or activations overflowed", who, x);
            }
        }
    for (size_t g = 0; rc == QRR_OK && g < n_groups; g++) {
        const qrr_group *G = &groups[g];
        for (size_t i = 0; i < G->n; i++) {
            double x = result[plan[g].first + i];
            if (G->scores) G->scores[i] = (float)(1.0 / (1.0 + exp(-x)));
            if (G->logits) G->logits[i] = (float)x;
        }
    }
    for (int s = 0; s < QRR_PREFIX_SLOTS; s++) c->prefix[s].n = 0;
    free(plan);
    free(result);
    free(k.ids);
    free(k.lens);
    free(k.prefix);
    free(k.out);
    free(chunk_delta);
    return rc;
}
