/* The agent's customer table, refreshed from complete store snapshots. */
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "desired.h"
#include "mt_cleanup.h"
#include "mt_log.h"
#include "mt_time.h"
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
	s->fresh = false;
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

/* Appends a new entry; the caller sorts the table afterwards. Pointers
 * into the table are invalidated. */
static struct agent_customer *append_entry(struct agent *a, uint32_t id)
{
	struct agent_customer *e;

	if (a->n_customers == a->cap_customers) {
		size_t cap = a->cap_customers ? a->cap_customers * 2 : 64;
		struct agent_customer *t =
			realloc(a->customers, cap * sizeof(*t));

		if (!t)
			return NULL;
		a->customers = t;
		a->cap_customers = cap;
	}
	e = &a->customers[a->n_customers++];
	memset(e, 0, sizeof(*e));
	e->id = id;
	return e;
}

static void remove_at(struct agent *a, size_t i)
{
	mt_desired_memo_free(a->customers[i].memo);
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

/* Decodes a store value; NULL (and the customer rejected) when it does not
 * decode or names another id. */
static Mt__Config__Customer *decode(struct agent_customer *e,
				    const struct mt_store_kv *kv)
{
	Mt__Config__Customer *c;
	char err[160];

	e->store_rev = kv->mod_rev;
	c = mt__config__customer__unpack(NULL, kv->len, kv->val);
	if (!c) {
		snprintf(err, sizeof(err),
			 "customer %u: store value (%zu bytes) does not decode as mt.config.Customer",
			 e->id, kv->len);
		reject(e, err);
		return NULL;
	}
	if (c->id != e->id) {
		snprintf(err, sizeof(err),
			 "customer %u: store key says id %u but the value says id %u",
			 e->id, e->id, c->id);
		mt__config__customer__free_unpacked(c, NULL);
		reject(e, err);
		return NULL;
	}
	return c;
}

static int cmp_entry(const void *x, const void *y);

/* Queues a write of the last-known-good copy (val NULL: a delete). */
static void lkg_queue(struct agent *a, uint32_t id,
		      const Mt__Config__Customer *c)
{
	struct mt_store_op *op;
	char key[64];

	if (!a->lkg)
		return;
	if (a->n_lkg_ops == a->cap_lkg_ops) {
		size_t cap = a->cap_lkg_ops ? a->cap_lkg_ops * 2 : 16;
		struct mt_store_op *t = realloc(a->lkg_ops, cap * sizeof(*t));

		if (!t)
			return;
		a->lkg_ops = t;
		a->cap_lkg_ops = cap;
	}
	op = &a->lkg_ops[a->n_lkg_ops];
	memset(op, 0, sizeof(*op));
	op->key = strdup(mt_store_customer_key(id, key, sizeof(key)));
	if (!op->key)
		return;
	op->type = c ? MT_STORE_OP_PUT : MT_STORE_OP_DELETE;
	if (c) {
		uint8_t *buf;

		op->len = mt__config__customer__get_packed_size(c);
		buf = malloc(op->len ? op->len : 1);
		if (!buf) {
			free((char *)op->key);
			return;
		}
		mt__config__customer__pack(c, buf);
		op->val = buf;
	}
	a->n_lkg_ops++;
}

/* Writes the queued copies in one transaction. A failure is logged: the
 * store stays the source of truth, the copy only helps a restart. */
void agent_lkg_flush(struct agent *a)
{
	int r = 0;

	if (a->n_lkg_ops) {
		/* One transaction (one commit and its fsyncs, not one per
		 * customer: a cold start queues a thousand). A delete of a key
		 * the copy never had would fail it: those are left out. */
		_cleanup_free_ struct mt_store_op *ops =
			calloc(a->n_lkg_ops, sizeof(*ops));
		size_t n = 0;

		for (size_t i = 0; ops && i < a->n_lkg_ops; i++) {
			const struct mt_store_op *op = &a->lkg_ops[i];
			void *val = NULL;
			size_t len;

			if (op->type == MT_STORE_OP_DELETE) {
				r = mt_store_get(a->lkg, op->key, &val, &len,
						 NULL);
				free(val);
				if (r == -ENOENT)
					continue;
			}
			ops[n++] = *op;
		}
		r = ops ? mt_store_txn(a->lkg, ops, n, 0, NULL) : -ENOMEM;
		if (r < 0)
			mt_warn("last-known-good copy %s: %s", a->lkg_url,
				strerror(-r));
	}
	for (size_t i = 0; i < a->n_lkg_ops; i++) {
		free((char *)a->lkg_ops[i].key);
		free((void *)a->lkg_ops[i].val);
	}
	a->n_lkg_ops = 0;
}

int agent_load_lkg(struct agent *a)
{
	struct mt_store_kv *kvs = NULL;
	size_t n = 0, loaded = 0;
	uint64_t rev;
	int r;

	if (!a->lkg)
		return 0;
	r = mt_store_range(a->lkg, CUSTOMER_KEY_PREFIX, &kvs, &n, &rev);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		Mt__Config__Customer *c;
		struct agent_customer *e;
		char err[MT_VALIDATE_ERR_MAX];
		uint32_t id;

		if (mt_store_customer_key_parse(kvs[i].key, &id) < 0)
			continue;
		c = mt__config__customer__unpack(NULL, kvs[i].len, kvs[i].val);
		if (!c || c->id != id ||
		    mt_validate_customer(&a->metal, c, err, sizeof(err)) < 0) {
			if (c)
				mt__config__customer__free_unpacked(c, NULL);
			continue;
		}
		e = append_entry(a, id);
		if (!e) {
			mt__config__customer__free_unpacked(c, NULL);
			r = -ENOMEM;
			break;
		}
		e->config = c;
		e->state = CUSTOMER_PENDING;
		loaded++;
	}
	qsort(a->customers, a->n_customers, sizeof(*a->customers), cmp_entry);
	mt_store_kvs_free(kvs, n);
	return r < 0 ? r : (int)loaded;
}

