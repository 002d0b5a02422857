#include "diff.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mt_cleanup.h"
#include "mt_fw.h"
#include "mt_kstate.h"
#include "mt_prefix.h"

#define S(s) ((s) ? (s) : "")

static int u32cmp(uint32_t a, uint32_t b)
{
	return a < b ? -1 : a > b;
}

/* ---- Keys and attributes, one set of functions per object family ------- */

static int netns_key(const void *a, const void *b)
{
	const Mt__Kernel__Netns *x = a, *y = b;

	return strcmp(S(x->name), S(y->name));
}

static int link_key(const void *a, const void *b)
{
	const Mt__Kernel__Link *x = a, *y = b;
	int r = strcmp(S(x->netns), S(y->netns));

	return r ? r : strcmp(S(x->name), S(y->name));
}

static int addr_key(const void *a, const void *b)
{
	const Mt__Kernel__Addr *x = a, *y = b;
	int r;

	if ((r = strcmp(S(x->netns), S(y->netns))) ||
	    (r = strcmp(S(x->dev), S(y->dev))))
		return r;
	return strcmp(S(x->prefix), S(y->prefix));
}

static int route_key(const void *a, const void *b)
{
	const Mt__Kernel__Route *x = a, *y = b;
	int r;

	if ((r = strcmp(S(x->netns), S(y->netns))) ||
	    (r = u32cmp(x->table, y->table)) ||
	    (r = strcmp(S(x->dst), S(y->dst))))
		return r;
	return u32cmp(x->metric, y->metric);
}

static int rule_key(const void *a, const void *b)
{
	const Mt__Kernel__Rule *x = a, *y = b;
	int r;

	if ((r = strcmp(S(x->netns), S(y->netns))) ||
	    (r = u32cmp(x->priority, y->priority)) ||
	    (r = u32cmp(x->fwmark, y->fwmark)) ||
	    (r = u32cmp(x->fwmask, y->fwmask)))
		return r;
	return u32cmp(x->table, y->table);
}

static int sysctl_key(const void *a, const void *b)
{
	const Mt__Kernel__Sysctl *x = a, *y = b;
	int r = strcmp(S(x->netns), S(y->netns));

	return r ? r : strcmp(S(x->key), S(y->key));
}

static int mark_table_key(const void *a, const void *b)
{
	const Mt__Kernel__MarkTable *x = a, *y = b;

	return strcmp(S(x->name), S(y->name));
}

static int mark_prefix_key(const void *a, const void *b)
{
	const Mt__Kernel__MarkPrefix *x = a, *y = b;

	return strcmp(S(x->prefix), S(y->prefix));
}

static int tunnel_key(const void *a, const void *b)
{
	const Mt__Kernel__Tunnel *x = a, *y = b;
	int r = strcmp(S(x->netns), S(y->netns));

	return r ? r : strcmp(S(x->name), S(y->name));
}

static int mss_clamp_key(const void *a, const void *b)
{
	const Mt__Kernel__MssClamp *x = a, *y = b;
	int r = strcmp(S(x->netns), S(y->netns));

	return r ? r : strcmp(S(x->dev), S(y->dev));
}

static int firewall_key(const void *a, const void *b)
{
	const Mt__Kernel__Firewall *x = a, *y = b;

	return strcmp(S(x->netns), S(y->netns));
}

/* FNV-1a over the key fields, string terminators included. */
#define FNV_INIT 0xcbf29ce484222325ull

static uint64_t h_str(uint64_t h, const char *s)
{
	s = S(s);
	do
		h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
	while (*s++);
	return h;
}

static uint64_t h_u32(uint64_t h, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		h = (h ^ (v & 0xff)) * 0x100000001b3ull;
	return h;
}

static uint64_t netns_hash(const void *o)
{
	return h_str(FNV_INIT, ((const Mt__Kernel__Netns *)o)->name);
}

static uint64_t link_hash(const void *o)
{
	const Mt__Kernel__Link *x = o;

	return h_str(h_str(FNV_INIT, x->netns), x->name);
}

static uint64_t addr_hash(const void *o)
{
	const Mt__Kernel__Addr *x = o;

	return h_str(h_str(h_str(FNV_INIT, x->netns), x->dev), x->prefix);
}

static uint64_t route_hash(const void *o)
{
	const Mt__Kernel__Route *x = o;
	uint64_t h = h_u32(h_str(FNV_INIT, x->netns), x->table);

	return h_u32(h_str(h, x->dst), x->metric);
}

