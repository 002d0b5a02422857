/* The per-tunnel health state machine: see mt_health.h for the rules. */
#include "mt_health.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

void mt_health_params_default(struct mt_health_params *p)
{
	*p = (struct mt_health_params){
	    .interval_ms = {1000, 200, 50},
	    .rate = MT_HEALTH_RATE_MID,
	    .jitter_pct = 10,
	    .timeout_ms = 300,
	    .reprobe_count = 2,
	    .degraded_window_ms = 300000,
	    .degraded_loss_ppm = 1000,
	    .degraded_min_failures = 2,
	    .down_window_ms = 1000,
	    .down_min_probes = 3,
	    .recover_successes = 3,
	    .healthy_probes = 30,
	    .healthy_loss_ppm = 1000,
	    .degraded_penalty = 500000,
	    .down_penalty = 1000000,
	};
}

static int range(char *err, size_t errlen, const char *field, uint32_t v,
		 uint32_t lo, uint32_t hi)
{
	if (v >= lo && v <= hi)
		return 0;
	snprintf(err, errlen, "health check: %s %u out of range %u-%u", field,
		 v, lo, hi);
	return -EINVAL;
}

int mt_health_params_check(const struct mt_health_params *p, char *err,
			   size_t errlen)
{
	static const char *const rate_field[MT_HEALTH_RATES] = {
	    "interval_ms (low rate)", "interval_ms (mid rate)",
	    "interval_ms (high rate)"};
	int r = 0;

	for (int i = 0; i < MT_HEALTH_RATES && !r; i++)
		r = range(err, errlen, rate_field[i], p->interval_ms[i], 10,
			  60000);
	if (!r && (unsigned)p->rate >= MT_HEALTH_RATES) {
		snprintf(err, errlen, "health check: unknown rate %d",
			 (int)p->rate);
		r = -EINVAL;
	}
	if (!r)
		r = range(err, errlen, "jitter_pct", p->jitter_pct, 0, 50);
	if (!r)
		r = range(err, errlen, "timeout_ms", p->timeout_ms, 10, 10000);
	if (!r)
		r = range(err, errlen, "reprobe_count", p->reprobe_count, 0, 8);
	if (!r)
		r = range(err, errlen, "degraded_window_ms",
			  p->degraded_window_ms, MT_HEALTH_BUCKETS * 100,
			  24 * 3600 * 1000);
	if (!r)
		r = range(err, errlen, "degraded_loss_ppm",
			  p->degraded_loss_ppm, 0, 1000000);
	if (!r)
		r = range(err, errlen, "degraded_min_failures",
			  p->degraded_min_failures, 1, 1000000);
	if (!r)
		r = range(err, errlen, "down_window_ms", p->down_window_ms, 10,
			  600000);
	if (!r)
		r = range(err, errlen, "down_min_probes", p->down_min_probes, 1,
			  MT_HEALTH_OUTCOMES);
	if (!r)
		r = range(err, errlen, "recover_successes",
			  p->recover_successes, 1, MT_HEALTH_OUTCOMES);
	if (!r)
		r = range(err, errlen, "healthy_probes", p->healthy_probes, 1,
			  MT_HEALTH_OUTCOMES);
	if (!r)
		r = range(err, errlen, "healthy_loss_ppm", p->healthy_loss_ppm,
			  1, 1000000);
	if (!r && p->down_penalty < p->degraded_penalty) {
		snprintf(
		    err, errlen,
		    "health check: down_penalty %u below degraded_penalty %u",
		    p->down_penalty, p->degraded_penalty);
		r = -EINVAL;
	}
	return r;
}

/* splitmix64: tiny, deterministic, good enough for jitter. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* interval +- jitter_pct%, uniform. */
static uint64_t jittered(struct mt_health *h)
{
	uint64_t iv = h->p.interval_ms[h->p.rate];
	uint64_t span = iv * h->p.jitter_pct / 100;

	if (!span)
		return iv;
	return iv - span + rng_next(&h->rng) % (2 * span + 1);
}

int mt_health_init(struct mt_health *h, const struct mt_health_params *p,
		   uint64_t seed, uint64_t now_ms, enum mt_health_state initial)
{
	char err[128];

	if (mt_health_params_check(p, err, sizeof(err)) < 0 ||
	    (unsigned)initial > MT_HEALTH_DOWN)
		return -EINVAL;
	memset(h, 0, sizeof(*h));
	h->p = *p;
	h->state = initial;
	h->since_ms = now_ms;
	h->rng = seed;
	/* Spread the first probes of many tunnels over one interval. */
	h->next_ms = now_ms + rng_next(&h->rng) % p->interval_ms[p->rate];
	return 0;
}

uint64_t mt_health_next_probe_ms(const struct mt_health *h)
{
	if (h->reprobes_due && h->reprobe_at_ms < h->next_ms)
		return h->reprobe_at_ms;
	return h->next_ms;
}

