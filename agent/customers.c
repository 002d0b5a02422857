/* The agent's customer table, refreshed from complete store snapshots. */
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt_log.h"
#include "mt_validate.h"

#define CUSTOMER_KEY_PREFIX "customers/"

const char *agent_state_name(enum agent_customer_state s)
{
	switch (s) {
	case CUSTOMER_PENDING:
		return "pending";
	case CUSTOMER_CONVERGED:
		return "converged";
	case CUSTOMER_REJECTED:
		return "rejected";
	case CUSTOMER_ERROR:
		return "error";
	}
	return "?";
}

int agent_scope_add(struct agent_scope *s, const char *owner)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->owners[i], owner) == 0)
			return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 8;
		char **o = realloc(s->owners, cap * sizeof(*o));

		if (!o)
			return -ENOMEM;
		s->owners = o;
		s->cap = cap;
	}
	s->owners[s->n] = strdup(owner);
	if (!s->owners[s->n])
		return -ENOMEM;
	s->n++;
	return 0;
}

void agent_scope_clear(struct agent_scope *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->owners[i]);
	s->n = 0;
	s->full = false;
}

bool agent_scope_empty(const struct agent_scope *s)
{
	return !s->full && s->n == 0;
}

static int cmp_id(const void *key, const void *elem)
{
	uint32_t id = *(const uint32_t *)key;
	const struct agent_customer *c = elem;

	return id < c->id ? -1 : id > c->id ? 1 : 0;
}

struct agent_customer *agent_find(struct agent *a, uint32_t id)
{
	return bsearch(&id, a->customers, a->n_customers,
		       sizeof(*a->customers), cmp_id);
}

struct agent_customer *agent_find_name(struct agent *a, const char *name)
{
	for (size_t i = 0; i < a->n_customers; i++) {
		Mt__Config__Customer *c = a->customers[i].config;

		if (c && strcmp(c->name, name) == 0)
			return &a->customers[i];
	}
	return NULL;
}

/* Inserts a new entry keeping the table sorted by id. */
static struct agent_customer *insert(struct agent *a, uint32_t id)
{
	size_t i = 0;

	if (a->n_customers == a->cap_customers) {
		size_t cap = a->cap_customers ? a->cap_customers * 2 : 64;
		struct agent_customer *t =
			realloc(a->customers, cap * sizeof(*t));

		if (!t)
			return NULL;
		a->customers = t;
		a->cap_customers = cap;
	}
	while (i < a->n_customers && a->customers[i].id < id)
		i++;
	memmove(&a->customers[i + 1], &a->customers[i],
		(a->n_customers - i) * sizeof(*a->customers));
	memset(&a->customers[i], 0, sizeof(*a->customers));
	a->customers[i].id = id;
	a->n_customers++;
	return &a->customers[i];
}

static void remove_at(struct agent *a, size_t i)
{
	if (a->customers[i].config)
		mt__config__customer__free_unpacked(a->customers[i].config,
						    NULL);
	memmove(&a->customers[i], &a->customers[i + 1],
		(a->n_customers - i - 1) * sizeof(*a->customers));
	a->n_customers--;
}

void agent_customers_free(struct agent *a)
{
	while (a->n_customers)
		remove_at(a, a->n_customers - 1);
	free(a->customers);
	a->customers = NULL;
	a->cap_customers = 0;
}

Mt__Config__Customer **agent_configs(struct agent *a, size_t *n)
{
	Mt__Config__Customer **v = calloc(a->n_customers + 1, sizeof(*v));

	*n = 0;
	if (!v)
		return NULL;
	for (size_t i = 0; i < a->n_customers; i++)
		if (a->customers[i].config)
			v[(*n)++] = a->customers[i].config;
	return v;
}

static void reject(struct agent_customer *e, const char *why)
{
	if (e->state != CUSTOMER_REJECTED || strcmp(e->error, why) != 0)
		mt_warn("customer %u: store revision %lu rejected: %s%s", e->id,
			(unsigned long)e->store_rev, why,
			e->config ? " (keeping the last good config)" : "");
	e->state = CUSTOMER_REJECTED;
	snprintf(e->error, sizeof(e->error), "%s", why);
}

