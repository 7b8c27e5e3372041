/* context.c — scoring contexts: parameters, creation (thread pool, device state), freeing,
 * giving back memory a large call grew, and the token counts of the last call. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "context.h"

qrr_ctx_params qrr_ctx_default_params(void)
{
    qrr_ctx_params p = {.n_threads = 0, .device = QRR_DEVICE_CPU, .max_batch_tokens = 0,
                          .share_prefix = 1};
    return p;
}

int qrr_default_max_batch_tokens(qrr_device device)
{
    return device == QRR_DEVICE_CPU ? 2048 : device == QRR_DEVICE_CUDA ? 8192 : 0;
}

int qrr_ctx_create(const qrr_model *m, qrr_ctx_params params, qrr_ctx **out)
{
    if (!m || !out) return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_ctx_create: NULL argument");
    *out = NULL;
    if (params.device != QRR_DEVICE_CPU && params.device != QRR_DEVICE_CUDA)
        return qrr__errorf(QRR_ERR_INVALID_ARG, "unknown device %d", (int)params.device);
    if (params.n_threads < 0 || params.n_threads > 1024)
        return qrr__errorf(QRR_ERR_INVALID_ARG, "n_threads %d out of range [0, 1024]",
                           params.n_threads);
    if (params.max_batch_tokens < 0)
        return qrr__errorf(QRR_ERR_INVALID_ARG, "max_batch_tokens %d is negative",
                           params.max_batch_tokens);
    if (params.n_threads == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        params.n_threads = n > 0 && n <= 1024 ? (int)n : 1;
    }
    if (params.max_batch_tokens == 0)
        params.max_batch_tokens = qrr_default_max_batch_tokens(params.device);
    qrr_diag d;
    qrr_diag_clear(&d);
    const qrr_cuda_module *cuda_fn = NULL;
    if (params.device == QRR_DEVICE_CUDA && !(cuda_fn = qrr__cuda_module(&d)))
        return qrr__set_error(&d);
    qrr_ctx *c = calloc(1, sizeof *c);
    if (!c) return qrr__errorf(QRR_ERR_NOMEM, "out of memory");
    c->m = m;
    c->params = params;
    atomic_init(&c->busy, 0);
    atomic_init(&c->scoring_thread, NULL);
    c->pool = qrr_pool_create(params.n_threads);
    if (!c->pool) {
        free(c);
        return qrr__errorf(QRR_ERR_NOMEM, "could not start %d threads", params.n_threads);
    }
    if (params.device == QRR_DEVICE_CPU) qrr__model_pack_for_cpu(m, c->pool);
    c->cuda_fn = cuda_fn;
    if (cuda_fn && cuda_fn->ctx_create(m, &c->cuda, &d) != QRR_OK) {
        qrr_ctx_free(c);
        return qrr__set_error(&d);
    }
    *out = c;
    return QRR_OK;
}

void qrr_ctx_free(qrr_ctx *c)
{
    if (!c) return;
    if (c->cuda) c->cuda_fn->ctx_free(c->cuda);
    qrr_pool_free(c->pool);
    qrr__scratch_free(&c->scratch);
    for (int i = 0; i < QRR_PREFIX_SLOTS; i++) qrr__prefix_free(&c->prefix[i]);
    qrr__head_free(c);
    for (size_t i = 0; i < c->cap_prompts; i++) qrr__ids_free(&c->prompts[i]);
    free(c->prompts);
    free(c);
}

/* Give back scratch that one request with long prompts grew beyond what a chunk of the
 * usual size needs, so a context's memory does not stay at its largest request's size. */
void qrr__ctx_release_large(qrr_ctx *c)
{
    size_t keep = (size_t)c->params.max_batch_tokens;
    int released = qrr__scratch_trim(&c->scratch, keep);
    for (int i = 0; i < QRR_PREFIX_SLOTS; i++)
        if ((size_t)c->prefix[i].cap > keep) {
            qrr__prefix_free(&c->prefix[i]);
            released = 1;
        }
    for (size_t i = 0; i < c->cap_prompts; i++)
        if (c->prompts[i].cap > keep) {
            qrr__ids_free(&c->prompts[i]);
            released = 1;
        }
#ifdef __GLIBC__
    if (released) malloc_trim(0); /* hand freed heap pages back to the system */
#else
    (void)released;
#endif
}

qrr_stats qrr_ctx_last_stats(const qrr_ctx *c)
{
    qrr_stats none = {0, 0};
    return c ? c->stats : none;
}

int qrr_ctx_threads(const qrr_ctx *c)
{
    return c ? c->params.n_threads : 0;
}

void qrr_ctx_set_abort(qrr_ctx *c, int (*should_stop)(void *arg), void *arg)
{
    if (!c) return;
    c->should_stop = should_stop;
    c->stop_arg = should_stop ? arg : NULL;
}

int qrr_ctx_describe(const qrr_ctx *c, char *buf, size_t cap)
{
    if (!c || !buf || !cap)
        return qrr__errorf(QRR_ERR_INVALID_ARG, "qrr_ctx_describe: NULL context or buffer, or "
                           "cap 0");
    int n;
    if (c->cuda) {
        qrr_cuda_info i;
        c->cuda_fn->info(c->cuda, &i);
        char tune[64] = "";
        if (i.gemm_tuning)
            snprintf(tune, sizeof tune, "; GEMM tuning on (%ld shapes timed)", i.gemm_tuned);
        n = snprintf(buf, cap, "cuda: %s; int8 %s (%d of %d int8 weights on cuBLASLt, %d refused "
                     "by it); attention %s; graphs %s (%ld captured, %ld graph launches%s%s); %.1f MiB "
                     "of weights uploaded in %.2f s; %.1f MiB of scratch%s%s", i.device,
                     i.int8_mode, i.w8a8_weights, i.int8_weights, i.int8_refused, i.attention,
                     i.graphs, i.graphs_captured, i.graph_launches,
                     i.graphs_off_why ? ", turned off: " : "",
                     i.graphs_off_why ? i.graphs_off_why : "", (double)i.weight_bytes / 1048576.0,
                     i.upload_seconds, (double)i.scratch_bytes / 1048576.0,
                     i.sync ? "; QRR_CUDA_SYNC=1" : "", tune);
    } else
        n = snprintf(buf, cap, "cpu, %d thread%s, %s %s GEMM kernels, %s attention",
                     c->params.n_threads, c->params.n_threads == 1 ? "" : "s",
                     qrr_dtype_name(c->m->meta->fixed.weight_dtype),
                     qrr_cpu_gemm_impl(c->m->meta->fixed.weight_dtype), qrr_cpu_attention_impl());
    if (n < 0 || (size_t)n >= cap)
        return qrr__errorf(QRR_ERR_BUFFER_TOO_SMALL, "qrr_ctx_describe: %d bytes needed", n + 1);
    return QRR_OK;
}

const char *qrr_cpu_kernels(void)
{
    return qrr_cpu_describe();
}
