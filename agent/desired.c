#include "desired.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fw_lists.h"
#include "mt_cleanup.h"
#include "mt_fw.h"
#include "mt_kstate.h"
#include "mt_prefix.h"
#include "mt_validate.h"

#define SET(field, s)                                                          \
	do {                                                                   \
		if (mt_kstate_set_str(&(field), (s)) < 0)                      \
			return -ENOMEM;                                        \
	} while (0)

static int add_netns(Mt__Kernel__KernelState *st, const char *name,
		     const char *owner)
{
	Mt__Kernel__Netns *o = mt_kstate_add_netns(st);

	if (!o)
		return -ENOMEM;
	SET(o->name, name);
	SET(o->owner, owner);
	return 0;
}

static int add_link(Mt__Kernel__KernelState *st, const char *netns,
		    const char *name, const char *kind, const char *peer_netns,
		    const char *peer_name, const char *owner)
{
	Mt__Kernel__Link *o = mt_kstate_add_link(st);

	if (!o)
		return -ENOMEM;
	SET(o->netns, netns);
	SET(o->name, name);
	SET(o->kind, kind);
	SET(o->peer_netns, peer_netns);
	SET(o->peer_name, peer_name);
	SET(o->owner, owner);
	o->up = true;
	return 0;
}

static int add_addr(Mt__Kernel__KernelState *st, const char *netns,
		    const char *dev, const struct mt_prefix *p,
		    const char *owner)
{
	Mt__Kernel__Addr *o = mt_kstate_add_addr(st);
	char buf[MT_PREFIX_STRLEN];

	if (!o)
		return -ENOMEM;
	SET(o->netns, netns);
	SET(o->dev, dev);
	SET(o->prefix, mt_prefix_format(p, buf, sizeof(buf)));
	SET(o->owner, owner);
	return 0;
}

static int add_route(Mt__Kernel__KernelState *st, const char *netns,
		     uint32_t table, const struct mt_prefix *dst,
		     const char *dev, const char *gateway, const char *owner)
{
	Mt__Kernel__Route *o = mt_kstate_add_route(st);
	char buf[MT_PREFIX_STRLEN];

	if (!o)
		return -ENOMEM;
	SET(o->netns, netns);
	o->table = table;
	SET(o->dst, mt_prefix_format(dst, buf, sizeof(buf)));
	SET(o->dev, dev);
	SET(o->gateway, gateway);
	SET(o->owner, owner);
	return 0;
}

static int add_rule(Mt__Kernel__KernelState *st, const char *netns,
		    uint32_t priority, uint32_t fwmark, uint32_t fwmask,
		    uint32_t table, const char *owner)
{
	Mt__Kernel__Rule *o = mt_kstate_add_rule(st);

	if (!o)
		return -ENOMEM;
	SET(o->netns, netns);
	o->priority = priority;
	o->fwmark = fwmark;
	o->fwmask = fwmask;
	o->table = table;
	SET(o->owner, owner);
	return 0;
}

static int add_sysctl(Mt__Kernel__KernelState *st, const char *netns,
		      const char *key, const char *value, const char *owner)
{
	Mt__Kernel__Sysctl *o = mt_kstate_add_sysctl(st);

	if (!o)
		return -ENOMEM;
	SET(o->netns, netns);
	SET(o->key, key);
	SET(o->value, value);
	SET(o->owner, owner);
	return 0;
}

static int add_mark_prefix(Mt__Kernel__KernelState *st,
			   const struct mt_prefix *p, const char *owner)
{
	Mt__Kernel__MarkPrefix *o = mt_kstate_add_mark_prefix(st);
	char buf[MT_PREFIX_STRLEN];

	if (!o)
		return -ENOMEM;
	SET(o->prefix, mt_prefix_format(p, buf, sizeof(buf)));
	SET(o->owner, owner);
	return 0;
}

static int add_shared(const struct mt_metal *m, Mt__Kernel__KernelState *st)
{
	Mt__Kernel__MarkTable *t;
	int r;

	r = add_rule(st, "", m->rule_priority, m->fwmark, m->fwmark_mask,
		     m->gre_table, "");
	if (r < 0)
		return r;
	t = mt_kstate_add_mark_table(st);
	if (!t)
		return -ENOMEM;
	SET(t->name, m->mark_table);
	t->fwmark = m->fwmark;
	t->fwmask = m->fwmark_mask;
	return add_sysctl(st, "", "net/ipv4/ip_forward", "1", "");
}

