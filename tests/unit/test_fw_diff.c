/* The firewall in desired state, diff and the list delta post-pass
 * (agent/desired.c, agent/diff.c, agent/fw_lists.c): hand-built configs,
 * observed states as mt-fastpath reports them (lists without content),
 * plans checked as text and by shape. */
#include "desired.h"
#include "diff.h"
#include "fw_lists.h"
#include "mt_cleanup.h"
#include "mt_fw.h"
#include "mt_kstate.h"
#include "mt_metal.h"
#include "mt_test.h"
#include "mt_validate.h"

#include <stdint.h>
#include <stdlib.h>
#include <time.h>

static struct mt_metal metal;

#define V(...) ((char *[]){ __VA_ARGS__ })
#define N(...) (sizeof((char *[]){ __VA_ARGS__ }) / sizeof(char *))

/* ---- configs ---- */

static char *acme_pfx[] = { "203.0.113.0/24" };

static Mt__Config__Customer *customer(uint32_t id, const char *name)
{
	Mt__Config__Customer *c = calloc(1, sizeof(*c));

	mt__config__customer__init(c);
	c->id = id;
	c->name = strdup(name);
	c->prefixes = acme_pfx;
	c->n_prefixes = 1;
	return c;
}

static Mt__Config__Firewall *firewall(Mt__Config__Customer *c,
				      const char *def)
{
	Mt__Config__Firewall *fw = calloc(1, sizeof(*fw));

	mt__config__firewall__init(fw);
	fw->default_action = (char *)def;
	fw->rules = calloc(64, sizeof(*fw->rules));
	fw->lists = calloc(8, sizeof(*fw->lists));
	c->firewall = fw;
	return fw;
}

static Mt__Config__FirewallRule *rule(Mt__Config__Firewall *fw, uint32_t id,
				      const char *action, const char *port)
{
	Mt__Config__FirewallRule *r = calloc(1, sizeof(*r));

	mt__config__firewall_rule__init(r);
	r->id = id;
	r->action = (char *)action;
	if (port) {
		r->protocol = "tcp";
		r->dst_ports = calloc(1, sizeof(char *));
		r->dst_ports[0] = strdup(port);
		r->n_dst_ports = 1;
	}
	fw->rules[fw->n_rules++] = r;
	return r;
}

static Mt__Config__IpList *list(Mt__Config__Firewall *fw, const char *name,
				char **p, size_t n)
{
	Mt__Config__IpList *l = calloc(1, sizeof(*l));

	mt__config__ip_list__init(l);
	l->name = (char *)name;
	l->prefixes = p;
	l->n_prefixes = n;
	fw->lists[fw->n_lists++] = l;
	return l;
}

/* acme (id 7): default block, rules 10..50 (allow tcp 80, 443, ...), a
 * rule 60 blocking list "bad", lists bad (3 prefixes) and good. */
static char *bad3[] = { "198.51.100.0/24", "192.0.2.0/24", "192.0.2.128/25" };
static char *good1[] = { "2001:db8::/32" };

static Mt__Config__Customer *acme(void)
{
	Mt__Config__Customer *c = customer(7, "acme");
	Mt__Config__Firewall *fw = firewall(c, "block");
	Mt__Config__FirewallRule *r;

	rule(fw, 10, "allow", "80");
	rule(fw, 20, "allow", "443");
	rule(fw, 30, "allow", "22");
	rule(fw, 40, "rate_limit", NULL);
	fw->rules[3]->rate_limit = calloc(1, sizeof(Mt__Config__RateLimit));
	mt__config__rate_limit__init(fw->rules[3]->rate_limit);
	fw->rules[3]->rate_limit->packets_per_second = 100;
	fw->rules[3]->protocol = "icmp";
	r = rule(fw, 60, "block", NULL);
	r->src_list = "bad";
	list(fw, "bad", bad3, 3);
	list(fw, "good", good1, 1);
	return c;
}

static char err[MT_VALIDATE_ERR_MAX];

/* The agent's path (memo_mode): desired built with fresh memos (the
 * tests change configs in place, the agent replaces them), lists without
 * strings, their contents in want for the post-pass. Otherwise
 * mt_desired_build, lists with their strings. */
static bool memo_mode;
static struct mt_desired_memo *memo_slot[8];
static struct mt_fw_desired *want;

static void validate(Mt__Config__Customer **cs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int r = mt_validate_customer(&metal, cs[i], err, sizeof(err));

		if (r)
			fprintf(stderr, "%s\n", err);
		CHECK(r == 0);
	}
}

static void memos_free(void)
{
	for (size_t i = 0; i < MT_ARRAY_SIZE(memo_slot); i++) {
		mt_desired_memo_free(memo_slot[i]);
		memo_slot[i] = NULL;
	}
}

static Mt__Kernel__KernelState *build(Mt__Config__Customer **cs, size_t n)
{
	Mt__Kernel__KernelState *st = mt_kstate_new();
	struct mt_desired_memo **slots[MT_ARRAY_SIZE(memo_slot)];

	CHECK(st != NULL);
	if (!memo_mode) {
		CHECK(mt_desired_build(&metal, cs, n, st) == 0);
		return st;
	}
	CHECK(n <= MT_ARRAY_SIZE(memo_slot));
	mt_fw_desired_free(want);
	want = mt_fw_desired_new();
	for (size_t i = 0; i < n; i++)
		slots[i] = &memo_slot[i];
	CHECK(mt_desired_build_memo(&metal, cs, slots, n, want, st) == 0);
	return st;
}

static Mt__Kernel__KernelState *desired_of(Mt__Config__Customer **cs,
					   size_t n)
{
	validate(cs, n);
	return build(cs, n);
}

/* Frees a state of desired_of (want stays for the post-pass). */
static void dfree(Mt__Kernel__KernelState *st)
{
	if (memo_mode) {
		mt_desired_release(st);
		memos_free();
	}
	mt_kstate_free(st);
}

static Mt__Kernel__KernelState *desired1(Mt__Config__Customer *c)
{
	return desired_of(&c, 1);
}

