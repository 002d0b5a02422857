/* The per-tunnel health state machine (issue 5). Pure: no clock reads, no
 * I/O, no allocation; time comes in as arguments (milliseconds on any
 * monotonic clock; the caller picks one and sticks to it).
 *
 * One struct mt_health per tunnel. The caller (the agent's prober) asks
 * mt_health_next_probe_ms() when to send, sends a probe carrying an id it
 * chose, reports it with mt_health_probe_sent(), and reports the outcome with
 * mt_health_probe_result() (a reply: ok; a lost probe: !ok) or lets
 * mt_health_expire() time out the probes still in flight after
 * params.timeout_ms. Functions that consume an outcome return 1 when the
 * state changed (the caller then builds a tiny plan with the new penalty at
 * once), 0 when it did not, or -errno.
 *
 * States and rules (defaults in brackets, all in struct mt_health_params):
 *
 *   HEALTHY -> DEGRADED  at least degraded_loss_ppm [1000 = 0.1%] of the
 *                        probes of the last degraded_window_ms [5 min]
 *                        failed, and at least degraded_min_failures [2].
 *                        The window restarts when the tunnel becomes
 *                        HEALTHY, so old failures that were already forgiven
 *                        cannot send it straight back (no flapping).
 *   any     -> DOWN      the last down_min_probes [3] outcomes are failures
 *                        (no success since) and all of them were seen in the
 *                        last down_window_ms [1 s]. This is the "all
 *                        of at least 3 probes in the last second failed",
 *                        read from the last success on: a success from just
 *                        before a cut would otherwise keep the tunnel up for
 *                        a full second and the 1 s failover target could
 *                        never be met.
 *   DOWN    -> DEGRADED  recover_successes [3] consecutive successes.
 *   DEGRADED -> HEALTHY  fewer than healthy_loss_ppm [1000] of the last
 *                        healthy_probes [30] outcomes failed (with the
 *                        defaults: 30 clean probes in a row), and at least
 *                        that many outcomes were seen since it became
 *                        DEGRADED.
 *
 * Outcomes are ordered by send time: a failure of a probe sent before the
 * newest probe that succeeded is stale (lost before the tunnel answered
 * again, e.g. timing out just after a repair). It counts as a loss, but does
 * not break a run of successes, feed the DOWN rule or schedule re-probes.
 *
 * Re-probes: a failure of a regular probe schedules reprobe_count [2] more
 * probes to be sent at once (mt_health_next_probe_ms() returns the time of the
 * failure); a failed re-probe schedules no more, so a dead tunnel is probed
 * at its normal rate, not in a storm.
 *
 * Rates: interval_ms[LOW, MID, HIGH] = [1000, 200, 50] ms, default MID, each
 * interval jittered by +-jitter_pct [10]% from a deterministic PRNG seeded
 * per tunnel (tests are repeatable; 10,000 tunnels seeded apart do not probe
 * in lockstep). The first probe goes out at a random point of the first
 * interval. With MID and timeout_ms [300]: a cut is noticed when the first
 * lost probe times out (at most 220 + 300 ms after the cut), its two
 * re-probes time out 300 ms later: DOWN at most ~820 ms after the cut.
 *
 * Penalties added to the route priority: HEALTHY 0, DEGRADED
 * degraded_penalty [500000], DOWN down_penalty [1000000]. Routes are never
 * removed; steering is by priority only.
 *
 * Memory is bounded and fixed (2 KiB per tunnel, 20 MB for 10,000): the
 * last 64 outcomes, per-bucket counters over the degraded window (60
 * buckets), up to MT_HEALTH_INFLIGHT probes in flight, MT_HEALTH_HISTORY
 * transitions.
 */
#ifndef MT_HEALTH_H
#define MT_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mt_health_state {
	MT_HEALTH_HEALTHY = 0,
	MT_HEALTH_DEGRADED = 1,
	MT_HEALTH_DOWN = 2,
};

enum mt_health_rate {
	MT_HEALTH_RATE_LOW = 0,
	MT_HEALTH_RATE_MID = 1,
	MT_HEALTH_RATE_HIGH = 2,
	MT_HEALTH_RATES = 3,
};

#define MT_HEALTH_OUTCOMES 64 /* outcomes remembered (ring) */
#define MT_HEALTH_BUCKETS 60  /* buckets over the degraded window */
#define MT_HEALTH_INFLIGHT 16 /* probes in flight at once */
#define MT_HEALTH_HISTORY 8   /* transitions remembered */

struct mt_health_params {
	uint32_t interval_ms[MT_HEALTH_RATES]; /* 1000, 200, 50; 10..60000 */
	enum mt_health_rate rate;	       /* MID */
	uint32_t jitter_pct;		       /* 10; 0..50 */
	uint32_t timeout_ms;		       /* 300; 10..10000 */
	uint32_t reprobe_count;		       /* 2; 0..8 */

	uint32_t degraded_window_ms;	/* 300000; >= 60 * 100 */
	uint32_t degraded_loss_ppm;	/* 1000 (0.1%) */
	uint32_t degraded_min_failures; /* 2; >= 1 */