static uint64_t rule_hash(const void *o)
{
	const Mt__Kernel__Rule *x = o;
	uint64_t h = h_u32(h_str(FNV_INIT, x->netns), x->priority);

	h = h_u32(h_u32(h, x->fwmark), x->fwmask);
	return h_u32(h, x->table);
}

static uint64_t sysctl_hash(const void *o)
{
	const Mt__Kernel__Sysctl *x = o;

	return h_str(h_str(FNV_INIT, x->netns), x->key);
}

static uint64_t mark_table_hash(const void *o)
{
	return h_str(FNV_INIT, ((const Mt__Kernel__MarkTable *)o)->name);
}

static uint64_t mark_prefix_hash(const void *o)
{
	return h_str(FNV_INIT, ((const Mt__Kernel__MarkPrefix *)o)->prefix);
}

static uint64_t tunnel_hash(const void *o)
{
	const Mt__Kernel__Tunnel *x = o;

	return h_str(h_str(FNV_INIT, x->netns), x->name);
}

static uint64_t mss_clamp_hash(const void *o)
{
	const Mt__Kernel__MssClamp *x = o;

	return h_str(h_str(FNV_INIT, x->netns), x->dev);
}

static uint64_t firewall_hash(const void *o)
{
	return h_str(FNV_INIT, ((const Mt__Kernel__Firewall *)o)->netns);
}

static const Mt__Kernel__FirewallList *
fw_list_find(const Mt__Kernel__Firewall *f, const char *name)
{
	for (size_t i = 0; i < f->n_lists; i++)
		if (!strcmp(S(f->lists[i]->name), S(name)))
			return f->lists[i];
	return NULL;
}

/* The kernel holds list l (of the desired firewall) already. */
static bool fw_list_same(const Mt__Kernel__FirewallList *l,
			 const Mt__Kernel__Firewall *observed)
{
	const Mt__Kernel__FirewallList *o = fw_list_find(observed, l->name);

	return o && !strcmp(S(l->family), S(o->family)) &&
	       !strcmp(S(l->digest), S(o->digest));
}

/* Rules compare in their canonical form, pairwise in order; lists as a
 * set by name, by family and digest (the content is never read back). */
static bool firewall_differs(const void *d, const void *o)
{
	const Mt__Kernel__Firewall *x = d, *y = o;

	if (y->dirty || strcmp(S(x->default_action), S(y->default_action)) ||
	    x->n_rules != y->n_rules || x->n_lists != y->n_lists)
		return true;
	for (size_t i = 0; i < x->n_rules; i++)
		if (!mt_fw_rule_equal(x->rules[i], y->rules[i]))
			return true;
	for (size_t i = 0; i < x->n_lists; i++)
		if (!fw_list_same(x->lists[i], y))
			return true;
	return false;
}

static bool link_differs(const void *d, const void *o)
{
	const Mt__Kernel__Link *x = d, *y = o;

	return x->up != y->up || (x->mtu && x->mtu != y->mtu);
}

static bool route_differs(const void *d, const void *o)
{
	const Mt__Kernel__Route *x = d, *y = o;

	if (strcmp(S(x->dev), S(y->dev)) ||
	    strcmp(S(x->gateway), S(y->gateway)) || x->type != y->type ||
	    strcmp(S(x->prefsrc), S(y->prefsrc)) ||
	    x->n_nexthops != y->n_nexthops)
		return true;
	for (size_t i = 0; i < x->n_nexthops; i++) {
		const Mt__Kernel__Nexthop *a = x->nexthops[i], *b = y->nexthops[i];

		if (strcmp(S(a->dev), S(b->dev)) ||
		    strcmp(S(a->gateway), S(b->gateway)) ||
		    a->weight != b->weight)
			return true;
	}
	return false;
}

/* A desired driver of "auto" accepts whichever driver is in use. */
static bool tunnel_differs(const void *d, const void *o)
{
	const Mt__Kernel__Tunnel *x = d, *y = o;

	if (*S(x->driver) && strcmp(S(x->driver), "auto") &&
	    strcmp(S(x->driver), S(y->driver)))
		return true;
	return strcmp(S(x->local), S(y->local)) ||
	       strcmp(S(x->remote), S(y->remote)) ||
	       x->has_key != y->has_key || (x->has_key && x->key != y->key) ||
	       x->ttl != y->ttl || x->mtu != y->mtu;
}