/* What mt-fastpath reports: the same objects; a firewall's lists with
 * name, family, digest and count, never their content. */
static Mt__Kernel__KernelState *observe(const Mt__Kernel__KernelState *d)
{
	Mt__Kernel__KernelState *o =
		(Mt__Kernel__KernelState *)mt_message_dup(&d->base);

	CHECK(o != NULL);
	for (size_t i = 0; i < o->n_firewalls; i++) {
		Mt__Kernel__Firewall *f = o->firewalls[i];

		for (size_t j = 0; j < f->n_lists; j++) {
			Mt__Kernel__FirewallList *l = f->lists[j];

			for (size_t k = 0; k < l->n_prefixes; k++)
				free(l->prefixes[k]);
			free(l->prefixes);
			l->prefixes = NULL;
			l->n_prefixes = 0;
		}
	}
	return o;
}

static Mt__Kernel__Plan *diff(const Mt__Kernel__KernelState *d,
			      const Mt__Kernel__KernelState *o)
{
	Mt__Kernel__Plan *p = mt_plan_new();
	int r = mt_diff(d, o, NULL, p);

	CHECK(r >= 0 && (size_t)r == p->n_ops);
	return p;
}

static char *render(const Mt__Kernel__Plan *p)
{
	return mt_plan_render(p);
}

#define CHECK_PLAN(p, want)                                                    \
	do {                                                                   \
		char *_s = render(p);                                          \
		CHECK_STR(_s, want);                                           \
		free(_s);                                                      \
	} while (0)

static const Mt__Kernel__Firewall *op_fw(const Mt__Kernel__Plan *p, size_t i)
{
	CHECK(i < p->n_ops &&
	      p->ops[i]->object_case == MT__KERNEL__OP__OBJECT_FIREWALL);
	return i < p->n_ops ? p->ops[i]->firewall : NULL;
}

/* ---- desired state ---- */

static void test_desired(void)
{
	Mt__Config__Customer *c = acme();
	Mt__Kernel__KernelState *d = desired1(c);
	const Mt__Kernel__Firewall *f;

	CHECK(d->n_firewalls == 1);
	f = d->firewalls[0];
	CHECK_STR(f->netns, "mt0-acme");
	CHECK_STR(f->owner, "acme");
	CHECK_STR(f->default_action, "block");
	CHECK(!f->dirty);
	CHECK(f->n_rules == 5);
	CHECK(f->rules[0]->id == 10 && f->rules[4]->id == 60);
	CHECK_STR(f->rules[3]->family, "ipv4"); /* canonical: from icmp */
	CHECK(f->rules[3]->rate_limit->burst == 5);
	CHECK_STR(f->rules[4]->family, "ipv4"); /* from list bad */
	CHECK(f->n_lists == 2);
	CHECK_STR(f->lists[0]->name, "bad");
	CHECK_STR(f->lists[0]->family, "ipv4");
	CHECK(f->lists[0]->count == 2);
	CHECK(f->lists[0]->n_prefixes == 2);
	CHECK_STR(f->lists[0]->prefixes[0], "192.0.2.0/24");
	CHECK_STR(f->lists[0]->prefixes[1], "198.51.100.0/24");
	{
		struct mt_fw_list l;

		CHECK(mt_fw_list_compile("bad", c->firewall->lists[0]->prefixes,
					 3, &l, err, sizeof(err)) == 0);
		CHECK_STR(f->lists[0]->digest, l.digest);
		mt_fw_list_fini(&l);
	}
	CHECK_STR(f->lists[1]->family, "ipv6");
	CHECK(f->lists[1]->count == 1);
	mt_kstate_free(d);

	/* no firewall section, or one that asks for nothing: no object */
	c->firewall = NULL;
	d = desired1(c);
	CHECK(d->n_firewalls == 0);
	mt_kstate_free(d);
	firewall(c, "");
	d = desired1(c);
	CHECK(d->n_firewalls == 0);
	mt_kstate_free(d);
	c->firewall->default_action = "allow";
	d = desired1(c);
	CHECK(d->n_firewalls == 0);
	mt_kstate_free(d);
	/* default block alone, or one empty list alone, is a firewall */
	c->firewall->default_action = "block";
	d = desired1(c);
	CHECK(d->n_firewalls == 1 && d->firewalls[0]->n_rules == 0);
	mt_kstate_free(d);
	c->firewall->default_action = "";
	list(c->firewall, "x", NULL, 0);
	d = desired1(c);
	CHECK(d->n_firewalls == 1 && d->firewalls[0]->lists[0]->count == 0);
	CHECK_STR(d->firewalls[0]->default_action, "allow");
	mt_kstate_free(d);
	/* an invalid rule (not validated) fails the build */
	rule(c->firewall, 1, "allow", "99999");
	d = mt_kstate_new();
	CHECK(mt_desired_build(&metal, &c, 1, d) == -EINVAL);
	mt_kstate_free(d);
}

/* ---- diff ---- */

static void test_noop(void)
{
	Mt__Config__Customer *c = acme();
	Mt__Kernel__KernelState *d = desired1(c), *o = observe(d);
	Mt__Kernel__Plan *p = diff(d, o);

	CHECK(p->n_ops == 0);
	mt_plan_free(p);
	mt_kstate_free(o);
	mt_kstate_free(d);
}

