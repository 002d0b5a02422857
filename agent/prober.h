/* The tunnel prober: the fast loop's eyes (issue 5, docs/health.md).
 *
 * One thread probes every tunnel of every customer in force, from inside
 * the customer's namespace (agent/probe_io.c: direct encapsulation, so a
 * probe takes its own tunnel whatever the routes say), feeds the outcomes
 * to each tunnel's state machine (lib/mt_health.h) and, when a tunnel's
 * state changes, marks its customer and wakes the main loop through
 * prober_fd(). The main loop then applies a tiny plan (agent/health_plan.h)
 * at once: no store, no full reconcile, paused or not.
 *
 * Penalties exist three times per tunnel: current (the prober's, changes
 * any time), snapshot (what the plan being built uses: frozen by
 * prober_snapshot) and applied (what the kernel holds as far as the agent
 * knows: prober_commit after a successful apply). Only the main loop
 * touches snapshot and applied. A prober thread never blocks on the main
 * loop: the lock is held for short bursts only.
 */
#ifndef MT_PROBER_H
#define MT_PROBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.pb-c.h"
#include "desired.h"
#include "mt_health.h"
#include "mt_metal.h"
#include "rpc.pb-c.h"

struct prober;

/* Starts the prober thread. 0 or -errno. */
int prober_new(const struct mt_metal *m, struct prober **out);
/* Stops the thread and closes every socket. NULL accepted. */
void prober_free(struct prober *p);

/* Makes the probed set the tunnels of the n configs in force. A tunnel
 * whose probe config is unchanged keeps its state; a new one starts
 * healthy (or as prober_seed says). The sockets of customers that are
 * gone are closed before this returns (an open socket keeps a deleted
 * namespace alive). 0 or -ENOMEM. */
int prober_sync(struct prober *p, Mt__Config__Customer *const *cs, size_t n);

/* The same for one customer: probe the tunnels of cfg (set), or stop
 * probing the customer (remove; its sockets are closed on return). */
int prober_set_customer(struct prober *p, const Mt__Config__Customer *cfg);
void prober_remove_customer(struct prober *p, const char *name);

/* A restarted agent's first look at the kernel: tunnel's routes carry
 * penalty, so its state machine starts in the state that penalty stands
 * for (down, degraded, healthy) and the penalty counts as applied. Only
 * for a tunnel that has seen no probe outcome yet. */
void prober_seed(struct prober *p, const char *customer, const char *tunnel,
		 uint32_t penalty);

/* Readable when some customer's penalties changed since the last
 * prober_take_changed(). */
int prober_fd(const struct prober *p);
/* Drains the wakeup and returns the names of the customers whose current
 * penalties differ from their applied ones (caller frees each and the
 * array); *n gets the count. */
char **prober_take_changed(struct prober *p, size_t *n);

/* Freezes the current penalties of one customer (NULL: all) as the
 * snapshot that prober_snapshot_penalties() reads. */
void prober_snapshot(struct prober *p, const char *customer);
/* Records the snapshot of one customer (NULL: all) as applied. */
void prober_commit(struct prober *p, const char *customer);
/* mt_desired_penalties over the snapshot, and over the applied ones. */
struct mt_desired_penalties prober_snapshot_penalties(struct prober *p);
struct mt_desired_penalties prober_applied_penalties(struct prober *p);

/* The health of one tunnel for mtctl tunnels; NULL when it is not
 * probed (unknown). Caller frees with protobuf_c_message_free_unpacked. */
Mt__Rpc__TunnelHealth *prober_health(struct prober *p, const char *customer,
				     const char *tunnel);

/* One tunnel as the metrics see it (prober_foreach). */
struct prober_tunnel_view {
	const char *customer, *tunnel;
	bool probed;
	enum mt_health_state state;
	uint32_t penalty; /* applied */
	uint32_t loss_ppm, rtt_us;
	uint64_t sent, ok, failed;
	uint64_t transitions_to[3]; /* into healthy, degraded, down */
};

/* Calls fn for every tunnel, under the prober's lock (fn must not call
 * back into the prober). */
void prober_foreach(struct prober *p,
		    void (*fn)(const struct prober_tunnel_view *v, void *ctx),
		    void *ctx);

#endif