/* The sysctls inside a customer namespace: forwarding on, reverse path
 * filtering off (traffic from the metal arrives with eyeball sources that
 * the namespace routes elsewhere). */
static const char *const cust_sysctls[][2] = {
	{ "net/ipv4/ip_forward", "1" },
	{ "net/ipv4/conf/all/rp_filter", "0" },
	{ "net/ipv4/conf/default/rp_filter", "0" },
	{ "net/ipv4/conf/" MT_CUST_VETH "/rp_filter", "0" },
	/* ECMP over tunnels hashes on the L4 ports too, so one flow stays on
	 * one tunnel while many flows spread by weight. */
	{ "net/ipv4/fib_multipath_hash_policy", "1" },
};

static int add_tunnel(Mt__Kernel__KernelState *st, const char *netns,
		      const Mt__Config__Tunnel *t, const char *owner)
{
	Mt__Kernel__Tunnel *o = mt_kstate_add_tunnel(st);
	struct mt_prefix a;
	char buf[MT_PREFIX_STRLEN], e[128];

	if (!o)
		return -ENOMEM;
	SET(o->netns, netns);
	SET(o->name, t->name);
	SET(o->driver, t->driver && *t->driver ? t->driver : "auto");
	if (mt_addr_parse(t->edge_endpoint, &a, e, sizeof(e)) < 0)
		return -EINVAL;
	SET(o->local, mt_addr_format(&a, buf, sizeof(buf)));
	if (mt_addr_parse(t->router_endpoint, &a, e, sizeof(e)) < 0)
		return -EINVAL;
	SET(o->remote, mt_addr_format(&a, buf, sizeof(buf)));
	o->has_key = mt_tunnel_has_key(t);
	o->key = o->has_key ? t->key : 0;
	o->ttl = mt_tunnel_ttl(t);
	o->mtu = mt_tunnel_mtu(t);
	SET(o->owner, owner);
	return 0;
}

static int add_mss_clamp(Mt__Kernel__KernelState *st, const char *netns,
			 const Mt__Config__Tunnel *t, const char *owner)
{
	Mt__Kernel__MssClamp *o = mt_kstate_add_mss_clamp(st);

	if (!o)
		return -ENOMEM;
	SET(o->netns, netns);
	SET(o->dev, t->name);
	o->mss = mt_tunnel_mss(t);
	SET(o->owner, owner);
	return 0;
}

/* A firewall section that asks for nothing (no rule, no list, default
 * allow) is no firewall: mt's chains are then absent. */
static bool firewall_wanted(const Mt__Config__Firewall *fw)
{
	return fw && (fw->n_rules || fw->n_lists ||
		      strcmp(mt_fw_default_action(fw->default_action) ?
				     mt_fw_default_action(fw->default_action) :
				     "",
			     "allow") != 0);
}

/* One list: name, family, digest and count of content; with strings, its
 * prefixes too, as mt_prefix_format prints them, in order. */
static int add_fw_list(Mt__Kernel__Firewall *f,
		       const struct mt_fw_content *content, bool strings)
{
	const struct mt_fw_list *cl = &content->list;
	Mt__Kernel__FirewallList *o = mt_firewall_add_list(f);
	char buf[MT_PREFIX_STRLEN];

	if (!o)
		return -ENOMEM;
	if (mt_kstate_set_str(&o->name, cl->name) < 0 ||
	    mt_kstate_set_str(&o->family, mt_fw_family_name(cl->family)) < 0 ||
	    mt_kstate_set_str(&o->digest, cl->digest) < 0)
		return -ENOMEM;
	o->count = (uint32_t)cl->n;
	if (!strings || !cl->n)
		return 0;
	o->prefixes = malloc(cl->n * sizeof(*o->prefixes));
	if (!o->prefixes)
		return -ENOMEM;
	for (size_t i = 0; i < cl->n; i++) {
		o->prefixes[i] = strdup(mt_prefix_format(&cl->prefixes[i], buf,
							 sizeof(buf)));
		if (!o->prefixes[i])
			return -ENOMEM;
		o->n_prefixes++;
	}
	return 0;
}

