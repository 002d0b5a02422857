/* mtctl tunnels [NAME|ID]: each tunnel with its driver, endpoints, the
 * effective priority of the routes through it, its counters and its drops
 * by reason; then its health: state, loss, RTT, when the state last
 * changed, configured and effective priority, recent history. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mt_cleanup.h"
#include "mtctl.h"

/* "203.0.113.0/25 10(10) w1, ..." : prefix, effective priority (the
 * configured one in parentheses when they differ), weight; "not installed"
 * when no kernel route carries the tunnel. */
static void format_routes(const Mt__Rpc__TunnelStatus *t, char *buf,
			  size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < t->n_routes && n < len; i++) {
		const Mt__Rpc__TunnelRouteStatus *r = t->routes[i];
		char prio[48];

		if (!r->installed)
			snprintf(prio, sizeof(prio), "%u NOT INSTALLED",
				 r->priority);
		else if (r->effective_priority != r->priority)
			snprintf(prio, sizeof(prio), "%u (configured %u)",
				 r->effective_priority, r->priority);
		else
			snprintf(prio, sizeof(prio), "%u", r->priority);
		n += (size_t)snprintf(buf + n, len - n, "%s%s prio %s w%u",
				      i ? ", " : "", r->prefix, prio,
				      r->weight);
	}
	if (!t->n_routes)
		snprintf(buf, len, "-");
}

static void format_drops(const Mt__Kernel__TunnelCounters *c, char *buf,
			 size_t len)
{
	size_t n = 0;

	snprintf(buf, len, "-");
	for (size_t i = 0; c && i < c->n_drops && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s=%" PRIu64,
				      i ? "," : "", c->drops[i]->reason,
				      c->drops[i]->packets);
}

static void print_tunnels(const Mt__Rpc__TunnelList *l)
{
	MT_CLEANUP(mtctl_table_freep) struct mtctl_table *t = NULL;
	static const char *const headers[] = {
		"CUSTOMER", "TUNNEL",  "DRIVER",  "LOCAL",	 "REMOTE",
		"KEY",	    "MTU/MSS", "TX PKTS", "TX BYTES", "RX PKTS",
		"RX BYTES", "DROPS",   "ROUTES",
	};
	char routes[1024], drops[512];

	t = mtctl_table_new(headers, MT_ARRAY_SIZE(headers));
	if (!t)
		return;
	for (size_t i = 0; i < l->n_tunnels; i++) {
		const Mt__Rpc__TunnelStatus *s = l->tunnels[i];
		const Mt__Kernel__TunnelCounters *c = s->counters;

		mtctl_table_cell(t, "%s", s->customer);
		mtctl_table_cell(t, "%s", s->name);
		if (!*s->driver)
			mtctl_table_cell(t, "ABSENT (%s)", s->configured_driver);
		else if (strcmp(s->configured_driver, "auto") == 0)
			mtctl_table_cell(t, "%s (auto)", s->driver);
		else
			mtctl_table_cell(t, "%s", s->driver);
		mtctl_table_cell(t, "%s", s->edge_endpoint);
		mtctl_table_cell(t, "%s", s->router_endpoint);
		if (s->has_key)
			mtctl_table_cell(t, "%u", s->key);
		else
			mtctl_table_cell(t, "-");
		mtctl_table_cell(t, "%u/%u", s->mtu, s->mss);
		mtctl_table_cell(t, "%" PRIu64, c ? c->tx_packets : 0);
		mtctl_table_cell(t, "%" PRIu64, c ? c->tx_bytes : 0);
		mtctl_table_cell(t, "%" PRIu64, c ? c->rx_packets : 0);
		mtctl_table_cell(t, "%" PRIu64, c ? c->rx_bytes : 0);
		format_drops(c, drops, sizeof(drops));
		mtctl_table_cell(t, "%s", drops);
		format_routes(s, routes, sizeof(routes));
		mtctl_table_cell(t, "%s", routes);
	}
	mtctl_table_print(t, stdout);
}

/* "12:01:02.345" (local time) of a CLOCK_REALTIME ms; "-" for 0. */
static const char *clock_of(uint64_t ms, char *buf, size_t len)
{
	time_t sec = (time_t)(ms / 1000);
	struct tm tm;

	if (!ms || !localtime_r(&sec, &tm)) {
		snprintf(buf, len, "-");
		return buf;
	}
	snprintf(buf, len, "%02d:%02d:%02d.%03u", tm.tm_hour, tm.tm_min,
		 tm.tm_sec, (unsigned)(ms % 1000));
	return buf;
}

/* "3m12s ago" */
static const char *ago(uint64_t ms, uint64_t now, char *buf, size_t len)
{
	uint64_t d = now > ms ? (now - ms) / 1000 : 0;

	if (!ms)
		snprintf(buf, len, "-");
	else if (d < 60)
		snprintf(buf, len, "%" PRIu64 "s ago", d);
	else if (d < 3600)
		snprintf(buf, len, "%" PRIu64 "m%02" PRIu64 "s ago", d / 60,
			 d % 60);
	else
		snprintf(buf, len, "%" PRIu64 "h%02" PRIu64 "m ago", d / 3600,
			 d / 60 % 60);
	return buf;
}