static bool mss_clamp_differs(const void *d, const void *o)
{
	return ((const Mt__Kernel__MssClamp *)d)->mss !=
	       ((const Mt__Kernel__MssClamp *)o)->mss;
}

/* mt keeps every rule in both address families: one that the kernel has in
 * only one of them is created again (the other family's EEXIST is benign). */
static bool rule_differs(const void *d, const void *o)
{
	const Mt__Kernel__Rule *y = o;

	return y->families && y->families != 3;
}

static bool sysctl_differs(const void *d, const void *o)
{
	const Mt__Kernel__Sysctl *x = d, *y = o;

	return strcmp(S(x->value), S(y->value)) != 0;
}

static bool mark_table_differs(const void *d, const void *o)
{
	const Mt__Kernel__MarkTable *x = d, *y = o;

	return x->fwmark != y->fwmark || x->fwmask != y->fwmask;
}

static bool mark_prefix_differs(const void *d, const void *o)
{
	const Mt__Kernel__MarkPrefix *x = d, *y = o;

	return strcmp(S(x->owner), S(y->owner)) != 0;
}

#define OWNER_FN(fn, type)                                                     \
	static const char *fn(const void *o)                                   \
	{                                                                      \
		return S(((const type *)o)->owner);                            \
	}
OWNER_FN(netns_owner, Mt__Kernel__Netns)
OWNER_FN(link_owner, Mt__Kernel__Link)
OWNER_FN(addr_owner, Mt__Kernel__Addr)
OWNER_FN(route_owner, Mt__Kernel__Route)
OWNER_FN(rule_owner, Mt__Kernel__Rule)
OWNER_FN(sysctl_owner, Mt__Kernel__Sysctl)
OWNER_FN(mark_prefix_owner, Mt__Kernel__MarkPrefix)
OWNER_FN(tunnel_owner, Mt__Kernel__Tunnel)
OWNER_FN(mss_clamp_owner, Mt__Kernel__MssClamp)
OWNER_FN(firewall_owner, Mt__Kernel__Firewall)

static const char *shared_owner(const void *o)
{
	return "";
}

static bool undeletable_always(const void *o)
{
	return true;
}

static bool undeletable_never(const void *o)
{
	return false;
}

static bool link_undeletable(const void *o)
{
	return !strcmp(S(((const Mt__Kernel__Link *)o)->name), "lo");
}

/* Addresses the kernel adds by itself: deleting them is wrong (lo) or
 * pointless (the kernel adds link-locals back). */
static bool addr_undeletable(const void *o)
{
	const Mt__Kernel__Addr *a = o;
	struct mt_prefix p;
	char e[8];

	if (mt_prefix_parse(S(a->prefix), false, &p, e, sizeof(e)) < 0)
		return false;
	if (p.family == AF_INET6 && p.addr[0] == 0xfe &&
	    (p.addr[1] & 0xc0) == 0x80)
		return true;
	if (strcmp(S(a->dev), "lo") != 0)
		return false;
	if (p.family == AF_INET)
		return p.addr[0] == 127;
	static const uint8_t loop6[16] = { [15] = 1 };
	return p.len == 128 && !memcmp(p.addr, loop6, 16);
}

enum kind {
	K_NETNS,
	K_LINK,
	K_ADDR,
	K_ROUTE,
	K_RULE,
	K_SYSCTL,
	K_MARK_TABLE,
	K_MARK_PREFIX,
	K_TUNNEL,
	K_MSS_CLAMP,
	K_FIREWALL,
	K_N
};

struct kind_desc {
	size_t arr_off, n_off; /* the repeated field in KernelState */
	int (*key)(const void *a, const void *b);
	uint64_t (*hash)(const void *o); /* consistent with key */
	bool (*differs)(const void *desired, const void *observed);
	const char *(*owner)(const void *o);
	bool (*undeletable)(const void *o);
};