/* A customer's firewall compiled: the kernel object (rules canonical, lists
 * with or without strings) and the content of each list in config order.
 * The costly part of a customer's desired state, memoised per config. */
struct mt_desired_memo {
	const Mt__Config__Customer *config; /* identity, never dereferenced */
	Mt__Kernel__Firewall *fw;           /* NULL: no firewall wanted */
	struct mt_fw_content **lists;       /* n_lists, config order */
	size_t n_lists;
};

void mt_desired_memo_free(struct mt_desired_memo *memo)
{
	if (!memo)
		return;
	for (size_t i = 0; i < memo->n_lists; i++)
		mt_fw_content_unref(memo->lists[i]);
	free(memo->lists);
	if (memo->fw)
		protobuf_c_message_free_unpacked(&memo->fw->base, NULL);
	free(memo);
}

/* Firewall {netns, owner, default_action, rules canonical in order, lists
 * (with strings or not) in config order} of customer c, in memo (fw NULL
 * when c wants none). */
static int firewall_compile(const char *netns, const Mt__Config__Customer *c,
			    bool strings, struct mt_desired_memo *memo)
{
	const Mt__Config__Firewall *fw = c->firewall;
	const char *def;
	Mt__Kernel__Firewall *f;
	char e[256];
	int r;

	memo->config = c;
	if (!firewall_wanted(fw))
		return 0;
	def = mt_fw_default_action(fw->default_action);
	if (!def)
		return -EINVAL;
	f = malloc(sizeof(*f));
	if (!f)
		return -ENOMEM;
	mt__kernel__firewall__init(f);
	memo->fw = f;
	if (fw->n_lists) {
		memo->lists = calloc(fw->n_lists, sizeof(*memo->lists));
		if (!memo->lists)
			return -ENOMEM;
	}
	SET(f->netns, netns);
	SET(f->owner, c->name);
	SET(f->default_action, def);
	for (size_t i = 0; i < fw->n_rules; i++) {
		Mt__Config__FirewallRule *k;

		r = mt_fw_rule_canonical(fw, fw->rules[i], &k, e, sizeof(e));
		if (r < 0)
			return r;
		if ((r = mt_firewall_add_rule(f, k)) < 0)
			return r;
	}
	for (size_t i = 0; i < fw->n_lists; i++) {
		const Mt__Config__IpList *l = fw->lists[i];
		struct mt_fw_content *cl;

		r = mt_fw_content_compile(l->name, l->prefixes, l->n_prefixes,
					  &cl, e, sizeof(e));
		if (r < 0)
			return r;
		r = add_fw_list(f, cl, strings);
		if (r < 0) {
			mt_fw_content_unref(cl);
			return r;
		}
		memo->lists[memo->n_lists++] = cl;
	}
	return 0;
}

/* Appends f to st->firewalls (st then owns it, unless the state is
 * released with mt_desired_release first). */
static int push_firewall(Mt__Kernel__KernelState *st, Mt__Kernel__Firewall *f)
{
	size_t n = st->n_firewalls;

	/* power-of-two capacity, as mt_kstate's appenders keep it */
	if (n == 0 || (n & (n - 1)) == 0) {
		Mt__Kernel__Firewall **g =
			realloc(st->firewalls, (n ? 2 * n : 1) * sizeof(*g));

		if (!g)
			return -ENOMEM;
		st->firewalls = g;
	}
	st->firewalls[st->n_firewalls++] = f;
	return 0;
}

/* What the build does with a customer's firewall: memoise (slot != NULL,
 * borrowed objects, lists without strings, contents into want) or build
 * it into st with strings (slot NULL). */
struct fw_out { /* and the health penalties of its tunnel routes */
	const struct mt_desired_penalties *pen;
	struct mt_desired_memo **slot;
	struct mt_fw_desired *want;
};

