#include "tunnel_status.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mt_kstate.h"
#include "mt_prefix.h"
#include "mt_validate.h"

#define S(s) ((s) ? (s) : "")

static void *grow(void *arr, size_t n)
{
	return realloc(arr, (n + 1) * sizeof(void *));
}

static const Mt__Kernel__Tunnel *find_tunnel(const Mt__Kernel__KernelState *o,
					     const char *ns, const char *name)
{
	for (size_t i = 0; i < o->n_tunnels; i++)
		if (!strcmp(S(o->tunnels[i]->netns), ns) &&
		    !strcmp(S(o->tunnels[i]->name), name))
			return o->tunnels[i];
	return NULL;
}

static bool route_carries(const Mt__Kernel__Route *r, const char *dev)
{
	if (!strcmp(S(r->dev), dev))
		return true;
	for (size_t i = 0; i < r->n_nexthops; i++)
		if (!strcmp(S(r->nexthops[i]->dev), dev))
			return true;
	return false;
}

static int add_route_status(const struct mt_metal *m, const char *ns,
			    const Mt__Config__TunnelRoute *cr,
			    const Mt__Kernel__KernelState *o,
			    Mt__Rpc__TunnelStatus *ts)
{
	Mt__Rpc__TunnelRouteStatus *rs, **v;
	struct mt_prefix want, have;
	char buf[MT_PREFIX_STRLEN], e[128];
	bool valid;

	rs = malloc(sizeof(*rs));
	v = grow(ts->routes, ts->n_routes);
	if (!rs || !v) {
		free(rs);
		return -ENOMEM;
	}
	ts->routes = v;
	mt__rpc__tunnel_route_status__init(rs);
	ts->routes[ts->n_routes++] = rs;
	valid = mt_prefix_parse(S(cr->prefix), true, &want, e, sizeof(e)) == 0;
	rs->prefix = strdup(valid ? mt_prefix_format(&want, buf, sizeof(buf)) :
				    S(cr->prefix));
	if (!rs->prefix)
		return -ENOMEM;
	rs->priority = cr->priority;
	rs->weight = cr->weight;
	for (size_t i = 0; valid && i < o->n_routes; i++) {
		const Mt__Kernel__Route *r = o->routes[i];

		if (r->table != m->cust_table || strcmp(S(r->netns), ns) ||
		    r->type == MT_RTN_BLACKHOLE ||
		    mt_prefix_parse(S(r->dst), true, &have, e, sizeof(e)) < 0 ||
		    !mt_prefix_equal(&want, &have) ||
		    !route_carries(r, S(cr->tunnel)))
			continue;
		if (!rs->installed || r->metric < rs->effective_priority)
			rs->effective_priority = r->metric;
		rs->installed = true;
	}
	return 0;
}

static int add_tunnel_status(const struct mt_metal *m, const char *ns,
			     const Mt__Config__Customer *c,
			     const Mt__Config__Tunnel *t,
			     const Mt__Kernel__KernelState *o,
			     Mt__Rpc__TunnelList *list)
{
	const Mt__Kernel__Tunnel *k = find_tunnel(o, ns, S(t->name));
	Mt__Rpc__TunnelStatus *ts, **v;

	ts = malloc(sizeof(*ts));
	v = grow(list->tunnels, list->n_tunnels);
	if (!ts || !v) {
		free(ts);
		return -ENOMEM;
	}
	list->tunnels = v;
	mt__rpc__tunnel_status__init(ts);
	list->tunnels[list->n_tunnels++] = ts;
	if (mt_kstate_set_str(&ts->customer, c->name) < 0 ||
	    mt_kstate_set_str(&ts->name, t->name) < 0 ||
	    mt_kstate_set_str(&ts->driver, k ? k->driver : "") < 0 ||
	    mt_kstate_set_str(&ts->configured_driver,
			      t->driver && *t->driver ? t->driver : "auto") < 0 ||
	    mt_kstate_set_str(&ts->edge_endpoint, t->edge_endpoint) < 0 ||
	    mt_kstate_set_str(&ts->router_endpoint, t->router_endpoint) < 0 ||
	    mt_kstate_set_str(&ts->inner_address, t->inner_address) < 0)
		return -ENOMEM;
	ts->has_key = mt_tunnel_has_key(t);
	ts->key = ts->has_key ? t->key : 0;
	ts->ttl = mt_tunnel_ttl(t);
	ts->mtu = mt_tunnel_mtu(t);
	ts->mss = mt_tunnel_mss(t);
	if (k && k->counters) {
		ts->counters = (Mt__Kernel__TunnelCounters *)mt_message_dup(
			&k->counters->base);
		if (!ts->counters)
			return -ENOMEM;
	}
	for (size_t i = 0; i < c->n_routes; i++)
		if (!strcmp(S(c->routes[i]->tunnel), S(t->name)) &&
		    add_route_status(m, ns, c->routes[i], o, ts) < 0)
			return -ENOMEM;
	return 0;
}

int mt_tunnel_status_build(const struct mt_metal *m,
			   const Mt__Config__Customer *c,
			   const Mt__Kernel__KernelState *observed,
			   Mt__Rpc__TunnelList *list)
{
	char ns[IFNAMSIZ];

	if (mt_metal_ifname(m, S(c->name), ns, sizeof(ns)) < 0)
		ns[0] = '\0';
	for (size_t i = 0; i < c->n_tunnels; i++) {
		int r = add_tunnel_status(m, ns, c, c->tunnels[i], observed,
					  list);

		if (r < 0)
			return r;
	}
	return 0;
}