/* A store value for a customer that is new or changed: decode, validate
 * against the configs in force (the incumbents win conflicts), and take it
 * or reject it. Returns 1 when the config in force changed. */
static int consider(struct agent *a, struct agent_customer *e,
		    const struct mt_store_kv *kv)
{
	Mt__Config__Customer *c, **others;
	char err[MT_VALIDATE_ERR_MAX + 64];
	size_t n_others;
	int r;

	e->store_rev = kv->mod_rev;
	c = mt__config__customer__unpack(NULL, kv->len, kv->val);
	if (!c) {
		snprintf(err, sizeof(err),
			 "customer %u: store value (%zu bytes) does not decode as mt.config.Customer",
			 e->id, kv->len);
		reject(e, err);
		return 0;
	}
	if (c->id != e->id) {
		snprintf(err, sizeof(err),
			 "customer %u: store key says id %u but the value says id %u",
			 e->id, e->id, c->id);
		mt__config__customer__free_unpacked(c, NULL);
		reject(e, err);
		return 0;
	}
	others = agent_configs(a, &n_others);
	if (!others) {
		mt__config__customer__free_unpacked(c, NULL);
		return -ENOMEM;
	}
	r = mt_validate_customer_set(&a->metal, c, others, n_others, err,
				     sizeof(err));
	free(others);
	if (r < 0) {
		mt__config__customer__free_unpacked(c, NULL);
		if (r == -ENOMEM)
			return r;
		reject(e, err);
		return 0;
	}
	if (e->config) {
		if (strcmp(e->config->name, c->name) != 0)
			agent_scope_add(&a->pending, e->config->name);
		mt__config__customer__free_unpacked(e->config, NULL);
	}
	e->config = c;
	e->config_rev = kv->mod_rev;
	e->state = CUSTOMER_PENDING;
	e->error[0] = '\0';
	agent_scope_add(&a->pending, c->name);
	return 1;
}

int agent_load_store(struct agent *a)
{
	struct mt_store_kv *kvs = NULL;
	size_t n = 0;
	uint64_t rev = 0;
	int changed = 0, r;

	r = mt_store_range(a->store, CUSTOMER_KEY_PREFIX, &kvs, &n, &rev);
	if (r < 0)
		return r;
	if (rev == a->store_revision && a->n_customers) {
		mt_store_kvs_free(kvs, n);
		return 0;
	}
	for (size_t i = 0; i < a->n_customers; i++)
		a->customers[i].seen = false;

	/* Incumbents keep their place: first mark what is unchanged, then
	 * consider the new and changed values in id order. */
	for (size_t i = 0; i < n; i++) {
		struct agent_customer *e;
		uint32_t id;

		if (mt_store_customer_key_parse(kvs[i].key, &id) < 0) {
			mt_warn("store key \"%s\" is not customers/<id>: ignored",
				kvs[i].key);
			continue;
		}
		e = agent_find(a, id);
		if (!e) {
			e = insert(a, id);
			if (!e) {
				r = -ENOMEM;
				goto out;
			}
		}
		e->seen = true;
	}
	/* Deleted customers go first, so their prefixes are free for others. */
	for (size_t i = a->n_customers; i-- > 0;) {
		if (a->customers[i].seen)
			continue;
		if (a->customers[i].config) {
			mt_info("customer %u \"%s\" deleted from the store",
				a->customers[i].id,
				a->customers[i].config->name);
			agent_scope_add(&a->pending,
					a->customers[i].config->name);
			changed++;
		}
		remove_at(a, i);
	}
	for (size_t i = 0; i < n; i++) {
		struct agent_customer *e;
		uint32_t id;

		if (mt_store_customer_key_parse(kvs[i].key, &id) < 0)
			continue;
		e = agent_find(a, id);
		if (e->store_rev == kvs[i].mod_rev)
			continue;
		r = consider(a, e, &kvs[i]);
		if (r < 0)
			goto out;
		changed += r;
	}
	a->store_revision = rev;
	r = changed;
out:
	mt_store_kvs_free(kvs, n);
	return r;
}