static int add_firewall(Mt__Kernel__KernelState *st, const char *netns,
			const Mt__Config__Customer *c, const struct fw_out *out)
{
	struct mt_desired_memo *memo = out->slot ? *out->slot : NULL;
	int r;

	if (memo && memo->config != c) {
		mt_desired_memo_free(memo);
		*out->slot = memo = NULL;
	}
	if (!memo) {
		memo = calloc(1, sizeof(*memo));
		if (!memo)
			return -ENOMEM;
		r = firewall_compile(netns, c, !out->slot, memo);
		if (r == 0 && memo->fw && strcmp(memo->fw->netns, netns))
			r = -EINVAL;
		if (r < 0 || !out->slot) {
			Mt__Kernel__Firewall *f = MT_TAKE_PTR(memo->fw);

			mt_desired_memo_free(memo);
			if (r < 0 || !f) {
				if (f)
					protobuf_c_message_free_unpacked(
						&f->base, NULL);
				return r;
			}
			if ((r = push_firewall(st, f)) < 0)
				protobuf_c_message_free_unpacked(&f->base,
								 NULL);
			return r;
		}
		*out->slot = memo;
	}
	if (!memo->fw)
		return 0;
	/* a memo is of one config, and the netns follows from its name and
	 * the metal: the same for as long as the memo lives */
	for (size_t i = 0; out->want && i < memo->n_lists; i++)
		if ((r = mt_fw_desired_add(out->want, netns,
					   memo->lists[i])) < 0)
			return r;
	return push_firewall(st, memo->fw);
}

/* The route priority of configured route r with its tunnel's health
 * penalty added, capped below the blackhole's metric (validation keeps
 * priorities at most MT_ROUTE_PRIORITY_MAX, far below the cap). */
static uint32_t effective_priority(const Mt__Config__Customer *c,
				   const Mt__Config__TunnelRoute *r,
				   const struct mt_desired_penalties *pen)
{
	uint64_t x = r->priority;

	if (pen && pen->fn)
		x += pen->fn(pen->ctx, c->name, r->tunnel);
	return x < MT_LAST_RESORT_METRIC ? (uint32_t)x : MT_LAST_RESORT_METRIC - 1;
}

/* The tunnel routes of one customer: for each (prefix, effective
 * priority) one kernel route in cust_table with metric = that priority,
 * through the one tunnel of the group (dev) or all of them (nexthops,
 * weighted, in config order). The lowest metric wins in the kernel; equal
 * priorities share by ECMP. A health penalty moves a tunnel's routes to a
 * higher metric (out of its ECMP group): they stay, so with every tunnel
 * penalised traffic still takes the best one. */
static int add_tunnel_routes(const struct mt_metal *m, const char *netns,
			     const Mt__Config__Customer *c,
			     const struct mt_desired_penalties *pen,
			     Mt__Kernel__KernelState *st)
{
	struct mt_prefix p, q;
	uint32_t *prio;
	char e[128];
	int r = 0;

	prio = calloc(c->n_routes + 1, sizeof(*prio));
	if (!prio)
		return -ENOMEM;
	for (size_t i = 0; i < c->n_routes; i++)
		prio[i] = effective_priority(c, c->routes[i], pen);

	for (size_t i = 0; i < c->n_routes; i++) {
		const Mt__Config__TunnelRoute *ri = c->routes[i];
		Mt__Kernel__Route *o;
		bool first = true;
		size_t n = 0;

		if (mt_prefix_parse(ri->prefix, true, &p, e, sizeof(e)) < 0) {
			r = -EINVAL;
			break;
		}
		/* only the first route of its group emits the kernel route */
		for (size_t j = 0; j < i && first; j++)
			if (prio[j] == prio[i] &&
			    mt_prefix_parse(c->routes[j]->prefix, true, &q, e,
					    sizeof(e)) == 0 &&
			    mt_prefix_equal(&p, &q))
				first = false;
		if (!first)
			continue;
		for (size_t j = i; j < c->n_routes; j++)
			if (prio[j] == prio[i] &&
			    mt_prefix_parse(c->routes[j]->prefix, true, &q, e,
					    sizeof(e)) == 0 &&
			    mt_prefix_equal(&p, &q))
				n++;
		if (add_route(st, netns, m->cust_table, &p, n == 1 ? ri->tunnel : "",
			      "", c->name) < 0) {
			r = -ENOMEM;
			break;
		}
		o = st->routes[st->n_routes - 1];
		o->metric = prio[i];
		if (n == 1)
			continue;
		for (size_t j = i; j < c->n_routes; j++) {
			const Mt__Config__TunnelRoute *rj = c->routes[j];
			Mt__Kernel__Nexthop *h;

			if (prio[j] != prio[i] ||
			    mt_prefix_parse(rj->prefix, true, &q, e, sizeof(e)) < 0 ||
			    !mt_prefix_equal(&p, &q))
				continue;
			h = mt_route_add_nexthop(o);
			if (!h) {
				r = -ENOMEM;
				break;
			}
			SET(h->dev, rj->tunnel);
			h->weight = rj->weight ? rj->weight : 1;
		}
		if (r < 0)
			break;
	}
	free(prio);
	return r;
}