/* "10->1000010, 20->1000020": configured -> effective per route. */
static void format_priorities(const Mt__Rpc__TunnelStatus *t, char *buf,
			      size_t len)
{
	size_t n = 0;

	snprintf(buf, len, "-");
	for (size_t i = 0; i < t->n_routes && n < len; i++) {
		const Mt__Rpc__TunnelRouteStatus *r = t->routes[i];

		if (r->installed)
			n += (size_t)snprintf(buf + n, len - n, "%s%u->%u",
					      i ? ", " : "", r->priority,
					      r->effective_priority);
		else
			n += (size_t)snprintf(buf + n, len - n, "%s%u->none",
					      i ? ", " : "", r->priority);
	}
}

/* "down@12:01:02.345 degraded@..." newest first, the state entered. */
static void format_history(const Mt__Rpc__TunnelHealth *h, char *buf,
			   size_t len)
{
	size_t n = 0;
	char at[32];

	snprintf(buf, len, "-");
	for (size_t i = 0; i < h->n_history && i < 4 && n < len; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%s@%s",
				      i ? " " : "", h->history[i]->to,
				      clock_of(h->history[i]->at_ms, at,
					       sizeof(at)));
}

static void print_health(const Mt__Rpc__TunnelList *l)
{
	MT_CLEANUP(mtctl_table_freep) struct mtctl_table *t = NULL;
	static const char *const headers[] = {
		"CUSTOMER", "TUNNEL", "STATE",	  "LOSS(5m)", "RTT",
		"SINCE",    "PROBE",  "PRIORITY", "HISTORY",
	};
	struct timespec ts;
	uint64_t now;
	char buf[1024], when[64];

	clock_gettime(CLOCK_REALTIME, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	t = mtctl_table_new(headers, MT_ARRAY_SIZE(headers));
	if (!t)
		return;
	for (size_t i = 0; i < l->n_tunnels; i++) {
		const Mt__Rpc__TunnelStatus *s = l->tunnels[i];
		const Mt__Rpc__TunnelHealth *h = s->health;

		mtctl_table_cell(t, "%s", s->customer);
		mtctl_table_cell(t, "%s", s->name);
		if (!h) {
			for (int k = 0; k < 6; k++)
				mtctl_table_cell(t, "%s", k ? "-" : "unknown");
		} else {
			mtctl_table_cell(t, "%s", h->state);
			mtctl_table_cell(t, "%.3f%%", h->loss_ppm / 1e4);
			if (h->rtt_us)
				mtctl_table_cell(t, "%.2fms", h->rtt_us / 1e3);
			else
				mtctl_table_cell(t, "-");
			mtctl_table_cell(t, "%s", ago(h->since_ms, now, when,
						      sizeof(when)));
			mtctl_table_cell(t, "%s/%s/%ums", h->type,
					 !strcmp(h->direction, "bidirectional") ?
						 "bi" :
						 "uni",
					 h->interval_ms);
		}
		format_priorities(s, buf, sizeof(buf));
		mtctl_table_cell(t, "%s", buf);
		if (h)
			format_history(h, buf, sizeof(buf));
		else
			snprintf(buf, sizeof(buf), "-");
		mtctl_table_cell(t, "%s", buf);
	}
	mtctl_table_print(t, stdout);
}

int mtctl_cmd_tunnels(struct mtctl *ctx, int argc, char **argv)
{
	Mt__Rpc__CustomerRef in = MT__RPC__CUSTOMER_REF__INIT;
	_cleanup_message_ ProtobufCMessage *out = NULL;
	const Mt__Rpc__TunnelList *l;
	struct mtctl_ref ref;
	int r;

	if (argc > 2)
		return mtctl_usage_error("tunnels: unexpected argument '%s'",
					 argv[2]);
	if (argc == 2) {
		r = mtctl_ref_parse(argv[1], &ref);
		if (r != MTCTL_EXIT_OK)
			return r;
		in.id = ref.id;
		in.name = (char *)(ref.name ? ref.name : "");
	}
	r = mtctl_agent_call(ctx, "ListTunnels", &in.base, &out, "tunnels",
			     NULL);
	if (r != MTCTL_EXIT_OK)
		return r;
	l = (const Mt__Rpc__TunnelList *)out;
	if (ctx->output == MTCTL_OUTPUT_JSON)
		return mtctl_json_print_message(out, stdout) < 0 ?
			       MTCTL_EXIT_FAILED :
			       MTCTL_EXIT_OK;
	if (l->n_tunnels == 0) {
		printf("no tunnels\n");
		return MTCTL_EXIT_OK;
	}
	print_tunnels(l);
	printf("\n");
	print_health(l);
	return MTCTL_EXIT_OK;
}
