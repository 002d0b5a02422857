/* The desired state builder and the diff: hand-built inputs, plans checked
 * as rendered text and by shape. */
#include "desired.h"
#include "diff.h"
#include "mt_cleanup.h"
#include "mt_kstate.h"
#include "mt_metal.h"
#include "mt_test.h"
#include "tunnel_status.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#define MAXC 16

/* Customers with owned string storage. */
struct cust {
	Mt__Config__Customer c;
	char name[16];
	char *pfx[4], *eps[4];
	char buf[8][48];
};

static void cust_init(struct cust *t, uint32_t id, const char *name,
		      const char *const *pfx, const char *const *eps)
{
	size_t b = 0;

	memset(t, 0, sizeof(*t));
	mt__config__customer__init(&t->c);
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->c.id = id;
	t->c.name = t->name;
	t->c.prefixes = t->pfx;
	t->c.tunnel_endpoints = t->eps;
	for (size_t i = 0; pfx && pfx[i] && i < 4; i++) {
		snprintf(t->buf[b], sizeof(t->buf[b]), "%s", pfx[i]);
		t->pfx[t->c.n_prefixes++] = t->buf[b++];
	}
	for (size_t i = 0; eps && eps[i] && i < 4; i++) {
		snprintf(t->buf[b], sizeof(t->buf[b]), "%s", eps[i]);
		t->eps[t->c.n_tunnel_endpoints++] = t->buf[b++];
	}
}

#define P(...) ((const char *[]){ __VA_ARGS__, NULL })

static struct mt_metal metal;

static Mt__Kernel__KernelState *desired_of(struct cust *t, size_t n)
{
	Mt__Config__Customer *cs[MAXC];
	Mt__Kernel__KernelState *st = mt_kstate_new();

	for (size_t i = 0; i < n; i++)
		cs[i] = &t[i].c;
	CHECK(st && mt_desired_build(&metal, cs, n, st) == 0);
	return st;
}

/* mt_kstate_add_* grow arrays at powers of two, assuming they built the
 * array; an unpacked (or mt_message_dup'ed) message has arrays of exactly n.
 * Give them the capacity the add functions expect. */
static void *pow2_array(void *arr, size_t n)
{
	size_t cap = 1;

	while (cap < n)
		cap *= 2;
	return n ? realloc(arr, cap * sizeof(void *)) : arr;
}

static void make_growable(Mt__Kernel__KernelState *o)
{
	o->netns = pow2_array(o->netns, o->n_netns);
	o->links = pow2_array(o->links, o->n_links);
	o->addrs = pow2_array(o->addrs, o->n_addrs);
	o->routes = pow2_array(o->routes, o->n_routes);
	o->rules = pow2_array(o->rules, o->n_rules);
	o->sysctls = pow2_array(o->sysctls, o->n_sysctls);
	o->mark_tables = pow2_array(o->mark_tables, o->n_mark_tables);
	o->mark_prefixes = pow2_array(o->mark_prefixes, o->n_mark_prefixes);
	o->tunnels = pow2_array(o->tunnels, o->n_tunnels);
	o->mss_clamps = pow2_array(o->mss_clamps, o->n_mss_clamps);
}

/* What mt-fastpath reports for a desired state: the same objects, with the
 * fields the kernel adds (ifindex, mtu, kind "veth" on both veth ends), plus
 * objects the kernel makes by itself. */
static Mt__Kernel__KernelState *observe(const Mt__Kernel__KernelState *d)
{
	Mt__Kernel__KernelState *o =
		(Mt__Kernel__KernelState *)mt_message_dup(&d->base);

	CHECK(o != NULL);
	make_growable(o);
	for (size_t i = 0; i < o->n_links; i++) {
		Mt__Kernel__Link *l = o->links[i];

		l->ifindex = (uint32_t)(i + 10);
		l->mtu = !strcmp(l->name, "lo") ? 65536 : 1500;
		if (strcmp(l->name, "lo"))
			mt_kstate_set_str(&l->kind, "veth");
		if (!strcmp(l->name, MT_CUST_VETH)) {
			Mt__Kernel__Addr *a = mt_kstate_add_addr(o);

			mt_kstate_set_str(&a->netns, l->netns);
			mt_kstate_set_str(&a->dev, l->name);
			mt_kstate_set_str(&a->prefix, "fe80::1/64");
			mt_kstate_set_str(&a->owner, l->owner);
			a = mt_kstate_add_addr(o);
			mt_kstate_set_str(&a->netns, l->netns);
			mt_kstate_set_str(&a->dev, "lo");
			mt_kstate_set_str(&a->prefix, "127.0.0.1/8");
			mt_kstate_set_str(&a->owner, l->owner);
			a = mt_kstate_add_addr(o);
			mt_kstate_set_str(&a->netns, l->netns);
			mt_kstate_set_str(&a->dev, "lo");
			mt_kstate_set_str(&a->prefix, "::1/128");
			mt_kstate_set_str(&a->owner, l->owner);
		}
	}
	return o;
}

static size_t total_objects(const Mt__Kernel__KernelState *st)
{
	return st->n_netns + st->n_links + st->n_addrs + st->n_routes +
	       st->n_rules + st->n_sysctls + st->n_mark_tables +
	       st->n_mark_prefixes + st->n_tunnels + st->n_mss_clamps;
}

/* Runs the diff and returns the rendered plan (heap); *n_ops set. */
static char *diff_text(const Mt__Kernel__KernelState *d,
		       const Mt__Kernel__KernelState *o,
		       const struct mt_diff_scope *scope, int *n_ops)
{
	Mt__Kernel__Plan *plan = mt_plan_new();
	char *s;
	int r = mt_diff(d, o, scope, plan);

	CHECK(r >= 0);
	CHECK((size_t)r == plan->n_ops);
	s = mt_plan_render(plan);
	*n_ops = r;
	mt_plan_free(plan);
	return s;
}

