/* mt-agent's Prometheus metrics: the families, filled on each scrape from
 * the agent's counters and the prober's tunnels (the collect hook runs in
 * the main loop, which serves the scrape). */
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "agent.h"
#include "mt_metrics.h"
#include "prober.h"

enum fam {
	F_CUSTOMERS,
	F_REJECTED,
	F_PAUSED,
	F_FASTPATH_UP,
	F_STORE_REV,
	F_APPLIED_REV,
	F_RECONCILES,
	F_KERNEL_WRITES,
	F_DRIFT,
	F_HEARTBEAT_AGE,
	F_HEALTH_PLANS,
	F_HEALTH_PLAN_FAILURES,
	F_TUNNEL_STATE,
	F_TUNNEL_PENALTY,
	F_TUNNEL_LOSS,
	F_TUNNEL_RTT,
	F_TUNNEL_SENT,
	F_TUNNEL_FAILED,
	F_TUNNEL_TRANSITIONS,
	F_COUNT,
};

struct agent_metrics {
	struct agent *a;
	struct mt_metrics *reg;
	struct mt_metrics_http *http;
	struct mt_metrics_family *f[F_COUNT];
};

static const char *const tunnel_labels[] = { "customer", "tunnel", NULL };
static const char *const transition_labels[] = { "customer", "tunnel", "to",
						 NULL };

static const struct {
	enum mt_metrics_type type;
	const char *name, *help;
	const char *const *labels;
} families[F_COUNT] = {
	[F_CUSTOMERS] = { MT_METRICS_GAUGE, "mt_agent_customers",
			  "Customers with a config in force.", NULL },
	[F_REJECTED] = { MT_METRICS_GAUGE, "mt_agent_customers_rejected",
			 "Customers whose newest store value was refused.", NULL },
	[F_PAUSED] = { MT_METRICS_GAUGE, "mt_agent_paused",
		       "1 while automatic reconciles are paused.", NULL },
	[F_FASTPATH_UP] = { MT_METRICS_GAUGE, "mt_agent_fastpath_up",
			    "1 while mt-fastpath answers.", NULL },
	[F_STORE_REV] = { MT_METRICS_GAUGE, "mt_agent_store_revision",
			  "The store revision of the last snapshot.", NULL },
	[F_APPLIED_REV] = { MT_METRICS_GAUGE, "mt_agent_applied_revision",
			    "The store revision last fully converged.", NULL },
	[F_RECONCILES] = { MT_METRICS_COUNTER, "mt_agent_reconciles_total",
			   "Reconciles run.", NULL },
	[F_KERNEL_WRITES] = { MT_METRICS_COUNTER,
			      "mt_agent_kernel_writes_total",
			      "Kernel writes made by the agent's plans.", NULL },
	[F_DRIFT] = { MT_METRICS_COUNTER, "mt_agent_drift_events_total",
		      "Kernel drift events received from mt-fastpath.", NULL },
	[F_HEARTBEAT_AGE] = { MT_METRICS_GAUGE, "mt_agent_heartbeat_age_seconds",
			      "Age of the orchestrator's last heartbeat in the store: the replication lag (-1: none seen).",
			      NULL },
	[F_HEALTH_PLANS] = { MT_METRICS_COUNTER, "mt_health_plans_total",
			     "Tiny plans applied for tunnel health changes.",
			     NULL },
	[F_HEALTH_PLAN_FAILURES] = { MT_METRICS_COUNTER,
				     "mt_health_plan_failures_total",
				     "Health plans that failed (left to the slow loop).",
				     NULL },
	[F_TUNNEL_STATE] = { MT_METRICS_GAUGE, "mt_tunnel_state",
			     "Tunnel health: 0 healthy, 1 degraded, 2 down.",
			     tunnel_labels },
	[F_TUNNEL_PENALTY] = { MT_METRICS_GAUGE, "mt_tunnel_penalty",
			       "Penalty added to the tunnel's route priorities in the kernel.",
			       tunnel_labels },
	[F_TUNNEL_LOSS] = { MT_METRICS_GAUGE, "mt_tunnel_loss_ratio",
			    "Failed probes over the degraded window (5 minutes).",
			    tunnel_labels },
	[F_TUNNEL_RTT] = { MT_METRICS_GAUGE, "mt_tunnel_rtt_seconds",
			   "RTT of the last probe reply.", tunnel_labels },
	[F_TUNNEL_SENT] = { MT_METRICS_COUNTER, "mt_tunnel_probes_sent_total",
			    "Health probes sent.", tunnel_labels },
	[F_TUNNEL_FAILED] = { MT_METRICS_COUNTER,
			      "mt_tunnel_probes_failed_total",
			      "Health probes lost, timed out or not sent.",
			      tunnel_labels },
	[F_TUNNEL_TRANSITIONS] = { MT_METRICS_COUNTER,
				   "mt_tunnel_transitions_total",
				   "Tunnel health state changes, by the state entered.",
				   transition_labels },
};

