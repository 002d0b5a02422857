/* Root check of the rtnetlink layer against the real kernel, in a sandbox:
 * the process unshares a network namespace (its "metal") and a private
 * mount namespace with a tmpfs over /run, so every /run/netns/mtt<N>-*
 * namespace it creates is invisible to the host and gone when it exits,
 * pass or fail. Exits 77 (skip) when not root.
 *
 *   rtnl_apply_check [N]   N customer namespaces for the scale part
 *                          (default 1000, 0 = skip it)
 *
 * Checks: apply of a full customer plan; the result against `ip -json`;
 * observe returns it; plan minus observed is empty (0 writes); a second
 * full apply succeeds (idempotent) and changes nothing observed; veth EEXIST
 * re-applies up; ownership refusals send nothing; errors map to the right
 * op inside a batch (with the kernel's extended ACK text); multipath
 * routes (weights, order, replace in place without RTM_DELROUTE, IPv6,
 * collapse to one nexthop), prefsrc, their validation errors, tunnel
 * devices hidden from Links but not their addresses, the multipath hash
 * sysctl; deletes (twice); observe of N namespaces under 100 ms. */
#include <errno.h>
#include <fcntl.h>
#include <linux/rtnetlink.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "mt_cleanup.h"
#include "mt_kstate.h"
#include "mt_log.h"
#include "mt_metal.h"
#include "netns.h"
#include "nl.h"
#include "rtnl_apply.h"
#include "rtnl_observe.h"
#include "kcheck.h"

#define C Mt__Kernel__Op__Action

static struct mt_metal metal;
static char pfx[16];

/* ---- plan building ------------------------------------------------------ */

static void add_netns(Mt__Kernel__Plan *p, C act, const char *name)
{
	Mt__Kernel__Netns o = MT__KERNEL__NETNS__INIT;

	o.name = (char *)name;
	mt_plan_add(p, act, &o.base);
}

static void add_link(Mt__Kernel__Plan *p, C act, const char *ns,
		     const char *name, const char *kind, const char *peer_ns,
		     const char *peer, uint32_t mtu, bool up)
{
	Mt__Kernel__Link o = MT__KERNEL__LINK__INIT;

	o.netns = (char *)ns;
	o.name = (char *)name;
	o.kind = (char *)kind;
	o.peer_netns = (char *)peer_ns;
	o.peer_name = (char *)peer;
	o.mtu = mtu;
	o.up = up;
	mt_plan_add(p, act, &o.base);
}

static void add_addr(Mt__Kernel__Plan *p, C act, const char *ns,
		     const char *dev, const char *prefix)
{
	Mt__Kernel__Addr o = MT__KERNEL__ADDR__INIT;

	o.netns = (char *)ns;
	o.dev = (char *)dev;
	o.prefix = (char *)prefix;
	mt_plan_add(p, act, &o.base);
}

static void add_route(Mt__Kernel__Plan *p, C act, const char *ns,
		      uint32_t table, const char *dst, const char *dev,
		      const char *gw, uint32_t metric)
{
	Mt__Kernel__Route o = MT__KERNEL__ROUTE__INIT;

	o.netns = (char *)ns;
	o.table = table;
	o.dst = (char *)dst;
	o.dev = (char *)dev;
	o.gateway = (char *)gw;
	o.metric = metric;
	mt_plan_add(p, act, &o.base);
}

struct hop {
	const char *dev, *gw;
	uint32_t weight;
};

/* A route with prefsrc and nexthops (n may be 0, 1 to test refusals). */
static void add_mp_route(Mt__Kernel__Plan *p, C act, const char *ns,
			 uint32_t table, const char *dst, const char *dev,
			 const char *gw, const char *prefsrc, uint32_t metric,
			 const struct hop *hops, size_t n)
{
	Mt__Kernel__Route o = MT__KERNEL__ROUTE__INIT;
	Mt__Kernel__Nexthop h[8], *hv[8];

	o.netns = (char *)ns;
	o.table = table;
	o.dst = (char *)dst;
	o.dev = (char *)dev;
	o.gateway = (char *)gw;
	o.prefsrc = (char *)prefsrc;
	o.metric = metric;
	for (size_t i = 0; i < n && i < 8; i++) {
		mt__kernel__nexthop__init(&h[i]);
		h[i].dev = (char *)hops[i].dev;
		h[i].gateway = (char *)hops[i].gw;
		h[i].weight = hops[i].weight;
		hv[i] = &h[i];
	}
	o.nexthops = hv;
	o.n_nexthops = n;
	mt_plan_add(p, act, &o.base);
}

static void add_rule(Mt__Kernel__Plan *p, C act, const char *ns, uint32_t prio,
		     uint32_t mark, uint32_t mask, uint32_t table)
{
	Mt__Kernel__Rule o = MT__KERNEL__RULE__INIT;

	o.netns = (char *)ns;
	o.priority = prio;
	o.fwmark = mark;
	o.fwmask = mask;
	o.table = table;
	mt_plan_add(p, act, &o.base);
}

static void add_sysctl(Mt__Kernel__Plan *p, const char *ns, const char *key,
		       const char *val)
{
	Mt__Kernel__Sysctl o = MT__KERNEL__SYSCTL__INIT;

	o.netns = (char *)ns;
	o.key = (char *)key;
	o.value = (char *)val;
	mt_plan_add(p, CREATE, &o.base);
}