static void test_layout(void)
{
	static const char want[] =
		"create nft table inet mt0-mark (fwmark 0x4d540000/0xffff0000)\n"
		"create netns mt0-acme\n"
		"create link mt0-acme type veth up in netns metal\n"
		"create link lo up in netns mt0-acme\n"
		"create link metal0 up in netns mt0-acme\n"
		"create sysctl net/ipv4/conf/mt0-acme/rp_filter=0 in netns metal\n"
		"create sysctl net/ipv4/ip_forward=1 in netns metal\n"
		"create sysctl net/ipv4/conf/all/rp_filter=0 in netns mt0-acme\n"
		"create sysctl net/ipv4/conf/default/rp_filter=0 in netns mt0-acme\n"
		"create sysctl net/ipv4/conf/metal0/rp_filter=0 in netns mt0-acme\n"
		"create sysctl net/ipv4/fib_multipath_hash_policy=1 in netns mt0-acme\n"
		"create sysctl net/ipv4/ip_forward=1 in netns mt0-acme\n"
		"create addr 169.254.0.14/31 dev mt0-acme in netns metal\n"
		"create addr 192.0.2.10/32 dev lo in netns mt0-acme\n"
		"create addr 169.254.0.15/31 dev metal0 in netns mt0-acme\n"
		"create rule priority 1000 fwmark 0x4d540000/0xffff0000 table 2000 in netns metal\n"
		"create rule priority 1000 fwmark 0x0/0x0 table 2001 in netns mt0-acme\n"
		"create route 192.0.2.10/32 table 2000 via 169.254.0.15 dev mt0-acme metric 0 in netns metal\n"
		"create route 2001:db8:1::/48 table 2000 dev mt0-acme metric 0 in netns metal\n"
		"create route 203.0.113.0/24 table 2000 via 169.254.0.15 dev mt0-acme metric 0 in netns metal\n"
		"create route 0.0.0.0/0 table 2001 via 169.254.0.14 dev metal0 src 192.0.2.10 metric 0 in netns mt0-acme\n"
		"create route blackhole 2001:db8:1::/48 table 2001 metric 2147483647 in netns mt0-acme\n"
		"create route blackhole 203.0.113.0/24 table 2001 metric 2147483647 in netns mt0-acme\n"
		"create mark prefix 192.0.2.10/32 (customer acme)\n"
		"create mark prefix 2001:db8:1::/48 (customer acme)\n"
		"create mark prefix 203.0.113.0/24 (customer acme)\n";
	struct cust t;
	Mt__Kernel__KernelState *d, *empty = mt_kstate_new();
	char *s;
	int n;

	/* prefixes come out in canonical form */
	cust_init(&t, 7, "acme", P("203.0.113.0/24", "2001:DB8:1::/48"),
		  P("192.0.2.10"));
	d = desired_of(&t, 1);
	s = diff_text(d, empty, NULL, &n);
	CHECK_STR(s, want);
	CHECK((size_t)n == total_objects(d));
	free(s);

	/* the veth pair's fields, which the text does not show */
	CHECK(d->n_links == 3);
	for (size_t i = 0; i < d->n_links; i++) {
		const Mt__Kernel__Link *l = d->links[i];

		CHECK_STR(l->owner, "acme");
		CHECK(l->up && l->mtu == 0);
		if (!*l->netns) {
			CHECK_STR(l->kind, "veth");
			CHECK_STR(l->peer_netns, "mt0-acme");
			CHECK_STR(l->peer_name, MT_CUST_VETH);
		} else {
			CHECK_STR(l->kind, "");
			CHECK_STR(l->peer_netns, "");
		}
	}
	/* owners: the customer's name, "" for the shared objects */
	for (size_t i = 0; i < d->n_rules; i++)
		CHECK_STR(d->rules[i]->owner,
			  *d->rules[i]->netns ? "acme" : "");
	for (size_t i = 0; i < d->n_sysctls; i++)
		CHECK_STR(d->sysctls[i]->owner,
			  strcmp(d->sysctls[i]->key, "net/ipv4/ip_forward") ||
					  *d->sysctls[i]->netns ?
				  "acme" :
				  "");
	mt_kstate_free(d);
	mt_kstate_free(empty);
}

static int create_rank(const Mt__Kernel__Op *op)
{
	switch (op->object_case) {
	case MT__KERNEL__OP__OBJECT_MARK_TABLE: return 0;
	case MT__KERNEL__OP__OBJECT_NETNS: return 1;
	case MT__KERNEL__OP__OBJECT_LINK: return 2;
	case MT__KERNEL__OP__OBJECT_SYSCTL: return 3;
	case MT__KERNEL__OP__OBJECT_TUNNEL: return 4;
	case MT__KERNEL__OP__OBJECT_ADDR: return 5;
	case MT__KERNEL__OP__OBJECT_RULE: return 6;
	case MT__KERNEL__OP__OBJECT_MSS_CLAMP: return 7;
	case MT__KERNEL__OP__OBJECT_ROUTE: return 8;
	case MT__KERNEL__OP__OBJECT_MARK_PREFIX: return 9;
	default: return -1;
	}
}

static int delete_rank(const Mt__Kernel__Op *op)
{
	switch (op->object_case) {
	case MT__KERNEL__OP__OBJECT_MARK_PREFIX: return 0;
	case MT__KERNEL__OP__OBJECT_ROUTE: return 1;
	case MT__KERNEL__OP__OBJECT_RULE: return 2;
	case MT__KERNEL__OP__OBJECT_ADDR: return 3;
	case MT__KERNEL__OP__OBJECT_MSS_CLAMP: return 4;
	case MT__KERNEL__OP__OBJECT_TUNNEL: return 5;
	case MT__KERNEL__OP__OBJECT_LINK: return 6;
	case MT__KERNEL__OP__OBJECT_NETNS: return 7;
	case MT__KERNEL__OP__OBJECT_MARK_TABLE: return 8;
	default: return -1;
	}
}

