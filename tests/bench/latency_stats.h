/* Latency samples of the benchmark probes (change_latency.c,
 * tunnel_add_latency.c): collected in ms, sorted, nearest-rank
 * percentiles. Header-only: each probe is one program. */
#ifndef MT_BENCH_LATENCY_STATS_H
#define MT_BENCH_LATENCY_STATS_H

#include <stddef.h>
#include <stdlib.h>

struct stats {
	double *v;
	size_t n;
	unsigned timeouts;
};

static inline int stats_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static inline void stats_sort(struct stats *s)
{
	qsort(s->v, s->n, sizeof(*s->v), stats_cmp_double);
}

/* Nearest-rank percentile of the sorted samples; -1 when there are none. */
static inline double pct(const struct stats *s, double p)
{
	size_t k;

	if (!s->n)
		return -1;
	k = (size_t)(p / 100.0 * s->n + 0.999999);
	if (k < 1)
		k = 1;
	return s->v[k - 1];
}

#endif