#define KIND(f, name, diff, own, undel)                                        \
	{                                                                      \
		.arr_off = offsetof(Mt__Kernel__KernelState, f),               \
		.n_off = offsetof(Mt__Kernel__KernelState, n_##f),             \
		.key = name##_key, .hash = name##_hash, .differs = diff,       \
		.owner = own, .undeletable = undel,                            \
	}

static const struct kind_desc kinds[K_N] = {
	[K_NETNS] = KIND(netns, netns, NULL, netns_owner,
			undeletable_never),
	[K_LINK] = KIND(links, link, link_differs, link_owner,
			link_undeletable),
	[K_ADDR] = KIND(addrs, addr, NULL, addr_owner,
			addr_undeletable),
	[K_ROUTE] = KIND(routes, route, route_differs, route_owner,
			undeletable_never),
	[K_RULE] = KIND(rules, rule, rule_differs, rule_owner,
			undeletable_never),
	[K_SYSCTL] = KIND(sysctls, sysctl, sysctl_differs, sysctl_owner,
			undeletable_always),
	[K_MARK_TABLE] = KIND(mark_tables, mark_table, mark_table_differs,
			      shared_owner, undeletable_never),
	[K_MARK_PREFIX] = KIND(mark_prefixes, mark_prefix, mark_prefix_differs,
			       mark_prefix_owner, undeletable_never),
	[K_TUNNEL] = KIND(tunnels, tunnel, tunnel_differs, tunnel_owner,
			  undeletable_never),
	[K_MSS_CLAMP] = KIND(mss_clamps, mss_clamp, mss_clamp_differs,
			     mss_clamp_owner, undeletable_never),
	[K_FIREWALL] = KIND(firewalls, firewall, firewall_differs,
			    firewall_owner, undeletable_never),
};

/* Tunnels come after links (they live in the namespace, on its uplink
 * veth) and before the addresses and routes on them; the MSS clamps go in
 * before the routes that send SYNs into a tunnel. The firewall (in the same
 * nft table as the clamps) is in place before the routes carry traffic. */
static const enum kind delete_order[] = {
	K_MARK_PREFIX, K_ROUTE, K_RULE, K_ADDR, K_FIREWALL, K_MSS_CLAMP,
	K_TUNNEL, K_LINK, K_NETNS, K_MARK_TABLE,
};
static const enum kind create_order[] = {
	K_MARK_TABLE, K_NETNS, K_LINK, K_SYSCTL, K_TUNNEL, K_ADDR, K_RULE,
	K_MSS_CLAMP, K_FIREWALL, K_ROUTE, K_MARK_PREFIX,
};
/* every kind is walked, in this order */
_Static_assert(sizeof(create_order) / sizeof(create_order[0]) == K_N,
	       "create_order lists every kind");

/* ---- The walk ----------------------------------------------------------- */

struct list {
	const void **v;
	size_t n;
};

struct diff {
	const struct mt_diff_scope *scope;
	const char **owners; /* scope's owners, sorted */
	struct list del[K_N], cre[K_N];
	/* Route creations that go before every deletion (make before
	 * break): see early_route. */
	struct list early;
	/* The observed twin of each firewall in cre[K_FIREWALL] (NULL when
	 * none), in the same order: see emit_firewalls. */
	struct fw_pair *fw_pairs;
	size_t n_fw_pairs;
};

struct fw_pair {
	const Mt__Kernel__Firewall *desired, *observed;
};

static int strp_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static bool in_scope(const struct diff *d, const char *owner)
{
	if (!d->scope || !*owner)
		return true;
	if (!d->scope->n_owners)
		return false; /* (bsearch wants a base even for 0 elements) */
	return bsearch(&owner, d->owners, d->scope->n_owners,
		       sizeof(*d->owners), strp_cmp) != NULL;
}

static int sort_cmp(const void *a, const void *b, void *kd)
{
	return ((const struct kind_desc *)kd)
		->key(*(const void *const *)a, *(const void *const *)b);
}

static void sort_list(struct list *l, const struct kind_desc *kd)
{
	if (l->n > 1)
		qsort_r(l->v, l->n, sizeof(*l->v), sort_cmp, (void *)kd);
}

/* The index: an open-addressing hash table of one kind's objects by key.
 * Observed objects go in first; each desired object then finds its
 * observed twin (or is added as desired-only, which catches duplicate
 * desired keys). Unmatched observed slots are what to delete. */
enum slot_state {
	SLOT_EMPTY,
	SLOT_OBSERVED,
	SLOT_MATCHED,
	SLOT_DESIRED,
};

struct slot {
	const void *obj;
	uint64_t h;
	enum slot_state state;
};

struct index {
	struct slot *v;
	size_t mask;
};

static int index_init(struct index *ix, size_t n)
{
	size_t cap = 16;

	while (cap < n * 2)
		cap *= 2;
	ix->v = calloc(cap, sizeof(*ix->v));
	ix->mask = cap - 1;
	return ix->v ? 0 : -ENOMEM;
}

/* The slot holding obj's key, or the empty slot where it belongs. */
static struct slot *index_find(const struct index *ix,
			       const struct kind_desc *kd, const void *obj,
			       uint64_t h)
{
	for (size_t i = h & ix->mask;; i = (i + 1) & ix->mask) {
		struct slot *s = &ix->v[i];

		if (s->state == SLOT_EMPTY ||
		    (s->h == h && kd->key(s->obj, obj) == 0))
			return s;
	}
}

static const void *const *kind_array(const Mt__Kernel__KernelState *st,
				     const struct kind_desc *kd, size_t *n)
{
	*n = *(const size_t *)((const char *)st + kd->n_off);
	return *(const void *const *const *)((const char *)st + kd->arr_off);
}

/* True when l (sorted by kd's key) holds an object with obj's key. */
static bool in_sorted(const struct list *l, const struct kind_desc *kd,
		      const void *obj)
{
	size_t lo = 0, hi = l->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = kd->key(obj, l->v[mid]);

		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

/* A device this plan creates (or changes): a link or a tunnel in cre. */
static bool dev_created(const struct diff *d, const char *ns, const char *dev)
{
	Mt__Kernel__Link l = { .netns = (char *)ns, .name = (char *)dev };
	Mt__Kernel__Tunnel t = { .netns = (char *)ns, .name = (char *)dev };

	return in_sorted(&d->cre[K_LINK], &kinds[K_LINK], &l) ||
	       in_sorted(&d->cre[K_TUNNEL], &kinds[K_TUNNEL], &t);
}

/* Make before break: a route creation can go before the plan's deletions
 * when everything it needs is already there, i.e. its namespace and
 * devices are not created by this plan, no address this plan adds is on a
 * device it has a gateway behind, and its prefsrc is unchanged (a new
 * prefsrc may be an address this plan adds). Then a route that moves (a
 * priority change is a new metric, hence a new key) or is replaced (a
 * nexthop leaves before its tunnel is deleted) never leaves a gap. The
 * namespace, link and tunnel lists are complete and sorted by then: kinds
 * are walked in create order. */
static bool route_needs_new_addr(const struct diff *d,
				 const Mt__Kernel__Route *r);

static bool early_route(const struct diff *d, const Mt__Kernel__Route *r,
			const Mt__Kernel__Route *twin)
{
	Mt__Kernel__Netns ns = { .name = (char *)S(r->netns) };

	if (*S(r->prefsrc) &&
	    (!twin || strcmp(S(r->prefsrc), S(twin->prefsrc))))
		return false;
	if (*ns.name && in_sorted(&d->cre[K_NETNS], &kinds[K_NETNS], &ns))
		return false;
	if (*S(r->dev) && dev_created(d, S(r->netns), r->dev))
		return false;
	for (size_t i = 0; i < r->n_nexthops; i++)
		if (dev_created(d, S(r->netns), S(r->nexthops[i]->dev)))
			return false;
	return !route_needs_new_addr(d, r);
}

/* An address this plan creates on dev: a gateway behind dev may only be
 * reachable through it (the kernel refuses the route before it exists). */
static bool addr_created_on(const struct diff *d, const char *ns,
			    const char *dev)
{
	const struct list *l = &d->cre[K_ADDR];
	Mt__Kernel__Addr key = { .netns = (char *)ns, .dev = (char *)dev,
				 .prefix = (char *)"" };
	size_t lo = 0, hi = l->n;

	while (lo < hi) { /* the first address >= (ns, dev, "") */
		size_t mid = (lo + hi) / 2;

		if (addr_key(l->v[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == l->n)
		return false;
	const Mt__Kernel__Addr *a = l->v[lo];
	return !strcmp(S(a->netns), ns) && !strcmp(S(a->dev), dev);
}

static bool route_needs_new_addr(const struct diff *d,
				 const Mt__Kernel__Route *r)
{
	if (*S(r->gateway) && addr_created_on(d, S(r->netns), S(r->dev)))
		return true;
	for (size_t i = 0; i < r->n_nexthops; i++)
		if (*S(r->nexthops[i]->gateway) &&
		    addr_created_on(d, S(r->netns), S(r->nexthops[i]->dev)))
			return true;
	return false;
}

static void add_create(struct diff *d, enum kind k, const void *desired,
		       const void *observed)
{
	if (k == K_ROUTE && early_route(d, desired, observed))
		d->early.v[d->early.n++] = desired;
	else
		d->cre[k].v[d->cre[k].n++] = desired;
	if (k == K_FIREWALL)
		d->fw_pairs[d->n_fw_pairs++] =
			(struct fw_pair){ desired, observed };
}

static int walk_kind(struct diff *d, enum kind k,
		     const Mt__Kernel__KernelState *desired,
		     const Mt__Kernel__KernelState *observed)
{
	const struct kind_desc *kd = &kinds[k];
	const void *const *dv, *const *ov;
	struct list *cre = &d->cre[k], *del = &d->del[k];
	struct index ix;
	size_t nd, no;
	int r;

	dv = kind_array(desired, kd, &nd);
	ov = kind_array(observed, kd, &no);
	r = index_init(&ix, nd + no);
	if (r < 0)
		return r;
	cre->v = malloc((nd + 1) * sizeof(void *));
	del->v = malloc((no + 1) * sizeof(void *));
	if (k == K_ROUTE)
		d->early.v = malloc((nd + 1) * sizeof(void *));
	if (k == K_FIREWALL)
		d->fw_pairs = malloc((nd + 1) * sizeof(*d->fw_pairs));
	if (!cre->v || !del->v || (k == K_ROUTE && !d->early.v) ||
	    (k == K_FIREWALL && !d->fw_pairs)) {
		free(ix.v);
		return -ENOMEM;
	}

	for (size_t j = 0; j < no; j++) {
		uint64_t h = kd->hash(ov[j]);
		struct slot *s = index_find(&ix, kd, ov[j], h);

		if (s->state == SLOT_EMPTY) /* else a duplicate: first wins */
			*s = (struct slot){ ov[j], h, SLOT_OBSERVED };
	}
	for (size_t i = 0; i < nd; i++) {
		uint64_t h = kd->hash(dv[i]);
		struct slot *s = index_find(&ix, kd, dv[i], h);

		if (s->state == SLOT_EMPTY) {
			*s = (struct slot){ dv[i], h, SLOT_DESIRED };
			if (in_scope(d, kd->owner(dv[i])))
				add_create(d, k, dv[i], NULL);
		} else if (s->state == SLOT_OBSERVED) {
			s->state = SLOT_MATCHED;
			if (kd->differs &&
			    (in_scope(d, kd->owner(dv[i])) ||
			     in_scope(d, kd->owner(s->obj))) &&
			    kd->differs(dv[i], s->obj))
				add_create(d, k, dv[i], s->obj);
		} /* else a duplicate desired key: the first wins */
	}
	for (size_t i = 0; i <= ix.mask; i++) {
		const struct slot *s = &ix.v[i];

		if (s->state == SLOT_OBSERVED &&
		    in_scope(d, kd->owner(s->obj)) && !kd->undeletable(s->obj))
			del->v[del->n++] = s->obj;
	}
	free(ix.v);
	sort_list(cre, kd);
	sort_list(del, kd);
	if (k == K_ROUTE)
		sort_list(&d->early, kd);
	return 0;
}

/* ---- Pruning ------------------------------------------------------------ */

static bool ns_deleted(const struct diff *d, const char *ns)
{
	const struct list *l = &d->del[K_NETNS];
	Mt__Kernel__Netns key = { .name = (char *)ns };
	size_t lo = 0, hi = l->n;

	if (!*ns)
		return false;
	while (lo < hi) { /* the list is sorted by name */
		size_t mid = (lo + hi) / 2;
		int c = netns_key(&key, l->v[mid]);

		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

/* gone = every link deleted in this plan, pruned or not, sorted by key. */
static bool link_gone(const struct list *gone, const char *ns,
		      const char *dev)
{
	Mt__Kernel__Link key = { .netns = (char *)ns, .name = (char *)dev };
	size_t lo = 0, hi = gone->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = link_key(&key, gone->v[mid]);

		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

static void prune_list(struct list *l, bool (*gone)(const struct diff *,
						     const struct list *,
						     const void *),
		       const struct diff *d, const struct list *links)
{
	size_t w = 0;

	for (size_t i = 0; i < l->n; i++)
		if (!gone(d, links, l->v[i]))
			l->v[w++] = l->v[i];
	l->n = w;
}

/* A device that goes away in this plan: a deleted link or tunnel. */
static bool dev_gone(const struct diff *d, const struct list *links,
		     const char *ns, const char *dev)
{
	const struct list *t = &d->del[K_TUNNEL];
	Mt__Kernel__Tunnel key = { .netns = (char *)ns, .name = (char *)dev };
	size_t lo = 0, hi = t->n;

	if (link_gone(links, ns, dev))
		return true;
	while (lo < hi) { /* sorted by key */
		size_t mid = (lo + hi) / 2;
		int c = tunnel_key(&key, t->v[mid]);

		if (c == 0)
			return true;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

static bool link_vanishes(const struct diff *d, const struct list *links,
			  const void *o)
{
	const Mt__Kernel__Link *l = o;

	return ns_deleted(d, S(l->netns)) ||
	       (!*S(l->netns) && ns_deleted(d, S(l->peer_netns)));
}

static bool addr_vanishes(const struct diff *d, const struct list *links,
			  const void *o)
{
	const Mt__Kernel__Addr *a = o;

	return ns_deleted(d, S(a->netns)) ||
	       dev_gone(d, links, S(a->netns), S(a->dev));
}

static bool route_vanishes(const struct diff *d, const struct list *links,
			   const void *o)
{
	const Mt__Kernel__Route *r = o;

	if (ns_deleted(d, S(r->netns)) ||
	    dev_gone(d, links, S(r->netns), S(r->dev)))
		return true;
	/* the kernel drops a multipath route when any nexthop's device is
	 * unregistered */
	for (size_t i = 0; i < r->n_nexthops; i++)
		if (dev_gone(d, links, S(r->netns), S(r->nexthops[i]->dev)))
			return true;
	return false;
}

static bool tunnel_vanishes(const struct diff *d, const struct list *links,
			    const void *o)
{
	return ns_deleted(d, S(((const Mt__Kernel__Tunnel *)o)->netns));
}

static bool mss_clamp_vanishes(const struct diff *d, const struct list *links,
			       const void *o)
{
	return ns_deleted(d, S(((const Mt__Kernel__MssClamp *)o)->netns));
}

static bool rule_vanishes(const struct diff *d, const struct list *links,
			  const void *o)
{
	return ns_deleted(d, S(((const Mt__Kernel__Rule *)o)->netns));
}

static bool firewall_vanishes(const struct diff *d, const struct list *links,
			      const void *o)
{
	return ns_deleted(d, S(((const Mt__Kernel__Firewall *)o)->netns));
}

static int prune(struct diff *d)
{
	struct list gone = { 0 };

	/* Every deleted link, kept before the link list itself is pruned. */
	if (d->del[K_LINK].n) {
		gone.v = malloc(d->del[K_LINK].n * sizeof(*gone.v));
		if (!gone.v)
			return -ENOMEM;
		memcpy(gone.v, d->del[K_LINK].v,
		       d->del[K_LINK].n * sizeof(*gone.v));
		gone.n = d->del[K_LINK].n;
	}
	prune_list(&d->del[K_ADDR], addr_vanishes, d, &gone);
	prune_list(&d->del[K_ROUTE], route_vanishes, d, &gone);
	prune_list(&d->del[K_RULE], rule_vanishes, d, &gone);
	prune_list(&d->del[K_MSS_CLAMP], mss_clamp_vanishes, d, &gone);
	prune_list(&d->del[K_FIREWALL], firewall_vanishes, d, &gone);
	/* addresses and routes above still saw the deleted tunnels */
	prune_list(&d->del[K_TUNNEL], tunnel_vanishes, d, &gone);
	prune_list(&d->del[K_LINK], link_vanishes, d, &gone);
	free(gone.v);
	return 0;
}

/* ---- Entry points ------------------------------------------------------- */

static int emit(Mt__Kernel__Plan *plan, const struct list *l,
		Mt__Kernel__Op__Action action)
{
	for (size_t i = 0; i < l->n; i++)
		if (!mt_plan_add(plan, action, l->v[i]))
			return -ENOMEM;
	return (int)l->n;
}

static int fw_pair_cmp(const void *a, const void *b)
{
	return firewall_key(((const struct fw_pair *)a)->desired,
			    ((const struct fw_pair *)b)->desired);
}

/* The firewall creations: the desired firewall, except that a list the
 * kernel holds already (same family and digest) goes without its
 * prefixes, as an empty delta from that digest, which mt-fastpath leaves
 * alone. A shallow view of the desired
 * object is what gets copied into the op: desired is not modified. */
static int emit_firewalls(Mt__Kernel__Plan *plan, struct diff *d)
{
	if (d->n_fw_pairs > 1)
		qsort(d->fw_pairs, d->n_fw_pairs, sizeof(*d->fw_pairs),
		      fw_pair_cmp);
	for (size_t i = 0; i < d->n_fw_pairs; i++) {
		const Mt__Kernel__Firewall *x = d->fw_pairs[i].desired;
		const Mt__Kernel__Firewall *y = d->fw_pairs[i].observed;
		_cleanup_free_ Mt__Kernel__FirewallList **lp = NULL;
		_cleanup_free_ Mt__Kernel__FirewallList *lv = NULL;
		Mt__Kernel__Firewall v = *x;

		if (y && x->n_lists) {
			lp = malloc(x->n_lists * sizeof(*lp));
			lv = malloc(x->n_lists * sizeof(*lv));
			if (!lp || !lv)
				return -ENOMEM;
			for (size_t j = 0; j < x->n_lists; j++) {
				lv[j] = *x->lists[j];
				if (fw_list_same(x->lists[j], y)) {
					/* an empty delta from the same digest:
					 * nothing to do while the kernel holds
					 * it, -ESTALE should that change */
					lv[j].prefixes = NULL;
					lv[j].n_prefixes = 0;
					lv[j].delta = true;
					lv[j].base_digest = lv[j].digest;
				}
				lp[j] = &lv[j];
			}
			v.lists = lp;
		}
		if (!mt_plan_add(plan, MT__KERNEL__OP__ACTION__CREATE, &v.base))
			return -ENOMEM;
	}
	return (int)d->n_fw_pairs;
}

int mt_diff(const Mt__Kernel__KernelState *desired,
	    const Mt__Kernel__KernelState *observed,
	    const struct mt_diff_scope *scope, Mt__Kernel__Plan *plan)
{
	struct diff d = { .scope = scope };
	int r = 0, n_ops = 0;
	size_t k;

	if (scope && scope->n_owners) {
		d.owners = malloc(scope->n_owners * sizeof(*d.owners));
		if (!d.owners)
			return -ENOMEM;
		for (k = 0; k < scope->n_owners; k++)
			d.owners[k] = S(scope->owners[k]);
		qsort(d.owners, scope->n_owners, sizeof(*d.owners), strp_cmp);
	}
	for (k = 0; k < MT_ARRAY_SIZE(create_order) && r == 0; k++)
		r = walk_kind(&d, create_order[k], desired, observed);
	if (r == 0)
		r = prune(&d);
	if (r >= 0) {
		r = emit(plan, &d.early, MT__KERNEL__OP__ACTION__CREATE);
		n_ops += r > 0 ? r : 0;
	}
	for (k = 0; k < MT_ARRAY_SIZE(delete_order) && r >= 0; k++) {
		r = emit(plan, &d.del[delete_order[k]],
			 MT__KERNEL__OP__ACTION__DELETE);
		n_ops += r > 0 ? r : 0;
	}
	for (k = 0; k < MT_ARRAY_SIZE(create_order) && r >= 0; k++) {
		if (create_order[k] == K_FIREWALL)
			r = emit_firewalls(plan, &d);
		else
			r = emit(plan, &d.cre[create_order[k]],
				 MT__KERNEL__OP__ACTION__CREATE);
		n_ops += r > 0 ? r : 0;
	}
	for (k = 0; k < K_N; k++) {
		free(d.del[k].v);
		free(d.cre[k].v);
	}
	free(d.early.v);
	free(d.fw_pairs);
	free(d.owners);
	return r < 0 ? r : n_ops;
}

size_t mt_plan_count(const Mt__Kernel__Plan *plan, size_t *n_create,
		     size_t *n_delete)
{
	size_t c = 0, del = 0;

	for (size_t i = 0; i < plan->n_ops; i++) {
		if (plan->ops[i]->action == MT__KERNEL__OP__ACTION__DELETE)
			del++;
		else
			c++;
	}
	if (n_create)
		*n_create = c;
	if (n_delete)
		*n_delete = del;
	return c + del;
}

char *mt_plan_render(const Mt__Kernel__Plan *plan)
{
	size_t len = 0, cap = 256;
	char *out = malloc(cap), line[512];

	if (!out)
		return NULL;
	out[0] = '\0';
	for (size_t i = 0; i < plan->n_ops; i++) {
		size_t n;

		mt_op_describe(plan->ops[i], line, sizeof(line));
		n = strlen(line);
		if (len + n + 2 > cap) {
			char *g;

			while (len + n + 2 > cap)
				cap *= 2;
			g = realloc(out, cap);
			if (!g) {
				free(out);
				return NULL;
			}
			out = g;
		}
		memcpy(out + len, line, n);
		len += n;
		out[len++] = '\n';
		out[len] = '\0';
	}
	return out;
}