/* Deletions first, groups in dependency order, each group in key order. */
static void check_order(const Mt__Kernel__Plan *p)
{
	bool creating = false;
	int last = -1;
	char prev[512] = "", cur[512];

	for (size_t i = 0; i < p->n_ops; i++) {
		const Mt__Kernel__Op *op = p->ops[i];
		bool del = op->action == MT__KERNEL__OP__ACTION__DELETE;
		int rank = del ? delete_rank(op) : create_rank(op);

		CHECK(rank >= 0);
		CHECK(!(del && creating)); /* no deletion after a creation */
		if (!del && !creating) {
			creating = true;
			last = -1;
		}
		CHECK(rank >= last);
		mt_op_describe(op, cur, sizeof(cur));
		CHECK(strcmp(prev, cur) != 0); /* no op twice */
		if (rank != last)
			prev[0] = '\0';
		last = rank;
		snprintf(prev, sizeof(prev), "%s", cur);
	}
}

static void test_empty_to_n(void)
{
	struct cust t[3];
	Mt__Kernel__KernelState *d, *empty = mt_kstate_new();
	Mt__Kernel__Plan *p = mt_plan_new();
	size_t nc, nd;

	/* given in reverse order: the plan is ordered by key regardless */
	cust_init(&t[0], 3, "cc", P("192.0.2.0/24"), NULL);
	cust_init(&t[1], 2, "bb", P("198.51.99.0/24"), P("198.51.98.1"));
	cust_init(&t[2], 1, "aa", P("203.0.113.0/24", "2001:db8:1::/48"),
		  NULL);
	d = desired_of(t, 3);
	CHECK(mt_diff(d, empty, NULL, p) == (int)total_objects(d));
	CHECK(mt_plan_count(p, &nc, &nd) == p->n_ops);
	CHECK(nc == p->n_ops && nd == 0);
	check_order(p);
	/* netns creations by name */
	CHECK(p->ops[1]->object_case == MT__KERNEL__OP__OBJECT_NETNS);
	CHECK_STR(p->ops[1]->netns->name, "mt0-aa");
	CHECK_STR(p->ops[2]->netns->name, "mt0-bb");
	CHECK_STR(p->ops[3]->netns->name, "mt0-cc");
	/* the ops carry the desired objects */
	CHECK(p->ops[4]->object_case == MT__KERNEL__OP__OBJECT_LINK);
	CHECK_STR(p->ops[4]->link->peer_netns, "mt0-aa");
	mt_plan_free(p);

	/* the same diff again gives the same plan */
	{
		char *a, *b;
		int n1, n2;

		a = diff_text(d, empty, NULL, &n1);
		b = diff_text(d, empty, NULL, &n2);
		CHECK_STR(a, b);
		free(a);
		free(b);
	}
	mt_kstate_free(d);
	mt_kstate_free(empty);
}

static void test_identical(void)
{
	struct cust t[2];
	Mt__Kernel__KernelState *d, *o;
	char *s;
	int n;

	cust_init(&t[0], 1, "aa", P("203.0.113.0/24", "2001:db8:1::/48"),
		  P("192.0.2.1", "2001:db8:2::1"));
	cust_init(&t[1], 2, "bb", P("198.51.99.0/24"), NULL);
	d = desired_of(t, 2);
	o = observe(d);
	s = diff_text(d, o, NULL, &n);
	CHECK(n == 0);
	CHECK_STR(s, "");
	free(s);
	mt_kstate_free(d);
	mt_kstate_free(o);
}

static void test_one_changed(void)
{
	struct cust t[3];
	Mt__Kernel__KernelState *d, *o;
	char *s;
	int n;

	cust_init(&t[0], 1, "aa", P("203.0.113.0/24"), NULL);
	cust_init(&t[1], 2, "bb", P("198.51.99.0/24", "198.51.97.0/24"),
		  P("198.51.98.1"));
	cust_init(&t[2], 3, "cc", P("192.0.2.0/24"), NULL);
	d = desired_of(t, 3);
	o = observe(d);
	mt_kstate_free(d);
	/* bb drops a prefix and an endpoint and gains a prefix */
	cust_init(&t[1], 2, "bb", P("198.51.99.0/24", "198.51.96.0/24"), NULL);
	d = desired_of(t, 3);
	s = diff_text(d, o, NULL, &n);
	CHECK_STR(s,
		  /* routes first: their devices exist (make before break) */
		  "create route 198.51.96.0/24 table 2000 via 169.254.0.5 dev mt0-bb metric 0 in netns metal\n"
		  /* the ICMP source was the endpoint that goes away */
		  "create route 0.0.0.0/0 table 2001 via 169.254.0.4 dev metal0 metric 0 in netns mt0-bb\n"
		  "create route blackhole 198.51.96.0/24 table 2001 metric 2147483647 in netns mt0-bb\n"
		  "delete mark prefix 198.51.97.0/24 (customer bb)\n"
		  "delete mark prefix 198.51.98.1/32 (customer bb)\n"
		  "delete route 198.51.97.0/24 table 2000 via 169.254.0.5 dev mt0-bb metric 0 in netns metal\n"
		  "delete route 198.51.98.1/32 table 2000 via 169.254.0.5 dev mt0-bb metric 0 in netns metal\n"
		  "delete route blackhole 198.51.97.0/24 table 2001 metric 2147483647 in netns mt0-bb\n"
		  "delete addr 198.51.98.1/32 dev lo in netns mt0-bb\n"
		  "create mark prefix 198.51.96.0/24 (customer bb)\n");
	CHECK(n == 10);
	free(s);
	mt_kstate_free(d);
	mt_kstate_free(o);
}

static void test_deleted_customer(void)
{
	struct cust t[2];
	Mt__Kernel__KernelState *d, *o;
	char *s;
	int n;

	cust_init(&t[0], 1, "aa", P("203.0.113.0/24"), NULL);
	cust_init(&t[1], 2, "bb", P("198.51.99.0/24", "2001:db8:1::/48"),
		  P("198.51.98.1"));
	d = desired_of(t, 2);
	o = observe(d);
	mt_kstate_free(d);
	d = desired_of(t, 1);
	/* everything in or hanging off mt0-bb goes with the namespace; the
	 * marking set entries are separate objects */
	s = diff_text(d, o, NULL, &n);
	CHECK_STR(s, "delete mark prefix 198.51.98.1/32 (customer bb)\n"
		     "delete mark prefix 198.51.99.0/24 (customer bb)\n"
		     "delete mark prefix 2001:db8:1::/48 (customer bb)\n"
		     "delete netns mt0-bb\n");
	CHECK(n == 4);
	free(s);
	mt_kstate_free(d);
	mt_kstate_free(o);
}

