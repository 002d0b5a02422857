/* The fast loop's planning: see health_plan.h. */
#include "health_plan.h"

#include <errno.h>
#include <net/if.h>
#include <string.h>

#include "diff.h"
#include "mt_kstate.h"
#include "mt_prefix.h"

int mt_health_plan(const struct mt_metal *m, const Mt__Config__Customer *c,
		   const struct mt_desired_penalties *before,
		   const struct mt_desired_penalties *after,
		   Mt__Kernel__Plan *plan)
{
	Mt__Kernel__KernelState *was = mt_kstate_new(), *will = mt_kstate_new();
	const char *owners[] = { c->name };
	struct mt_diff_scope scope = { owners, 1 };
	int r = -ENOMEM;

	if (was && will) {
		r = mt_desired_build_routes(m, c, before, was);
		if (r >= 0)
			r = mt_desired_build_routes(m, c, after, will);
		if (r >= 0)
			r = mt_diff(will, was, &scope, plan);
	}
	mt_kstate_free(was);
	mt_kstate_free(will);
	return r;
}

static bool carries(const Mt__Kernel__Route *o, const char *tunnel)
{
	if (o->dev && !strcmp(o->dev, tunnel))
		return true;
	for (size_t i = 0; i < o->n_nexthops; i++)
		if (o->nexthops[i]->dev && !strcmp(o->nexthops[i]->dev, tunnel))
			return true;
	return false;
}

uint32_t mt_health_observed_penalty(const struct mt_metal *m,
				    const Mt__Config__Customer *c,
				    const char *tunnel,
				    const Mt__Kernel__KernelState *observed)
{
	char ifname[IFNAMSIZ], dst[MT_PREFIX_STRLEN], e[128];
	uint32_t worst = 0;

	if (mt_metal_ifname(m, c->name, ifname, sizeof(ifname)) < 0)
		return 0;
	for (size_t i = 0; i < c->n_routes; i++) {
		const Mt__Config__TunnelRoute *r = c->routes[i];
		struct mt_prefix p;
		uint64_t best = UINT64_MAX;

		if (strcmp(r->tunnel, tunnel) ||
		    mt_prefix_parse(r->prefix, true, &p, e, sizeof(e)) < 0)
			continue;
		mt_prefix_format(&p, dst, sizeof(dst));
		for (size_t j = 0; j < observed->n_routes; j++) {
			const Mt__Kernel__Route *o = observed->routes[j];

			if (o->table != m->cust_table || !o->netns ||
			    strcmp(o->netns, ifname) || !o->dst ||
			    strcmp(o->dst, dst) || !carries(o, tunnel) ||
			    o->metric < r->priority || o->metric >= best)
				continue;
			best = o->metric;
		}
		if (best != UINT64_MAX && best - r->priority > worst)
			worst = (uint32_t)(best - r->priority);
	}
	return worst;
}
