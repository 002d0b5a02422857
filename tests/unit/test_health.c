/* The tunnel health state machine with simulated time: a 1 ms tick loop
 * drives one tunnel over a simulated link (fixed RTT, a cut, random loss from
 * a seeded PRNG), so every run is the same. */
#include "mt_health.h"
#include "mt_test.h"

#include <errno.h>

#define RTT_MS 20
#define MT_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

struct sim {
	struct mt_health h;
	uint64_t now;
	uint32_t next_id;
	struct {
		uint32_t id;
		uint64_t at;
		bool used;
	} rep[64];
	bool cut;
	uint32_t loss_ppm;
	uint64_t rng;
	int transitions, to_down, to_degraded, to_healthy;
	uint64_t sent;
	uint64_t first_down_ms; /* 0: never */
};

static uint64_t sim_rand(struct sim *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return s->rng;
}

static void sim_init(struct sim *s, const struct mt_health_params *p,
		     uint64_t seed)
{
	struct mt_health_params def;

	memset(s, 0, sizeof(*s));
	if (!p) {
		mt_health_params_default(&def);
		p = &def;
	}
	s->now = 1000000; /* any epoch */
	s->rng = seed | 1;
	CHECK(mt_health_init(&s->h, p, seed, s->now, MT_HEALTH_HEALTHY) == 0);
}

static void sim_note(struct sim *s, int r)
{
	CHECK(r >= 0);
	if (r <= 0)
		return;
	s->transitions++;
	switch (mt_health_state(&s->h)) {
	case MT_HEALTH_DOWN:
		s->to_down++;
		if (!s->first_down_ms)
			s->first_down_ms = s->now;
		break;
	case MT_HEALTH_DEGRADED:
		s->to_degraded++;
		break;
	case MT_HEALTH_HEALTHY:
		s->to_healthy++;
		break;
	}
}

/* One millisecond of simulated time. */
static void sim_tick(struct sim *s)
{
	for (size_t i = 0; i < MT_ARRAY_SIZE(s->rep); i++) {
		if (!s->rep[i].used || s->rep[i].at > s->now)
			continue;
		s->rep[i].used = false;
		sim_note(s, mt_health_probe_result(&s->h, s->now, s->rep[i].id,
						   true, RTT_MS * 1000));
	}
	sim_note(s, mt_health_expire(&s->h, s->now));
	while (mt_health_next_probe_ms(&s->h) <= s->now) {
		uint32_t id = s->next_id++;
		bool lost = s->cut || (s->loss_ppm &&
				       sim_rand(s) % 1000000 < s->loss_ppm);

		sim_note(s, mt_health_probe_sent(&s->h, s->now, id));
		s->sent++;
		if (lost)
			continue;
		for (size_t i = 0; i < MT_ARRAY_SIZE(s->rep); i++) {
			if (!s->rep[i].used) {
				s->rep[i].used = true;
				s->rep[i].id = id;
				s->rep[i].at = s->now + RTT_MS;
				break;
			}
		}
	}
	s->now++;
}

static void sim_run(struct sim *s, uint64_t ms)
{
	for (uint64_t i = 0; i < ms; i++)
		sim_tick(s);
}