int mt_desired_build_routes(const struct mt_metal *m,
			    const Mt__Config__Customer *c,
			    const struct mt_desired_penalties *pen,
			    Mt__Kernel__KernelState *st)
{
	char ifname[IFNAMSIZ];

	if (mt_metal_ifname(m, c->name, ifname, sizeof(ifname)) < 0)
		return -EINVAL;
	return add_tunnel_routes(m, ifname, c, pen, st);
}

/* The first IPv4 tunnel endpoint, as the source of what the namespace
 * sends back to eyeballs itself (ICMP errors: "fragmentation needed" must
 * come from a routable address, not the namespace's 169.254 link). "" when
 * the customer has none. */
static const char *icmp_source(const Mt__Config__Customer *c, char *buf,
			       size_t len)
{
	struct mt_prefix p;
	char e[128];

	for (size_t i = 0; i < c->n_tunnel_endpoints; i++)
		if (mt_addr_parse(c->tunnel_endpoints[i], &p, e, sizeof(e)) == 0 &&
		    p.family == AF_INET)
			return mt_addr_format(&p, buf, len);
	buf[0] = '\0';
	return buf;
}

static int add_customer(const struct mt_metal *m,
			const Mt__Config__Customer *c, const struct fw_out *fo,
			Mt__Kernel__KernelState *st)
{
	const char *n = c->name;
	struct mt_prefix msd, csd, p;
	char ifname[IFNAMSIZ], cgw[MT_PREFIX_STRLEN], mgw[MT_PREFIX_STRLEN];
	char key[64], e[128], src[MT_PREFIX_STRLEN];
	int r;

	if (!n || mt_metal_ifname(m, n, ifname, sizeof(ifname)) < 0 ||
	    mt_metal_link_addrs(m, c->id, &msd, &csd) < 0)
		return -EINVAL;
	mt_addr_format(&csd, cgw, sizeof(cgw));
	mt_addr_format(&msd, mgw, sizeof(mgw));

	if ((r = add_netns(st, ifname, n)) < 0 ||
	    (r = add_link(st, "", ifname, "veth", ifname, MT_CUST_VETH, n)) <
		    0 ||
	    (r = add_link(st, ifname, MT_CUST_VETH, "", "", "", n)) < 0 ||
	    (r = add_link(st, ifname, "lo", "", "", "", n)) < 0 ||
	    (r = add_addr(st, "", ifname, &msd, n)) < 0 ||
	    (r = add_addr(st, ifname, MT_CUST_VETH, &csd, n)) < 0)
		return r;

	for (size_t i = 0; i < c->n_tunnel_endpoints; i++) {
		if (mt_addr_parse(c->tunnel_endpoints[i], &p, e, sizeof(e)) < 0)
			return -EINVAL;
		if ((r = add_addr(st, ifname, "lo", &p, n)) < 0)
			return r;
	}
	for (size_t i = 0; i < c->n_prefixes; i++) {
		if (mt_prefix_parse(c->prefixes[i], true, &p, e, sizeof(e)) < 0)
			return -EINVAL;
		r = add_route(st, "", m->gre_table, &p, ifname,
			      p.family == AF_INET ? cgw : "", n);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < c->n_tunnel_endpoints; i++) {
		mt_addr_parse(c->tunnel_endpoints[i], &p, e, sizeof(e));
		r = add_route(st, "", m->gre_table, &p, ifname,
			      p.family == AF_INET ? cgw : "", n);
		if (r < 0)
			return r;
	}
	/* Traffic for the customer's prefixes that no tunnel route takes is
	 * dropped in the namespace, never sent back out the default route:
	 * that would bounce between the metal and the namespace until the
	 * TTL ran out. Tunnel routes sit at lower metrics. */
	for (size_t i = 0; i < c->n_prefixes; i++) {
		mt_prefix_parse(c->prefixes[i], true, &p, e, sizeof(e));
		r = add_route(st, ifname, m->cust_table, &p, "", "", n);
		if (r < 0)
			return r;
		st->routes[st->n_routes - 1]->type = MT_RTN_BLACKHOLE;
		st->routes[st->n_routes - 1]->metric = MT_LAST_RESORT_METRIC;
	}
	if (mt_prefix_parse("0.0.0.0/0", true, &p, e, sizeof(e)) < 0)
		return -EINVAL;
	if ((r = add_route(st, ifname, m->cust_table, &p, MT_CUST_VETH, mgw,
			   n)) < 0)
		return r;
	SET(st->routes[st->n_routes - 1]->prefsrc,
	    icmp_source(c, src, sizeof(src)));
	if ((r = add_rule(st, ifname, m->rule_priority, 0, 0, m->cust_table,
			  n)) < 0)
		return r;

	for (size_t i = 0; i < c->n_tunnels; i++) {
		const Mt__Config__Tunnel *t = c->tunnels[i];
		struct mt_prefix local, peer;

		if (mt_tunnel_inner(t, &local, &peer) < 0)
			return -EINVAL;
		if ((r = add_tunnel(st, ifname, t, n)) < 0 ||
		    (r = add_addr(st, ifname, t->name, &local, n)) < 0 ||
		    (r = add_mss_clamp(st, ifname, t, n)) < 0)
			return r;
	}
	if ((r = add_tunnel_routes(m, ifname, c, fo->pen, st)) < 0)
		return r;
	if ((r = add_firewall(st, ifname, c, fo)) < 0)
		return r;

	snprintf(key, sizeof(key), "net/ipv4/conf/%s/rp_filter", ifname);
	if ((r = add_sysctl(st, "", key, "0", n)) < 0)
		return r;
	for (size_t i = 0; i < sizeof(cust_sysctls) / sizeof(cust_sysctls[0]);
	     i++)
		if ((r = add_sysctl(st, ifname, cust_sysctls[i][0],
				    cust_sysctls[i][1], n)) < 0)
			return r;

	for (size_t i = 0; i < c->n_prefixes; i++) {
		mt_prefix_parse(c->prefixes[i], true, &p, e, sizeof(e));
		if ((r = add_mark_prefix(st, &p, n)) < 0)
			return r;
	}
	/* Inbound GRE for the customer's endpoints is steered into its
	 * namespace the same way as its prefixes. */
	for (size_t i = 0; i < c->n_tunnel_endpoints; i++) {
		mt_addr_parse(c->tunnel_endpoints[i], &p, e, sizeof(e));
		if ((r = add_mark_prefix(st, &p, n)) < 0)
			return r;
	}
	return 0;
}