/* Puts a validated config in force (taking c) and queues the customer. */
static void take_config(struct agent *a, struct agent_customer *e,
		   Mt__Config__Customer *c)
{
	if (e->config) {
		if (strcmp(e->config->name, c->name) != 0)
			agent_scope_add(&a->pending, e->config->name);
		mt__config__customer__free_unpacked(e->config, NULL);
	}
	mt_desired_memo_free(e->memo);
	e->memo = NULL;
	e->config = c;
	e->config_rev = e->store_rev;
	e->state = CUSTOMER_PENDING;
	e->error[0] = '\0';
	agent_scope_add(&a->pending, c->name);
	lkg_queue(a, e->id, c);
}

static bool same_strings(char *const *a, size_t na, char *const *b,
			 size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i] ? a[i] : "", b[i] ? b[i] : ""))
			return false;
	return true;
}

/* Same name, prefixes and tunnel endpoints (what the checks between
 * customers compare), in the same order. */
static bool same_identity(const Mt__Config__Customer *x,
			  const Mt__Config__Customer *y)
{
	return x->id == y->id && strcmp(x->name ? x->name : "",
					 y->name ? y->name : "") == 0 &&
	       same_strings(x->prefixes, x->n_prefixes, y->prefixes,
			    y->n_prefixes) &&
	       same_strings(x->tunnel_endpoints, x->n_tunnel_endpoints,
			    y->tunnel_endpoints, y->n_tunnel_endpoints);
}

/* A new or changed value: validated against the configs in force (the
 * incumbents win conflicts), then taken or rejected. Returns 1 when the
 * config in force changed. */
static int consider(struct agent *a, struct agent_customer *e,
		    const struct mt_store_kv *kv)
{
	Mt__Config__Customer *c, **others;
	char err[MT_VALIDATE_ERR_MAX + 64];
	size_t n_others;
	int r;

	/* After a restart, the store still holding the last known good copy
	 * byte for byte: nothing to validate again. */
	if (e->config && e->config_rev == 0 &&
	    mt__config__customer__get_packed_size(e->config) == kv->len) {
		uint8_t *buf = malloc(kv->len ? kv->len : 1);
		bool same = buf && (mt__config__customer__pack(e->config, buf),
				    memcmp(buf, kv->val, kv->len) == 0);

		free(buf);
		if (same) {
			e->store_rev = e->config_rev = kv->mod_rev;
			return 1;
		}
	}
	c = decode(e, kv);
	if (!c)
		return 0;
	if (e->config && same_identity(e->config, c)) {
		/* Only the checks between customers look at other customers,
		 * and they look only at names, prefixes and endpoints: with
		 * those unchanged the others, each validated against this
		 * customer's config in force, cannot conflict with it. */
		r = mt_validate_customer(&a->metal, c, err, sizeof(err));
	} else {
		others = agent_configs(a, &n_others);
		if (!others) {
			mt__config__customer__free_unpacked(c, NULL);
			return -ENOMEM;
		}
		r = mt_validate_customer_set(&a->metal, c, others, n_others,
					     err, sizeof(err));
		free(others);
	}
	if (r < 0) {
		mt__config__customer__free_unpacked(c, NULL);
		if (r == -ENOMEM)
			return r;
		reject(e, err);
		return 0;
	}
	take_config(a, e, c);
	return 1;
}

/* The first load (no config in force yet): the whole snapshot is validated
 * at once, in O(N log N), and the lower id wins conflicts. */