static void test_rule_changed(void)
{
	Mt__Config__Customer *c = acme();
	Mt__Kernel__KernelState *o, *d = desired1(c);
	Mt__Kernel__Plan *p;
	const Mt__Kernel__Firewall *f;

	o = observe(d);
	mt_kstate_free(d);
	free(c->firewall->rules[2]->dst_ports[0]);
	c->firewall->rules[2]->dst_ports[0] = strdup("2222");
	d = desired1(c);
	p = diff(d, o);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, lists bad (unchanged), good (unchanged)\n");
	f = op_fw(p, 0);
	if (f) {
		/* the whole desired firewall, lists without content */
		CHECK(p->ops[0]->action == MT__KERNEL__OP__ACTION__CREATE);
		CHECK(f->n_rules == 5);
		CHECK_STR(f->rules[2]->dst_ports[0], "2222");
		CHECK(mt_fw_rule_equal(f->rules[2], d->firewalls[0]->rules[2]));
		CHECK(f->n_lists == 2);
		CHECK(f->lists[0]->n_prefixes == 0 && f->lists[0]->count == 2);
		CHECK_STR(f->lists[0]->digest, d->firewalls[0]->lists[0]->digest);
		/* as an empty delta from the digest the kernel holds */
		CHECK(f->lists[0]->delta && f->lists[0]->n_add == 0 &&
		      f->lists[0]->n_remove == 0);
		CHECK_STR(f->lists[0]->base_digest, f->lists[0]->digest);
	}
	/* desired is untouched */
	CHECK(d->firewalls[0]->lists[0]->n_prefixes == 2);
	mt_plan_free(p);

	/* a field the canonical form normalises away is no change */
	mt_kstate_free(d);
	free(c->firewall->rules[2]->dst_ports[0]);
	c->firewall->rules[2]->dst_ports[0] = strdup("22-22");
	c->firewall->rules[2]->protocol = "6";
	d = desired1(c);
	p = diff(d, o);
	CHECK(p->n_ops == 0);
	mt_plan_free(p);
	/* the default action */
	c->firewall->default_action = "allow";
	mt_kstate_free(d);
	d = desired1(c);
	p = diff(d, o);
	CHECK_PLAN(p, "create firewall mt0-acme: default allow, 5 rules, lists bad (unchanged), good (unchanged)\n");
	mt_plan_free(p);
	mt_kstate_free(d);
	mt_kstate_free(o);
}

static void test_rule_reordered_added_removed(void)
{
	Mt__Config__Customer *c = acme();
	Mt__Config__Firewall *fw = c->firewall;
	Mt__Kernel__KernelState *o, *d = desired1(c);
	Mt__Config__FirewallRule *t;
	Mt__Kernel__Plan *p;

	o = observe(d);
	mt_kstate_free(d);
	t = fw->rules[0];
	fw->rules[0] = fw->rules[1];
	fw->rules[1] = t;
	d = desired1(c);
	p = diff(d, o);
	CHECK(p->n_ops == 1);
	if (op_fw(p, 0))
		CHECK(op_fw(p, 0)->rules[0]->id == 20);
	mt_plan_free(p);
	mt_kstate_free(d);
	/* back in order, one more rule */
	fw->rules[1] = fw->rules[0];
	fw->rules[0] = t;
	rule(fw, 70, "block", "25");
	d = desired1(c);
	p = diff(d, o);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 6 rules, lists bad (unchanged), good (unchanged)\n");
	mt_plan_free(p);
	mt_kstate_free(d);
	/* one fewer */
	fw->n_rules -= 2;
	d = desired1(c);
	p = diff(d, o);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 4 rules, lists bad (unchanged), good (unchanged)\n");
	mt_plan_free(p);
	mt_kstate_free(d);
	mt_kstate_free(o);
}

static void test_dirty(void)
{
	Mt__Config__Customer *c = acme();
	Mt__Kernel__KernelState *d = desired1(c), *o = observe(d);
	Mt__Kernel__Plan *p;

	o->firewalls[0]->dirty = true;
	p = diff(d, o);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, lists bad (unchanged), good (unchanged)\n");
	CHECK(!op_fw(p, 0) || !op_fw(p, 0)->dirty);
	mt_plan_free(p);
	o->firewalls[0]->dirty = false;
	/* a rule gone from the kernel (deleted by hand) */
	o->firewalls[0]->n_rules--;
	protobuf_c_message_free_unpacked(
		&o->firewalls[0]->rules[o->firewalls[0]->n_rules]->base, NULL);
	p = diff(d, o);
	CHECK(p->n_ops == 1);
	mt_plan_free(p);
	mt_kstate_free(o);
	mt_kstate_free(d);
}

static void test_list_changes(void)
{
	Mt__Config__Customer *c = acme();
	Mt__Config__Firewall *fw = c->firewall;
	Mt__Kernel__KernelState *o, *d = desired1(c);
	Mt__Kernel__Plan *p;
	const Mt__Kernel__Firewall *f;

	o = observe(d);
	mt_kstate_free(d);
	/* list bad gains a prefix: it is sent in full, good is not */
	fw->lists[0]->prefixes = V("198.51.100.0/24", "192.0.2.0/24",
				   "192.0.2.128/25", "203.0.113.0/24");
	fw->lists[0]->n_prefixes = 4;
	d = desired1(c);
	p = diff(d, o);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, lists bad (3 prefixes), good (unchanged)\n");
	f = op_fw(p, 0);
	if (f) {
		CHECK(f->lists[0]->n_prefixes == 3 && f->lists[0]->count == 3);
		CHECK_STR(f->lists[0]->prefixes[2], "203.0.113.0/24");
		CHECK(strcmp(f->lists[0]->digest, o->firewalls[0]->lists[0]->digest));
		CHECK(f->lists[1]->n_prefixes == 0 && f->lists[1]->delta);
	}
	mt_plan_free(p);
	/* the observed family differs (same digest would be a collision):
	 * full content */
	mt_kstate_set_str(&o->firewalls[0]->lists[1]->family, "ipv4");
	p = diff(d, o);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, lists bad (3 prefixes), good (1 prefix)\n");
	mt_plan_free(p);
	mt_kstate_set_str(&o->firewalls[0]->lists[1]->family, "ipv6");
	mt_kstate_free(d);
	/* a list removed; a list added (in full) */
	fw->lists[0]->n_prefixes = 3;
	fw->lists[0]->prefixes = bad3;
	fw->n_lists = 1;
	d = desired1(c);
	p = diff(d, o);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, list bad (unchanged)\n");
	mt_plan_free(p);
	mt_kstate_free(d);
	fw->n_lists = 2;
	list(fw, "new", V("192.0.2.0/24"), 1);
	d = desired1(c);
	p = diff(d, o);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, lists bad (unchanged), good (unchanged), new (1 prefix)\n");
	mt_plan_free(p);
	/* the same set of names in another order is no change */
	mt_kstate_free(d);
	fw->n_lists = 2;
	{
		Mt__Config__IpList *t = fw->lists[0];

		fw->lists[0] = fw->lists[1];
		fw->lists[1] = t;
	}
	d = desired1(c);
	p = diff(d, o);
	CHECK(p->n_ops == 0);
	mt_plan_free(p);
	mt_kstate_free(d);
	mt_kstate_free(o);
}