/* A metal-side link deleted without its namespace (a leftover veth whose
 * peer is elsewhere): its addresses and routes go with it. */
static void test_prune_link(void)
{
	Mt__Kernel__KernelState *d = mt_kstate_new(), *o = mt_kstate_new();
	Mt__Kernel__Link *l = mt_kstate_add_link(o);
	Mt__Kernel__Addr *a = mt_kstate_add_addr(o);
	Mt__Kernel__Route *r = mt_kstate_add_route(o);
	Mt__Kernel__Route *r2 = mt_kstate_add_route(o);
	char *s;
	int n;

	mt_kstate_set_str(&l->name, "mt0-ghost");
	mt_kstate_set_str(&l->kind, "veth");
	mt_kstate_set_str(&l->owner, "ghost");
	mt_kstate_set_str(&a->dev, "mt0-ghost");
	mt_kstate_set_str(&a->prefix, "169.254.0.40/31");
	mt_kstate_set_str(&a->owner, "ghost");
	r->table = 2000;
	mt_kstate_set_str(&r->dst, "192.0.2.0/24");
	mt_kstate_set_str(&r->dev, "mt0-ghost");
	mt_kstate_set_str(&r->owner, "ghost");
	r2->table = 2000;
	mt_kstate_set_str(&r2->dst, "192.0.3.0/24");
	mt_kstate_set_str(&r2->dev, "mt0-other");
	mt_kstate_set_str(&r2->owner, "other");
	s = diff_text(d, o, NULL, &n);
	CHECK_STR(s, "delete route 192.0.3.0/24 table 2000 dev mt0-other metric 0 in netns metal\n"
		     "delete link mt0-ghost type veth in netns metal\n");
	free(s);
	mt_kstate_free(d);
	mt_kstate_free(o);
}

static void test_scope(void)
{
	struct cust t[3];
	Mt__Kernel__KernelState *d, *o;
	const char *only_bb[] = { "bb" }, *only_aa[] = { "aa" };
	const char *many[] = { "zz", "cc", "bb", "aa" };
	struct mt_diff_scope sbb = { only_bb, 1 }, saa = { only_aa, 1 };
	struct mt_diff_scope smany = { many, 4 }, snone = { NULL, 0 };
	char *s;
	int n;

	/* observed: aa, bb (old) and zz (a customer no longer in the store) */
	cust_init(&t[0], 1, "aa", P("203.0.113.0/24"), NULL);
	cust_init(&t[1], 2, "bb", P("198.51.99.0/24"), NULL);
	cust_init(&t[2], 9, "zz", P("192.0.2.0/24"), NULL);
	d = desired_of(t, 3);
	o = observe(d);
	mt_kstate_free(d);
	/* desired: aa, bb with a new prefix; the shared objects drifted */
	cust_init(&t[1], 2, "bb", P("198.51.99.0/24", "198.51.96.0/24"), NULL);
	d = desired_of(t, 2);
	for (size_t i = 0; i < o->n_sysctls; i++)
		if (!*o->sysctls[i]->netns &&
		    !strcmp(o->sysctls[i]->key, "net/ipv4/ip_forward"))
			mt_kstate_set_str(&o->sysctls[i]->value, "0");

	s = diff_text(d, o, &sbb, &n);
	CHECK_STR(s, "create route 198.51.96.0/24 table 2000 via 169.254.0.5 dev mt0-bb metric 0 in netns metal\n"
		     "create route blackhole 198.51.96.0/24 table 2001 metric 2147483647 in netns mt0-bb\n"
		     "create sysctl net/ipv4/ip_forward=1 in netns metal\n"
		     "create mark prefix 198.51.96.0/24 (customer bb)\n");
	free(s);
	/* aa is unchanged: only the shared drift; zz is foreign to the scope */
	s = diff_text(d, o, &saa, &n);
	CHECK_STR(s, "create sysctl net/ipv4/ip_forward=1 in netns metal\n");
	free(s);
	/* an empty scope still repairs the shared objects */
	s = diff_text(d, o, &snone, &n);
	CHECK_STR(s, "create sysctl net/ipv4/ip_forward=1 in netns metal\n");
	free(s);
	/* unscoped, or zz named: zz is deleted */
	s = diff_text(d, o, NULL, &n);
	CHECK_STR(s, "create route 198.51.96.0/24 table 2000 via 169.254.0.5 dev mt0-bb metric 0 in netns metal\n"
		     "create route blackhole 198.51.96.0/24 table 2001 metric 2147483647 in netns mt0-bb\n"
		     "delete mark prefix 192.0.2.0/24 (customer zz)\n"
		     "delete netns mt0-zz\n"
		     "create sysctl net/ipv4/ip_forward=1 in netns metal\n"
		     "create mark prefix 198.51.96.0/24 (customer bb)\n");
	{
		char *s2 = diff_text(d, o, &smany, &n);

		CHECK_STR(s2, s);
		free(s2);
	}
	free(s);
	mt_kstate_free(d);
	mt_kstate_free(o);
}