/* The plan the agent would make for customer name with link pair id. */
static void customer_plan(Mt__Kernel__Plan *p, const char *name, int id,
			  bool full)
{
	const char *ns = fmt("%s%s", pfx, name);
	const char *m4 = fmt("169.254.%d.%d/31", id / 128, (id % 128) * 2);
	const char *c4 = fmt("169.254.%d.%d/31", id / 128, (id % 128) * 2 + 1);
	const char *c4gw = fmt("169.254.%d.%d", id / 128, (id % 128) * 2 + 1);
	const char *m4gw = fmt("169.254.%d.%d", id / 128, (id % 128) * 2);

	add_netns(p, CREATE, ns);
	add_link(p, CREATE, "", ns, "veth", ns, MT_CUST_VETH, 1500, true);
	add_link(p, CREATE, ns, "lo", "", "", "", 0, true);
	add_addr(p, CREATE, "", ns, m4);
	add_addr(p, CREATE, ns, MT_CUST_VETH, c4);
	add_route(p, CREATE, "", metal.gre_table,
		  fmt("198.18.%d.%d/30", id / 64, (id % 64) * 4), ns, c4gw, 0);
	add_route(p, CREATE, ns, metal.cust_table, "0.0.0.0/0", MT_CUST_VETH,
		  m4gw, 0);
	add_sysctl(p, ns, "net/ipv4/ip_forward", "1");
	add_sysctl(p, ns, "net/ipv4/conf/all/rp_filter", "0");
	if (!full)
		return;
	add_addr(p, CREATE, "", ns, "fd00:77::/127");
	add_addr(p, CREATE, ns, MT_CUST_VETH, "fd00:77::1/127");
	add_route(p, CREATE, "", metal.gre_table, "2001:db8:100::/48", ns,
		  "fd00:77::1", 1024);
	add_route(p, CREATE, ns, metal.cust_table, "203.0.113.0/24",
		  MT_CUST_VETH, "", 500000);
	add_rule(p, CREATE, ns, metal.rule_priority + 1, 0x1, 0xff,
		 metal.cust_table_alt);
	add_sysctl(p, ns, "net/ipv4/conf/default/rp_filter", "0");
	add_sysctl(p, ns, "net/ipv4/conf/" MT_CUST_VETH "/rp_filter", "0");
	add_sysctl(p, "", fmt("net/ipv4/conf/%s/rp_filter", ns), "0");
}

static int apply(struct mt_rtnl *ctx, Mt__Kernel__Plan *p, uint64_t *writes,
		 Mt__Kernel__OpResult ***out)
{
	Mt__Kernel__OpResult **res = calloc(p->n_ops + 1, sizeof(*res));
	int failed;

	*writes = 0;
	failed = mt_rtnl_apply(ctx, p->ops, p->n_ops, res, writes);
	for (size_t i = 0; i < p->n_ops; i++)
		if (res[i] && res[i]->error)
			fprintf(stderr, "  op %zu: %d %s\n", i, res[i]->error,
				res[i]->message);
	if (out) {
		*out = res;
	} else {
		for (size_t i = 0; i < p->n_ops; i++)
			if (res[i])
				protobuf_c_message_free_unpacked(&res[i]->base,
								 NULL);
		free(res);
	}
	return failed;
}

static void free_results(Mt__Kernel__OpResult **res, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (res[i])
			protobuf_c_message_free_unpacked(&res[i]->base, NULL);
	free(res);
}

/* ---- plan minus observed ------------------------------------------------ */

static bool same_nexthops(const Mt__Kernel__Route *a,
			  const Mt__Kernel__Route *b)
{
	if (a->n_nexthops != b->n_nexthops)
		return false;
	for (size_t i = 0; i < a->n_nexthops; i++)
		if (!streq(a->nexthops[i]->dev, b->nexthops[i]->dev) ||
		    !streq(a->nexthops[i]->gateway, b->nexthops[i]->gateway) ||
		    a->nexthops[i]->weight != b->nexthops[i]->weight)
			return false;
	return true;
}

static bool satisfied(const Mt__Kernel__Op *op,
		      const Mt__Kernel__KernelState *st)
{
	switch (op->object_case) {
	case MT__KERNEL__OP__OBJECT_NETNS:
		for (size_t i = 0; i < st->n_netns; i++)
			if (streq(st->netns[i]->name, op->netns->name))
				return true;
		return false;
	case MT__KERNEL__OP__OBJECT_LINK: {
		const Mt__Kernel__Link *w = op->link;

		for (size_t i = 0; i < st->n_links; i++) {
			const Mt__Kernel__Link *l = st->links[i];

			if (streq(l->netns, w->netns) &&
			    streq(l->name, w->name) &&
			    (!*w->kind || streq(l->kind, w->kind)) &&
			    l->up == w->up && (!w->mtu || l->mtu == w->mtu) &&
			    (!*w->kind ||
			     (streq(l->peer_netns, w->peer_netns) &&
			      streq(l->peer_name, w->peer_name))))
				return true;
		}
		return false;
	}
	case MT__KERNEL__OP__OBJECT_ADDR:
		for (size_t i = 0; i < st->n_addrs; i++)
			if (streq(st->addrs[i]->netns, op->addr->netns) &&
			    streq(st->addrs[i]->dev, op->addr->dev) &&
			    streq(st->addrs[i]->prefix, op->addr->prefix))
				return true;
		return false;
	case MT__KERNEL__OP__OBJECT_ROUTE:
		for (size_t i = 0; i < st->n_routes; i++) {
			const Mt__Kernel__Route *r = st->routes[i],
						*w = op->route;

			if (streq(r->netns, w->netns) && r->table == w->table &&
			    streq(r->dst, w->dst) && streq(r->dev, w->dev) &&
			    streq(r->gateway, w->gateway) &&
			    r->metric == w->metric &&
			    streq(r->prefsrc, w->prefsrc) &&
			    same_nexthops(r, w))
				return true;
		}
		return false;
	case MT__KERNEL__OP__OBJECT_RULE:
		for (size_t i = 0; i < st->n_rules; i++) {
			const Mt__Kernel__Rule *r = st->rules[i], *w = op->rule;

			if (streq(r->netns, w->netns) &&
			    r->priority == w->priority &&
			    r->fwmark == w->fwmark && r->fwmask == w->fwmask &&
			    r->table == w->table)
				return true;
		}
		return false;
	case MT__KERNEL__OP__OBJECT_SYSCTL:
		for (size_t i = 0; i < st->n_sysctls; i++)
			if (streq(st->sysctls[i]->netns, op->sysctl->netns) &&
			    streq(st->sysctls[i]->key, op->sysctl->key) &&
			    streq(st->sysctls[i]->value, op->sysctl->value))
				return true;
		return false;
	default:
		return false;
	}
}

static Mt__Kernel__Plan *plan_minus(const Mt__Kernel__Plan *p,
				    const Mt__Kernel__KernelState *st)
{
	Mt__Kernel__Plan *rest = mt_plan_new();
	char d[300];

	for (size_t i = 0; i < p->n_ops; i++) {
		const Mt__Kernel__Op *op = p->ops[i];

		if (satisfied(op, st))
			continue;
		fprintf(stderr, "  not observed: %s\n",
			mt_op_describe(op, d, sizeof(d)));
		mt_plan_add(rest, op->action,
			    (const ProtobufCMessage *)op->netns); /* oneof */
	}
	return rest;
}

