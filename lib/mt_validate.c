#include "mt_validate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt_cleanup.h"
#include "mt_fw.h"

#define STR(s) ((s) ? (s) : "")

int mt_validate_fail(char *err, size_t errlen, const Mt__Config__Customer *c,
		     const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || errlen == 0)
		return -EINVAL;
	n = snprintf(err, errlen, "customer %u \"%s\": ", c->id, STR(c->name));
	if (n >= 0 && (size_t)n < errlen) {
		va_start(ap, fmt);
		vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

#define fail mt_validate_fail

static bool valid_name(const char *s)
{
	if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '-'))
			return false;
	return true;
}

/* The metal's own prefix or link pool that p overlaps, formatted into buf,
 * or NULL. */
static const char *metal_overlap(const struct mt_metal *m,
				 const struct mt_prefix *p, char *buf,
				 size_t len)
{
	char pb[MT_PREFIX_STRLEN];

	for (size_t i = 0; i < m->n_own; i++)
		if (mt_prefix_overlaps(&m->own[i], p)) {
			snprintf(buf, len, "the metal's own prefix %s",
				 mt_prefix_format(&m->own[i], pb, sizeof(pb)));
			return buf;
		}
	if (mt_prefix_overlaps(&m->link_pool, p)) {
		snprintf(buf, len, "the metal's link pool %s",
			 mt_prefix_format(&m->link_pool, pb, sizeof(pb)));
		return buf;
	}
	return NULL;
}

/* A parsed field with its index, for sorting. */
struct indexed {
	struct mt_prefix p;
	size_t idx;
};