/* A prefix moving from one customer to another in one store change. */
static void test_prefix_moves(void)
{
	struct cust t[2];
	Mt__Kernel__KernelState *d, *o;
	const char *only_aa[] = { "aa" };
	struct mt_diff_scope saa = { only_aa, 1 };
	char *s;
	int n;

	cust_init(&t[0], 1, "aa", P("203.0.113.0/24", "192.0.2.0/24"), NULL);
	cust_init(&t[1], 2, "bb", P("198.51.99.0/24"), NULL);
	d = desired_of(t, 2);
	o = observe(d);
	mt_kstate_free(d);
	cust_init(&t[0], 1, "aa", P("203.0.113.0/24"), NULL);
	cust_init(&t[1], 2, "bb", P("198.51.99.0/24", "192.0.2.0/24"), NULL);
	d = desired_of(t, 2);
	static const char want[] =
		"create route 192.0.2.0/24 table 2000 via 169.254.0.5 dev mt0-bb metric 0 in netns metal\n"
		"create route blackhole 192.0.2.0/24 table 2001 metric 2147483647 in netns mt0-bb\n"
		"delete route blackhole 192.0.2.0/24 table 2001 metric 2147483647 in netns mt0-aa\n"
		"create mark prefix 192.0.2.0/24 (customer bb)\n";
	static const char want_aa[] =
		"create route 192.0.2.0/24 table 2000 via 169.254.0.5 dev mt0-bb metric 0 in netns metal\n"
		"delete route blackhole 192.0.2.0/24 table 2001 metric 2147483647 in netns mt0-aa\n"
		"create mark prefix 192.0.2.0/24 (customer bb)\n";
	s = diff_text(d, o, NULL, &n);
	CHECK_STR(s, want);
	free(s);
	/* the old owner's scope sees the shared keys too (a key is in scope
	 * when either side's owner is), but not bb's own namespace */
	s = diff_text(d, o, &saa, &n);
	CHECK_STR(s, want_aa);
	free(s);
	mt_kstate_free(d);
	mt_kstate_free(o);
}

/* Drift: one thing changed in the kernel gives exactly one op. */
enum drift {
	DRIFT_ROUTE_MISSING,
	DRIFT_ROUTE_GATEWAY,
	DRIFT_ROUTE_DEV,
	DRIFT_LINK_DOWN,
	DRIFT_LINK_MTU,     /* observed mtu differs, desired 0: no op */
	DRIFT_LINK_KIND,    /* observed-only fields differ: no op */
	DRIFT_SYSCTL_VALUE,
	DRIFT_SYSCTL_EXTRA, /* not desired: never deleted */
	DRIFT_ADDR_MISSING,
	DRIFT_ADDR_EXTRA,
	DRIFT_RULE_MISSING,
	DRIFT_NETNS_MISSING_LINK,
	DRIFT_MARK_TABLE,
	DRIFT_MARK_OWNER,
	DRIFT_MARK_EXTRA,
	DRIFT_FOREIGN_ROUTE,
};

static void remove_at(void **arr, size_t *n, size_t i)
{
	protobuf_c_message_free_unpacked(arr[i], NULL);
	memmove(&arr[i], &arr[i + 1], (*n - i - 1) * sizeof(*arr));
	(*n)--;
}

static void apply_drift(Mt__Kernel__KernelState *o, enum drift k)
{
	switch (k) {
	case DRIFT_ROUTE_MISSING:
		for (size_t i = 0; i < o->n_routes; i++)
			if (!strcmp(o->routes[i]->dst, "198.51.99.0/24")) {
				remove_at((void **)o->routes, &o->n_routes, i);
				break;
			}
		break;
	case DRIFT_ROUTE_GATEWAY:
		mt_kstate_set_str(&o->routes[0]->gateway, "169.254.0.99");
		break;
	case DRIFT_ROUTE_DEV:
		mt_kstate_set_str(&o->routes[0]->dev, "mt0-zz");
		break;
	case DRIFT_LINK_DOWN:
		o->links[0]->up = false;
		break;
	case DRIFT_LINK_MTU:
		o->links[0]->mtu = 9000;
		break;
	case DRIFT_LINK_KIND:
		mt_kstate_set_str(&o->links[0]->kind, "bridge");
		mt_kstate_set_str(&o->links[0]->peer_netns, "");
		o->links[0]->ifindex = 77;
		break;
	case DRIFT_SYSCTL_VALUE:
		mt_kstate_set_str(&o->sysctls[0]->value, "2");
		break;
	case DRIFT_SYSCTL_EXTRA: {
		Mt__Kernel__Sysctl *x = mt_kstate_add_sysctl(o);

		mt_kstate_set_str(&x->key, "net/ipv4/conf/mt0-old/rp_filter");
		mt_kstate_set_str(&x->value, "1");
		break;
	}
	case DRIFT_ADDR_MISSING:
		remove_at((void **)o->addrs, &o->n_addrs, 0);
		break;
	case DRIFT_ADDR_EXTRA: {
		Mt__Kernel__Addr *x = mt_kstate_add_addr(o);

		mt_kstate_set_str(&x->netns, "mt0-aa");
		mt_kstate_set_str(&x->dev, MT_CUST_VETH);
		mt_kstate_set_str(&x->prefix, "169.254.9.9/31");
		mt_kstate_set_str(&x->owner, "aa");
		break;
	}
	case DRIFT_RULE_MISSING:
		remove_at((void **)o->rules, &o->n_rules, 0);
		break;
	case DRIFT_NETNS_MISSING_LINK:
		for (size_t i = 0; i < o->n_links; i++)
			if (!strcmp(o->links[i]->name, "lo")) {
				remove_at((void **)o->links, &o->n_links, i);
				break;
			}
		break;
	case DRIFT_MARK_TABLE:
		o->mark_tables[0]->fwmark = 0x1;
		break;
	case DRIFT_MARK_OWNER:
		mt_kstate_set_str(&o->mark_prefixes[0]->owner, "bb");
		break;
	case DRIFT_MARK_EXTRA: {
		Mt__Kernel__MarkPrefix *x = mt_kstate_add_mark_prefix(o);

		mt_kstate_set_str(&x->prefix, "192.0.2.0/24");
		mt_kstate_set_str(&x->owner, "gone");
		break;
	}
	case DRIFT_FOREIGN_ROUTE: {
		Mt__Kernel__Route *x = mt_kstate_add_route(o);

		x->table = 2000;
		mt_kstate_set_str(&x->dst, "192.0.2.0/24");
		mt_kstate_set_str(&x->dev, "mt0-gone");
		mt_kstate_set_str(&x->owner, "gone");
		break;
	}
	}
}