/* ---- ip -json ----------------------------------------------------------- */

static bool ip_has(const char *args, const char *want)
{
	char cmd[512], out[65536];
	size_t n;
	FILE *f;

	snprintf(cmd, sizeof(cmd), "ip -json %s 2>&1", args);
	f = popen(cmd, "r");
	if (!f)
		return false;
	n = fread(out, 1, sizeof(out) - 1, f);
	out[n] = '\0';
	pclose(f);
	if (!strstr(out, want)) {
		fprintf(stderr, "  `ip -json %s` lacks %s:\n  %s\n", args, want,
			out);
		return false;
	}
	return true;
}

/* ---- checks ------------------------------------------------------------- */

static const Mt__Kernel__Link *find_link(const Mt__Kernel__KernelState *st,
					 const char *ns, const char *name)
{
	for (size_t i = 0; i < st->n_links; i++)
		if (streq(st->links[i]->netns, ns) &&
		    streq(st->links[i]->name, name))
			return st->links[i];
	return NULL;
}

static Mt__Kernel__KernelState *observe(struct mt_rtnl *ctx)
{
	Mt__Kernel__KernelState *st = mt_kstate_new();

	CHECK(mt_rtnl_observe(ctx, NULL, 0, false, st) == 0);
	return st;
}

static void check_customer(struct mt_rtnl *ctx)
{
	const char *ns = fmt("%sacme", pfx);
	Mt__Kernel__Plan *p = mt_plan_new(), *rest;
	Mt__Kernel__KernelState *st;
	const Mt__Kernel__Link *l;
	uint64_t w;

	customer_plan(p, "acme", 1, true);
	add_sysctl(p, "", "net/ipv4/ip_forward", "1");
	add_rule(p, CREATE, "", metal.rule_priority, metal.fwmark,
		 metal.fwmark_mask, metal.gre_table);
	CHECK(apply(ctx, p, &w, NULL) == 0);
	CHECK(w > 0);
	printf("first apply: %zu ops, %llu kernel writes\n", p->n_ops,
	       (unsigned long long)w);

	CHECK(ip_has(fmt("-d link show %s", ns), "\"info_kind\":\"veth\""));
	CHECK(ip_has(fmt("link show %s", ns), "\"mtu\":1500"));
	CHECK(ip_has(fmt("link show %s", ns), "\"UP\""));
	CHECK(ip_has(fmt("-n %s link show metal0", ns), "\"UP\""));
	CHECK(ip_has(fmt("-n %s link show lo", ns), "\"UP\""));
	CHECK(ip_has(fmt("-n %s addr show metal0", ns),
		     "\"local\":\"169.254.0.3\",\"prefixlen\":31"));
	CHECK(ip_has(fmt("-n %s addr show metal0", ns),
		     "\"local\":\"fd00:77::1\",\"prefixlen\":127"));
	CHECK(
	    ip_has("route show table 2000",
		   "{\"dst\":\"198.18.0.4/30\",\"gateway\":\"169.254.0.3\","));
	CHECK(ip_has("route show table 2000", "\"protocol\":\"77\""));
	CHECK(ip_has("-6 route show table 2000",
		     "\"dst\":\"2001:db8:100::/48\""));
	CHECK(ip_has(fmt("-n %s route show table 2001", ns),
		     "\"dst\":\"203.0.113.0/"
		     "24\",\"dev\":\"metal0\",\"protocol\":\"77\",\"scope\":"
		     "\"link\",\"metric\":500000"));
	CHECK(ip_has("rule show",
		     "\"priority\":1000,\"src\":\"all\",\"fwmark\":"
		     "\"0x4d540000\",\"fwmask\":\"0xffff0000\","
		     "\"table\":\"2000\",\"protocol\":\"77\""));
	CHECK(ip_has("-6 rule show", "\"priority\":1000"));
	CHECK(ip_has(fmt("-n %s rule show", ns), "\"priority\":1001"));

	st = observe(ctx);
	CHECK(st->n_netns == 1);
	l = find_link(st, "", ns);
	CHECK(l && streq(l->kind, "veth") && l->up && l->mtu == 1500 &&
	      streq(l->peer_netns, ns) && streq(l->peer_name, "metal0") &&
	      streq(l->owner, "acme") && l->ifindex > 0);
	l = find_link(st, ns, "metal0");
	CHECK(l && streq(l->peer_netns, "") && streq(l->peer_name, ns));
	CHECK(find_link(st, ns, "lo") != NULL);
	CHECK(find_link(st, "", "lo") == NULL); /* not owned */
	for (size_t i = 0; i < st->n_rules; i++)
		if (!*st->rules[i]->netns)
			CHECK(streq(st->rules[i]->owner, ""));
	for (size_t i = 0; i < st->n_routes; i++)
		CHECK(streq(st->routes[i]->owner, "acme"));
	rest = plan_minus(p, st);
	CHECK(rest->n_ops == 0);
	CHECK(apply(ctx, rest, &w, NULL) == 0 && w == 0);
	printf("plan minus observed: %zu ops, %llu kernel writes\n",
	       rest->n_ops, (unsigned long long)w);
	mt_plan_free(rest);

	/* the whole plan again: every op succeeds, nothing observed changes */
	CHECK(apply(ctx, p, &w, NULL) == 0);
	printf("second full apply: %llu kernel writes (replaces, EEXISTs)\n",
	       (unsigned long long)w);
	mt_kstate_free(st);
	st = observe(ctx);
	rest = plan_minus(p, st);
	CHECK(rest->n_ops == 0);
	mt_plan_free(rest);
	mt_kstate_free(st);
	mt_plan_free(p);

	/* veth exists + down: the veth create brings both ends back up */
	p = mt_plan_new();
	add_link(p, CREATE, "", ns, "", "", "", 0, false);
	add_link(p, CREATE, ns, "metal0", "", "", "", 0, false);
	CHECK(apply(ctx, p, &w, NULL) == 0 && w == 2);
	mt_plan_free(p);
	CHECK(ip_has(fmt("-n %s link show metal0", ns),
		     "\"flags\":[\"BROADCAST\",\"MULTICAST\"]"));
	p = mt_plan_new();
	add_link(p, CREATE, "", ns, "veth", ns, "metal0", 1500, true);
	CHECK(apply(ctx, p, &w, NULL) == 0 && w == 4); /* +2 re-applied */
	mt_plan_free(p);
	st = observe(ctx);
	l = find_link(st, "", ns);
	CHECK(l && l->up);
	l = find_link(st, ns, "metal0");
	CHECK(l && l->up);
	mt_kstate_free(st);
}