static int consider_all(struct agent *a, struct agent_customer **es,
			const struct mt_store_kv **kvs, size_t n)
{
	Mt__Config__Customer **cs = calloc(n + 1, sizeof(*cs));
	struct agent_customer **owner = calloc(n + 1, sizeof(*owner));
	struct mt_validate_verdict *v = calloc(n + 1, sizeof(*v));
	size_t k = 0;
	int changed = 0, r = 0;

	if (!cs || !owner || !v) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		Mt__Config__Customer *c = decode(es[i], kvs[i]);

		if (c) {
			cs[k] = c;
			owner[k++] = es[i];
		}
	}
	r = mt_validate_customers(&a->metal, cs, k, v);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < k; i++) {
		if (v[i].ok) {
			take_config(a, owner[i], cs[i]);
			changed++;
		} else {
			reject(owner[i], v[i].err);
			mt__config__customer__free_unpacked(cs[i], NULL);
		}
		cs[i] = NULL;
	}
	r = changed;
out:
	for (size_t i = 0; cs && i < k; i++)
		if (cs[i])
			mt__config__customer__free_unpacked(cs[i], NULL);
	free(cs);
	free(owner);
	free(v);
	return r;
}

static int cmp_entry(const void *x, const void *y)
{
	uint32_t a = ((const struct agent_customer *)x)->id;
	uint32_t b = ((const struct agent_customer *)y)->id;

	return a < b ? -1 : a > b;
}

int agent_load_store(struct agent *a)
{
	struct mt_store_kv *kvs = NULL;
	struct agent_customer **es = NULL;
	const struct mt_store_kv **changed_kvs = NULL;
	size_t n = 0, n_changed = 0, old_n;
	bool incumbents = false;
	uint64_t rev = 0, t0 = mt_monotonic_us();
	int changed = 0, r;

	/* Values only of what was written since the last snapshot (a change
	 * of one customer among 1000 copies one value, not all). */
	r = mt_store_range_since(a->store, CUSTOMER_KEY_PREFIX,
				 a->n_customers ? a->store_revision : 0, &kvs,
				 &n, &rev);
	if (r < 0)
		return r;
	if (rev == a->store_revision && a->n_customers) {
		mt_store_kvs_free(kvs, n);
		return 0;
	}
	for (size_t i = 0; i < a->n_customers; i++) {
		a->customers[i].seen = false;
		incumbents |= a->customers[i].config != NULL;
	}

	/* Mark what the store holds; new ids are appended, then the table
	 * is sorted once. */
	old_n = a->n_customers;
	for (size_t i = 0; i < n; i++) {
		struct agent_customer *e = NULL;
		uint32_t id;

		if (mt_store_customer_key_parse(kvs[i].key, &id) < 0) {
			mt_warn("store key \"%s\" is not customers/<id>: ignored",
				kvs[i].key);
			continue;
		}
		e = bsearch(&id, a->customers, old_n, sizeof(*a->customers),
			    cmp_id);
		if (!e) {
			e = append_entry(a, id);
			if (!e) {
				r = -ENOMEM;
				goto out;
			}
		}
		e->seen = true;
	}
	qsort(a->customers, a->n_customers, sizeof(*a->customers), cmp_entry);
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
		lkg_queue(a, a->customers[i].id, NULL);
		remove_at(a, i);
	}
	es = calloc(n + 1, sizeof(*es));
	changed_kvs = calloc(n + 1, sizeof(*changed_kvs));
	if (!es || !changed_kvs) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		struct agent_customer *e;
		uint32_t id;

		if (mt_store_customer_key_parse(kvs[i].key, &id) < 0)
			continue;
		e = agent_find(a, id);
		if (e->store_rev == kvs[i].mod_rev)
			continue;
		if (!kvs[i].val) {
			/* changed before the last snapshot but not taken
			 * then: read its value now */
			uint64_t mod_rev;

			r = mt_store_get(a->store, kvs[i].key, &kvs[i].val,
					 &kvs[i].len, &mod_rev);
			if (r == -ENOENT)
				continue; /* deleted meanwhile: next load */
			if (r < 0)
				goto out;
			kvs[i].mod_rev = mod_rev;
		}
		es[n_changed] = e;
		changed_kvs[n_changed++] = &kvs[i];
	}
	if (!incumbents && n_changed > 1) {
		r = consider_all(a, es, changed_kvs, n_changed);
		if (r < 0)
			goto out;
		changed += r;
	} else {
		/* incumbents first: in id order, each against what is in
		 * force */
		for (size_t i = 0; i < n_changed; i++) {
			r = consider(a, es[i], changed_kvs[i]);
			if (r < 0)
				goto out;
			changed += r;
		}
	}
	a->store_revision = rev;
	r = changed;
	mt_debug("store: revision %lu: %zu values read, %zu new, %d customers changed, in %.1f ms",
		 (unsigned long)rev, n, n_changed, changed,
		 (mt_monotonic_us() - t0) / 1e3);
out:
	free(es);
	free(changed_kvs);
	mt_store_kvs_free(kvs, n);
	return r;
}
