/* prompt_head.c — the prompt head a CPU context keeps: the keys and values of the opening
 * that every prompt with the model's default instruction starts with (the system turn, then
 * the instruction up to "<Query>:"), computed once in the context's life. A group whose own
 * prompts share no prefix worth computing once (a request of one document, say) attends to
 * as much of the head as its prompts start with, instead of computing those tokens again;
 * a group with a longer prefix of its own computes only the part after the head.
 * Keys and values of positions 0..h-1 depend only on tokens 0..h-1, so any leading part of
 * the head is exact for a prompt that starts with it. */
#include "context.h"

/* The head's ids are the whole prompt of an empty query and document with the default
 * instruction; real prompts share its opening up to where their query begins. */
static int build(qrr_ctx *c, size_t *computed)
{
    qrr_diag d;
    qrr_diag_clear(&d);
    qrr_prompt_spec spec;
    qrr_score_params sp = qrr_score_default_params();
    if (qrr__prompt_spec(c->m, "", 0, &sp, &spec, &d) != QRR_OK ||
        qrr__prompt_build(c->m, &spec, "", 0, &c->head_ids, &d) != QRR_OK ||
        c->head_ids.n < MIN_SHARED_PREFIX || c->head_ids.n > INT32_MAX)
        return 0;
    if (qrr__forward_prefix(c->m, &c->scratch, c->pool, c->head_ids.ids, (int)c->head_ids.n,
                            NULL, &c->head, &d) != QRR_OK)
        return 0;
    *computed += c->head_ids.n;
    return 1;
}

size_t qrr__head_prefix(qrr_ctx *c, const qrr_group *G, size_t *computed)
{
    if (c->cuda) return 0; /* the device holds one prefix per chunk, its group's own */
    if (!c->params.share_prefix || c->head_state < 0 || G->n == 0) return 0;
    if (c->head_state == 0) {
        if (!build(c, computed)) { /* no head for this context: never tried again */
            qrr__head_free(c);
            c->head_state = -1;
            return 0;
        }
        c->head_state = 1;
    }
    size_t h = c->head_ids.n;
    for (size_t i = 0; i < G->n && h > 0; i++) {
        size_t lim = G->lens[i] - 1 < h ? G->lens[i] - 1 : h, j = 0;
        while (j < lim && G->ids[i][j] == c->head_ids.ids[j]) j++;
        h = j;
    }
    return h >= MIN_SHARED_PREFIX ? h : 0;
}

void qrr__head_free(qrr_ctx *c)
{
    qrr__prefix_free(&c->head);
    qrr__ids_free(&c->head_ids);
    c->head_state = 0;
}