uint64_t mt_health_next_timeout_ms(const struct mt_health *h)
{
	uint64_t t = UINT64_MAX;

	for (int i = 0; i < MT_HEALTH_INFLIGHT; i++)
		if (h->inflight[i].used &&
		    h->inflight[i].sent_ms + h->p.timeout_ms < t)
			t = h->inflight[i].sent_ms + h->p.timeout_ms;
	return t;
}

static void transition(struct mt_health *h, uint64_t now_ms,
		       enum mt_health_state to)
{
	struct mt_health_transition *t = &h->hist[h->hist_head];

	*t = (struct mt_health_transition){now_ms, h->state, to};
	h->hist_head = (h->hist_head + 1) % MT_HEALTH_HISTORY;
	if (h->hist_count < MT_HEALTH_HISTORY)
		h->hist_count++;
	h->state = to;
	h->since_ms = now_ms;
	h->in_state = 0;
	/* A tunnel that became healthy starts a fresh loss window. */
	if (to == MT_HEALTH_HEALTHY) {
		memset(h->bk_start, 0, sizeof(h->bk_start));
		memset(h->bk_probes, 0, sizeof(h->bk_probes));
		memset(h->bk_fail, 0, sizeof(h->bk_fail));
	}
}

static uint64_t bucket_ms(const struct mt_health *h)
{
	return h->p.degraded_window_ms / MT_HEALTH_BUCKETS;
}

/* Probes and failures over the buckets that still overlap the window. */
static void window_counts(const struct mt_health *h, uint64_t now_ms,
			  uint64_t *probes, uint64_t *fails)
{
	uint64_t w = bucket_ms(h);
	uint64_t from = now_ms > h->p.degraded_window_ms
			    ? now_ms - h->p.degraded_window_ms
			    : 0;

	*probes = *fails = 0;
	for (int i = 0; i < MT_HEALTH_BUCKETS; i++) {
		if (!h->bk_probes[i] || h->bk_start[i] + w <= from)
			continue;
		*probes += h->bk_probes[i];
		*fails += h->bk_fail[i];
	}
}

/* The k-th newest outcome (0 = newest); k < out_count. */
static uint32_t out_index(const struct mt_health *h, uint32_t k)
{
	return (h->out_head + MT_HEALTH_OUTCOMES - 1 - k) % MT_HEALTH_OUTCOMES;
}

static bool rule_down(const struct mt_health *h, uint64_t now_ms)
{
	uint32_t n = h->p.down_min_probes;

	if (h->run_fail < n)
		return false;
	return h->out_at[out_index(h, n - 1)] + h->p.down_window_ms > now_ms;
}

static bool rule_degraded(const struct mt_health *h, uint64_t now_ms)
{
	uint64_t probes, fails;

	window_counts(h, now_ms, &probes, &fails);
	return fails >= h->p.degraded_min_failures &&
	       fails * 1000000 >= probes * h->p.degraded_loss_ppm;
}

static bool rule_healthy(const struct mt_health *h)
{
	uint32_t n = h->p.healthy_probes, fails = 0;

	if (h->in_state < n || h->out_count < n)
		return false;
	for (uint32_t k = 0; k < n; k++)
		if (!(h->out_ok >> out_index(h, k) & 1))
			fails++;
	return (uint64_t)fails * 1000000 < (uint64_t)n * h->p.healthy_loss_ppm;
}

/* Records one outcome of a probe sent at sent_ms and runs the rules; 1 if
 * the state changed. A failure of a probe sent before the newest probe that
 * succeeded is stale (it was lost before the tunnel answered again): it
 * counts as a loss but neither breaks a run of successes nor re-probes. */
static int outcome(struct mt_health *h, uint64_t now_ms, uint64_t sent_ms,
		   bool ok, bool reprobe)
{
	bool stale = !ok && h->probes_ok && sent_ms < h->last_ok_sent_ms;
	uint64_t w = bucket_ms(h), start = now_ms - now_ms % w;
	uint32_t b = (uint32_t)(now_ms / w % MT_HEALTH_BUCKETS);
	enum mt_health_state to = h->state;

	h->out_at[h->out_head] = now_ms;
	if (ok)
		h->out_ok |= 1ULL << h->out_head;
	else
		h->out_ok &= ~(1ULL << h->out_head);
	h->out_head = (h->out_head + 1) % MT_HEALTH_OUTCOMES;
	if (h->out_count < MT_HEALTH_OUTCOMES)
		h->out_count++;
	h->in_state++;
	if (h->bk_start[b] != start || !h->bk_probes[b]) {
		h->bk_start[b] = start;
		h->bk_probes[b] = h->bk_fail[b] = 0;
	}
	h->bk_probes[b]++;
	if (ok) {
		h->probes_ok++;
		h->run_ok++;
		h->run_fail = 0;
		if (sent_ms > h->last_ok_sent_ms)
			h->last_ok_sent_ms = sent_ms;
	} else if (stale) {
		h->probes_failed++;
		h->bk_fail[b]++;
	} else {
		h->probes_failed++;
		h->bk_fail[b]++;
		h->run_fail++;
		h->run_ok = 0;
		if (!reprobe && h->p.reprobe_count) {
			h->reprobes_due = h->p.reprobe_count;
			h->reprobe_at_ms = now_ms;
		}
	}

	if (h->state != MT_HEALTH_DOWN && rule_down(h, now_ms))
		to = MT_HEALTH_DOWN;
	else if (h->state == MT_HEALTH_DOWN &&
		 h->run_ok >= h->p.recover_successes)
		to = MT_HEALTH_DEGRADED;
	else if (h->state == MT_HEALTH_HEALTHY && rule_degraded(h, now_ms))
		to = MT_HEALTH_DEGRADED;
	else if (h->state == MT_HEALTH_DEGRADED && rule_healthy(h))
		to = MT_HEALTH_HEALTHY;
	if (to == h->state)
		return 0;
	transition(h, now_ms, to);
	return 1;
}