static void check_refusals_and_errors(struct mt_rtnl *ctx)
{
	const char *ns = fmt("%sacme", pfx);
	Mt__Kernel__Plan *p = mt_plan_new();
	Mt__Kernel__OpResult **res;
	uint64_t w;

	add_link(p, CREATE, "", "lo", "", "", "", 0, false);
	add_route(p, CREATE, "", 254, "10.0.0.0/8", "lo", "", 0);
	add_rule(p, DELETE, "", 0, 0, 0, 255);
	add_addr(p, DELETE, "", "lo", "127.0.0.1/8");
	add_sysctl(p, "", "kernel/panic", "1");
	add_netns(p, DELETE, "blue");
	CHECK(apply(ctx, p, &w, &res) == (int)p->n_ops);
	CHECK(w == 0);
	for (size_t i = 0; i < p->n_ops; i++)
		CHECK(res[i]->error == -EPERM &&
		      strstr(res[i]->message, "refused"));
	free_results(res, p->n_ops);
	mt_plan_free(p);

	/* errors map to their op inside one batch */
	p = mt_plan_new();
	add_route(p, CREATE, ns, 3000, "192.0.2.0/24", "metal0", "", 0);
	add_route(p, CREATE, ns, 3000, "192.0.2.128/25", "metal0",
		  "198.51.100.1", 0); /* gateway not on link */
	add_route(p, CREATE, ns, 3000, "192.0.2.64/26", "nosuchdev", "", 0);
	add_route(p, CREATE, ns, 3000, "192.0.2.32/27", "metal0", "", 0);
	CHECK(apply(ctx, p, &w, &res) == 2);
	CHECK(w == 3);
	CHECK(res[0]->error == 0 && res[3]->error == 0);
	CHECK(res[1]->error == -ENETUNREACH);
	CHECK(strstr(res[1]->message, "192.0.2.128/25") &&
	      strstr(res[1]->message, "(kernel: "));
	CHECK(res[2]->error == -ENODEV && strstr(res[2]->message, "nosuchdev"));
	printf("mapped errors: \"%s\" / \"%s\"\n", res[1]->message,
	       res[2]->message);
	free_results(res, p->n_ops);
	mt_plan_free(p);
}

/* ---- a run of namespace creations (the maker threads) -------------------- */

/* 12 namespaces created in one run, as the agent's plans order them (all
 * namespaces first), go to netns_maker.c: one already exists (0 writes, no
 * error), one is refused (not ours) without holding up the others; the
 * veths and addresses after them wait for their own namespace; a deletion
 * in the same plan waits for all. */
static void check_maker(struct mt_rtnl *ctx)
{
	enum { N = 12 };
	Mt__Kernel__Plan *p = mt_plan_new();
	Mt__Kernel__OpResult **res;
	uint64_t w;
	int nsfd;

	CHECK(mt_netns_create(fmt("%smk3", pfx)) == 1); /* there already */
	for (int i = 0; i < N; i++)
		add_netns(p, CREATE,
			  i == 5 ? "not-ours-mk5" : fmt("%smk%d", pfx, i));
	for (int i = 0; i < N; i++) {
		const char *ns = fmt("%smk%d", pfx, i);

		if (i == 5)
			continue;
		add_link(p, CREATE, "", ns, "veth", ns, MT_CUST_VETH, 1500,
			 true);
		add_addr(p, CREATE, ns, MT_CUST_VETH,
			 fmt("169.254.200.%d/31", 2 * i + 1));
	}
	add_netns(p, DELETE, fmt("%smk11", pfx));
	CHECK(apply(ctx, p, &w, &res) == 1); /* the refused one */
	for (int i = 0; i < N; i++)
		CHECK(i == 5 ? res[i]->error == -EPERM : res[i]->error == 0);
	for (size_t i = N; i < p->n_ops; i++)
		CHECK(res[i]->error == 0);
	/* 10 made (mk3 was there), 11 veths (pair + peer up: counted as
	 * the kernel writes of the links), their addresses, 1 deletion */
	CHECK(w >= 10 + 11 + 11 + 1);
	for (int i = 0; i < N; i++) {
		if (i == 5)
			continue;
		nsfd = mt_netns_open(fmt("%smk%d", pfx, i));
		CHECK(i == 11 ? nsfd < 0 : nsfd >= 0);
		if (nsfd >= 0)
			close(nsfd);
	}
	CHECK(ip_has(fmt("-n %smk7 -4 addr show dev " MT_CUST_VETH, pfx),
		     "\"local\":\"169.254.200.15\""));
	free_results(res, p->n_ops);
	mt_plan_free(p);
	p = mt_plan_new();
	for (int i = 0; i < N - 1; i++)
		if (i != 5)
			add_netns(p, DELETE, fmt("%smk%d", pfx, i));
	CHECK(apply(ctx, p, &w, NULL) == 0 && w == N - 2);
	mt_plan_free(p);
}

/* ---- multipath routes, prefsrc, tunnel devices --------------------------- */

/* Route notifications of a namespace, to prove a replace is in place. */
static int open_route_events(void *arg)
{
	struct mnl_socket **out = arg;
	struct mnl_socket *nl = mnl_socket_open(NETLINK_ROUTE);

	if (!nl)
		return -errno;
	if (mnl_socket_bind(nl, RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE,
			    MNL_SOCKET_AUTOPID) < 0) {
		mnl_socket_close(nl);
		return -errno;
	}
	fcntl(mnl_socket_get_fd(nl), F_SETFL, O_NONBLOCK);
	*out = nl;
	return 0;
}