static void test_removed_and_created(void)
{
	Mt__Config__Customer *c = acme();
	Mt__Config__Firewall *fw = c->firewall;
	Mt__Kernel__KernelState *o, *d = desired1(c), *empty = mt_kstate_new();
	Mt__Kernel__Plan *p;
	size_t i_fw = 0, i_clamp = 0, i_route = 0;

	o = observe(d);
	mt_kstate_free(d);
	/* every rule and list removed, default allow: DELETE */
	fw->n_rules = 0;
	fw->n_lists = 0;
	fw->default_action = "allow";
	d = desired1(c);
	p = diff(d, o);
	CHECK_PLAN(p, "delete firewall mt0-acme\n");
	mt_plan_free(p);
	mt_kstate_free(d);
	c->firewall = NULL;
	d = desired1(c);
	p = diff(d, o);
	CHECK_PLAN(p, "delete firewall mt0-acme\n");
	mt_plan_free(p);
	/* the customer deleted: the firewall goes with its namespace */
	p = diff(empty, o);
	for (size_t i = 0; i < p->n_ops; i++)
		CHECK(p->ops[i]->object_case != MT__KERNEL__OP__OBJECT_FIREWALL);
	mt_plan_free(p);
	mt_kstate_free(d);

	/* from empty, with a tunnel: the firewall comes after the MSS clamp
	 * and before the routes inside the namespace */
	c = acme();
	{
		static char *eps[] = { "192.0.2.10" };
		Mt__Config__Tunnel *t = calloc(1, sizeof(*t));
		Mt__Config__TunnelRoute *rt = calloc(1, sizeof(*rt));

		c->tunnel_endpoints = eps;
		c->n_tunnel_endpoints = 1;
		mt__config__tunnel__init(t);
		t->name = "gre1";
		t->edge_endpoint = "192.0.2.10";
		t->router_endpoint = "198.51.100.1";
		t->inner_address = "192.0.2.200/31";
		c->tunnels = calloc(1, sizeof(*c->tunnels));
		c->tunnels[0] = t;
		c->n_tunnels = 1;
		mt__config__tunnel_route__init(rt);
		rt->prefix = "203.0.113.0/24";
		rt->tunnel = "gre1";
		rt->weight = 1;
		c->routes = calloc(1, sizeof(*c->routes));
		c->routes[0] = rt;
		c->n_routes = 1;
	}
	d = desired1(c);
	p = diff(d, empty);
	for (size_t i = 0; i < p->n_ops; i++) {
		const Mt__Kernel__Op *op = p->ops[i];

		if (op->object_case == MT__KERNEL__OP__OBJECT_FIREWALL)
			i_fw = i;
		if (op->object_case == MT__KERNEL__OP__OBJECT_MSS_CLAMP)
			i_clamp = i;
		if (op->object_case == MT__KERNEL__OP__OBJECT_ROUTE && !i_route)
			i_route = i;
	}
	CHECK(i_clamp && i_fw == i_clamp + 1 && i_route > i_fw);
	if (op_fw(p, i_fw)) {
		const Mt__Kernel__Firewall *f = op_fw(p, i_fw);

		CHECK(f->lists[0]->n_prefixes == 2 && f->lists[1]->n_prefixes == 1);
	}
	mt_plan_free(p);
	/* and the reverse: the firewall is deleted before the clamp (the
	 * tunnel removed, firewall removed) */
	o = observe(d);
	c->n_tunnels = 0;
	c->n_routes = 0;
	c->firewall = NULL;
	mt_kstate_free(d);
	d = desired1(c);
	p = diff(d, o);
	i_fw = i_clamp = 0;
	for (size_t i = 0; i < p->n_ops; i++) {
		const Mt__Kernel__Op *op = p->ops[i];

		if (op->object_case == MT__KERNEL__OP__OBJECT_FIREWALL)
			i_fw = i + 1;
		if (op->object_case == MT__KERNEL__OP__OBJECT_MSS_CLAMP)
			i_clamp = i + 1;
	}
	CHECK(i_fw && i_clamp == i_fw + 1);
	mt_plan_free(p);
	mt_kstate_free(d);
	mt_kstate_free(o);
	mt_kstate_free(empty);
}

/* ---- the list cache ---- */

static Mt__Kernel__OpResult **results(const Mt__Kernel__Plan *p, int error)
{
	Mt__Kernel__OpResult **v = calloc(p->n_ops + 1, sizeof(*v));

	for (size_t i = 0; i < p->n_ops; i++)
		mt_op_result_set(&v[i], error, error ? "failed" : "");
	return v;
}

static void results_free(Mt__Kernel__OpResult **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		protobuf_c_message_free_unpacked(&v[i]->base, NULL);
	free(v);
}

/* Diffs, runs the post-pass and "applies": on success the observed state
 * becomes desired (as mt-fastpath would report it). Returns the plan. */
static Mt__Kernel__Plan *apply(struct mt_fw_lists *cache,
			       const Mt__Kernel__KernelState *d,
			       Mt__Kernel__KernelState **o, int error,
			       int *n_delta)
{
	Mt__Kernel__Plan *p = diff(d, *o);
	Mt__Kernel__OpResult **res;

	*n_delta = mt_fw_lists_prepare(cache, *o, memo_mode ? want : NULL, p);
	CHECK(*n_delta >= 0);
	res = results(p, error);
	mt_fw_lists_commit(cache, p, res, p->n_ops);
	results_free(res, p->n_ops);
	if (!error) {
		mt_kstate_free(*o);
		*o = observe(d);
	}
	return p;
}