static void tunnel_series(const struct prober_tunnel_view *v, void *ctx)
{
	struct agent_metrics *m = ctx;
	const char *c = v->customer, *t = v->tunnel;

	if (!v->probed)
		return;
	mt_metrics_gauge_set(m->f[F_TUNNEL_STATE], (double)v->state, c, t);
	mt_metrics_gauge_set(m->f[F_TUNNEL_PENALTY], v->penalty, c, t);
	mt_metrics_gauge_set(m->f[F_TUNNEL_LOSS], v->loss_ppm / 1e6, c, t);
	mt_metrics_gauge_set(m->f[F_TUNNEL_RTT], v->rtt_us / 1e6, c, t);
	mt_metrics_counter_set(m->f[F_TUNNEL_SENT], (double)v->sent, c, t);
	mt_metrics_counter_set(m->f[F_TUNNEL_FAILED], (double)v->failed, c, t);
	for (int s = 0; s < 3; s++)
		mt_metrics_counter_set(m->f[F_TUNNEL_TRANSITIONS],
				       (double)v->transitions_to[s], c, t,
				       mt_health_state_name(s));
}

/* Before each scrape renders: everything from the source of truth (the
 * per-tunnel series are rebuilt, so a tunnel that is gone leaves). */
static void collect(struct mt_metrics *reg, void *ctx)
{
	struct agent_metrics *m = ctx;
	struct agent *a = m->a;
	size_t customers = 0, rejected = 0;

	(void)reg;
	for (size_t i = 0; i < a->n_customers; i++) {
		customers += a->customers[i].config != NULL;
		rejected += a->customers[i].state == CUSTOMER_REJECTED;
	}
	mt_metrics_gauge_set(m->f[F_CUSTOMERS], (double)customers);
	mt_metrics_gauge_set(m->f[F_REJECTED], (double)rejected);
	mt_metrics_gauge_set(m->f[F_PAUSED], a->paused);
	mt_metrics_gauge_set(m->f[F_FASTPATH_UP], a->fastpath_up);
	mt_metrics_gauge_set(m->f[F_STORE_REV], (double)a->store_revision);
	mt_metrics_gauge_set(m->f[F_APPLIED_REV], (double)a->applied_revision);
	mt_metrics_counter_set(m->f[F_RECONCILES], (double)a->reconciles);
	mt_metrics_counter_set(m->f[F_KERNEL_WRITES], (double)a->kernel_writes);
	mt_metrics_counter_set(m->f[F_DRIFT], (double)a->drift_events);
	{
		struct timespec ts;
		double now;

		clock_gettime(CLOCK_REALTIME, &ts);
		now = ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
		mt_metrics_gauge_set(m->f[F_HEARTBEAT_AGE],
				     a->heartbeat_ms ?
					     (now - (double)a->heartbeat_ms) / 1e3 :
					     -1);
	}
	mt_metrics_counter_set(m->f[F_HEALTH_PLANS], (double)a->health_plans);
	mt_metrics_counter_set(m->f[F_HEALTH_PLAN_FAILURES],
			       (double)a->health_plan_failures);
	for (int f = F_TUNNEL_STATE; f <= F_TUNNEL_TRANSITIONS; f++)
		mt_metrics_reset(m->f[f]);
	if (a->prober)
		prober_foreach(a->prober, tunnel_series, m);
}

int agent_metrics_open(struct agent *a, const char *addr,
		       struct agent_metrics **out, char *err, size_t errlen)
{
	struct agent_metrics *m = calloc(1, sizeof(*m));
	int r = -ENOMEM;

	if (!m || !(m->reg = mt_metrics_new())) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	m->a = a;
	for (int f = 0; f < F_COUNT; f++) {
		r = mt_metrics_register(m->reg, families[f].type,
					families[f].name, families[f].help,
					families[f].labels, NULL, 0, &m->f[f],
					err, errlen);
		if (r < 0)
			goto fail;
	}
	mt_metrics_set_collect(m->reg, collect, m);
	r = mt_metrics_http_listen(m->reg, addr, NULL, &m->http, err, errlen);
	if (r < 0)
		goto fail;
	*out = m;
	return 0;
fail:
	agent_metrics_free(m);
	return r;
}

void agent_metrics_free(struct agent_metrics *m)
{
	if (!m)
		return;
	if (m->http)
		mt_metrics_http_free(m->http);
	if (m->reg)
		mt_metrics_free(m->reg);
	free(m);
}

int agent_metrics_fd(const struct agent_metrics *m)
{
	return mt_metrics_http_fd(m->http);
}

void agent_metrics_process(struct agent_metrics *m)
{
	mt_metrics_http_process(m->http);
}