static struct mnl_socket *route_events(const char *ns)
{
	struct mnl_socket *nl = NULL;
	int nsfd = mt_netns_open(ns), home = open("/proc/self/ns/net",
						   O_RDONLY | O_CLOEXEC);

	CHECK(nsfd >= 0 && home >= 0);
	CHECK(mt_netns_run(nsfd, home, open_route_events, &nl) == 0);
	close(nsfd);
	close(home);
	return nl;
}

/* Counts the pending RTM_NEWROUTE (with NLM_F_REPLACE) and RTM_DELROUTE
 * notifications of mt's protocol. */
static void count_events(struct mnl_socket *nl, int *replaced, int *deleted)
{
	char b[16384];
	ssize_t n;

	*replaced = *deleted = 0;
	while ((n = recv(mnl_socket_get_fd(nl), b, sizeof(b), 0)) > 0) {
		const struct nlmsghdr *h = (const void *)b;
		int left = (int)n;

		for (; mnl_nlmsg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
			const struct rtmsg *rtm = mnl_nlmsg_get_payload(h);

			if (rtm->rtm_protocol != MT_RTPROT)
				continue;
			if (h->nlmsg_type == RTM_DELROUTE)
				(*deleted)++;
			else if (h->nlmsg_type == RTM_NEWROUTE &&
				 (h->nlmsg_flags & NLM_F_REPLACE))
				(*replaced)++;
		}
	}
}

static const Mt__Kernel__Route *find_route(const Mt__Kernel__KernelState *st,
					   const char *ns, const char *dst,
					   size_t *count)
{
	const Mt__Kernel__Route *r = NULL;

	*count = 0;
	for (size_t i = 0; i < st->n_routes; i++)
		if (streq(st->routes[i]->netns, ns) &&
		    streq(st->routes[i]->dst, dst)) {
			r = st->routes[i];
			(*count)++;
		}
	return r;
}

static bool hops_are(const Mt__Kernel__Route *r, const struct hop *h,
		     size_t n)
{
	if (!r || r->n_nexthops != n || *r->dev || *r->gateway)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!streq(r->nexthops[i]->dev, h[i].dev) ||
		    !streq(r->nexthops[i]->gateway, h[i].gw) ||
		    r->nexthops[i]->weight != h[i].weight)
			return false;
	return true;
}