static void set_bad(Mt__Config__Customer *c, char **v, size_t n)
{
	c->firewall->lists[0]->prefixes = v;
	c->firewall->lists[0]->n_prefixes = n;
}

static void test_list_delta(void)
{
	struct mt_fw_lists *cache = mt_fw_lists_new();
	Mt__Config__Customer *c = acme();
	Mt__Kernel__KernelState *d, *o = mt_kstate_new();
	const struct mt_fw_list *cl;
	const Mt__Kernel__FirewallList *l;
	Mt__Kernel__Plan *p;
	size_t nl, np;
	int n;

	memo_mode = true;

	/* cold start: full content, cached after success */
	d = desired1(c);
	p = apply(cache, d, &o, 0, &n);
	CHECK(n == 0);
	mt_plan_free(p);
	mt_fw_lists_stats(cache, &nl, &np);
	CHECK(nl == 2 && np == 3);
	cl = mt_fw_lists_get(cache, "mt0-acme", "bad");
	CHECK(cl && cl->n == 2);
	CHECK(cl && !strcmp(cl->digest, d->firewalls[0]->lists[0]->digest));
	CHECK(mt_fw_lists_get(cache, "mt0-acme", "nope") == NULL);
	CHECK(mt_fw_lists_get(cache, "mt0-other", "bad") == NULL);
	dfree(d);

	/* one prefix added: a delta against the kernel's digest */
	set_bad(c, V("198.51.100.0/24", "192.0.2.0/24", "192.0.2.128/25",
		     "203.0.113.0/24"), 4);
	d = desired1(c);
	{
		char base[MT_FW_DIGEST_STRLEN];

		snprintf(base, sizeof(base), "%s", o->firewalls[0]->lists[0]->digest);
		p = diff(d, o);
		CHECK(mt_fw_lists_prepare(cache, o, want, p) == 1);
		CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, lists bad (delta +1 -0), good (unchanged)\n");
		l = op_fw(p, 0) ? op_fw(p, 0)->lists[0] : NULL;
		CHECK(l && l->delta && l->n_prefixes == 0 && !l->prefixes);
		if (l) {
			CHECK_STR(l->base_digest, base);
			CHECK_STR(l->digest, d->firewalls[0]->lists[0]->digest);
			CHECK(l->count == 3);
			CHECK(l->n_add == 1 && l->n_remove == 0);
			CHECK_STR(l->add[0], "203.0.113.0/24");
		}
		/* a dry run: nothing changes in the cache */
		mt_fw_lists_abort(cache);
		cl = mt_fw_lists_get(cache, "mt0-acme", "bad");
		CHECK(cl && !strcmp(cl->digest, base));
		mt_plan_free(p);
	}
	p = apply(cache, d, &o, 0, &n);
	CHECK(n == 1);
	mt_plan_free(p);
	cl = mt_fw_lists_get(cache, "mt0-acme", "bad");
	CHECK(cl && cl->n == 3 &&
	      !strcmp(cl->digest, d->firewalls[0]->lists[0]->digest));
	dfree(d);

	/* one removed, one added */
	set_bad(c, V("198.51.100.0/24", "203.0.113.0/24", "198.51.100.0/25"),
		3);
	d = desired1(c);
	p = apply(cache, d, &o, -EIO, &n);
	CHECK(n == 1);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, lists bad (delta +0 -1), good (unchanged)\n");
	mt_plan_free(p);
	/* it failed: the entry is forgotten, the next attempt is in full */
	CHECK(mt_fw_lists_get(cache, "mt0-acme", "bad") == NULL);
	CHECK(mt_fw_lists_get(cache, "mt0-acme", "good") != NULL);
	p = apply(cache, d, &o, 0, &n);
	CHECK(n == 0);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, lists bad (2 prefixes), good (unchanged)\n");
	mt_plan_free(p);
	CHECK(mt_fw_lists_get(cache, "mt0-acme", "bad") != NULL);
	dfree(d);

	/* the kernel holds something else than the cache (changed behind
	 * the agent's back, another agent...): full content */
	mt_kstate_set_str(&o->firewalls[0]->lists[0]->digest, "0123456789abcdef");
	d = desired1(c);
	p = diff(d, o);
	CHECK(mt_fw_lists_prepare(cache, o, want, p) == 0);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, lists bad (2 prefixes), good (unchanged)\n");
	mt_fw_lists_abort(cache);
	mt_plan_free(p);
	mt_kstate_free(o);
	o = observe(d);

	/* a rule change alone: lists untouched, cache too */
	free(c->firewall->rules[0]->dst_ports[0]);
	c->firewall->rules[0]->dst_ports[0] = strdup("8080");
	dfree(d);
	d = desired1(c);
	p = apply(cache, d, &o, 0, &n);
	CHECK(n == 0);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, lists bad (unchanged), good (unchanged)\n");
	mt_plan_free(p);
	mt_fw_lists_stats(cache, &nl, NULL);
	CHECK(nl == 2);
	dfree(d);

	/* a restart: an empty cache, the first change is in full */
	mt_fw_lists_free(cache);
	cache = mt_fw_lists_new();
	set_bad(c, V("198.51.100.0/24"), 1);
	d = desired1(c);
	p = apply(cache, d, &o, 0, &n);
	CHECK(n == 0);
	CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, lists bad (1 prefix), good (unchanged)\n");
	mt_plan_free(p);
	mt_fw_lists_stats(cache, &nl, NULL);
	CHECK(nl == 1);
	dfree(d);

	/* a list removed from the config: forgotten after the apply */
	c->firewall->n_lists = 1;
	set_bad(c, V("198.51.100.0/25"), 1);
	d = desired1(c);
	p = apply(cache, d, &o, 0, &n);
	CHECK(n == 1);
	mt_plan_free(p);
	c->firewall->lists[0]->name = "bad2";
	c->firewall->rules[4]->src_list = "bad2";
	dfree(d);
	d = desired1(c);
	p = apply(cache, d, &o, 0, &n);
	CHECK(n == 0);
	mt_plan_free(p);
	CHECK(mt_fw_lists_get(cache, "mt0-acme", "bad") == NULL);
	CHECK(mt_fw_lists_get(cache, "mt0-acme", "bad2") != NULL);
	dfree(d);

	/* the firewall removed: the namespace forgotten */
	c->firewall = NULL;
	d = desired1(c);
	p = apply(cache, d, &o, 0, &n);
	CHECK_PLAN(p, "delete firewall mt0-acme\n");
	mt_plan_free(p);
	mt_fw_lists_stats(cache, &nl, NULL);
	CHECK(nl == 0);
	dfree(d);
	mt_kstate_free(o);
	mt_fw_lists_free(cache);
	memo_mode = false;
	mt_fw_desired_free(want);
	want = NULL;
}

