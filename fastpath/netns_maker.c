#include "netns_maker.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mt_log.h"
#include "mt_time.h"
#include "netns.h"

/* Namespaces are made by this many threads, each taking the next name in
 * order: setting up a namespace is mostly the kernel's per-namespace init,
 * which runs in parallel, and its loopback registration, which does not. */
#define MAKERS 2

struct entry {
	const char *name;
	size_t pos; /* in creation order */
};

struct mt_netns_maker {
	pthread_t threads[MAKERS];
	size_t n_threads;
	const char *const *names;
	size_t n;
	int *results;
	bool *done;
	struct entry *by_name; /* sorted, for mt_netns_maker_wait */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	size_t next; /* the next name to take; under mu */
	int prepare_err; /* /run/netns could not be made ready */
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

	for (;;) {
		size_t i;
		int r;

		pthread_mutex_lock(&m->mu);
		i = m->next < m->n ? m->next++ : m->n;
		pthread_mutex_unlock(&m->mu);
		if (i == m->n)
			return NULL;
		r = m->prepare_err ? m->prepare_err
				   : mt_netns_create_prepared(m->names[i]);
		pthread_mutex_lock(&m->mu);
		m->results[i] = r;
		m->done[i] = true;
		m->made_us = mt_monotonic_us() - m->t0;
		pthread_cond_broadcast(&m->cv);
		pthread_mutex_unlock(&m->mu);
	}
}

static void maker_free(struct mt_netns_maker *m)
{
	pthread_cond_destroy(&m->cv);
	pthread_mutex_destroy(&m->mu);
	free(m->by_name);
	free(m->done);
	free(m->results);
	free(m);
}

int mt_netns_maker_start(const char *const *names, size_t n,
			 struct mt_netns_maker **out)
{
	struct mt_netns_maker *m = calloc(1, sizeof(*m));
	int r = 0;

	if (!m)
		return -ENOMEM;
	if (!n) {
		free(m);
		return -EINVAL;
	}
	m->names = names;
	m->n = n;
	m->results = calloc(n ? n : 1, sizeof(*m->results));
	m->done = calloc(n ? n : 1, sizeof(*m->done));
	m->by_name = calloc(n ? n : 1, sizeof(*m->by_name));
	pthread_mutex_init(&m->mu, NULL);
	pthread_cond_init(&m->cv, NULL);
	if (!m->results || !m->done || !m->by_name) {
		maker_free(m);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		m->by_name[i] = (struct entry){names[i], i};
	qsort(m->by_name, n, sizeof(*m->by_name), entry_cmp);
	m->t0 = mt_monotonic_us();
	/* once, not per namespace (and not on two threads at once) */
	m->prepare_err = mt_netns_run_dir_prepare();
	for (size_t k = 0; k < MAKERS && k < n; k++) {
		r = -pthread_create(&m->threads[k], NULL, maker_main, m);
		if (r < 0)
			break;
		m->n_threads++;
	}
	if (!m->n_threads) {
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
	if (!m->done[e->pos]) {
		uint64_t t = mt_monotonic_us();

		while (!m->done[e->pos])
			pthread_cond_wait(&m->cv, &m->mu);
		m->waited_us += mt_monotonic_us() - t;
	}
	pthread_mutex_unlock(&m->mu);
	return 1;
}

void mt_netns_maker_finish(struct mt_netns_maker *m, int *results)
{
	for (size_t k = 0; k < m->n_threads; k++)
		pthread_join(m->threads[k], NULL);
	mt_debug("netns maker: %zu namespaces made in %.1f ms by %zu threads; "
		 "the plan waited for them %.1f ms",
		 m->n, m->made_us / 1e3, m->n_threads, m->waited_us / 1e3);
	memcpy(results, m->results, m->n * sizeof(*results));
	maker_free(m);
}