static void test_params(void)
{
	struct mt_health_params p;
	struct mt_health h;
	char err[128];

	mt_health_params_default(&p);
	CHECK(mt_health_params_check(&p, err, sizeof(err)) == 0);
	CHECK(p.interval_ms[MT_HEALTH_RATE_MID] == 200);
	CHECK(p.degraded_penalty == 500000 && p.down_penalty == 1000000);
	p.timeout_ms = 5;
	CHECK(mt_health_params_check(&p, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "timeout_ms 5 out of range 10-10000");
	CHECK(mt_health_init(&h, &p, 1, 0, MT_HEALTH_HEALTHY) == -EINVAL);
	mt_health_params_default(&p);
	p.interval_ms[MT_HEALTH_RATE_HIGH] = 0;
	CHECK(mt_health_params_check(&p, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "interval_ms (high rate) 0");
	mt_health_params_default(&p);
	p.rate = 7;
	CHECK(mt_health_params_check(&p, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "unknown rate 7");
	mt_health_params_default(&p);
	p.down_min_probes = 65;
	CHECK(mt_health_params_check(&p, err, sizeof(err)) == -EINVAL);
	CHECK_CONTAINS(err, "down_min_probes");
	CHECK_STR(mt_health_state_name(MT_HEALTH_DEGRADED), "degraded");
}

static void test_healthy_stays_healthy(void)
{
	struct sim s;

	sim_init(&s, NULL, 42);
	sim_run(&s, 60000);
	CHECK(s.transitions == 0);
	CHECK(mt_health_state(&s.h) == MT_HEALTH_HEALTHY);
	CHECK(mt_health_penalty(&s.h) == 0);
	CHECK(mt_health_loss_ppm(&s.h, s.now) == 0);
	CHECK(mt_health_last_rtt_us(&s.h) == RTT_MS * 1000);
	CHECK(mt_health_srtt_us(&s.h) == RTT_MS * 1000);
	/* 60 s at 200 ms +- 10%: about 300 probes */
	CHECK(s.sent >= 270 && s.sent <= 335);
	fprintf(stderr, "  healthy: %llu probes in 60 s, 0 transitions\n",
		(unsigned long long)s.sent);
}

static void test_jitter_deterministic(void)
{
	struct sim a, b, c;

	sim_init(&a, NULL, 7);
	sim_init(&b, NULL, 7);
	sim_init(&c, NULL, 8);
	CHECK(mt_health_next_probe_ms(&a.h) == mt_health_next_probe_ms(&b.h));
	sim_run(&a, 10000);
	sim_run(&b, 10000);
	sim_run(&c, 10000);
	CHECK(mt_health_next_probe_ms(&a.h) == mt_health_next_probe_ms(&b.h));
	CHECK(mt_health_next_probe_ms(&a.h) != mt_health_next_probe_ms(&c.h));
}

/* Cut at many phases of the probe schedule: DOWN within 1 s every time. */
static void test_cut_goes_down_fast(void)
{
	uint64_t worst = 0;

	for (uint64_t seed = 1; seed <= 200; seed++) {
		struct sim s;
		uint64_t cut_at;

		sim_init(&s, NULL, seed);
		sim_run(&s, 5000 + seed * 7 % 200);
		cut_at = s.now;
		s.cut = true;
		sim_run(&s, 2000);
		CHECK(mt_health_state(&s.h) == MT_HEALTH_DOWN);
		CHECK(s.to_down == 1);
		CHECK(s.first_down_ms > cut_at);
		CHECK(s.first_down_ms - cut_at < 1000);
		if (s.first_down_ms - cut_at > worst)
			worst = s.first_down_ms - cut_at;
		CHECK(mt_health_penalty(&s.h) == 1000000);
	}
	fprintf(stderr, "  cut -> down: worst %llu ms over 200 phases\n",
		(unsigned long long)worst);
	CHECK(worst < 1000);
}

static void test_reprobes(void)
{
	struct mt_health_params p;
	struct mt_health h;
	uint64_t t = 5000, next;

	mt_health_params_default(&p);
	CHECK(mt_health_init(&h, &p, 3, t, MT_HEALTH_HEALTHY) == 0);
	t = mt_health_next_probe_ms(&h);
	CHECK(mt_health_probe_sent(&h, t, 1) == 0);
	next = mt_health_next_probe_ms(&h);
	CHECK(next >= t + 180 && next <= t + 220);
	CHECK(mt_health_next_timeout_ms(&h) == t + 300);
	/* an error reply: two re-probes due at once */
	CHECK(mt_health_probe_result(&h, t + 50, 1, false, 0) == 0);
	CHECK(mt_health_next_timeout_ms(&h) == UINT64_MAX);
	CHECK(mt_health_next_probe_ms(&h) == t + 50);
	CHECK(mt_health_probe_sent(&h, t + 50, 2) == 0);
	CHECK(mt_health_next_probe_ms(&h) == t + 50);
	CHECK(mt_health_probe_sent(&h, t + 50, 3) == 0);
	CHECK(mt_health_next_timeout_ms(&h) == t + 350);
	/* back to the regular schedule, which the re-probes did not move */
	CHECK(mt_health_next_probe_ms(&h) == next);
	CHECK(mt_health_expire(&h, t + 349) == 0);
	CHECK(mt_health_probe_result(&h, t + 60, 3, true, 15000) == 0);
	CHECK(mt_health_last_rtt_us(&h) == 15000);
	/* a failed re-probe (sent with the success, so not stale) schedules
	 * no more re-probes; 2 failures in 3 probes: degraded */
	CHECK(mt_health_expire(&h, t + 350) == 1);
	CHECK(mt_health_next_probe_ms(&h) == next);
	/* late or duplicate replies are refused */
	CHECK(mt_health_probe_result(&h, t + 360, 1, true, 1000) == -ENOENT);
	CHECK(mt_health_probe_result(&h, t + 360, 3, true, 1000) == -ENOENT);
	CHECK(mt_health_state(&h) == MT_HEALTH_DEGRADED);
	CHECK(mt_health_penalty(&h) == 500000);
	CHECK(mt_health_loss_ppm(&h, t + 360) == 666666);
}

static void test_recovery_hysteresis(void)
{
	struct mt_health_transition tr[MT_HEALTH_HISTORY];
	struct sim s;
	uint64_t restored, down_at;
	int ok_seen = 0;
	size_t n;

	sim_init(&s, NULL, 99);
	sim_run(&s, 3000);
	s.cut = true;
	sim_run(&s, 3000);
	CHECK(mt_health_state(&s.h) == MT_HEALTH_DOWN);
	down_at = mt_health_since_ms(&s.h);
	s.cut = false;
	restored = s.now;
	/* Step until the first state change, counting replies. */
	while (s.transitions == 2 && s.now < restored + 5000) {
		uint64_t ok_before = s.h.probes_ok;

		sim_tick(&s);
		ok_seen += (int)(s.h.probes_ok - ok_before);
	}
	CHECK(mt_health_state(&s.h) == MT_HEALTH_DEGRADED);
	/* exactly at the 3rd consecutive success (probes sent during the cut
	 * may still time out after the restore and restart the count) */
	CHECK(ok_seen >= 3 && s.h.run_ok == 3);
	CHECK(mt_health_penalty(&s.h) == 500000);
	fprintf(stderr, "  down -> degraded %llu ms after restore\n",
		(unsigned long long)(s.now - restored));
	/* then 30 clean outcomes since DEGRADED */
	ok_seen = 0;
	while (mt_health_state(&s.h) == MT_HEALTH_DEGRADED &&
	       s.now < restored + 60000) {
		uint64_t ok_before = s.h.probes_ok;

		sim_tick(&s);
		ok_seen += (int)(s.h.probes_ok - ok_before);
	}
	CHECK(mt_health_state(&s.h) == MT_HEALTH_HEALTHY);
	CHECK(ok_seen >= 30 && s.h.run_ok >= 30);
	CHECK(mt_health_penalty(&s.h) == 0);
	fprintf(stderr, "  degraded -> healthy %llu ms after restore\n",
		(unsigned long long)(s.now - restored));
	/* and it stays healthy: the old failures do not count again */
	sim_run(&s, 60000);
	CHECK(mt_health_state(&s.h) == MT_HEALTH_HEALTHY);

	/* history, newest first: healthy->degraded (the first loss),
	 * degraded->down, down->degraded, degraded->healthy */
	n = mt_health_history(&s.h, tr, MT_ARRAY_SIZE(tr));
	CHECK(n == 4);
	CHECK(tr[0].from == MT_HEALTH_DEGRADED &&
	      tr[0].to == MT_HEALTH_HEALTHY);
	CHECK(tr[1].from == MT_HEALTH_DOWN && tr[1].to == MT_HEALTH_DEGRADED);
	CHECK(tr[2].from == MT_HEALTH_DEGRADED && tr[2].to == MT_HEALTH_DOWN);
	CHECK(tr[2].at_ms == down_at);
	CHECK(tr[3].from == MT_HEALTH_HEALTHY &&
	      tr[3].to == MT_HEALTH_DEGRADED);
	CHECK(tr[0].at_ms > tr[1].at_ms && tr[1].at_ms > tr[2].at_ms &&
	      tr[2].at_ms >= tr[3].at_ms);
	CHECK(mt_health_history(&s.h, tr, 1) == 1);
}

/* A failure while DOWN recovering resets the count of successes. */
static void test_recovery_needs_consecutive(void)
{
	struct mt_health_params p;
	struct mt_health h;
	uint64_t t = 0;
	uint32_t id = 0;

	mt_health_params_default(&p);
	p.reprobe_count = 0;
	CHECK(mt_health_init(&h, &p, 5, t, MT_HEALTH_DOWN) == 0);
	const bool seq[] = {true, true, false, true, true};
	for (size_t i = 0; i < MT_ARRAY_SIZE(seq); i++) {
		t += 200;
		mt_health_probe_sent(&h, t, ++id);
		CHECK(mt_health_probe_result(&h, t + 10, id, seq[i], 10000) ==
		      0);
	}
	CHECK(mt_health_state(&h) == MT_HEALTH_DOWN);
	t += 200;
	mt_health_probe_sent(&h, t, ++id);
	CHECK(mt_health_probe_result(&h, t + 10, id, true, 10000) == 1);
	CHECK(mt_health_state(&h) == MT_HEALTH_DEGRADED);
	CHECK(mt_health_since_ms(&h) == t + 10);
}

/* Three failures spread over more than the down window are not DOWN. */
static void test_slow_failures_not_down(void)
{
	struct mt_health_params p;
	struct mt_health h;
	uint64_t t = 0;

	mt_health_params_default(&p);
	p.reprobe_count = 0;
	CHECK(mt_health_init(&h, &p, 5, t, MT_HEALTH_HEALTHY) == 0);
	for (uint32_t id = 1; id <= 3; id++) {
		t += 600;
		mt_health_probe_sent(&h, t, id);
		mt_health_probe_result(&h, t + 10, id, false, 0);
	}
	CHECK(mt_health_state(&h) == MT_HEALTH_DEGRADED);
	t += 100;
	mt_health_probe_sent(&h, t, 4);
	CHECK(mt_health_probe_result(&h, t + 10, 4, false, 0) == 1);
	CHECK(mt_health_state(&h) == MT_HEALTH_DOWN);
}

static void test_loss_1pct_10min(const char *name, enum mt_health_rate rate,
				 uint64_t seed)
{
	struct mt_health_params p;
	struct sim s;

	mt_health_params_default(&p);
	p.rate = rate;
	sim_init(&s, &p, seed);
	s.loss_ppm = 10000;
	sim_run(&s, 600000);
	fprintf(stderr,
		"  1%% loss, 10 min, %s rate: %llu probes, %llu lost, "
		"transitions %d (to degraded %d, to healthy %d), "
		"loss1pct_10min_down_transitions %d\n",
		name, (unsigned long long)s.sent,
		(unsigned long long)s.h.probes_failed, s.transitions,
		s.to_degraded, s.to_healthy, s.to_down);
	CHECK(s.to_down == 0);
}

static void test_loss_1pct(void)
{
	test_loss_1pct_10min("mid", MT_HEALTH_RATE_MID, 12345);
	test_loss_1pct_10min("mid", MT_HEALTH_RATE_MID, 777);
	test_loss_1pct_10min("low", MT_HEALTH_RATE_LOW, 12345);
	test_loss_1pct_10min("high", MT_HEALTH_RATE_HIGH, 12345);
}

/* A probe lost before the tunnel answered again does not undo recovery. */
static void test_stale_failure(void)
{
	struct mt_health_params p;
	struct mt_health h;

	mt_health_params_default(&p);
	CHECK(mt_health_init(&h, &p, 1, 0, MT_HEALTH_DOWN) == 0);
	mt_health_probe_sent(&h, 1000, 1); /* lost */
	mt_health_probe_sent(&h, 1100, 2);
	mt_health_probe_sent(&h, 1110, 3);
	CHECK(mt_health_probe_result(&h, 1120, 2, true, 20000) == 0);
	CHECK(mt_health_expire(&h, 1300) == 0); /* id 1: stale */
	CHECK(h.run_ok == 1 && h.probes_failed == 1 && !h.reprobes_due);
	mt_health_probe_sent(&h, 1310, 4);
	CHECK(mt_health_probe_result(&h, 1330, 3, true, 20000) == 0);
	CHECK(mt_health_probe_result(&h, 1330, 4, true, 20000) == 1);
	CHECK(mt_health_state(&h) == MT_HEALTH_DEGRADED);
}

static void test_history_ring(void)
{
	struct mt_health_transition tr[MT_HEALTH_HISTORY + 2];
	struct mt_health_params p;
	struct mt_health h;
	uint64_t t = 0;
	uint32_t id = 0;

	mt_health_params_default(&p);
	p.reprobe_count = 0;
	p.down_min_probes = 1;
	p.recover_successes = 1;
	CHECK(mt_health_init(&h, &p, 1, t, MT_HEALTH_HEALTHY) == 0);
	/* fail, ok, fail, ok...: healthy->down, then down<->degraded */
	for (int i = 0; i < 20; i++) {
		t += 100;
		mt_health_probe_sent(&h, t, ++id);
		mt_health_probe_result(&h, t, id, i % 2, 1000);
	}
	CHECK(mt_health_history(&h, tr, MT_ARRAY_SIZE(tr)) ==
	      MT_HEALTH_HISTORY);
	CHECK(tr[0].to == MT_HEALTH_DEGRADED && tr[0].at_ms == t);
	CHECK(tr[1].to == MT_HEALTH_DOWN && tr[1].at_ms == t - 100);
	CHECK(tr[7].at_ms == t - 700);
}

static void test_inflight_full(void)
{
	struct mt_health_params p;
	struct mt_health h;

	mt_health_params_default(&p);
	p.timeout_ms = 10000;
	p.reprobe_count = 0;
	CHECK(mt_health_init(&h, &p, 1, 0, MT_HEALTH_HEALTHY) == 0);
	for (uint32_t id = 0; id < MT_HEALTH_INFLIGHT; id++)
		CHECK(mt_health_probe_sent(&h, id, id) == 0);
	CHECK(h.probes_failed == 0);
	mt_health_probe_sent(&h, 100, 100); /* evicts id 0 as lost */
	CHECK(h.probes_failed == 1);
	CHECK(mt_health_probe_result(&h, 101, 0, true, 1) == -ENOENT);
	CHECK(mt_health_probe_result(&h, 101, 1, true, 1) == 0);
}

int main(void)
{
	RUN(test_params);
	RUN(test_healthy_stays_healthy);
	RUN(test_jitter_deterministic);
	RUN(test_cut_goes_down_fast);
	RUN(test_reprobes);
	RUN(test_recovery_hysteresis);
	RUN(test_recovery_needs_consecutive);
	RUN(test_slow_failures_not_down);
	RUN(test_loss_1pct);
	RUN(test_stale_failure);
	RUN(test_history_ring);
	RUN(test_inflight_full);
	TEST_MAIN_END();
}