/* Several customers, a customer deleted with its namespace. */
static void test_list_cache_customers(void)
{
	struct mt_fw_lists *cache = mt_fw_lists_new();
	Mt__Config__Customer *cs[3] = { acme(), acme(), acme() };
	Mt__Kernel__KernelState *d, *o = mt_kstate_new();
	Mt__Kernel__Plan *p;
	size_t nl;
	int n;

	memo_mode = true;

	cs[1]->id = 8;
	cs[1]->name = "bravo";
	cs[1]->prefixes = V("198.51.100.0/24");
	cs[2]->id = 9;
	cs[2]->name = "charlie";
	cs[2]->prefixes = V("192.0.2.0/24");
	d = desired_of(cs, 3);
	p = apply(cache, d, &o, 0, &n);
	mt_plan_free(p);
	mt_fw_lists_stats(cache, &nl, NULL);
	CHECK(nl == 6);
	dfree(d);
	/* bravo's list changes, charlie goes */
	cs[1]->firewall->lists[0]->prefixes = V("198.51.100.0/24");
	cs[1]->firewall->lists[0]->n_prefixes = 1;
	d = desired_of(cs, 2);
	p = apply(cache, d, &o, 0, &n);
	CHECK(n == 1);
	mt_plan_free(p);
	mt_fw_lists_stats(cache, &nl, NULL);
	CHECK(nl == 4);
	CHECK(mt_fw_lists_get(cache, "mt0-charlie", "bad") == NULL);
	CHECK(mt_fw_lists_get(cache, "mt0-bravo", "bad")->n == 1);
	CHECK(mt_fw_lists_get(cache, "mt0-acme", "bad")->n == 2);
	dfree(d);
	mt_kstate_free(o);
	mt_fw_lists_free(cache);
	memo_mode = false;
	mt_fw_desired_free(want);
	want = NULL;
}

/* The memo: kept for the same config object, rebuilt for another; the
 * desired state borrows from it. */
static void test_memo(void)
{
	Mt__Config__Customer *c = acme(), *c2 = acme();
	struct mt_desired_memo *m0 = NULL, **slot = &m0;
	struct mt_fw_desired *w = mt_fw_desired_new(), *w2;
	struct mt_fw_lists *cache = mt_fw_lists_new();
	Mt__Kernel__KernelState *d, *o;
	const Mt__Kernel__Firewall *f1;
	const struct mt_fw_content *k1;
	Mt__Kernel__Plan *p;

	validate(&c, 1);
	d = mt_kstate_new();
	CHECK(mt_desired_build_memo(&metal, &c, &slot, 1, w, d) == 0);
	CHECK(m0 != NULL && d->n_firewalls == 1);
	f1 = d->firewalls[0];
	CHECK(f1->n_lists == 2 && f1->lists[0]->count == 2 &&
	      f1->lists[0]->n_prefixes == 0);
	k1 = mt_fw_desired_find(w, "mt0-acme", "bad");
	CHECK(k1 && k1->list.n == 2 &&
	      !strcmp(k1->list.digest, f1->lists[0]->digest));
	CHECK(mt_fw_desired_find(w, "mt0-acme", "nope") == NULL);
	o = mt_kstate_new();
	/* a cold start: the full content, as strings, after the post-pass */
	p = diff(d, o);
	CHECK(mt_fw_lists_prepare(cache, o, w, p) == 0);
	for (size_t i = 0; i < p->n_ops; i++)
		if (p->ops[i]->object_case == MT__KERNEL__OP__OBJECT_FIREWALL) {
			const Mt__Kernel__Firewall *f = p->ops[i]->firewall;

			CHECK(f->lists[0]->n_prefixes == 2 && !f->lists[0]->delta);
			CHECK_STR(f->lists[0]->prefixes[1], "198.51.100.0/24");
			CHECK(f->lists[1]->n_prefixes == 1);
		}
	mt_fw_lists_abort(cache);
	mt_plan_free(p);
	/* without the desired contents the post-pass cannot send the list */
	p = diff(d, o);
	CHECK(mt_fw_lists_prepare(cache, o, NULL, p) == -ENOENT);
	mt_fw_lists_abort(cache);
	mt_plan_free(p);
	mt_desired_release(d);
	CHECK(d->n_firewalls == 0);
	mt_kstate_free(d);

	/* the same config again: the same objects, nothing rebuilt */
	w2 = mt_fw_desired_new();
	d = mt_kstate_new();
	CHECK(mt_desired_build_memo(&metal, &c, &slot, 1, w2, d) == 0);
	CHECK(d->firewalls[0] == f1);
	CHECK(mt_fw_desired_find(w2, "mt0-acme", "bad") == k1);
	mt_desired_release(d);
	mt_kstate_free(d);
	mt_fw_desired_free(w2);
	mt_fw_desired_free(w); /* the memo still holds k1 */
	CHECK(k1->refs == 1);

	/* another config object (the store's next value): rebuilt */
	c2->firewall->lists[0]->prefixes = V("192.0.2.0/24");
	c2->firewall->lists[0]->n_prefixes = 1;
	validate(&c2, 1);
	w = mt_fw_desired_new();
	d = mt_kstate_new();
	CHECK(mt_desired_build_memo(&metal, &c2, &slot, 1, w, d) == 0);
	CHECK(d->firewalls[0]->lists[0]->count == 1);
	CHECK(mt_fw_desired_find(w, "mt0-acme", "bad")->list.n == 1);
	mt_desired_release(d);
	mt_kstate_free(d);
	mt_fw_desired_free(w);

	/* an invalid config (not validated) fails, the slot holds no memo */
	c = acme();
	rule(c->firewall, 1, "allow", "99999");
	w = mt_fw_desired_new();
	d = mt_kstate_new();
	CHECK(mt_desired_build_memo(&metal, &c, &slot, 1, w, d) == -EINVAL);
	CHECK(m0 == NULL);
	mt_desired_release(d);
	mt_kstate_free(d);
	mt_fw_desired_free(w);
	mt_kstate_free(o);
	mt_fw_lists_free(cache);
}