static void check_multipath(struct mt_rtnl *ctx)
{
	const char *ns = fmt("%sacme", pfx);
	const uint32_t t = metal.cust_table;
	struct hop h13[] = {{"tA", "", 1}, {"tB", "", 3}};
	struct hop h23[] = {{"tA", "", 2}, {"tB", "", 3}};
	struct hop h6[] = {{"tA", "fe80::1", 1}, {"tB", "fe80::2", 2}};
	Mt__Kernel__Plan *p = mt_plan_new(), *rest;
	Mt__Kernel__OpResult **res;
	Mt__Kernel__KernelState *st;
	const Mt__Kernel__Route *r;
	struct mnl_socket *ev;
	int replaced, deleted;
	char cmd[256];
	size_t cnt;
	uint64_t w;

	/* two BPF-tunnel-like pairs tX / tX.t inside the namespace, NOARP */
	add_link(p, CREATE, ns, "tA", "veth", ns, "tA.t", 1476, true);
	add_link(p, CREATE, ns, "tB", "veth", ns, "tB.t", 1476, true);
	add_link(p, CREATE, ns, "vx", "veth", ns, "vy", 0, true); /* no tunnel */
	add_addr(p, CREATE, ns, "lo", "192.0.2.77/32");
	add_addr(p, CREATE, ns, "tA", "192.0.2.200/31");
	add_sysctl(p, ns, "net/ipv4/fib_multipath_hash_policy", "1");
	CHECK(apply(ctx, p, &w, NULL) == 0);
	mt_plan_free(p);
	for (const char *const *d = (const char *const[]){"tA", "tA.t", "tB",
							  "tB.t", NULL};
	     *d; d++) {
		snprintf(cmd, sizeof(cmd), "ip -n %s link set %s arp off", ns,
			 *d);
		CHECK(system(cmd) == 0);
	}

	p = mt_plan_new();
	add_mp_route(p, CREATE, ns, t, "198.51.100.0/24", "", "", "192.0.2.77",
		     0, h13, 2);
	add_mp_route(p, CREATE, ns, t, "198.51.101.0/24", MT_CUST_VETH, "",
		     "192.0.2.77", 0, NULL, 0);
	add_mp_route(p, CREATE, ns, t, "2001:db8:99::/48", "", "", "", 1024,
		     h6, 2);
	CHECK(apply(ctx, p, &w, NULL) == 0 && w == 3);
	CHECK(ip_has(fmt("-n %s route show table %u 198.51.100.0/24", ns, t),
		     "\"nexthops\":[{\"dev\":\"tA\",\"weight\":1,\"flags\":[]},"
		     "{\"dev\":\"tB\",\"weight\":3,\"flags\":[]}]"));
	CHECK(ip_has(fmt("-n %s route show table %u 198.51.101.0/24", ns, t),
		     "\"prefsrc\":\"192.0.2.77\""));

	st = observe(ctx);
	r = find_route(st, ns, "198.51.100.0/24", &cnt);
	CHECK(cnt == 1 && hops_are(r, h13, 2));
	CHECK(r && streq(r->prefsrc, "192.0.2.77") && streq(r->owner, "acme"));
	r = find_route(st, ns, "198.51.101.0/24", &cnt);
	CHECK(cnt == 1 && r && streq(r->prefsrc, "192.0.2.77") &&
	      streq(r->dev, MT_CUST_VETH) && r->n_nexthops == 0);
	r = find_route(st, ns, "2001:db8:99::/48", &cnt);
	CHECK(cnt == 1 && hops_are(r, h6, 2) && r->metric == 1024);
	/* the tunnel devices are not Links; their addresses are reported */
	CHECK(!find_link(st, ns, "tA") && !find_link(st, ns, "tA.t") &&
	      !find_link(st, ns, "tB") && !find_link(st, ns, "tB.t"));
	CHECK(find_link(st, ns, MT_CUST_VETH) != NULL);
	{
		const Mt__Kernel__Link *x = find_link(st, ns, "vx"),
				       *y = find_link(st, ns, "vy");

		CHECK(x && streq(x->peer_netns, ns) && streq(x->peer_name, "vy"));
		CHECK(y && streq(y->peer_name, "vx"));
	}
	{
		bool found = false;

		for (size_t i = 0; i < st->n_addrs; i++)
			if (streq(st->addrs[i]->netns, ns) &&
			    streq(st->addrs[i]->dev, "tA") &&
			    streq(st->addrs[i]->prefix, "192.0.2.200/31"))
				found = streq(st->addrs[i]->owner, "acme");
		CHECK(found);
		found = false;
		for (size_t i = 0; i < st->n_sysctls; i++)
			if (streq(st->sysctls[i]->netns, ns) &&
			    streq(st->sysctls[i]->key,
				  "net/ipv4/fib_multipath_hash_policy"))
				found = streq(st->sysctls[i]->value, "1");
		CHECK(found);
	}
	rest = plan_minus(p, st);
	CHECK(rest->n_ops == 0);
	mt_plan_free(rest);
	mt_kstate_free(st);
	mt_plan_free(p);

	/* a changed weight (and a dropped prefsrc) replaces in place */
	ev = route_events(ns);
	p = mt_plan_new();
	add_mp_route(p, CREATE, ns, t, "198.51.100.0/24", "", "", "", 0, h23,
		     2);
	CHECK(apply(ctx, p, &w, NULL) == 0 && w == 1);
	mt_plan_free(p);
	if (ev) {
		count_events(ev, &replaced, &deleted);
		CHECK(replaced == 1 && deleted == 0);
		mnl_socket_close(ev);
	}
	st = observe(ctx);
	r = find_route(st, ns, "198.51.100.0/24", &cnt);
	CHECK(cnt == 1 && hops_are(r, h23, 2) && r && !*r->prefsrc);
	mt_kstate_free(st);

	/* validation: nothing sent for the bad ops, each result names the
	 * route and the problem */
	p = mt_plan_new();
	add_mp_route(p, CREATE, ns, t, "203.0.113.0/26", "", "", "", 0,
		     (struct hop[]){{"tA", "", 0}, {"tB", "", 1}}, 2);
	add_mp_route(p, CREATE, ns, t, "203.0.113.64/26", "", "", "", 0,
		     (struct hop[]){{"tA", "", 1}, {"tB", "", 257}}, 2);
	add_mp_route(p, CREATE, ns, t, "203.0.113.128/26", "", "", "", 0,
		     (struct hop[]){{"tA", "", 1}}, 1);
	add_mp_route(p, CREATE, ns, t, "203.0.113.192/26", "tA", "", "", 0,
		     h13, 2);
	add_mp_route(p, CREATE, ns, t, "203.0.113.0/27", "", "169.254.0.2", "",
		     0, h13, 2);
	add_mp_route(p, CREATE, ns, t, "203.0.113.32/27", "", "", "", 0,
		     (struct hop[]){{"tA", "", 1}, {"nosuch", "", 1}}, 2);
	add_mp_route(p, CREATE, ns, t, "203.0.113.96/27", "", "", "", 0, h13,
		     2); /* valid */
	add_mp_route(p, CREATE, ns, t, "203.0.113.160/27", MT_CUST_VETH, "",
		     "2001:db8::1", 0, NULL, 0);
	add_mp_route(p, CREATE, ns, t, "203.0.113.224/27", MT_CUST_VETH, "",
		     "192.0.2.99", 0, NULL, 0); /* not local: the kernel */
	CHECK(apply(ctx, p, &w, &res) == 8);
	CHECK(w == 2); /* the valid one and the one the kernel refuses */
	CHECK(res[0]->error == -EINVAL &&
	      strstr(res[0]->message, "203.0.113.0/26") &&
	      strstr(res[0]->message, "weight 0"));
	CHECK(res[1]->error == -EINVAL && strstr(res[1]->message, "weight 257"));
	CHECK(res[2]->error == -EINVAL &&
	      strstr(res[2]->message, "exactly one nexthop"));
	CHECK(res[3]->error == -EINVAL &&
	      strstr(res[3]->message, "203.0.113.192/26") &&
	      strstr(res[3]->message, "together with dev"));
	CHECK(res[4]->error == -EINVAL &&
	      strstr(res[4]->message, "169.254.0.2"));
	CHECK(res[5]->error == -ENODEV &&
	      strstr(res[5]->message, "203.0.113.32/27") &&
	      strstr(res[5]->message, "nexthop device nosuch"));
	CHECK(res[6]->error == 0);
	CHECK(res[7]->error == -EINVAL && strstr(res[7]->message, "prefsrc"));
	CHECK(res[8]->error == -EINVAL && strstr(res[8]->message, "(kernel: "));
	for (size_t i = 0; i < p->n_ops; i++)
		if (res[i]->error)
			printf("refused: %s\n", res[i]->message);
	free_results(res, p->n_ops);
	mt_plan_free(p);
	st = observe(ctx);
	for (size_t i = 0; i < st->n_routes; i++)
		if (streq(st->routes[i]->netns, ns) &&
		    strncmp(st->routes[i]->dst, "203.0.113.", 10) == 0)
			CHECK(streq(st->routes[i]->dst, "203.0.113.96/27"));
	mt_kstate_free(st);

	/* a nexthop device deleted: IPv4 drops the whole multipath route,
	 * IPv6 only the sibling, leaving a single-path route (reported as
	 * dev/gateway) */
	p = mt_plan_new();
	add_link(p, DELETE, ns, "tB", "", "", "", 0, false);
	CHECK(apply(ctx, p, &w, NULL) == 0 && w == 1);
	mt_plan_free(p);
	st = observe(ctx);
	find_route(st, ns, "198.51.100.0/24", &cnt);
	CHECK(cnt == 0);
	r = find_route(st, ns, "2001:db8:99::/48", &cnt);
	CHECK(cnt == 1 && r && r->n_nexthops == 0 && streq(r->dev, "tA") &&
	      streq(r->gateway, "fe80::1"));
	mt_kstate_free(st);

	/* clean up: the rest of the checks count the namespace's links */
	p = mt_plan_new();
	add_mp_route(p, DELETE, ns, t, "2001:db8:99::/48", "tA", "fe80::1", "",
		     1024, NULL, 0);
	add_mp_route(p, DELETE, ns, t, "198.51.101.0/24", MT_CUST_VETH, "", "",
		     0, NULL, 0);
	add_mp_route(p, DELETE, ns, t, "203.0.113.96/27", "", "", "", 0, h13,
		     2);
	add_link(p, DELETE, ns, "tA", "", "", "", 0, false);
	add_link(p, DELETE, ns, "vx", "", "", "", 0, false);
	add_addr(p, DELETE, ns, "lo", "192.0.2.77/32");
	CHECK(apply(ctx, p, &w, NULL) == 0);
	mt_plan_free(p);
	st = observe(ctx);
	for (size_t i = 0; i < st->n_routes; i++)
		CHECK(!streq(st->routes[i]->netns, ns) ||
		      st->routes[i]->table != t ||
		      strncmp(st->routes[i]->dst, "203.", 4) != 0);
	mt_kstate_free(st);
	printf("multipath: weights, order, in-place replace, IPv6, collapse, "
	       "prefsrc, refusals checked\n");
}