	uint32_t down_window_ms;  /* 1000 */
	uint32_t down_min_probes; /* 3; 1..64 */

	uint32_t recover_successes; /* 3; 1..64 (DOWN -> DEGRADED) */
	uint32_t healthy_probes;    /* 30; 1..64 (DEGRADED -> HEALTHY) */
	uint32_t healthy_loss_ppm;  /* 1000: fewer than this failed */

	uint32_t degraded_penalty; /* 500000 */
	uint32_t down_penalty;	   /* 1000000 */
};

struct mt_health_transition {
	uint64_t at_ms;
	enum mt_health_state from, to;
};

/* Opaque in spirit: read it through the accessors below. */
struct mt_health {
	struct mt_health_params p;
	enum mt_health_state state;
	uint64_t since_ms; /* time of the last transition (or init) */
	uint64_t rng;

	/* Outcomes, newest at out_head - 1. */
	uint64_t out_at[MT_HEALTH_OUTCOMES];
	uint64_t out_ok; /* bit i: out_at[i] was a success */
	uint32_t out_head, out_count;
	uint32_t run_fail, run_ok; /* trailing run of failures/successes */
	uint32_t in_state;	   /* outcomes since the last transition */
	uint64_t last_ok_sent_ms;  /* send time of the newest success */

	/* Degraded window: bucket i covers [bk_start[i], + bucket width). */
	uint64_t bk_start[MT_HEALTH_BUCKETS];
	uint32_t bk_probes[MT_HEALTH_BUCKETS];
	uint32_t bk_fail[MT_HEALTH_BUCKETS];

	struct {
		uint64_t sent_ms;
		uint32_t id;
		bool used, reprobe;
	} inflight[MT_HEALTH_INFLIGHT];

	uint64_t next_ms; /* next regular probe */
	uint32_t reprobes_due;
	uint64_t reprobe_at_ms;

	uint32_t last_rtt_us, srtt_us; /* 0 = no sample yet */
	uint64_t probes_sent, probes_ok, probes_failed;

	struct mt_health_transition hist[MT_HEALTH_HISTORY];
	uint32_t hist_head, hist_count;
};

/* Fills *p with the defaults above. */
void mt_health_params_default(struct mt_health_params *p);

/* 0, or -EINVAL with an operator message in err ("health check: timeout_ms
 * 5 out of range 10-10000"). */
int mt_health_params_check(const struct mt_health_params *p, char *err,
			   size_t errlen);

/* Starts a tunnel in state initial at now_ms (HEALTHY for a new tunnel; an
 * agent restoring saved state may pass the saved state). seed makes the
 * jitter deterministic (e.g. a hash of customer and tunnel name). 0, or
 * -EINVAL if mt_health_params_check() refuses p. */
int mt_health_init(struct mt_health *h, const struct mt_health_params *p,
		   uint64_t seed, uint64_t now_ms,
		   enum mt_health_state initial);

/* When the next probe should be sent: a due re-probe first, else the next
 * regular probe. Sending late is fine; the schedule moves on from the send. */
uint64_t mt_health_next_probe_ms(const struct mt_health *h);

/* The earliest time a probe in flight times out (UINT64_MAX: none). */
uint64_t mt_health_next_timeout_ms(const struct mt_health *h);

/* Records that probe id was sent at now_ms (a re-probe if one was due).
 * If MT_HEALTH_INFLIGHT probes are already in flight, the oldest one counts
 * as lost first. Returns 1 if that changed the state, else 0. */
int mt_health_probe_sent(struct mt_health *h, uint64_t now_ms, uint32_t id);

/* Records the outcome of probe id: ok with its rtt_us, or !ok (lost, timed
 * out, or an error reply). Returns 1 if the state changed, 0 if not,
 * -ENOENT for an id not in flight (a late reply after its timeout, a
 * duplicate): ignored. */
int mt_health_probe_result(struct mt_health *h, uint64_t now_ms, uint32_t id,
			   bool ok, uint32_t rtt_us);

/* Times out the probes in flight for timeout_ms or more, as failures.
 * Returns 1 if the state changed, else 0. */
int mt_health_expire(struct mt_health *h, uint64_t now_ms);

/* Switches the probe rate (takes effect from the next regular probe). */
void mt_health_set_rate(struct mt_health *h, enum mt_health_rate rate);

enum mt_health_state mt_health_state(const struct mt_health *h);
const char *mt_health_state_name(enum mt_health_state s); /* "healthy".. */
/* Penalty to add to the route priority in the current state. */
uint32_t mt_health_penalty(const struct mt_health *h);
/* Loss over the degraded window, in ppm (0 if no probe in the window). The
 * window restarts when the tunnel becomes HEALTHY. */
uint32_t mt_health_loss_ppm(const struct mt_health *h, uint64_t now_ms);
uint32_t mt_health_last_rtt_us(const struct mt_health *h);
uint32_t mt_health_srtt_us(const struct mt_health *h);
uint64_t mt_health_since_ms(const struct mt_health *h);
/* Copies up to n transitions, newest first, into out; returns the count. */
size_t mt_health_history(const struct mt_health *h,
			 struct mt_health_transition *out, size_t n);

#endif
