/* The fast loop: the prober's state changes become tiny plans applied at
 * once (docs/health.md). The slow loop's reconciles use the same
 * penalties (agent/reconcile.c), so neither undoes the other. */
#include "agent.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "health_plan.h"
#include "mt_kstate.h"
#include "mt_log.h"
#include "mt_time.h"
#include "prober.h"

#define HEALTH_APPLY_TIMEOUT_MS 2000

void agent_health_sync(struct agent *a, const struct agent_scope *scope)
{
	if (!a->prober)
		return;
	if (scope->full) {
		size_t n = 0;
		Mt__Config__Customer **cs = agent_configs(a, &n);

		if (cs)
			prober_sync(a->prober, cs, n);
		free(cs);
		return;
	}
	for (size_t i = 0; i < scope->n; i++) {
		struct agent_customer *e = agent_find_name(a, scope->owners[i]);

		if (e && e->config)
			prober_set_customer(a->prober, e->config);
		else
			prober_remove_customer(a->prober, scope->owners[i]);
	}
}

void agent_health_seed(struct agent *a, const Mt__Kernel__KernelState *observed)
{
	if (!a->prober || a->health_seeded)
		return;
	a->health_seeded = true;
	for (size_t i = 0; i < a->n_customers; i++) {
		const Mt__Config__Customer *c = a->customers[i].config;

		for (size_t j = 0; c && j < c->n_tunnels; j++)
			prober_seed(a->prober, c->name, c->tunnels[j]->name,
				    mt_health_observed_penalty(
					    &a->metal, c, c->tunnels[j]->name,
					    observed));
	}
}

void agent_health_apply(struct agent *a)
{
	struct mt_desired_penalties was, will;
	Mt__Kernel__Plan *plan;
	Mt__Rpc__ApplyReply *ar = NULL;
	size_t n = 0;
	char **names;
	uint64_t t0 = mt_monotonic_us();
	int r = 0;

	if (!a->prober)
		return;
	names = prober_take_changed(a->prober, &n);
	if (!names || !n) {
		free(names);
		return;
	}
	was = prober_applied_penalties(a->prober);
	will = prober_snapshot_penalties(a->prober);
	plan = mt_plan_new();
	for (size_t i = 0; plan && i < n; i++) {
		struct agent_customer *e = agent_find_name(a, names[i]);

		if (!e || !e->config)
			continue;
		prober_snapshot(a->prober, names[i]);
		if (mt_health_plan(&a->metal, e->config, &was, &will, plan) < 0)
			r = -ENOMEM;
	}
	if (!plan || r < 0) {
		mt_warn("health: cannot build the plan: out of memory");
		goto requeue;
	}
	if (plan->n_ops) {
		if (!a->fastpath_up) {
			r = -ENOTCONN;
			goto requeue;
		}
		r = agent_apply_plan(a, plan, HEALTH_APPLY_TIMEOUT_MS,
				     "health: ", &ar);
		if (r < 0)
			goto requeue;
		a->health_plans++;
		if (ar->failed)
			a->health_plan_failures++;
		mt_info("health: %zu route ops for %zu customers in %.1f ms%s",
			plan->n_ops, n, (mt_monotonic_us() - t0) / 1e3,
			ar->failed ? " (some failed: the next reconcile repairs them)" :
				     "");
	}
	for (size_t i = 0; i < n; i++)
		prober_commit(a->prober, names[i]);
	goto out;
requeue:
	/* the slow loop puts the snapshot's penalties in when it can */
	for (size_t i = 0; i < n; i++)
		agent_scope_add(&a->pending, names[i]);
	a->health_plan_failures++;
out:
	if (ar)
		protobuf_c_message_free_unpacked(&ar->base, NULL);
	mt_plan_free(plan);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}
