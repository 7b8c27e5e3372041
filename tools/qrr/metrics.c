/* metrics.c — ranking metrics (NDCG, MRR), ranking by score and percentiles for qrr eval
 * and qrr check. Pure arithmetic on arrays the caller owns; nothing here reads a model. */
#include <math.h>
#include <stdlib.h>

#include "metrics.h"

static double gain(int label)
{
    if (label <= 0 || label > METRIC_MAX_LABEL) return 0.0;
    return ldexp(1.0, label) - 1.0;
}

static double discount(size_t rank) /* rank counts from 1 */
{
    return 1.0 / log2((double)rank + 1.0);
}

double metric_dcg_at_k(const int *ranked_labels, size_t n, size_t k)
{
    double dcg = 0.0;
    for (size_t i = 0; i < n && i < k; i++) dcg += gain(ranked_labels[i]) * discount(i + 1);
    return dcg;
}

double metric_ideal_dcg_at_k(const int *labels, size_t n, size_t k)
{
    /* Labels are small integers: count them, then take the highest first. */
    size_t count[METRIC_MAX_LABEL + 1] = {0};
    for (size_t i = 0; i < n; i++)
        if (labels[i] > 0 && labels[i] <= METRIC_MAX_LABEL) count[labels[i]]++;
    double dcg = 0.0;
    size_t rank = 1;
    for (int l = METRIC_MAX_LABEL; l > 0 && rank <= k; l--)
        for (size_t c = 0; c < count[l] && rank <= k; c++, rank++) dcg += gain(l) * discount(rank);
    return dcg;
}

double metric_ndcg_at_k(const int *ranked_labels, size_t n, size_t k)
{
    double ideal = metric_ideal_dcg_at_k(ranked_labels, n, k);
    return ideal > 0.0 ? metric_dcg_at_k(ranked_labels, n, k) / ideal : 0.0;
}

double metric_mrr_at_k(const int *ranked_labels, size_t n, size_t k)
{
    for (size_t i = 0; i < n && i < k; i++)
        if (ranked_labels[i] > 0) return 1.0 / (double)(i + 1);
    return 0.0;
}

int metric_has_relevant(const int *labels, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (labels[i] > 0) return 1;
    return 0;
}

/* Does document a rank before document b? Higher score first, NaN last, ties by index. */
static int ranks_before(const float *scores, size_t a, size_t b)
{
    float sa = scores[a], sb = scores[b];
    if (isnan(sa) != isnan(sb)) return isnan(sb);
    if (!isnan(sa) && sa != sb) return sa > sb;
    return a < b;
}

/* Restore the heap below root in order[0..n): the last-ranked document on top. */
static void sift_down(const float *scores, size_t *order, size_t root, size_t n)
{
    for (;;) {
        size_t child = 2 * root + 1;
        if (child >= n) return;
        if (child + 1 < n && ranks_before(scores, order[child], order[child + 1])) child++;
        if (!ranks_before(scores, order[root], order[child])) return;
        size_t t = order[root];
        order[root] = order[child];
        order[child] = t;
        root = child;
    }
}

void metric_rank(const float *scores, size_t n, size_t *order)
{
    /* Heap sort: O(n log n) without allocation; ranks_before is a total order (ties fall
     * back to the index), so the result does not depend on the sort being stable. */
    for (size_t i = 0; i < n; i++) order[i] = i;
    for (size_t i = n / 2; i-- > 0;) sift_down(scores, order, i, n);
    for (size_t end = n; end > 1; end--) {
        size_t t = order[0];
        order[0] = order[end - 1];
        order[end - 1] = t;
        sift_down(scores, order, 0, end - 1);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void metric_sort(double *v, size_t n)
{
    if (n > 1) qsort(v, n, sizeof *v, cmp_double);
}

double metric_percentile(const double *sorted, size_t n, double p)
{
    if (n == 0) return 0.0;
    if (p <= 0.0) return sorted[0];
    if (p >= 100.0) return sorted[n - 1];
    double pos = p / 100.0 * (double)(n - 1);
    size_t lo = (size_t)pos;
    if (lo + 1 >= n) return sorted[n - 1];
    double frac = pos - (double)lo;
    return sorted[lo] + frac * (sorted[lo + 1] - sorted[lo]);
}
