/* The firewall list cache and the delta post-pass (agent/fw_lists.h). */
#include "fw_lists.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt_cleanup.h"
#include "mt_kstate.h"

#define S(s) ((s) ? (s) : "")

/* ---- contents ---- */

int mt_fw_content_compile(const char *name, char *const *prefixes, size_t n,
			  struct mt_fw_content **out, char *err, size_t errlen)
{
	struct mt_fw_content *c = calloc(1, sizeof(*c));
	int r;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	r = mt_fw_list_compile(name, prefixes, n, &c->list, err, errlen);
	if (r < 0) {
		free(c);
		return r;
	}
	c->refs = 1;
	*out = c;
	return 0;
}

struct mt_fw_content *mt_fw_content_ref(struct mt_fw_content *c)
{
	if (c)
		c->refs++;
	return c;
}

void mt_fw_content_unref(struct mt_fw_content *c)
{
	if (!c || --c->refs)
		return;
	mt_fw_list_fini(&c->list);
	free(c);
}

/* ---- the desired set ---- */

struct want {
	char *netns;
	struct mt_fw_content *content;
};

struct mt_fw_desired {
	struct want *v;
	size_t n, cap;
	bool sorted;
};

struct mt_fw_desired *mt_fw_desired_new(void)
{
	return calloc(1, sizeof(struct mt_fw_desired));
}

void mt_fw_desired_free(struct mt_fw_desired *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->n; i++) {
		free(d->v[i].netns);
		mt_fw_content_unref(d->v[i].content);
	}
	free(d->v);
	free(d);
}

int mt_fw_desired_add(struct mt_fw_desired *d, const char *netns,
		      struct mt_fw_content *content)
{
	char *ns;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct want *g = realloc(d->v, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		d->v = g;
		d->cap = cap;
	}
	ns = strdup(S(netns));
	if (!ns)
		return -ENOMEM;
	d->v[d->n++] = (struct want){ ns, mt_fw_content_ref(content) };
	d->sorted = false;
	return 0;
}

static int key_cmp(const char *ns_a, const char *name_a, const char *ns_b,
		   const char *name_b)
{
	int r = strcmp(ns_a, ns_b);

	return r ? r : strcmp(name_a, name_b);
}

static int want_cmp(const void *a, const void *b)
{
	const struct want *x = a, *y = b;

	return key_cmp(x->netns, x->content->list.name, y->netns,
		       y->content->list.name);
}

