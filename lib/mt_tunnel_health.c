/* A tunnel's health-check config: see mt_tunnel_health.h. */
#include "mt_tunnel_health.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mt_prefix.h"
#include "mt_validate.h"

#define STR(s) ((s) ? (s) : "")

static int bad(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int bad(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* An override: 0 keeps the default; else it must lie in [lo, hi]. */
static int over(char *err, size_t errlen, const char *field, uint32_t v,
		uint32_t lo, uint32_t hi, uint32_t *dst)
{
	if (!v)
		return 0;
	if (v < lo || v > hi)
		return bad(err, errlen,
			   "health_check.%s %u: out of range %u-%u", field, v,
			   lo, hi);
	*dst = v;
	return 0;
}

int mt_tunnel_health_params(const Mt__Config__Tunnel *t,
			    struct mt_health_params *p, char *err,
			    size_t errlen)
{
	const Mt__Config__HealthCheck *hc = t->health_check;
	const char *rate;
	uint32_t window_s = 0;
	int r = 0;

	mt_health_params_default(p);
	if (!hc)
		return 0;
	rate = STR(hc->rate);
	if (!*rate || !strcmp(rate, "mid"))
		p->rate = MT_HEALTH_RATE_MID;
	else if (!strcmp(rate, "low"))
		p->rate = MT_HEALTH_RATE_LOW;
	else if (!strcmp(rate, "high"))
		p->rate = MT_HEALTH_RATE_HIGH;
	else
		return bad(err, errlen,
			   "health_check.rate \"%s\": must be low, mid or high",
			   rate);
	if (hc->interval_ms) {
		if (hc->interval_ms < 10 || hc->interval_ms > 60000)
			return bad(err, errlen,
				   "health_check.interval_ms %u: out of range 10-60000",
				   hc->interval_ms);
		p->interval_ms[p->rate] = hc->interval_ms;
	}
	if (hc->no_reprobe) {
		if (hc->reprobes)
			return bad(err, errlen,
				   "health_check: reprobes %u contradicts no_reprobe",
				   hc->reprobes);
		p->reprobe_count = 0;
	}
	if (!r)
		r = over(err, errlen, "timeout_ms", hc->timeout_ms, 10, 10000,
			 &p->timeout_ms);
	if (!r)
		r = over(err, errlen, "reprobes", hc->reprobes, 1, 8,
			 &p->reprobe_count);
	if (!r)
		r = over(err, errlen, "degraded_window_s", hc->degraded_window_s,
			 MT_HEALTH_BUCKETS / 10, 86400, &window_s);
	if (!r && window_s)
		p->degraded_window_ms = window_s * 1000;
	if (!r)
		r = over(err, errlen, "degraded_loss_ppm", hc->degraded_loss_ppm,
			 1, 1000000, &p->degraded_loss_ppm);
	if (!r)
		r = over(err, errlen, "degraded_min_failures",
			 hc->degraded_min_failures, 1, 1000000,
			 &p->degraded_min_failures);
	if (!r)
		r = over(err, errlen, "down_window_ms", hc->down_window_ms, 100,
			 60000, &p->down_window_ms);
	if (!r)
		r = over(err, errlen, "down_min_probes", hc->down_min_probes, 1,
			 MT_HEALTH_OUTCOMES, &p->down_min_probes);
	if (!r)
		r = over(err, errlen, "recover_successes", hc->recover_successes,
			 1, MT_HEALTH_OUTCOMES, &p->recover_successes);
	if (!r)
		r = over(err, errlen, "healthy_probes", hc->healthy_probes, 1,
			 MT_HEALTH_OUTCOMES, &p->healthy_probes);
	if (!r)
		r = over(err, errlen, "degraded_penalty", hc->degraded_penalty,
			 1, MT_ROUTE_PRIORITY_MAX, &p->degraded_penalty);
	if (!r)
		r = over(err, errlen, "down_penalty", hc->down_penalty, 1,
			 MT_ROUTE_PRIORITY_MAX, &p->down_penalty);
	if (r)
		return r;
	if (p->down_penalty < p->degraded_penalty)
		return bad(err, errlen,
			   "health_check: down_penalty %u is below degraded_penalty %u (a down tunnel must rank below a degraded one)",
			   p->down_penalty, p->degraded_penalty);
	if (mt_health_params_check(p, err, errlen) < 0)
		return -EINVAL;
	return 0;
}

static int addr4(const char *s, uint32_t *out)
{
	struct mt_prefix p;
	char e[128];

	if (mt_addr_parse(s, &p, e, sizeof(e)) < 0 || p.family != AF_INET)
		return -EINVAL;
	memcpy(out, p.addr, 4);
	return 0;
}

int mt_tunnel_probe_config(const Mt__Config__Tunnel *t,
			   struct mt_tunnel_probe *out, char *err,
			   size_t errlen)
{
	const Mt__Config__HealthCheck *hc = t->health_check;
	const char *type = hc ? STR(hc->type) : "";
	const char *dir = hc ? STR(hc->direction) : "";
	const char *target = hc ? STR(hc->target) : "";
	struct mt_prefix local, peer;
	uint32_t edge_inner, router_inner, edge, router, tg;

	memset(out, 0, sizeof(*out));
	if (!*type || !strcmp(type, "reply"))
		out->request = false;
	else if (!strcmp(type, "request"))
		out->request = true;
	else
		return bad(err, errlen,
			   "health_check.type \"%s\": must be reply or request",
			   type);
	if (!*dir || !strcmp(dir, "unidirectional"))
		out->bidirectional = false;
	else if (!strcmp(dir, "bidirectional"))
		out->bidirectional = true;
	else
		return bad(err, errlen,
			   "health_check.direction \"%s\": must be unidirectional or bidirectional",
			   dir);
	if (mt_tunnel_inner(t, &local, &peer) < 0 ||
	    addr4(STR(t->edge_endpoint), &edge) < 0 ||
	    addr4(STR(t->router_endpoint), &router) < 0)
		return bad(err, errlen,
			   "health_check: the tunnel's addresses do not parse");
	memcpy(&edge_inner, local.addr, 4);
	memcpy(&router_inner, peer.addr, 4);
	tg = router_inner;
	if (*target) {
		if (addr4(target, &tg) < 0)
			return bad(err, errlen,
				   "health_check.target \"%s\": must be an IPv4 address",
				   target);
		if (tg != router_inner && tg != router)
			return bad(err, errlen,
				   "health_check.target \"%s\": outside the tunnel's addresses (must be the router's inner address %s or router_endpoint %s)",
				   target,
				   inet_ntop(AF_INET, &router_inner,
					     (char[INET_ADDRSTRLEN]){0},
					     INET_ADDRSTRLEN),
				   STR(t->router_endpoint));
	}
	out->enabled = !(hc && hc->disabled);
	out->outer_src = edge;
	out->outer_dst = router;
	out->outer_ttl = (uint8_t)mt_tunnel_ttl(t);
	out->has_key = mt_tunnel_has_key(t);
	out->key = t->key;
	out->target = tg;
	{
		uint32_t edge_side = out->bidirectional ? edge_inner : edge;

		out->inner_src = out->request ? edge_side : tg;
		out->inner_dst = out->request ? tg : edge_side;
	}
	return 0;
}

int mt_tunnel_health_check(const Mt__Config__Tunnel *t, char *err,
			   size_t errlen)
{
	struct mt_health_params p;
	struct mt_tunnel_probe pr;
	int r = mt_tunnel_health_params(t, &p, err, errlen);

	return r < 0 ? r : mt_tunnel_probe_config(t, &pr, err, errlen);
}