static void test_drift(void)
{
	static const struct {
		enum drift k;
		const char *want; /* the one op, or "" */
		const char *want_scoped; /* with scope {"aa"} */
	} cases[] = {
		{ DRIFT_ROUTE_MISSING,
		  "create route 198.51.99.0/24 table 2000 via 169.254.0.3 dev mt0-aa metric 0 in netns metal\n",
		  NULL },
		{ DRIFT_ROUTE_GATEWAY,
		  "create route 198.51.99.0/24 table 2000 via 169.254.0.3 dev mt0-aa metric 0 in netns metal\n",
		  NULL },
		{ DRIFT_ROUTE_DEV,
		  "create route 198.51.99.0/24 table 2000 via 169.254.0.3 dev mt0-aa metric 0 in netns metal\n",
		  NULL },
		{ DRIFT_LINK_DOWN,
		  "create link mt0-aa type veth up in netns metal\n", NULL },
		{ DRIFT_LINK_MTU, "", NULL },
		{ DRIFT_LINK_KIND, "", NULL },
		{ DRIFT_SYSCTL_VALUE,
		  "create sysctl net/ipv4/ip_forward=1 in netns metal\n",
		  NULL },
		{ DRIFT_SYSCTL_EXTRA, "", NULL },
		{ DRIFT_ADDR_MISSING,
		  "create addr 169.254.0.2/31 dev mt0-aa in netns metal\n",
		  NULL },
		{ DRIFT_ADDR_EXTRA,
		  "delete addr 169.254.9.9/31 dev metal0 in netns mt0-aa\n",
		  NULL },
		{ DRIFT_RULE_MISSING,
		  "create rule priority 1000 fwmark 0x4d540000/0xffff0000 table 2000 in netns metal\n",
		  NULL },
		{ DRIFT_NETNS_MISSING_LINK,
		  "create link lo up in netns mt0-aa\n", NULL },
		{ DRIFT_MARK_TABLE,
		  "create nft table inet mt0-mark (fwmark 0x4d540000/0xffff0000)\n",
		  NULL },
		{ DRIFT_MARK_OWNER,
		  "create mark prefix 198.51.99.0/24 (customer aa)\n", NULL },
		/* a foreign owner's object: deleted only when unscoped */
		{ DRIFT_MARK_EXTRA, "delete mark prefix 192.0.2.0/24 (customer gone)\n",
		  "" },
		{ DRIFT_FOREIGN_ROUTE,
		  "delete route 192.0.2.0/24 table 2000 dev mt0-gone metric 0 in netns metal\n",
		  "" },
	};
	const char *only_aa[] = { "aa" };
	struct mt_diff_scope saa = { only_aa, 1 };

	for (size_t i = 0; i < MT_ARRAY_SIZE(cases); i++) {
		struct cust t;
		Mt__Kernel__KernelState *d, *o;
		char *s;
		int n;

		cust_init(&t, 1, "aa", P("198.51.99.0/24"), NULL);
		d = desired_of(&t, 1);
		o = observe(d);
		apply_drift(o, cases[i].k);
		s = diff_text(d, o, NULL, &n);
		if (strcmp(s, cases[i].want))
			fprintf(stderr, "drift case %zu:\n", i);
		CHECK_STR(s, cases[i].want);
		CHECK(n == (*cases[i].want ? 1 : 0));
		free(s);
		s = diff_text(d, o, &saa, &n);
		CHECK_STR(s, cases[i].want_scoped ? cases[i].want_scoped :
						    cases[i].want);
		free(s);
		mt_kstate_free(d);
		mt_kstate_free(o);
	}
}

/* A desired mtu is asserted. */
static void test_link_mtu(void)
{
	struct cust t;
	Mt__Kernel__KernelState *d, *o;
	char *s;
	int n;

	cust_init(&t, 1, "aa", P("198.51.99.0/24"), NULL);
	d = desired_of(&t, 1);
	o = observe(d); /* mtu 1500 */
	d->links[0]->mtu = 1500;
	s = diff_text(d, o, NULL, &n);
	CHECK(n == 0);
	free(s);
	d->links[0]->mtu = 1476;
	s = diff_text(d, o, NULL, &n);
	CHECK_STR(s, "create link mt0-aa type veth up in netns metal\n");
	free(s);
	mt_kstate_free(d);
	mt_kstate_free(o);
}

static double ms_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (double)(b.tv_sec - a->tv_sec) * 1e3 +
	       (double)(b.tv_nsec - a->tv_nsec) / 1e6;
}

/* 1000 customers, ~20 objects each. */
static void test_scale(void)
{
	enum { N = 1000 };
	static Mt__Config__Customer cs[N], *csp[N];
	static char names[N][12], pfx[N][2][32], ep[N][32];
	static char *pp[N][2], *ep_p[N][1];
	Mt__Kernel__KernelState *d = mt_kstate_new(), *o, *empty;
	Mt__Kernel__Plan *p;
	struct timespec a;
	double t_same, t_full, t_one;
	size_t nc, nd;
	int r;

	for (int i = 0; i < N; i++) {
		mt__config__customer__init(&cs[i]);
		snprintf(names[i], sizeof(names[i]), "c%04d", i);
		snprintf(pfx[i][0], sizeof(pfx[i][0]), "203.%d.%d.0/24",
			 i / 256, i % 256);
		snprintf(pfx[i][1], sizeof(pfx[i][1]), "2a00:%x::/32", i + 1);
		snprintf(ep[i], sizeof(ep[i]), "192.0.%d.%d", i / 250 + 2,
			 i % 250 + 1);
		pp[i][0] = pfx[i][0];
		pp[i][1] = pfx[i][1];
		ep_p[i][0] = ep[i];
		cs[i].id = (uint32_t)i + 1;
		cs[i].name = names[i];
		cs[i].prefixes = pp[i];
		cs[i].n_prefixes = 2;
		cs[i].tunnel_endpoints = ep_p[i];
		cs[i].n_tunnel_endpoints = 1;
		csp[i] = &cs[i];
	}
	CHECK(mt_desired_build(&metal, csp, N, d) == 0);
	fprintf(stderr, "  %zu desired objects\n", total_objects(d));
	o = observe(d);
	empty = mt_kstate_new();

	/* best of a few runs: the first pays for page faults */
	t_same = 1e9;
	for (int run = 0; run < 5; run++) {
		double t;

		p = mt_plan_new();
		clock_gettime(CLOCK_MONOTONIC, &a);
		r = mt_diff(d, o, NULL, p);
		t = ms_since(&a);
		t_same = t < t_same ? t : t_same;
		CHECK(r == 0);
		mt_plan_free(p);
	}

	remove_at((void **)o->routes, &o->n_routes, 1234);
	p = mt_plan_new();
	clock_gettime(CLOCK_MONOTONIC, &a);
	r = mt_diff(d, o, NULL, p);
	t_one = ms_since(&a);
	CHECK(r == 1);
	mt_plan_free(p);

	p = mt_plan_new();
	clock_gettime(CLOCK_MONOTONIC, &a);
	r = mt_diff(d, empty, NULL, p);
	t_full = ms_since(&a);
	CHECK(r == (int)total_objects(d));
	check_order(p);
	mt_plan_free(p);

	/* deleting everything: pruned to marks (2 prefixes + 1 endpoint per
	 * customer), shared objects, netns */
	p = mt_plan_new();
	r = mt_diff(empty, o, NULL, p);
	CHECK(mt_plan_count(p, &nc, &nd) == (size_t)r);
	CHECK(nc == 0 && nd == (size_t)(N * 3 + N + 2));
	check_order(p);
	mt_plan_free(p);

	fprintf(stderr,
		"  diff %d customers: identical %.2f ms, one route drifted %.2f ms, from empty %.2f ms\n",
		N, t_same, t_one, t_full);
	/* No timing bounds here (the suite runs on noisy machines, under
	 * valgrind too): the figures above are for reading, and
	 * tests/bench measures the reconcile as a whole. */
	mt_kstate_free(d);
	mt_kstate_free(o);
	mt_kstate_free(empty);
}