static double ms_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1e3 + (b->tv_nsec - a->tv_nsec) / 1e6;
}

/* A 100k-prefix list: one element changed is a delta of one. Timed on
 * both paths: mt_desired_build (every prefix as a string, compiled again
 * by the post-pass) and the agent's (memoised, compiled once). */
static void list_delta_100k(bool memo)
{
	enum { NP = 100000 };
	struct mt_fw_lists *cache = mt_fw_lists_new();
	Mt__Config__Customer *c = acme();
	Mt__Kernel__KernelState *d, *o = mt_kstate_new();
	Mt__Kernel__Plan *p;
	char **v = calloc(NP, sizeof(*v)), *s = calloc(NP, 20);
	struct timespec t0, t1, t2, t3, t4;
	int n;

	memo_mode = memo;
	for (size_t i = 0; i < NP; i++) {
		uint32_t a = 0x0a000000u + (uint32_t)i * 4;

		v[i] = s + i * 20;
		snprintf(v[i], 20, "%u.%u.%u.%u/30", a >> 24, (a >> 16) & 255,
			 (a >> 8) & 255, a & 255);
	}
	c->firewall->rules[4]->src_list = "big";
	c->firewall->lists[0]->name = "big";
	set_bad(c, v, NP);
	d = desired1(c);
	p = apply(cache, d, &o, 0, &n);
	mt_plan_free(p);
	dfree(d);
	v[777] = "11.0.0.0/30";
	/* best of 3 (the cache is not changed: each run is aborted) */
	double best[4] = { 1e9, 1e9, 1e9, 1e9 };
	for (int run = 0; run < 3; run++) {
		double t[4];

		clock_gettime(CLOCK_MONOTONIC, &t0);
		validate(&c, 1);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		d = build(&c, 1);
		clock_gettime(CLOCK_MONOTONIC, &t2);
		p = diff(d, o);
		clock_gettime(CLOCK_MONOTONIC, &t3);
		CHECK(mt_fw_lists_prepare(cache, o, memo ? want : NULL, p) == 1);
		clock_gettime(CLOCK_MONOTONIC, &t4);
		CHECK_PLAN(p, "create firewall mt0-acme: default block, 5 rules, lists big (delta +1 -1), good (unchanged)\n");
		t[0] = ms_between(&t0, &t1);
		t[1] = ms_between(&t1, &t2);
		t[2] = ms_between(&t2, &t3);
		t[3] = ms_between(&t3, &t4);
		for (int k = 0; k < 4; k++)
			best[k] = t[k] < best[k] ? t[k] : best[k];
		mt_fw_lists_abort(cache);
		mt_plan_free(p);
		dfree(d);
	}
	fprintf(stderr,
		"  100k list, one prefix changed (%s): validate %.1f ms, desired %.1f ms, diff %.1f ms, prepare %.1f ms; desired + diff + prepare %.1f ms\n",
		memo ? "memoised, the agent's path" : "mt_desired_build, strings",
		best[0], best[1], best[2], best[3], best[1] + best[2] + best[3]);
	if (memo) {
		/* a full reconcile with the config unchanged: the memo is
		 * kept, nothing is compiled, the diff sees equal digests */
		struct mt_desired_memo *m0 = NULL, **slot = &m0;
		Mt__Kernel__KernelState *d2;
		struct mt_fw_desired *w = mt_fw_desired_new();
		const struct mt_fw_content *k1;

		mt_kstate_free(o);
		d = mt_kstate_new();
		CHECK(mt_desired_build_memo(&metal, &c, &slot, 1, w, d) == 0);
		o = observe(d);
		k1 = mt_fw_desired_find(w, "mt0-acme", "big");
		mt_desired_release(d);
		mt_kstate_free(d);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		d2 = mt_kstate_new();
		CHECK(mt_desired_build_memo(&metal, &c, &slot, 1, w, d2) == 0);
		p = diff(d2, o);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		CHECK(p->n_ops == 0);
		CHECK(m0 && d2->firewalls[0] && k1 &&
		      mt_fw_desired_find(w, "mt0-acme", "big") == k1);
		fprintf(stderr,
			"  100k list, config unchanged (memo kept): desired + diff %.2f ms\n",
			ms_between(&t0, &t1));
		mt_plan_free(p);
		mt_desired_release(d2);
		mt_kstate_free(d2);
		mt_desired_memo_free(m0);
		mt_fw_desired_free(w);
	}
	memo_mode = false;
	mt_fw_desired_free(want);
	want = NULL;
	mt_kstate_free(o);
	mt_fw_lists_free(cache);
	free(v);
	free(s);
}

static void test_list_delta_100k(void)
{
	list_delta_100k(false);
	list_delta_100k(true);
}

/* ---- scale ---- */

static double ms_since(const struct timespec *a)
{
	struct timespec b;

	clock_gettime(CLOCK_MONOTONIC, &b);
	return (b.tv_sec - a->tv_sec) * 1e3 + (b.tv_nsec - a->tv_nsec) / 1e6;
}

/* 1000 customers with 50 rules each: a no-op reconcile's desired build and
 * diff, and one rule changed. Figures for reading, no bounds. */