static void check_delete(struct mt_rtnl *ctx)
{
	const char *ns = fmt("%sacme", pfx);
	Mt__Kernel__Plan *p = mt_plan_new();
	Mt__Kernel__KernelState *st;
	uint64_t w;

	add_route(p, DELETE, "", metal.gre_table, "198.18.0.4/30", ns,
		  "169.254.0.3", 0);
	add_route(p, DELETE, "", metal.gre_table, "2001:db8:100::/48", ns,
		  "fd00:77::1", 1024);
	add_rule(p, DELETE, "", metal.rule_priority, metal.fwmark,
		 metal.fwmark_mask, metal.gre_table);
	add_addr(p, DELETE, "", ns, "169.254.0.2/31");
	add_link(p, DELETE, "", ns, "", "", "", 0, false);
	add_netns(p, DELETE, ns);
	CHECK(apply(ctx, p, &w, NULL) == 0);
	CHECK(w == 7); /* 2 routes, 2 rules, addr, link, netns */
	CHECK(apply(ctx, p, &w, NULL) == 0); /* again: all benign */
	mt_plan_free(p);
	st = observe(ctx);
	CHECK(st->n_netns == 0 && st->n_links == 0 && st->n_addrs == 0 &&
	      st->n_routes == 0 && st->n_rules == 0);
	CHECK(st->n_sysctls == 1); /* the metal's ip_forward */
	mt_kstate_free(st);
	CHECK(access(fmt("/run/netns/%s", ns), F_OK) < 0);
}

/* A namespace deleted behind mt's back (`ip netns del`): the cached socket
 * must not keep working on the invisible namespace. */
static void check_external_delete(struct mt_rtnl *ctx)
{
	const char *ns = fmt("%sext", pfx);
	Mt__Kernel__Plan *p = mt_plan_new();
	Mt__Kernel__OpResult **res;
	Mt__Kernel__KernelState *st;
	char cmd[128];
	uint64_t w;

	add_netns(p, CREATE, ns);
	add_link(p, CREATE, ns, "lo", "", "", "", 0, true);
	CHECK(apply(ctx, p, &w, NULL) == 0 && w == 2);
	mt_plan_free(p);
	snprintf(cmd, sizeof(cmd), "ip netns del %s", ns);
	CHECK(system(cmd) == 0);
	p = mt_plan_new();
	add_link(p, CREATE, ns, "lo", "", "", "", 0, true);
	CHECK(apply(ctx, p, &w, &res) == 1 && w == 0);
	CHECK(res[0]->error == -ENOENT &&
	      strstr(res[0]->message, "does not exist"));
	free_results(res, p->n_ops);
	mt_plan_free(p);
	st = observe(ctx);
	CHECK(st->n_netns == 0);
	mt_kstate_free(st);
}

/* ---- scoped observe == unscoped observe filtered by owner ---------------- */

struct packed {
	size_t len;
	uint8_t *data;
};

static int packed_cmp(const void *a, const void *b)
{
	const struct packed *x = a, *y = b;

	if (x->len != y->len)
		return x->len < y->len ? -1 : 1;
	return memcmp(x->data, y->data, x->len);
}

static bool owner_in(const char *owner, const char *const *owners, size_t n)
{
	if (!*owner)
		return true; /* shared objects are always included */
	for (size_t i = 0; i < n; i++)
		if (strcmp(owner, owners[i]) == 0)
			return true;
	return false;
}

/* Packs the objects of one repeated field (every one of them has its owner
 * as field "owner") that are in owners (NULL = all), sorted. */
static struct packed *pack_field(ProtobufCMessage **v, size_t n,
				 const char *const *owners, size_t n_owners,
				 size_t *out_n)
{
	struct packed *r = calloc(n ? n : 1, sizeof(*r));
	size_t k = 0;

	for (size_t i = 0; i < n; i++) {
		const ProtobufCFieldDescriptor *f =
		    protobuf_c_message_descriptor_get_field_by_name(
			v[i]->descriptor, "owner");
		const char *owner = *(char **)((char *)v[i] + f->offset);

		if (owners && !owner_in(owner, owners, n_owners))
			continue;
		r[k].len = protobuf_c_message_get_packed_size(v[i]);
		r[k].data = malloc(r[k].len ? r[k].len : 1);
		protobuf_c_message_pack(v[i], r[k].data);
		k++;
	}
	qsort(r, k, sizeof(*r), packed_cmp);
	*out_n = k;
	return r;
}

