/* metrics.h — the numbers `qrr eval` and `qrr check` report: NDCG@k and MRR@k of one ranked
 * list, ranking by score, and percentiles. Pure functions: no I/O, no allocation, no model. */
#ifndef QRR_METRICS_H
#define QRR_METRICS_H

#include <stddef.h>

/* Graded relevance labels are integers in [0, METRIC_MAX_LABEL]; gain is 2^label - 1. */
#define METRIC_MAX_LABEL 30

/* DCG@k of labels in ranked order: sum over ranks i = 1..min(k, n) of
 * (2^label_i - 1) / log2(i + 1). Labels outside [0, METRIC_MAX_LABEL] count as 0. */
double metric_dcg_at_k(const int *ranked_labels, size_t n, size_t k);
/* DCG@k of the best possible order of the same labels (highest label first). */
double metric_ideal_dcg_at_k(const int *labels, size_t n, size_t k);
/* DCG@k / ideal DCG@k, in [0, 1]; 0 when no label is > 0 (the caller reports such queries). */
double metric_ndcg_at_k(const int *ranked_labels, size_t n, size_t k);
/* 1 / rank of the first label > 0 within the top k (ranks from 1); 0 if none there. */
double metric_mrr_at_k(const int *ranked_labels, size_t n, size_t k);
/* 1 if some label is > 0. */
int metric_has_relevant(const int *labels, size_t n);

/* order[0..n) receives indices of scores from highest to lowest; equal scores keep input
 * order, and NaN ranks last. */
void metric_rank(const float *scores, size_t n, size_t *order);

/* Sort v[0..n) ascending in place. */
void metric_sort(double *v, size_t n);
/* The p-th percentile (p in [0, 100]) of ascending v[0..n), interpolating linearly between
 * the two nearest ranks (p = 50 is the median); 0 when n = 0. */
double metric_percentile(const double *sorted, size_t n, double p);

#endif