/* Tunnels, their addresses, clamps and the routes through them. */
static void test_tunnels(void)
{
	Mt__Config__Tunnel t1 = MT__CONFIG__TUNNEL__INIT,
			   t2 = MT__CONFIG__TUNNEL__INIT;
	Mt__Config__TunnelRoute r[4];
	Mt__Config__Tunnel *tv[] = { &t1, &t2 };
	Mt__Config__TunnelRoute *rv[] = { &r[0], &r[1], &r[2], &r[3] };
	Mt__Kernel__KernelState *d, *o, *empty = mt_kstate_new();
	struct cust c;
	char *s;
	int n;

	t1.name = "gre1";
	t1.edge_endpoint = "192.0.2.10";
	t1.router_endpoint = "198.18.21.2";
	t1.inner_address = "10.255.0.0/31";
	t2.name = "gre2";
	t2.edge_endpoint = "192.0.2.10";
	t2.router_endpoint = "198.18.22.2";
	t2.inner_address = "10.255.0.2/31";
	t2.key_present_case = MT__CONFIG__TUNNEL__KEY_PRESENT_KEY;
	t2.key = 42;
	t2.driver = "bpf";
	for (int i = 0; i < 4; i++)
		mt__config__tunnel_route__init(&r[i]);
	r[0] = (Mt__Config__TunnelRoute){ r[0].base, "203.0.113.0/25", "gre1", 10, 1 };
	r[1] = (Mt__Config__TunnelRoute){ r[1].base, "203.0.113.0/25", "gre2", 10, 3 };
	r[2] = (Mt__Config__TunnelRoute){ r[2].base, "203.0.113.128/25", "gre2", 5, 1 };
	r[3] = (Mt__Config__TunnelRoute){ r[3].base, "203.0.113.128/25", "gre1", 20, 1 };
	cust_init(&c, 7, "acme", P("203.0.113.0/24"), P("192.0.2.10"));
	c.c.tunnels = tv;
	c.c.n_tunnels = 2;
	c.c.routes = rv;
	c.c.n_routes = 4;

	d = desired_of(&c, 1);
	s = diff_text(d, empty, NULL, &n);
	CHECK((size_t)n == total_objects(d));
	CHECK(strstr(s, "create tunnel gre1 driver auto local 192.0.2.10 remote 198.18.21.2 ttl 64 mtu 1476 in netns mt0-acme\n"));
	CHECK(strstr(s, "create tunnel gre2 driver bpf local 192.0.2.10 remote 198.18.22.2 key 42 ttl 64 mtu 1472 in netns mt0-acme\n"));
	CHECK(strstr(s, "create addr 10.255.0.0/31 dev gre1 in netns mt0-acme\n"));
	CHECK(strstr(s, "create mss clamp 1436 dev gre1 in netns mt0-acme\n"));
	CHECK(strstr(s, "create mss clamp 1432 dev gre2 in netns mt0-acme\n"));
	CHECK(strstr(s, "create route 203.0.113.0/25 table 2001 nexthop dev gre1 weight 1 nexthop dev gre2 weight 3 metric 10 in netns mt0-acme\n"));
	CHECK(strstr(s, "create route 203.0.113.128/25 table 2001 dev gre2 metric 5 in netns mt0-acme\n"));
	CHECK(strstr(s, "create route 203.0.113.128/25 table 2001 dev gre1 metric 20 in netns mt0-acme\n"));
	CHECK(strstr(s, "create sysctl net/ipv4/fib_multipath_hash_policy=1 in netns mt0-acme\n"));
	/* tunnels before their addresses, clamps before the routes */
	CHECK(strstr(s, "create tunnel gre1") < strstr(s, "create addr 10.255.0.0/31"));
	CHECK(strstr(s, "create mss clamp 1436") < strstr(s, "create route 203.0.113.0/25"));
	free(s);

	/* in sync: nothing to do; "auto" accepts the driver in use */
	o = observe(d);
	mt_kstate_set_str(&o->tunnels[0]->driver, "bpf");
	s = diff_text(d, o, NULL, &n);
	CHECK_STR(s, "");
	free(s);

	/* a tunnel observed half-built (no map entry): re-created */
	mt_kstate_set_str(&o->tunnels[1]->local, "");
	s = diff_text(d, o, NULL, &n);
	CHECK_STR(s, "create tunnel gre2 driver bpf local 192.0.2.10 remote 198.18.22.2 key 42 ttl 64 mtu 1472 in netns mt0-acme\n");
	free(s);
	mt_kstate_set_str(&o->tunnels[1]->local, "192.0.2.10");
	mt_kstate_free(d);

	/* what mtctl tunnels shows, with a health penalty on one route */
	{
		Mt__Rpc__TunnelList l = MT__RPC__TUNNEL_LIST__INIT;
		Mt__Kernel__TunnelCounters *k = malloc(sizeof(*k));

		mt__kernel__tunnel_counters__init(k);
		k->tx_packets = 5;
		o->tunnels[0]->counters = k;
		for (size_t i = 0; i < o->n_routes; i++)
			if (!strcmp(o->routes[i]->dst, "203.0.113.128/25") &&
			    o->routes[i]->metric == 20)
				o->routes[i]->metric = 1000020;
		CHECK(mt_tunnel_status_build(&metal, &c.c, o, &l) == 0);
		CHECK(l.n_tunnels == 2);
		CHECK_STR(l.tunnels[0]->name, "gre1");
		CHECK_STR(l.tunnels[0]->driver, "bpf");
		CHECK_STR(l.tunnels[0]->configured_driver, "auto");
		CHECK(l.tunnels[0]->mtu == 1476 && l.tunnels[0]->mss == 1436);
		CHECK(l.tunnels[0]->counters &&
		      l.tunnels[0]->counters->tx_packets == 5);
		CHECK(l.tunnels[0]->n_routes == 2);
		CHECK(l.tunnels[0]->routes[0]->installed &&
		      l.tunnels[0]->routes[0]->effective_priority == 10);
		CHECK(l.tunnels[0]->routes[1]->installed &&
		      l.tunnels[0]->routes[1]->priority == 20 &&
		      l.tunnels[0]->routes[1]->effective_priority == 1000020);
		CHECK(l.tunnels[1]->has_key && l.tunnels[1]->key == 42);
		CHECK(l.tunnels[1]->counters == NULL);
		for (size_t i = 0; i < l.n_tunnels; i++)
			protobuf_c_message_free_unpacked(&l.tunnels[i]->base,
							 NULL);
		free(l.tunnels);
		o->tunnels[0]->counters = NULL;
		free(k);
		for (size_t i = 0; i < o->n_routes; i++)
			if (o->routes[i]->metric == 1000020)
				o->routes[i]->metric = 20;
	}

	/* a weight changes: the route is replaced in place */
	r[1].weight = 2;
	d = desired_of(&c, 1);
	s = diff_text(d, o, NULL, &n);
	CHECK_STR(s, "create route 203.0.113.0/25 table 2001 nexthop dev gre1 weight 1 nexthop dev gre2 weight 2 metric 10 in netns mt0-acme\n");
	free(s);
	mt_kstate_free(d);

	/* the uplink's address is gone (and with it the kernel's default
	 * route through its gateway): the address comes back before the
	 * route that needs it */
	for (size_t i = 0; i < o->n_addrs; i++)
		if (!strcmp(o->addrs[i]->dev, MT_CUST_VETH) &&
		    strncmp(o->addrs[i]->prefix, "169.254.", 8) == 0)
			mt_kstate_set_str(&o->addrs[i]->dev, "gone0");
	for (size_t i = 0; i < o->n_routes; i++)
		if (!strcmp(o->routes[i]->dst, "0.0.0.0/0"))
			o->routes[i]->table = 999;
	r[1].weight = 3;
	d = desired_of(&c, 1);
	s = diff_text(d, o, NULL, &n);
	mt_kstate_free(d);
	CHECK(strstr(s, "create addr 169.254.0.15/31 dev metal0 in netns mt0-acme\n") &&
	      strstr(s, "create route 0.0.0.0/0 table 2001") &&
	      strstr(s, "create addr 169.254.0.15/31") <
		      strstr(s, "create route 0.0.0.0/0 table 2001"));
	free(s);
	for (size_t i = 0; i < o->n_addrs; i++)
		if (!strcmp(o->addrs[i]->dev, "gone0"))
			mt_kstate_set_str(&o->addrs[i]->dev, MT_CUST_VETH);
	for (size_t i = 0; i < o->n_routes; i++)
		if (o->routes[i]->table == 999)
			o->routes[i]->table = 2001;

	/* a priority change moves the route to a new metric: the new one is
	 * made before the old one goes */
	r[1].weight = 3;
	r[3].priority = 30;
	d = desired_of(&c, 1);
	s = diff_text(d, o, NULL, &n);
	CHECK_STR(s,
		  "create route 203.0.113.128/25 table 2001 dev gre1 metric 30 in netns mt0-acme\n"
		  "delete route 203.0.113.128/25 table 2001 dev gre1 metric 20 in netns mt0-acme\n");
	free(s);
	mt_kstate_free(d);
	r[3].priority = 20;

	/* gre2 goes with its routes: its address and the route only through
	 * it die with the device; the shared group becomes single-path */
	c.c.n_tunnels = 1;
	rv[1] = &r[3];
	c.c.n_routes = 2;
	d = desired_of(&c, 1);
	s = diff_text(d, o, NULL, &n);
	CHECK_STR(s,
		  /* the shared route leaves gre2 before gre2 goes */
		  "create route 203.0.113.0/25 table 2001 dev gre1 metric 10 in netns mt0-acme\n"
		  "delete mss clamp 1432 dev gre2 in netns mt0-acme\n"
		  "delete tunnel gre2 driver bpf local 192.0.2.10 remote 198.18.22.2 key 42 ttl 64 mtu 1472 in netns mt0-acme\n");
	free(s);
	mt_kstate_free(d);
	mt_kstate_free(o);
	mt_kstate_free(empty);
}

int main(void)
{
	char err[256];

	if (mt_metal_init(&metal, NULL, err, sizeof(err)) < 0) {
		fprintf(stderr, "metal: %s\n", err);
		return 1;
	}
	RUN(test_layout);
	RUN(test_empty_to_n);
	RUN(test_identical);
	RUN(test_one_changed);
	RUN(test_deleted_customer);
	RUN(test_prune_link);
	RUN(test_scope);
	RUN(test_prefix_moves);
	RUN(test_drift);
	RUN(test_link_mtu);
	RUN(test_tunnels);
	RUN(test_scale);
	mt_metal_fini(&metal);
	TEST_MAIN_END();
}