const struct mt_fw_content *mt_fw_desired_find(struct mt_fw_desired *d,
					       const char *netns,
					       const char *name)
{
	size_t lo = 0, hi;

	if (!d)
		return NULL;
	if (!d->sorted) {
		if (d->n > 1)
			qsort(d->v, d->n, sizeof(*d->v), want_cmp);
		d->sorted = true;
	}
	hi = d->n;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = key_cmp(d->v[mid].netns, d->v[mid].content->list.name,
				S(netns), S(name));

		if (c == 0)
			return d->v[mid].content;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- the applied cache ---- */

struct entry {
	char *netns;
	char name[MT_FW_LIST_NAME_MAX + 1];
	/* NULL when dropped: the key kept (the array stays sorted) until
	 * commit compacts it away */
	struct mt_fw_content *content;
};

/* A list content a plan op carries, waiting for the op's result. */
struct pending {
	size_t op;
	struct entry e;
};

struct mt_fw_lists {
	struct entry *v; /* sorted by (netns, name) */
	size_t n, cap;
	struct pending *p;
	size_t np, capp;
};

static void entry_fini(struct entry *e)
{
	free(e->netns);
	e->netns = NULL;
	mt_fw_content_unref(e->content);
	e->content = NULL;
}

static void entry_kill(struct entry *e)
{
	mt_fw_content_unref(e->content);
	e->content = NULL;
}

struct mt_fw_lists *mt_fw_lists_new(void)
{
	return calloc(1, sizeof(struct mt_fw_lists));
}

void mt_fw_lists_abort(struct mt_fw_lists *c)
{
	for (size_t i = 0; i < c->np; i++)
		entry_fini(&c->p[i].e);
	c->np = 0;
}

void mt_fw_lists_free(struct mt_fw_lists *c)
{
	if (!c)
		return;
	mt_fw_lists_abort(c);
	for (size_t i = 0; i < c->n; i++)
		entry_fini(&c->v[i]);
	free(c->v);
	free(c->p);
	free(c);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct entry *x = a, *y = b;

	return key_cmp(x->netns, x->name, y->netns, y->name);
}

/* The index of the first entry >= (netns, name) in v[0..n). */
static size_t lower_bound(const struct entry *v, size_t n, const char *netns,
			  const char *name)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (key_cmp(v[mid].netns, v[mid].name, netns, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct entry *find(const struct mt_fw_lists *c, const char *netns,
			  const char *name)
{
	size_t i = lower_bound(c->v, c->n, netns, name);

	if (i < c->n && c->v[i].content &&
	    !key_cmp(c->v[i].netns, c->v[i].name, netns, name))
		return &c->v[i];
	return NULL;
}

const struct mt_fw_list *mt_fw_lists_get(const struct mt_fw_lists *c,
					 const char *netns, const char *name)
{
	const struct entry *e = find(c, S(netns), S(name));

	return e ? &e->content->list : NULL;
}

void mt_fw_lists_stats(const struct mt_fw_lists *c, size_t *n_lists,
		       size_t *n_prefixes)
{
	size_t np = 0;

	for (size_t i = 0; i < c->n; i++)
		np += c->v[i].content->list.n; /* none dropped outside commit */
	if (n_lists)
		*n_lists = c->n;
	if (n_prefixes)
		*n_prefixes = np;
}

/* ---- prepare ---- */

static int fw_ptr_cmp(const void *a, const void *b)
{
	const Mt__Kernel__Firewall *x = *(const Mt__Kernel__Firewall *const *)a;
	const Mt__Kernel__Firewall *y = *(const Mt__Kernel__Firewall *const *)b;

	return strcmp(S(x->netns), S(y->netns));
}

static const Mt__Kernel__Firewall *
observed_find(Mt__Kernel__Firewall *const *sorted, size_t n, const char *netns)
{
	Mt__Kernel__Firewall key = { .netns = (char *)netns };
	const Mt__Kernel__Firewall *kp = &key, *const *hit;

	hit = bsearch(&kp, sorted, n, sizeof(*sorted), fw_ptr_cmp);
	return hit ? *hit : NULL;
}

static const Mt__Kernel__FirewallList *
list_find(const Mt__Kernel__Firewall *f, const char *name)
{
	for (size_t i = 0; f && i < f->n_lists; i++)
		if (!strcmp(S(f->lists[i]->name), name))
			return f->lists[i];
	return NULL;
}

static void strv_free(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static int strv_from(const struct mt_prefix *p, size_t n, char ***out)
{
	char buf[MT_PREFIX_STRLEN];
	char **v;

	*out = NULL;
	if (n == 0)
		return 0;
	v = calloc(n, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		v[i] = strdup(mt_prefix_format(&p[i], buf, sizeof(buf)));
		if (!v[i]) {
			strv_free(v, i);
			return -ENOMEM;
		}
	}
	*out = v;
	return 0;
}

/* Turns l (full content, compiled as to) into the delta from base. */
static int make_delta(Mt__Kernel__FirewallList *l,
		      const struct mt_fw_list *base,
		      const struct mt_fw_list *to)
{
	_cleanup_free_ struct mt_prefix *add = NULL;
	_cleanup_free_ struct mt_prefix *rem = NULL;
	char **sadd = NULL, **srem = NULL;
	size_t n_add, n_rem;
	int r;

	r = mt_fw_list_delta(base, to, &add, &n_add, &rem, &n_rem);
	if (r < 0)
		return r;
	if ((r = strv_from(add, n_add, &sadd)) < 0)
		return r;
	if ((r = strv_from(rem, n_rem, &srem)) < 0) {
		strv_free(sadd, n_add);
		return r;
	}
	if (mt_kstate_set_str(&l->base_digest, base->digest) < 0) {
		strv_free(sadd, n_add);
		strv_free(srem, n_rem);
		return -ENOMEM;
	}
	strv_free(l->prefixes, l->n_prefixes);
	l->prefixes = NULL;
	l->n_prefixes = 0;
	strv_free(l->add, l->n_add);
	strv_free(l->remove, l->n_remove);
	l->add = sadd;
	l->n_add = n_add;
	l->remove = srem;
	l->n_remove = n_rem;
	l->delta = true;
	return 0;
}

static int pending_push(struct mt_fw_lists *c, size_t op, const char *netns,
			struct mt_fw_content *content)
{
	struct pending *p;
	char *ns;

	if (c->np == c->capp) {
		size_t cap = c->capp ? c->capp * 2 : 16;
		struct pending *g = realloc(c->p, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		c->p = g;
		c->capp = cap;
	}
	ns = strdup(netns);
	if (!ns)
		return -ENOMEM;
	p = &c->p[c->np++];
	p->op = op;
	p->e.netns = ns;
	snprintf(p->e.name, sizeof(p->e.name), "%s", content->list.name);
	p->e.content = mt_fw_content_ref(content);
	return 0;
}

/* The desired content of list l (in netns): from want, or compiled from
 * the prefixes l carries. *out holds a reference (or NULL when l carries
 * prefixes that do not compile: not ours to judge, it stays a full
 * reload). 0, -ENOENT (no content anywhere) or -ENOMEM. */
static int desired_content(struct mt_fw_desired *want, const char *netns,
			   const Mt__Kernel__FirewallList *l,
			   struct mt_fw_content **out)
{
	const struct mt_fw_content *w;
	char e[256];
	int r;

	*out = NULL;
	w = l->n_prefixes ? NULL : mt_fw_desired_find(want, netns, S(l->name));
	if (!w && (l->n_prefixes || l->count == 0)) {
		r = mt_fw_content_compile(S(l->name), l->prefixes,
					  l->n_prefixes, out, e, sizeof(e));
		return r == -ENOMEM ? r : 0;
	}
	/* no strings and no content: never send it as empty */
	if (!w || strcmp(w->list.digest, S(l->digest)))
		return -ENOENT;
	*out = mt_fw_content_ref((struct mt_fw_content *)w);
	return 0;
}

/* l becomes the full content of to, as strings (unless it has them). */
static int make_full(Mt__Kernel__FirewallList *l,
		     const struct mt_fw_content *to)
{
	char **v;
	int r;

	if (l->n_prefixes || !to->list.n)
		return 0;
	r = strv_from(to->list.prefixes, to->list.n, &v);
	if (r < 0)
		return r;
	l->prefixes = v;
	l->n_prefixes = to->list.n;
	return 0;
}

int mt_fw_lists_prepare(struct mt_fw_lists *c,
			const Mt__Kernel__KernelState *observed,
			struct mt_fw_desired *want, Mt__Kernel__Plan *plan)
{
	_cleanup_free_ Mt__Kernel__Firewall **obs = NULL;
	size_t n_obs = observed ? observed->n_firewalls : 0;
	int n_delta = 0, r;

	mt_fw_lists_abort(c);
	if (n_obs) {
		obs = malloc(n_obs * sizeof(*obs));
		if (!obs)
			return -ENOMEM;
		memcpy(obs, observed->firewalls, n_obs * sizeof(*obs));
		qsort(obs, n_obs, sizeof(*obs), fw_ptr_cmp);
	}
	for (size_t i = 0; i < plan->n_ops; i++) {
		const Mt__Kernel__Op *op = plan->ops[i];
		const Mt__Kernel__Firewall *of;
		Mt__Kernel__Firewall *f;

		if (op->object_case != MT__KERNEL__OP__OBJECT_FIREWALL ||
		    op->action != MT__KERNEL__OP__ACTION__CREATE)
			continue;
		f = op->firewall;
		of = observed_find(obs, n_obs, S(f->netns));
		for (size_t j = 0; j < f->n_lists; j++) {
			Mt__Kernel__FirewallList *l = f->lists[j];
			const Mt__Kernel__FirewallList *ol =
				list_find(of, S(l->name));
			const struct entry *cached;
			struct mt_fw_content *to;

			if (l->delta)
				continue; /* prepared already */
			if (ol && !strcmp(S(ol->digest), S(l->digest)) &&
			    !strcmp(S(ol->family), S(l->family)))
				continue; /* the kernel holds it: no content */
			r = desired_content(want, S(f->netns), l, &to);
			if (r < 0)
				return r;
			if (!to)
				continue;
			cached = find(c, S(f->netns), S(l->name));
			if (strcmp(to->list.digest, S(l->digest)) == 0 && ol &&
			    cached &&
			    !strcmp(cached->content->list.digest,
				    S(ol->digest)) &&
			    !strcmp(mt_fw_family_name(
					    cached->content->list.family),
				    S(ol->family)) &&
			    cached->content->list.family == to->list.family) {
				r = make_delta(l, &cached->content->list,
					       &to->list);
				if (r == 0)
					n_delta++;
			} else {
				r = make_full(l, to);
			}
			if (r == 0)
				r = pending_push(c, i, S(f->netns), to);
			mt_fw_content_unref(to);
			if (r < 0)
				return r;
		}
	}
	return n_delta;
}

/* ---- commit ---- */

static void drop(struct mt_fw_lists *c, const char *netns, const char *name)
{
	struct entry *e = find(c, netns, name);

	if (e)
		entry_kill(e);
}

/* Drops every entry of netns whose list is not in keep (NULL: all). */
static void drop_netns(struct mt_fw_lists *c, const char *netns,
		       const Mt__Kernel__Firewall *keep)
{
	for (size_t i = lower_bound(c->v, c->n, netns, "");
	     i < c->n && !strcmp(c->v[i].netns, netns); i++)
		if (c->v[i].content && !list_find(keep, c->v[i].name))
			entry_kill(&c->v[i]);
}

/* Puts p's content in the cache (taking it). Returns false on ENOMEM
 * (then p still owns it). An entry with the same key is replaced in place
 * (the array stays sorted); a new one is appended (sorted at the end). */
static bool store(struct mt_fw_lists *c, size_t n_sorted, struct pending *p)
{
	size_t i = lower_bound(c->v, n_sorted, p->e.netns, p->e.name);

	if (i < n_sorted && !entry_cmp(&c->v[i], &p->e)) {
		entry_fini(&c->v[i]);
		c->v[i] = p->e;
		memset(&p->e, 0, sizeof(p->e));
		return true;
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 16;
		struct entry *g = realloc(c->v, cap * sizeof(*g));

		if (!g)
			return false;
		c->v = g;
		c->cap = cap;
	}
	c->v[c->n++] = p->e;
	memset(&p->e, 0, sizeof(p->e));
	return true;
}

static bool op_ok(size_t i, Mt__Kernel__OpResult *const *results,
		  size_t n_results)
{
	return i < n_results && results && results[i] && !results[i]->error;
}

void mt_fw_lists_commit(struct mt_fw_lists *c, const Mt__Kernel__Plan *plan,
			Mt__Kernel__OpResult *const *results, size_t n_results)
{
	size_t n_sorted = c->n, k = 0, w = 0;

	/* drops first, on the sorted array */
	for (size_t i = 0; i < plan->n_ops; i++) {
		const Mt__Kernel__Op *op = plan->ops[i];
		bool ok = op_ok(i, results, n_results);
		bool del = op->action == MT__KERNEL__OP__ACTION__DELETE;

		if (op->object_case == MT__KERNEL__OP__OBJECT_NETNS && del &&
		    ok)
			drop_netns(c, S(op->netns->name), NULL);
		if (op->object_case != MT__KERNEL__OP__OBJECT_FIREWALL)
			continue;
		if (del) {
			if (ok)
				drop_netns(c, S(op->firewall->netns), NULL);
		} else if (ok) {
			drop_netns(c, S(op->firewall->netns), op->firewall);
		}
	}
	/* then the contents the plan carried */
	for (size_t j = 0; j < c->np; j++) {
		struct pending *p = &c->p[j];

		if (op_ok(p->op, results, n_results) && store(c, n_sorted, p))
			continue;
		/* failed (or ENOMEM): forget what the kernel may hold */
		drop(c, p->e.netns, p->e.name);
		for (size_t i = n_sorted; i < c->n; i++)
			if (c->v[i].content && !entry_cmp(&c->v[i], &p->e))
				entry_kill(&c->v[i]);
	}
	mt_fw_lists_abort(c);
	for (k = 0; k < c->n; k++) {
		if (!c->v[k].content)
			entry_fini(&c->v[k]);
		else
			c->v[w++] = c->v[k];
	}
	c->n = w;
	if (c->n > 1)
		qsort(c->v, c->n, sizeof(*c->v), entry_cmp);
}