int mt_health_probe_sent(struct mt_health *h, uint64_t now_ms, uint32_t id)
{
	int slot = -1, oldest = 0, changed = 0;
	bool reprobe = false;

	for (int i = 0; i < MT_HEALTH_INFLIGHT; i++) {
		if (!h->inflight[i].used) {
			slot = i;
			break;
		}
		if (h->inflight[i].sent_ms < h->inflight[oldest].sent_ms)
			oldest = i;
	}
	if (slot < 0) {
		slot = oldest;
		changed = outcome(h, now_ms, h->inflight[slot].sent_ms, false,
				  h->inflight[slot].reprobe);
	}
	if (h->reprobes_due && h->reprobe_at_ms <= now_ms) {
		h->reprobes_due--;
		reprobe = true;
	} else {
		h->next_ms = now_ms + jittered(h);
	}
	h->inflight[slot].used = true;
	h->inflight[slot].id = id;
	h->inflight[slot].sent_ms = now_ms;
	h->inflight[slot].reprobe = reprobe;
	h->probes_sent++;
	return changed;
}

int mt_health_probe_result(struct mt_health *h, uint64_t now_ms, uint32_t id,
			   bool ok, uint32_t rtt_us)
{
	for (int i = 0; i < MT_HEALTH_INFLIGHT; i++) {
		if (!h->inflight[i].used || h->inflight[i].id != id)
			continue;
		h->inflight[i].used = false;
		if (ok) {
			h->last_rtt_us = rtt_us;
			/* RFC 6298 smoothing, alpha 1/8. */
			h->srtt_us = h->srtt_us ? h->srtt_us - h->srtt_us / 8 +
						      rtt_us / 8
						: rtt_us;
		}
		return outcome(h, now_ms, h->inflight[i].sent_ms, ok,
			       h->inflight[i].reprobe);
	}
	return -ENOENT;
}

int mt_health_expire(struct mt_health *h, uint64_t now_ms)
{
	int changed = 0;

	for (;;) {
		int o = -1;

		for (int i = 0; i < MT_HEALTH_INFLIGHT; i++)
			if (h->inflight[i].used &&
			    h->inflight[i].sent_ms + h->p.timeout_ms <=
				now_ms &&
			    (o < 0 ||
			     h->inflight[i].sent_ms < h->inflight[o].sent_ms))
				o = i;
		if (o < 0)
			return changed;
		h->inflight[o].used = false;
		if (outcome(h, now_ms, h->inflight[o].sent_ms, false,
			    h->inflight[o].reprobe) > 0)
			changed = 1;
	}
}

void mt_health_set_rate(struct mt_health *h, enum mt_health_rate rate)
{
	if ((unsigned)rate < MT_HEALTH_RATES)
		h->p.rate = rate;
}

enum mt_health_state mt_health_state(const struct mt_health *h)
{
	return h->state;
}

const char *mt_health_state_name(enum mt_health_state s)
{
	switch (s) {
	case MT_HEALTH_HEALTHY:
		return "healthy";
	case MT_HEALTH_DEGRADED:
		return "degraded";
	case MT_HEALTH_DOWN:
		return "down";
	}
	return "unknown";
}

uint32_t mt_health_penalty(const struct mt_health *h)
{
	switch (h->state) {
	case MT_HEALTH_DEGRADED:
		return h->p.degraded_penalty;
	case MT_HEALTH_DOWN:
		return h->p.down_penalty;
	default:
		return 0;
	}
}

uint32_t mt_health_loss_ppm(const struct mt_health *h, uint64_t now_ms)
{
	uint64_t probes, fails;

	window_counts(h, now_ms, &probes, &fails);
	return probes ? (uint32_t)(fails * 1000000 / probes) : 0;
}

uint32_t mt_health_last_rtt_us(const struct mt_health *h)
{
	return h->last_rtt_us;
}

uint32_t mt_health_srtt_us(const struct mt_health *h)
{
	return h->srtt_us;
}

uint64_t mt_health_since_ms(const struct mt_health *h)
{
	return h->since_ms;
}

size_t mt_health_history(const struct mt_health *h,
			 struct mt_health_transition *out, size_t n)
{
	size_t k;

	for (k = 0; k < n && k < h->hist_count; k++)
		out[k] = h->hist[(h->hist_head + MT_HEALTH_HISTORY - 1 - k) %
				 MT_HEALTH_HISTORY];
	return k;
}
