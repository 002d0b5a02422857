/* Validation of a customer's tunnels and tunnel routes (one customer on its
 * own; the checks between customers are in mt_validate.c). */
#include "mt_validate.h"
#include "mt_tunnel_health.h"

#include <errno.h>
#include <stdio.h>
#include <arpa/inet.h>
#include <string.h>

#define STR(s) ((s) ? (s) : "")

#define fail mt_validate_fail

static bool valid_tunnel_name(const char *s)
{
	if (!s || !((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9')))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		      *s == '-' || *s == '_'))
			return false;
	return true;
}

bool mt_tunnel_has_key(const Mt__Config__Tunnel *t)
{
	return t->key_present_case == MT__CONFIG__TUNNEL__KEY_PRESENT_KEY;
}

uint32_t mt_tunnel_mtu(const Mt__Config__Tunnel *t)
{
	if (t->mtu)
		return t->mtu;
	return MT_TUNNEL_DEFAULT_MTU - (mt_tunnel_has_key(t) ? MT_GRE_KEY_LEN : 0);
}

uint32_t mt_tunnel_mss(const Mt__Config__Tunnel *t)
{
	return t->mss ? t->mss : mt_tunnel_mtu(t) - 40;
}

uint32_t mt_tunnel_ttl(const Mt__Config__Tunnel *t)
{
	return t->ttl ? t->ttl : MT_TUNNEL_DEFAULT_TTL;
}

int mt_tunnel_inner(const Mt__Config__Tunnel *t, struct mt_prefix *local,
		    struct mt_prefix *peer)
{
	char e[128];
	uint32_t a, net, size;

	if (mt_prefix_parse(t->inner_address, false, local, e, sizeof(e)) < 0 ||
	    local->family != AF_INET || (local->len != 30 && local->len != 31))
		return -EINVAL;
	memcpy(&a, local->addr, 4);
	a = ntohl(a);
	size = 1u << (32 - local->len);
	net = a & ~(size - 1);
	if (local->len == 30 && (a == net || a == net + 3))
		return -EINVAL; /* network or broadcast address */
	*peer = *local;
	a = local->len == 31 ? (a ^ 1) : (a == net + 1 ? net + 2 : net + 1);
	a = htonl(a);
	memcpy(peer->addr, &a, 4);
	return 0;
}

const Mt__Config__Tunnel *mt_tunnel_find(const Mt__Config__Customer *c,
					 const char *name)
{
	for (size_t i = 0; i < c->n_tunnels; i++)
		if (strcmp(STR(c->tunnels[i]->name), STR(name)) == 0)
			return c->tunnels[i];
	return NULL;
}

static bool is_own_endpoint(const Mt__Config__Customer *c, const char *a)
{
	struct mt_prefix p, q;
	char e[128];

	if (mt_addr_parse(a, &p, e, sizeof(e)) < 0)
		return false;
	for (size_t i = 0; i < c->n_tunnel_endpoints; i++)
		if (mt_addr_parse(c->tunnel_endpoints[i], &q, e, sizeof(e)) == 0 &&
		    mt_prefix_equal(&p, &q))
			return true;
	return false;
}

/* Router endpoints are the customer's public addresses: any unicast
 * address but these, which can never be a router on the internet. */
static const char *bad_router_range(const struct mt_prefix *p)
{
	static const struct {
		uint32_t net, len;
		const char *name;
	} bad[] = {
		{ 0x00000000, 8, "\"this network\" 0.0.0.0/8" },
		{ 0x7f000000, 8, "loopback 127.0.0.0/8" },
		{ 0xa9fe0000, 16, "link local 169.254.0.0/16" },
		{ 0xe0000000, 4, "multicast 224.0.0.0/4" },
		{ 0xf0000000, 4, "reserved 240.0.0.0/4" },
	};
	uint32_t a;

	memcpy(&a, p->addr, 4);
	a = ntohl(a);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if ((a >> (32 - bad[i].len)) == (bad[i].net >> (32 - bad[i].len)))
			return bad[i].name;
	return NULL;
}

static int check_tunnel(const struct mt_metal *m, const Mt__Config__Customer *c,
			size_t i, char *err, size_t errlen)
{
	const Mt__Config__Tunnel *t = c->tunnels[i];
	struct mt_prefix router, local, peer;
	const char *name = STR(t->name), *why;
	uint32_t overhead, mtu = mt_tunnel_mtu(t), mss = mt_tunnel_mss(t);
	char e[128], hc_err[256];

	if (!valid_tunnel_name(name))
		return fail(err, errlen, c,
			    "tunnels[%zu].name \"%s\": must match [a-z0-9][a-z0-9_-]*",
			    i, name);
	if (strlen(name) > MT_TUNNEL_NAME_MAX)
		return fail(err, errlen, c,
			    "tunnels[%zu].name \"%s\": too long for an interface name (at most %d characters)",
			    i, name, MT_TUNNEL_NAME_MAX);
	if (strcmp(name, "lo") == 0 || strcmp(name, MT_CUST_VETH) == 0)
		return fail(err, errlen, c,
			    "tunnels[%zu].name \"%s\": reserved for the namespace's own devices",
			    i, name);
	for (size_t j = 0; j < i; j++)
		if (strcmp(STR(c->tunnels[j]->name), name) == 0)
			return fail(err, errlen, c,
				    "tunnels[%zu].name \"%s\": already used by tunnels[%zu]",
				    i, name, j);
	if (!t->edge_endpoint || !*t->edge_endpoint)
		return fail(err, errlen, c, "tunnels[%zu] \"%s\": edge_endpoint is required",
			    i, name);
	if (!is_own_endpoint(c, t->edge_endpoint))
		return fail(err, errlen, c,
			    "tunnels[%zu] \"%s\": edge_endpoint \"%s\" is not one of the customer's tunnel_endpoints",
			    i, name, t->edge_endpoint);
	if (mt_addr_parse(t->router_endpoint, &router, e, sizeof(e)) < 0 ||
	    router.family != AF_INET)
		return fail(err, errlen, c,
			    "tunnels[%zu] \"%s\": router_endpoint \"%s\": must be an IPv4 host address",
			    i, name, STR(t->router_endpoint));
	why = bad_router_range(&router);
	if (why || mt_metal_owns_address(m, &router))
		return fail(err, errlen, c,
			    "tunnels[%zu] \"%s\": router_endpoint \"%s\": %s",
			    i, name, t->router_endpoint,
			    why ? why : "is one of the metal's own addresses");
	for (size_t k = 0; k < c->n_prefixes; k++) {
		struct mt_prefix p;

		if (mt_prefix_parse(c->prefixes[k], true, &p, e, sizeof(e)) == 0 &&
		    mt_prefix_contains(&p, &router))
			return fail(err, errlen, c,
				    "tunnels[%zu] \"%s\": router_endpoint \"%s\" is inside the customer's own prefix %s (it would be routed into the tunnel)",
				    i, name, t->router_endpoint, c->prefixes[k]);
	}
	if (mt_tunnel_inner(t, &local, &peer) < 0)
		return fail(err, errlen, c,
			    "tunnels[%zu] \"%s\": inner_address \"%s\": must be an IPv4 host address with /31 or /30",
			    i, name, STR(t->inner_address));
	if (mt_prefix_overlaps(&m->link_pool, &local))
		return fail(err, errlen, c,
			    "tunnels[%zu] \"%s\": inner_address \"%s\" overlaps the metal's link pool",
			    i, name, t->inner_address);
	for (size_t j = 0; j < i; j++) {
		struct mt_prefix ol, op;

		if (mt_tunnel_inner(c->tunnels[j], &ol, &op) == 0 &&
		    mt_prefix_overlaps(&ol, &local))
			return fail(err, errlen, c,
				    "tunnels[%zu] \"%s\": inner_address \"%s\" overlaps tunnels[%zu] \"%s\" inner_address \"%s\"",
				    i, name, t->inner_address, j,
				    STR(c->tunnels[j]->name),
				    STR(c->tunnels[j]->inner_address));
	}
	if (t->ttl > 255)
		return fail(err, errlen, c, "tunnels[%zu] \"%s\": ttl %u: must be 1-255",
			    i, name, t->ttl);
	overhead = MT_GRE_OVERHEAD + (mt_tunnel_has_key(t) ? MT_GRE_KEY_LEN : 0);
	if (mtu < MT_TUNNEL_MIN_MTU || mtu + overhead > m->uplink_mtu)
		return fail(err, errlen, c,
			    "tunnels[%zu] \"%s\": mtu %u: must be %d-%u (the uplink carries %u bytes, GRE adds %u)",
			    i, name, mtu, MT_TUNNEL_MIN_MTU,
			    m->uplink_mtu - overhead, m->uplink_mtu, overhead);
	if (mss < 536 || mss > mtu - 40)
		return fail(err, errlen, c,
			    "tunnels[%zu] \"%s\": mss %u: must be 536-%u (mtu minus 40 bytes of IPv4 and TCP headers)",
			    i, name, mss, mtu - 40);
	if (t->driver && *t->driver && strcmp(t->driver, "auto") &&
	    strcmp(t->driver, "bpf") && strcmp(t->driver, "kernel"))
		return fail(err, errlen, c,
			    "tunnels[%zu] \"%s\": driver \"%s\": must be auto, bpf or kernel",
			    i, name, t->driver);
	if (mt_tunnel_health_check(t, hc_err, sizeof(hc_err)) < 0)
		return fail(err, errlen, c, "tunnels[%zu] \"%s\": %s", i, name,
			    hc_err);
	return 0;
}

static int check_route(const Mt__Config__Customer *c, size_t i, char *err,
		       size_t errlen)
{
	const Mt__Config__TunnelRoute *r = c->routes[i];
	struct mt_prefix p, q;
	bool inside = false;
	char e[128];

	if (mt_prefix_parse(r->prefix, true, &p, e, sizeof(e)) < 0)
		return fail(err, errlen, c, "routes[%zu].prefix: %s", i, e);
	if (p.family != AF_INET)
		return fail(err, errlen, c,
			    "routes[%zu].prefix \"%s\": tunnels carry IPv4 only for now",
			    i, r->prefix);
	for (size_t k = 0; k < c->n_prefixes && !inside; k++)
		inside = mt_prefix_parse(c->prefixes[k], true, &q, e, sizeof(e)) == 0 &&
			 mt_prefix_contains(&q, &p);
	if (!inside)
		return fail(err, errlen, c,
			    "routes[%zu].prefix \"%s\": not inside any of the customer's prefixes",
			    i, r->prefix);
	if (!mt_tunnel_find(c, r->tunnel))
		return fail(err, errlen, c,
			    "routes[%zu] \"%s\": tunnel \"%s\" is not one of the customer's tunnels",
			    i, r->prefix, STR(r->tunnel));
	if (r->weight < 1 || r->weight > 256)
		return fail(err, errlen, c,
			    "routes[%zu] \"%s\" via %s: weight %u: must be 1-256",
			    i, r->prefix, r->tunnel, r->weight);
	if (r->priority > MT_ROUTE_PRIORITY_MAX)
		return fail(err, errlen, c,
			    "routes[%zu] \"%s\" via %s: priority %u: must be at most %u",
			    i, r->prefix, r->tunnel, r->priority,
			    MT_ROUTE_PRIORITY_MAX);
	for (size_t j = 0; j < i; j++) {
		const Mt__Config__TunnelRoute *o = c->routes[j];

		if (mt_prefix_parse(o->prefix, true, &q, e, sizeof(e)) == 0 &&
		    mt_prefix_equal(&p, &q) && strcmp(STR(o->tunnel), r->tunnel) == 0)
			return fail(err, errlen, c,
				    "routes[%zu] \"%s\" via %s: the same as routes[%zu]",
				    i, r->prefix, r->tunnel, j);
	}
	return 0;
}

int mt_validate_tunnels(const struct mt_metal *m, const Mt__Config__Customer *c,
			char *err, size_t errlen)
{
	int r;

	for (size_t i = 0; i < c->n_tunnels; i++)
		if ((r = check_tunnel(m, c, i, err, errlen)) < 0)
			return r;
	for (size_t i = 0; i < c->n_routes; i++)
		if ((r = check_route(c, i, err, errlen)) < 0)
			return r;
	return 0;
}