#define SAME_FIELD(full, sc, field, owners, n)                               \
	same_field((ProtobufCMessage **)(full)->field, (full)->n_##field,     \
		   (ProtobufCMessage **)(sc)->field, (sc)->n_##field, owners, \
		   n, #field)

static void same_field(ProtobufCMessage **fv, size_t fn, ProtobufCMessage **sv,
		       size_t sn, const char *const *owners, size_t n_owners,
		       const char *what)
{
	size_t a, b;
	struct packed *x = pack_field(fv, fn, owners, n_owners, &a);
	struct packed *y = pack_field(sv, sn, NULL, 0, &b);
	bool same = a == b;

	for (size_t i = 0; same && i < a; i++)
		same = packed_cmp(&x[i], &y[i]) == 0;
	if (!same)
		printf("scoped observe differs in %s: %zu objects vs %zu "
		       "filtered from the full observe\n",
		       what, b, a);
	CHECK(same);
	for (size_t i = 0; i < a; i++)
		free(x[i].data);
	for (size_t i = 0; i < b; i++)
		free(y[i].data);
	free(x);
	free(y);
}

/* A scoped observe must report exactly what the full one reports for those
 * owners, plus the shared objects. */
static void check_scoped_equals_full(struct mt_rtnl *ctx,
				     const char *const *owners, size_t n)
{
	Mt__Kernel__KernelState *full = mt_kstate_new(), *sc = mt_kstate_new();

	CHECK(mt_rtnl_observe(ctx, NULL, 0, false, full) == 0);
	CHECK(mt_rtnl_observe(ctx, owners, n, false, sc) == 0);
	SAME_FIELD(full, sc, netns, owners, n);
	SAME_FIELD(full, sc, links, owners, n);
	SAME_FIELD(full, sc, addrs, owners, n);
	SAME_FIELD(full, sc, routes, owners, n);
	SAME_FIELD(full, sc, rules, owners, n);
	SAME_FIELD(full, sc, sysctls, owners, n);
	mt_kstate_free(full);
	mt_kstate_free(sc);
}

static void check_scale(struct mt_rtnl *ctx, int n)
{
	Mt__Kernel__Plan *p = mt_plan_new();
	Mt__Kernel__KernelState *st;
	double t0, t1, best = 1e9;
	uint64_t w;

	for (int i = 0; i < n; i++)
		customer_plan(p, fmt("c%d", i), i + 2, false);
	t0 = now_ms();
	CHECK(apply(ctx, p, &w, NULL) == 0);
	t1 = now_ms();
	printf("scale: %d customers, %zu ops, %llu writes applied in %.0f ms\n",
	       n, p->n_ops, (unsigned long long)w, t1 - t0);
	for (int round = 0; round < 4; round++) {
		st = mt_kstate_new();
		t0 = now_ms();
		CHECK(mt_rtnl_observe(ctx, NULL, 0, false, st) == 0);
		t1 = now_ms();
		printf("observe %d: %.1f ms: %zu netns %zu links %zu addrs %zu "
		       "routes %zu sysctls\n",
		       round, t1 - t0, st->n_netns, st->n_links, st->n_addrs,
		       st->n_routes, st->n_sysctls);
		CHECK(st->n_netns == (size_t)n);
		CHECK(st->n_links == (size_t)n * 3);
		CHECK(st->n_routes == (size_t)n * 2);
		if (round > 0 && t1 - t0 < best)
			best = t1 - t0;
		if (round == 3) {
			Mt__Kernel__Plan *rest = plan_minus(p, st);

			CHECK(rest->n_ops == 0);
			mt_plan_free(rest);
		}
		mt_kstate_free(st);
	}
	/* timing is measured by tests/bench, never asserted here */
	printf("best observe of %d namespaces: %.1f ms\n", n, best);
	/* RTNL_CHECK_LOOPS=N: N more observes, for profiling */
	for (int k = getenv("RTNL_CHECK_LOOPS")
			 ? atoi(getenv("RTNL_CHECK_LOOPS"))
			 : 0;
	     k > 0; k--) {
		st = mt_kstate_new();
		CHECK(mt_rtnl_observe(ctx, NULL, 0, false, st) == 0);
		mt_kstate_free(st);
	}
	/* one customer's view */
	st = mt_kstate_new();
	{
		const char *one[] = {"c7"};

		t0 = now_ms();
		CHECK(mt_rtnl_observe(ctx, one, 1, false, st) == 0);
		printf("observe of one owner: %.2f ms\n", now_ms() - t0);
	}
	CHECK(st->n_netns == 1 && st->n_links == 3 && st->n_routes == 2);
	mt_kstate_free(st);
	{
		const char *one[] = {"c7"};
		const char *some[] = {"c3", "c7", "c7", "nosuch", ""};

		check_scoped_equals_full(ctx, one, 1);
		check_scoped_equals_full(ctx, some, MT_ARRAY_SIZE(some));
	}
	mt_plan_free(p);

	/* batched route throughput: 20000 routes through one veth */
	p = mt_plan_new();
	for (int i = 0; i < 20000; i++)
		add_route(p, CREATE, "", metal.gre_table,
			  fmt("100.%d.%d.0/24", 64 + i / 256, i % 256),
			  fmt("%sc0", pfx), "169.254.0.5", 0);
	t0 = now_ms();
	CHECK(apply(ctx, p, &w, NULL) == 0 && w == 20000);
	t1 = now_ms();
	printf("20000 routes in %.0f ms (%.0f routes/s)\n", t1 - t0,
	       20000 / ((t1 - t0) / 1e3));
	mt_plan_free(p);

	p = mt_plan_new();
	for (int i = 0; i < n; i++)
		add_netns(p, DELETE, fmt("%sc%d", pfx, i));
	t0 = now_ms();
	CHECK(apply(ctx, p, &w, NULL) == 0 && w == (uint64_t)n);
	printf("deleted %d namespaces in %.0f ms\n", n, now_ms() - t0);
	mt_plan_free(p);
}

static int sandbox(void)
{
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0) {
		perror("unshare");
		return -1;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0) {
		perror("mount");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1000;
	Mt__Config__Metal cfg = MT__CONFIG__METAL__INIT;
	struct mt_rtnl *ctx;
	char err[200], inst[8];

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: needs root\n");
		return 77;
	}
	mt_log_init("rtnl_apply_check", MT_LOG_WARN);
	if (sandbox() < 0)
		return 1;
	snprintf(inst, sizeof(inst), "t%d", (int)(getpid() % 1000));
	cfg.instance = inst;
	if (mt_metal_init(&metal, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	snprintf(pfx, sizeof(pfx), "%s", metal.prefix);
	if (mt_rtnl_new(&metal, &ctx) < 0)
		return 1;
	check_customer(ctx);
	check_refusals_and_errors(ctx);
	check_maker(ctx);
	check_multipath(ctx);
	check_delete(ctx);
	check_external_delete(ctx);
	if (n > 0)
		check_scale(ctx, n);
	mt_rtnl_free(ctx);
	mt_metal_fini(&metal);
	printf("%s (%d failed checks)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
