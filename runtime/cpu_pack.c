/* cpu_pack.c — the model's int8 projection weights in the layout this CPU's int8 GEMM reads
 * (qrr_cpu_i8_pack), made once, by the first CPU context created on the model: otherwise
 * every GEMM call packs each weight panel it reads, which was most of a one-pair forward's
 * GEMM time. A model used only on CUDA never pays for it. Where the model is a mapped file,
 * each weight's pages are dropped from the process once packed (they are clean pages of the
 * file, read again from it if touched), so the process holds those weights once. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "model.h"

#define LAYER_WEIGHTS 7

static pthread_mutex_t pack_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct pack_job {
    int release;        /* the weights are pages of a mapped file: drop them once packed */
    qrr_cpu_weight **w; /* the weights to pack */
    size_t *offset;     /* where each one's packed copy starts in mem */
    size_t n;
    uint8_t *mem;
} pack_job;

/* Drop the whole pages inside [p, p + len) from this process's memory. */
static void release_pages(const void *p, size_t len)
{
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    uintptr_t b = ((uintptr_t)p + page - 1) & ~(page - 1), e = ((uintptr_t)p + len) & ~(page - 1);
    if (e > b) madvise((void *)b, e - b, MADV_DONTNEED);
}

static void pack_part(void *arg, int ti, int nt)
{
    pack_job *j = arg;
    for (size_t i = (size_t)ti; i < j->n; i += (size_t)nt) {
        qrr_cpu_weight *w = j->w[i];
        qrr_cpu_i8_pack(w, j->mem + j->offset[i]);
        if (j->release) release_pages(w->data, (size_t)w->n * (size_t)w->k);
    }
}

/* Without memory for it, the weights stay as stored: the GEMM packs them call by call and
 * gives the same results. */
static void pack_all(qrr_model *m, qrr_pool *pool)
{
    size_t cap = (size_t)m->n_layers * LAYER_WEIGHTS, n = 0, total = 0;
    qrr_cpu_weight **w = malloc(cap * sizeof *w);
    size_t *offset = malloc(cap * sizeof *offset);
    for (int l = 0; w && offset && l < m->n_layers; l++) {
        qrr_layer *L = &m->layers[l];
        qrr_cpu_weight *all[LAYER_WEIGHTS] = {&L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down};
        for (int i = 0; i < LAYER_WEIGHTS; i++) {
            size_t bytes = qrr_cpu_i8_packed_size(all[i]);
            if (!bytes) continue;
            w[n] = all[i];
            offset[n++] = total;
            total += (bytes + 63) / 64 * 64;
        }
    }
    uint8_t *mem = n ? aligned_alloc(64, total) : NULL;
    if (mem) {
        pack_job job = {.release = m->map != NULL, .w = w, .offset = offset, .n = n, .mem = mem};
        qrr_pool_run(pool, pack_part, &job);
        m->cpu_packed_weights = mem;
    }
    free(w);
    free(offset);
}

void qrr__model_pack_for_cpu(const qrr_model *model, qrr_pool *pool)
{
    qrr_model *m = (qrr_model *)model; /* allocated writable by qrr_model_open */
    if (atomic_load_explicit(&m->cpu_packed, memory_order_acquire)) return;
    pthread_mutex_lock(&pack_lock);
    if (!atomic_load_explicit(&m->cpu_packed, memory_order_relaxed)) {
        pack_all(m, pool);
        atomic_store_explicit(&m->cpu_packed, 1, memory_order_release);
    }
    pthread_mutex_unlock(&pack_lock);
}
