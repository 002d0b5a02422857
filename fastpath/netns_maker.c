#include "netns_maker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mt_log.h"
#include "mt_time.h"
#include "netns.h"

struct entry {
	const char *name;
	size_t pos; /* in creation order */
};

struct mt_netns_maker {
	pthread_t thread;
	const char *const *names;
	size_t n;
	int *results;
	struct entry *by_name; /* sorted, for mt_netns_maker_wait */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t done; /* names[0..done) are made; under mu */
	uint64_t t0, made_us, waited_us; /* for the debug log */
};

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct entry *)a)->name,
		      ((const struct entry *)b)->name);
}

static void *maker_main(void *arg)
{
	struct mt_netns_maker *m = arg;

	for (size_t i = 0; i < m->n; i++) {
		int r = mt_netns_create(m->names[i]);

		if (i + 1 == m->n)
			m->made_us = mt_monotonic_us() - m->t0;
		pthread_mutex_lock(&m->mu);
		m->results[i] = r;
		m->done = i + 1;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
	}
	return NULL;
}

static void maker_free(struct mt_netns_maker *m)
{
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	free(m->by_name);
	free(m->results);
	free(m);
}

int mt_netns_maker_start(const char *const *names, size_t n,
			 struct mt_netns_maker **out)
{
	struct mt_netns_maker *m = calloc(1, sizeof(*m));
	int r;

	if (!m)
		return -ENOMEM;
	m->names = names;
	m->n = n;
	m->results = calloc(n ? n : 1, sizeof(*m->results));
	m->by_name = calloc(n ? n : 1, sizeof(*m->by_name));
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	if (!m->results || !m->by_name) {
		maker_free(m);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		m->by_name[i] = (struct entry){names[i], i};
	qsort(m->by_name, n, sizeof(*m->by_name), entry_cmp);
	m->t0 = mt_monotonic_us();
	r = -pthread_create(&m->thread, NULL, maker_main, m);
	if (r < 0) {
		maker_free(m);
		return r;
	}
	*out = m;
	return 0;
}

int mt_netns_maker_wait(struct mt_netns_maker *m, const char *name)
{
	struct entry key = {name, 0}, *e;

	e = bsearch(&key, m->by_name, m->n, sizeof(*m->by_name), entry_cmp);
	if (!e)
		return 0;
	pthread_mutex_lock(&m->mu);
	if (m->done <= e->pos) {
		uint64_t t = mt_monotonic_us();

		while (m->done <= e->pos)
			pthread_cond_wait(&m->cv, &m->mu);
		m->waited_us += mt_monotonic_us() - t;
	}
	pthread_mutex_unlock(&m->mu);
	return 1;
}

void mt_netns_maker_finish(struct mt_netns_maker *m, int *results)
{
	pthread_join(m->thread, NULL);
	mt_debug("netns maker: %zu namespaces made in %.1f ms; the plan waited "
		 "for them %.1f ms",
		 m->n, m->made_us / 1e3, m->waited_us / 1e3);
	memcpy(results, m->results, m->n * sizeof(*results));
	maker_free(m);
}