static void test_scale(void)
{
	enum { NC = 1000, NR = 50 };
	static Mt__Config__Customer *cs[NC];
	static char names[NC][12], pfx[NC][32], *pp[NC][1];
	static char *src[] = { "192.0.2.0/24", "198.51.100.0/24" };
	static char *l1[] = { "192.0.2.0/24" };
	Mt__Kernel__KernelState *d, *o;
	Mt__Kernel__Plan *p;
	struct timespec a;
	double t_build = 1e9, t_build0 = 1e9, t_same = 1e9, t_one;

	for (int i = 0; i < NC; i++) {
		Mt__Config__Firewall *fw;

		snprintf(names[i], sizeof(names[i]), "c%04d", i);
		snprintf(pfx[i], sizeof(pfx[i]), "203.%d.%d.0/24", i / 256,
			 i % 256);
		pp[i][0] = pfx[i];
		cs[i] = customer((uint32_t)i + 1, names[i]);
		cs[i]->prefixes = pp[i];
		fw = firewall(cs[i], "block");
		for (int k = 0; k < NR; k++) {
			char port[8];
			Mt__Config__FirewallRule *r;

			snprintf(port, sizeof(port), "%d", 1000 + k);
			r = rule(fw, (uint32_t)k + 1, "allow", port);
			r->src_prefixes = src;
			r->n_src_prefixes = 2;
			r->description = "a rule";
		}
		list(fw, "l", l1, 1);
	}
	for (int run = 0; run < 3; run++) {
		double t;

		d = mt_kstate_new();
		clock_gettime(CLOCK_MONOTONIC, &a);
		CHECK(mt_desired_build(&metal, cs, NC, d) == 0);
		t = ms_since(&a);
		t_build = t < t_build ? t : t_build;
		if (run < 2)
			mt_kstate_free(d);
	}
	{
		/* the same customers without their firewalls, for reference */
		Mt__Config__Firewall *fws[NC];
		Mt__Kernel__KernelState *d0;

		for (int i = 0; i < NC; i++) {
			fws[i] = cs[i]->firewall;
			cs[i]->firewall = NULL;
		}
		for (int run = 0; run < 3; run++) {
			double t;

			d0 = mt_kstate_new();
			clock_gettime(CLOCK_MONOTONIC, &a);
			CHECK(mt_desired_build(&metal, cs, NC, d0) == 0);
			t = ms_since(&a);
			t_build0 = t < t_build0 ? t : t_build0;
			mt_kstate_free(d0);
		}
		for (int i = 0; i < NC; i++)
			cs[i]->firewall = fws[i];
	}
	o = observe(d);
	for (int run = 0; run < 3; run++) {
		double t;

		p = mt_plan_new();
		clock_gettime(CLOCK_MONOTONIC, &a);
		CHECK(mt_diff(d, o, NULL, p) == 0);
		t = ms_since(&a);
		t_same = t < t_same ? t : t_same;
		mt_plan_free(p);
	}
	free(o->firewalls[500]->rules[7]->dst_ports[0]);
	o->firewalls[500]->rules[7]->dst_ports[0] = strdup("1");
	p = mt_plan_new();
	clock_gettime(CLOCK_MONOTONIC, &a);
	CHECK(mt_diff(d, o, NULL, p) == 1);
	t_one = ms_since(&a);
	mt_plan_free(p);
	fprintf(stderr,
		"  %d customers x %d rules: desired build %.1f ms (%.1f without the firewalls), diff identical %.1f ms, one rule changed %.1f ms\n",
		NC, NR, t_build, t_build0, t_same, t_one);
	{
		/* the agent's path: memos cold (first reconcile), then warm
		 * (a periodic full reconcile, no config changed) */
		static struct mt_desired_memo *memo[NC], **slot[NC];
		double t_cold, t_warm = 1e9, t_warm_diff;
		struct mt_fw_desired *w;
		Mt__Kernel__KernelState *dm;

		for (int i = 0; i < NC; i++)
			slot[i] = &memo[i];
		w = mt_fw_desired_new();
		dm = mt_kstate_new();
		clock_gettime(CLOCK_MONOTONIC, &a);
		CHECK(mt_desired_build_memo(&metal, cs, slot, NC, w, dm) == 0);
		t_cold = ms_since(&a);
		mt_desired_release(dm);
		mt_kstate_free(dm);
		mt_fw_desired_free(w);
		for (int run = 0; run < 3; run++) {
			double t;

			w = mt_fw_desired_new();
			dm = mt_kstate_new();
			clock_gettime(CLOCK_MONOTONIC, &a);
			CHECK(mt_desired_build_memo(&metal, cs, slot, NC, w, dm) ==
			      0);
			t = ms_since(&a);
			t_warm = t < t_warm ? t : t_warm;
			if (run < 2) {
				mt_desired_release(dm);
				mt_kstate_free(dm);
				mt_fw_desired_free(w);
			}
		}
		p = mt_plan_new();
		clock_gettime(CLOCK_MONOTONIC, &a);
		CHECK(mt_diff(dm, o, NULL, p) == 1); /* o's rule 7 of c0500 */
		t_warm_diff = ms_since(&a);
		mt_plan_free(p);
		fprintf(stderr,
			"  %d customers x %d rules, memoised: desired build cold %.1f ms, warm %.1f ms (+ diff %.1f ms)\n",
			NC, NR, t_cold, t_warm, t_warm_diff);
		mt_desired_release(dm);
		mt_kstate_free(dm);
		mt_fw_desired_free(w);
		for (int i = 0; i < NC; i++)
			mt_desired_memo_free(memo[i]);
	}
	mt_kstate_free(d);
	mt_kstate_free(o);
}

int main(void)
{
	char e[128];

	if (mt_metal_init(&metal, NULL, e, sizeof(e)) < 0) {
		fprintf(stderr, "metal: %s\n", e);
		return 1;
	}
	RUN(test_desired);
	RUN(test_noop);
	RUN(test_rule_changed);
	RUN(test_rule_reordered_added_removed);
	RUN(test_dirty);
	RUN(test_list_changes);
	RUN(test_removed_and_created);
	RUN(test_list_delta);
	RUN(test_list_cache_customers);
	RUN(test_memo);
	RUN(test_list_delta_100k);
	RUN(test_scale);
	mt_metal_fini(&metal);
	TEST_MAIN_END();
}