int mt_desired_build(const struct mt_metal *m,
		     Mt__Config__Customer *const *cs, size_t n,
		     Mt__Kernel__KernelState *st)
{
	struct fw_out fo = { 0 };
	int r = add_shared(m, st);

	for (size_t i = 0; i < n && r == 0; i++)
		r = add_customer(m, cs[i], &fo, st);
	return r;
}

int mt_desired_build_memo(const struct mt_metal *m,
			  Mt__Config__Customer *const *cs,
			  struct mt_desired_memo **const *memos, size_t n,
			  struct mt_fw_desired *want,
			  Mt__Kernel__KernelState *st)
{
	return mt_desired_build_health(m, cs, memos, n, want, NULL, st);
}

int mt_desired_build_health(const struct mt_metal *m,
			    Mt__Config__Customer *const *cs,
			    struct mt_desired_memo **const *memos, size_t n,
			    struct mt_fw_desired *want,
			    const struct mt_desired_penalties *pen,
			    Mt__Kernel__KernelState *st)
{
	int r = add_shared(m, st);

	for (size_t i = 0; i < n && r == 0; i++) {
		struct fw_out fo = { .pen = pen, .slot = memos[i], .want = want };

		r = add_customer(m, cs[i], &fo, st);
	}
	return r;
}

void mt_desired_release(Mt__Kernel__KernelState *st)
{
	if (!st)
		return;
	free(st->firewalls);
	st->firewalls = NULL;
	st->n_firewalls = 0;
}