static int indexed_cmp(const void *a, const void *b)
{
	const struct indexed *x = a, *y = b;
	int r = mt_prefix_cmp(&x->p, &y->p);

	if (r)
		return r;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* Finds duplicates or overlaps among n parsed fields. After sorting, any
 * overlap shows up between neighbours: if a contains some later b, it
 * contains its immediate successor too (prefixes are aligned). Sets *i < *j
 * to the first overlapping pair in sorted order; false when none. */
static bool find_overlap(struct indexed *v, size_t n, size_t *i, size_t *j)
{
	qsort(v, n, sizeof(*v), indexed_cmp);
	for (size_t k = 1; k < n; k++)
		if (mt_prefix_overlaps(&v[k - 1].p, &v[k].p)) {
			size_t a = v[k - 1].idx, b = v[k].idx;

			*i = a < b ? a : b;
			*j = a < b ? b : a;
			return true;
		}
	return false;
}

static int check_prefixes(const struct mt_metal *m,
			  const Mt__Config__Customer *c, char *err,
			  size_t errlen)
{
	_cleanup_free_ struct indexed *v = NULL;
	char perr[160], what[96];
	size_t i, j;

	if (c->n_prefixes == 0)
		return fail(err, errlen, c,
			    "prefixes: at least one prefix is required");
	v = calloc(c->n_prefixes, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < c->n_prefixes; i++) {
		const char *s = STR(c->prefixes[i]);
		struct mt_prefix *p = &v[i].p;
		const char *r;

		v[i].idx = i;
		if (mt_prefix_parse(s, true, p, perr, sizeof(perr)) < 0)
			return fail(err, errlen, c, "prefixes[%zu]: %s", i,
				    perr);
		if (p->family == AF_INET && p->len < 8)
			return fail(err, errlen, c,
				    "prefixes[%zu] \"%s\": IPv4 prefixes must be /8 or longer",
				    i, s);
		if (p->family == AF_INET6 && p->len < 16)
			return fail(err, errlen, c,
				    "prefixes[%zu] \"%s\": IPv6 prefixes must be /16 or longer",
				    i, s);
		r = mt_prefix_reserved_range(p);
		if (r)
			return fail(err, errlen, c,
				    "prefixes[%zu] \"%s\": %s is reserved", i,
				    s, r);
		if (metal_overlap(m, p, what, sizeof(what)))
			return fail(err, errlen, c,
				    "prefixes[%zu] \"%s\": overlaps %s", i, s,
				    what);
	}
	if (find_overlap(v, c->n_prefixes, &i, &j)) {
		if (!strcmp(STR(c->prefixes[i]), STR(c->prefixes[j])))
			return fail(err, errlen, c,
				    "prefixes[%zu] \"%s\": duplicates prefixes[%zu]",
				    j, STR(c->prefixes[j]), i);
		return fail(err, errlen, c,
			    "prefixes[%zu] \"%s\": overlaps prefixes[%zu] \"%s\"",
			    j, STR(c->prefixes[j]), i, STR(c->prefixes[i]));
	}
	return 0;
}

static int check_endpoints(const struct mt_metal *m,
			   const Mt__Config__Customer *c, char *err,
			   size_t errlen)
{
	_cleanup_free_ struct indexed *v = NULL;
	char perr[160], what[96];
	size_t i, j;

	if (c->n_tunnel_endpoints == 0)
		return 0;
	v = calloc(c->n_tunnel_endpoints, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (i = 0; i < c->n_tunnel_endpoints; i++) {
		const char *s = STR(c->tunnel_endpoints[i]);
		struct mt_prefix *p = &v[i].p;
		const char *r;

		v[i].idx = i;
		if (mt_addr_parse(s, p, perr, sizeof(perr)) < 0)
			return fail(err, errlen, c,
				    "tunnel_endpoints[%zu]: %s (a host address without /len)",
				    i, perr);
		r = mt_prefix_reserved_range(p);
		if (r)
			return fail(err, errlen, c,
				    "tunnel_endpoints[%zu] \"%s\": %s is reserved",
				    i, s, r);
		if (metal_overlap(m, p, what, sizeof(what)))
			return fail(err, errlen, c,
				    "tunnel_endpoints[%zu] \"%s\": inside %s", i,
				    s, what);
	}
	if (find_overlap(v, c->n_tunnel_endpoints, &i, &j))
		return fail(err, errlen, c,
			    "tunnel_endpoints[%zu] \"%s\": duplicates tunnel_endpoints[%zu]",
			    j, STR(c->tunnel_endpoints[j]), i);
	return 0;
}

int mt_validate_customer(const struct mt_metal *m,
			 const Mt__Config__Customer *c, char *err,
			 size_t errlen)
{
	uint32_t max_id = mt_metal_max_customer_id(m);
	size_t name_max = mt_metal_name_max(m);
	int r;

	if (c->id < 1 || c->id > max_id)
		return fail(err, errlen, c,
			    "id %u: must be 1-%u (the link pool holds %u customers)",
			    c->id, max_id, max_id);
	if (!valid_name(c->name))
		return fail(err, errlen, c,
			    "name \"%s\": must match [a-z0-9][a-z0-9-]*",
			    STR(c->name));
	if (strlen(c->name) > name_max)
		return fail(err, errlen, c,
			    "name \"%s\": does not fit an interface name: at most %zu characters with instance prefix %s",
			    c->name, name_max, m->prefix);
	r = check_prefixes(m, c, err, errlen);
	if (r < 0)
		return r;
	r = check_endpoints(m, c, err, errlen);
	if (r < 0)
		return r;
	r = mt_validate_tunnels(m, c, err, errlen);
	if (r < 0)
		return r;
	return mt_validate_firewall(m, c, err, errlen);
}

/* Conflicts between two customers, from the point of view of c (the one
 * being rejected) against o. */
enum conflict {
	CONFLICT_NAME,
	CONFLICT_PREFIX,       /* c prefix overlaps o prefix */
	CONFLICT_ENDPOINT,     /* c endpoint equals o endpoint */
	CONFLICT_EP_IN_PREFIX, /* c endpoint inside o prefix */
	CONFLICT_PREFIX_HAS_EP /* c prefix contains o endpoint */
};

static int conflict_fail(char *err, size_t errlen,
			 const Mt__Config__Customer *c,
			 const Mt__Config__Customer *o, enum conflict kind,
			 size_t ci, size_t oi)
{
	switch (kind) {
	case CONFLICT_NAME:
		return fail(err, errlen, c, "name \"%s\": already used by customer %u",
			    STR(c->name), o->id);
	case CONFLICT_PREFIX:
		return fail(err, errlen, c,
			    "prefixes[%zu] \"%s\": overlaps customer %u \"%s\" prefixes[%zu] \"%s\"",
			    ci, STR(c->prefixes[ci]), o->id, STR(o->name), oi,
			    STR(o->prefixes[oi]));
	case CONFLICT_ENDPOINT:
		return fail(err, errlen, c,
			    "tunnel_endpoints[%zu] \"%s\": already used by customer %u \"%s\" tunnel_endpoints[%zu]",
			    ci, STR(c->tunnel_endpoints[ci]), o->id,
			    STR(o->name), oi);
	case CONFLICT_EP_IN_PREFIX:
		return fail(err, errlen, c,
			    "tunnel_endpoints[%zu] \"%s\": inside customer %u \"%s\" prefixes[%zu] \"%s\"",
			    ci, STR(c->tunnel_endpoints[ci]), o->id,
			    STR(o->name), oi, STR(o->prefixes[oi]));
	case CONFLICT_PREFIX_HAS_EP:
		return fail(err, errlen, c,
			    "prefixes[%zu] \"%s\": contains customer %u \"%s\" tunnel_endpoints[%zu] \"%s\"",
			    ci, STR(c->prefixes[ci]), o->id, STR(o->name), oi,
			    STR(o->tunnel_endpoints[oi]));
	}
	return -EINVAL;
}

/* A customer's prefixes and endpoints, parsed leniently: an entry that does
 * not parse has family 0 and never matches anything. */
struct parsed {
	struct mt_prefix *pfx;
	struct mt_prefix *ep;
};

static void parsed_fini(struct parsed *p)
{
	free(p->pfx);
	free(p->ep);
}

static int parsed_init(struct parsed *p, const Mt__Config__Customer *c)
{
	char e[8];

	p->pfx = calloc(c->n_prefixes + 1, sizeof(*p->pfx));
	p->ep = calloc(c->n_tunnel_endpoints + 1, sizeof(*p->ep));
	if (!p->pfx || !p->ep) {
		parsed_fini(p);
		return -ENOMEM;
	}
	for (size_t i = 0; i < c->n_prefixes; i++)
		if (mt_prefix_parse(STR(c->prefixes[i]), true, &p->pfx[i], e,
				    sizeof(e)) < 0)
			p->pfx[i].family = 0;
	for (size_t i = 0; i < c->n_tunnel_endpoints; i++)
		if (mt_addr_parse(STR(c->tunnel_endpoints[i]), &p->ep[i], e,
				  sizeof(e)) < 0)
			p->ep[i].family = 0;
	return 0;
}

static bool overlaps(const struct mt_prefix *a, const struct mt_prefix *b)
{
	return a->family && b->family && mt_prefix_overlaps(a, b);
}

static int check_pair(const Mt__Config__Customer *c, const struct parsed *pc,
		      const Mt__Config__Customer *o, const struct parsed *po,
		      char *err, size_t errlen)
{
	for (size_t i = 0; i < c->n_prefixes; i++)
		for (size_t j = 0; j < o->n_prefixes; j++)
			if (overlaps(&pc->pfx[i], &po->pfx[j]))
				return conflict_fail(err, errlen, c, o,
						     CONFLICT_PREFIX, i, j);
	for (size_t i = 0; i < c->n_tunnel_endpoints; i++) {
		for (size_t j = 0; j < o->n_tunnel_endpoints; j++)
			if (overlaps(&pc->ep[i], &po->ep[j]))
				return conflict_fail(err, errlen, c, o,
						     CONFLICT_ENDPOINT, i, j);
		for (size_t j = 0; j < o->n_prefixes; j++)
			if (overlaps(&pc->ep[i], &po->pfx[j]))
				return conflict_fail(err, errlen, c, o,
						     CONFLICT_EP_IN_PREFIX, i,
						     j);
	}
	for (size_t i = 0; i < c->n_prefixes; i++)
		for (size_t j = 0; j < o->n_tunnel_endpoints; j++)
			if (overlaps(&pc->pfx[i], &po->ep[j]))
				return conflict_fail(err, errlen, c, o,
						     CONFLICT_PREFIX_HAS_EP, i,
						     j);
	return 0;
}

int mt_validate_customer_set(const struct mt_metal *m,
			     const Mt__Config__Customer *c,
			     Mt__Config__Customer *const *others,
			     size_t n_others, char *err, size_t errlen)
{
	struct parsed pc;
	int r;

	r = mt_validate_customer(m, c, err, errlen);
	if (r < 0)
		return r;
	for (size_t k = 0; k < n_others; k++) {
		const Mt__Config__Customer *o = others[k];

		if (o && o->id != c->id && !strcmp(STR(o->name), c->name))
			return conflict_fail(err, errlen, c, o, CONFLICT_NAME,
					     0, 0);
	}
	r = parsed_init(&pc, c);
	if (r < 0)
		return r;
	for (size_t k = 0; k < n_others && r == 0; k++) {
		const Mt__Config__Customer *o = others[k];
		struct parsed po;

		if (!o || o->id == c->id)
			continue;
		r = parsed_init(&po, o);
		if (r < 0)
			break;
		r = check_pair(c, &pc, o, &po, err, errlen);
		parsed_fini(&po);
	}
	parsed_fini(&pc);
	return r;
}

/* ---- Whole snapshots ---------------------------------------------------- */

/* One prefix or endpoint of an individually valid customer. */
struct item {
	struct mt_prefix p;
	uint32_t id;    /* customer id (unique among considered customers) */
	uint32_t cust;  /* index into cs */
	uint32_t field; /* index into prefixes or tunnel_endpoints */
	bool ep;        /* a tunnel endpoint */
};

/* A conflict that may reject customer `from` (the higher id) in favour of
 * `to` (the lower id). kind and fields are from from's point of view. */
struct edge {
	uint32_t from_id, to_id;
	uint32_t from, to; /* indices into cs */
	uint32_t kind;
	uint32_t ffield, tfield;
};

struct edges {
	struct edge *v;
	size_t n, cap;
};

static int edge_add(struct edges *e, const struct edge *x)
{
	if (e->n == e->cap) {
		size_t cap = e->cap ? e->cap * 2 : 16;
		struct edge *g = realloc(e->v, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		e->v = g;
		e->cap = cap;
	}
	e->v[e->n++] = *x;
	return 0;
}

static int u32_cmp(uint32_t a, uint32_t b)
{
	return a < b ? -1 : a > b;
}

static int item_cmp(const void *a, const void *b)
{
	const struct item *x = a, *y = b;
	int r = mt_prefix_cmp(&x->p, &y->p);

	if (r)
		return r;
	if (x->ep != y->ep)
		return x->ep ? 1 : -1;
	r = u32_cmp(x->id, y->id);
	return r ? r : u32_cmp(x->field, y->field);
}

static int edge_cmp(const void *a, const void *b)
{
	const struct edge *x = a, *y = b;
	int r;

	if ((r = u32_cmp(x->from_id, y->from_id)) ||
	    (r = u32_cmp(x->to_id, y->to_id)) ||
	    (r = u32_cmp(x->kind, y->kind)) ||
	    (r = u32_cmp(x->ffield, y->ffield)))
		return r;
	return u32_cmp(x->tfield, y->tfield);
}

/* Records that x and y (y contains x, different customers) conflict. */
static int item_conflict(struct edges *e, const struct item *x,
			 const struct item *y)
{
	const struct item *hi = x->id > y->id ? x : y;
	const struct item *lo = hi == x ? y : x;
	struct edge ed = {
		.from_id = hi->id, .to_id = lo->id,
		.from = hi->cust, .to = lo->cust,
		.ffield = hi->field, .tfield = lo->field,
	};

	if (hi->ep && lo->ep)
		ed.kind = CONFLICT_ENDPOINT;
	else if (!hi->ep && !lo->ep)
		ed.kind = CONFLICT_PREFIX;
	else if (hi->ep)
		ed.kind = CONFLICT_EP_IN_PREFIX;
	else
		ed.kind = CONFLICT_PREFIX_HAS_EP;
	return edge_add(e, &ed);
}

/* Sorted by prefix, every overlap is a containment of a later item by an
 * earlier one; the stack holds the chain of items containing the current
 * one (an item that does not contain the current one is disjoint from every
 * later item too, so it is popped for good). */
static int sweep_items(struct item *it, size_t n, struct edges *e)
{
	_cleanup_free_ size_t *stack = NULL;
	size_t depth = 0;
	int r;

	if (n == 0)
		return 0;
	stack = malloc(n * sizeof(*stack));
	if (!stack)
		return -ENOMEM;
	qsort(it, n, sizeof(*it), item_cmp);
	for (size_t k = 0; k < n; k++) {
		while (depth &&
		       !mt_prefix_contains(&it[stack[depth - 1]].p, &it[k].p))
			depth--;
		for (size_t s = 0; s < depth; s++) {
			const struct item *y = &it[stack[s]];

			if (y->cust == it[k].cust)
				continue;
			r = item_conflict(e, &it[k], y);
			if (r < 0)
				return r;
		}
		stack[depth++] = k;
	}
	return 0;
}

struct by_id {
	uint32_t id;
	uint32_t cust;
	const char *name;
};

static int by_id_cmp(const void *a, const void *b)
{
	const struct by_id *x = a, *y = b;
	int r = u32_cmp(x->id, y->id);

	return r ? r : u32_cmp(x->cust, y->cust);
}

static int by_name_cmp(const void *a, const void *b)
{
	const struct by_id *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	return r ? r : u32_cmp(x->id, y->id);
}

static int name_conflicts(struct by_id *c, size_t n, struct edges *e)
{
	qsort(c, n, sizeof(*c), by_name_cmp);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n && !strcmp(c[i].name, c[j].name);
		     j++) {
			struct edge ed = {
				.from_id = c[j].id, .to_id = c[i].id,
				.from = c[j].cust, .to = c[i].cust,
				.kind = CONFLICT_NAME,
			};
			int r = edge_add(e, &ed);

			if (r < 0)
				return r;
		}
	return 0;
}

int mt_validate_customers(const struct mt_metal *m,
			  Mt__Config__Customer *const *cs, size_t n,
			  struct mt_validate_verdict *v)
{
	_cleanup_free_ struct by_id *ids = NULL;
	_cleanup_free_ struct item *items = NULL;
	struct edges e = { 0 };
	size_t n_ok = 0, n_items = 0, g = 0, k, ei;
	int r, rejected = 0;

	if (n > UINT32_MAX)
		return -EINVAL;
	ids = calloc(n + 1, sizeof(*ids));
	if (!ids)
		return -ENOMEM;

	/* 1. Each customer on its own. */
	for (k = 0; k < n; k++) {
		r = mt_validate_customer(m, cs[k], v[k].err, sizeof(v[k].err));
		if (r == -ENOMEM)
			return r;
		v[k].ok = r == 0;
		if (r == 0)
			v[k].err[0] = '\0';
		ids[k] = (struct by_id){ cs[k]->id, (uint32_t)k,
					 STR(cs[k]->name) };
	}

	/* 2. Duplicate ids: the first entry in cs is considered. */
	qsort(ids, n, sizeof(*ids), by_id_cmp);
	for (k = 1; k < n; k++) {
		uint32_t c = ids[k].cust;

		if (ids[k].id != ids[g].id) {
			g = k;
			continue;
		}
		if (!v[c].ok)
			continue;
		v[c].ok = false;
		fail(v[c].err, sizeof(v[c].err), cs[c],
		     "id %u: already used by customer %u \"%s\"", ids[k].id,
		     ids[g].id, ids[g].name);
	}

	/* 3. Conflicts between the customers still standing, lower id wins. */
	for (k = 0; k < n; k++)
		if (v[ids[k].cust].ok) {
			const Mt__Config__Customer *c = cs[ids[k].cust];

			ids[n_ok++] = ids[k];
			n_items += c->n_prefixes + c->n_tunnel_endpoints;
		}
	items = calloc(n_items + 1, sizeof(*items));
	if (!items)
		return -ENOMEM;
	n_items = 0;
	for (k = 0; k < n_ok; k++) {
		const Mt__Config__Customer *c = cs[ids[k].cust];
		struct mt_prefix p;
		char e8[8];

		for (size_t i = 0; i < c->n_prefixes; i++) {
			mt_prefix_parse(c->prefixes[i], true, &p, e8,
					sizeof(e8));
			items[n_items++] = (struct item){ p, c->id, ids[k].cust,
							  (uint32_t)i, false };
		}
		for (size_t i = 0; i < c->n_tunnel_endpoints; i++) {
			mt_addr_parse(c->tunnel_endpoints[i], &p, e8,
				      sizeof(e8));
			items[n_items++] = (struct item){ p, c->id, ids[k].cust,
							  (uint32_t)i, true };
		}
	}
	r = sweep_items(items, n_items, &e);
	if (r == 0)
		r = name_conflicts(ids, n_ok, &e);
	if (r < 0) {
		free(e.v);
		return r;
	}
	if (e.n)
		qsort(e.v, e.n, sizeof(*e.v), edge_cmp);

	/* Greedy in ascending id: the edges of a customer point to lower ids,
	 * all decided already. ids is sorted by name now: re-sort by id. */
	qsort(ids, n_ok, sizeof(*ids), by_id_cmp);
	ei = 0;
	for (k = 0; k < n_ok; k++) {
		uint32_t c = ids[k].cust;

		while (ei < e.n && e.v[ei].from_id < ids[k].id)
			ei++;
		for (; ei < e.n && e.v[ei].from_id == ids[k].id; ei++) {
			const struct edge *x = &e.v[ei];

			if (!v[c].ok || !v[x->to].ok)
				continue;
			v[c].ok = false;
			conflict_fail(v[c].err, sizeof(v[c].err), cs[c],
				      cs[x->to], x->kind, x->ffield,
				      x->tfield);
		}
	}
	free(e.v);

	for (k = 0; k < n; k++)
		rejected += !v[k].ok;
	return rejected;
}
