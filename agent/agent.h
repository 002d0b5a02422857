/* mt-agent: the slow loop. Reads desired state from the store, validates it,
 * observes the kernel through mt-fastpath, diffs, and hands plans to
 * mt-fastpath. Serves the Agent API for mtctl and orchestrators.
 *
 * Everything the agent needs survives its death: configs live in the store,
 * the dataplane state lives in the kernel. On start it reloads the store,
 * observes and converges.
 */
#ifndef MT_AGENT_H
#define MT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.pb-c.h"
#include "kernel.pb-c.h"
#include "mt_metal.h"
#include "mt_rpc.h"
#include "mt_store.h"
#include "rpc.pb-c.h"

enum agent_customer_state {
	CUSTOMER_PENDING,    /* accepted, not yet converged */
	CUSTOMER_CONVERGED,  /* the kernel matches the config in force */
	CUSTOMER_REJECTED,   /* the newest store value was refused */
	CUSTOMER_ERROR,      /* the last apply failed for some op */
};

/* One customer as the agent knows it. config is the version in force (the
 * last one that validated); when the newest store value is rejected, config
 * keeps the previous good one (or NULL if there never was one). */
struct agent_customer {
	uint32_t id;
	uint64_t store_rev;         /* mod revision of the newest store value */
	uint64_t config_rev;        /* mod revision of config */
	Mt__Config__Customer *config;
	/* config's firewall compiled (desired.h), built by the first
	 * reconcile that needs it; freed whenever config is replaced */
	struct mt_desired_memo *memo;
	enum agent_customer_state state;
	char error[512];
	uint64_t last_reconcile_ms;
	uint32_t ops_applied;
	bool seen;                  /* mark for the snapshot sweep */
};

/* The set of customer names a reconcile is limited to. */
struct agent_scope {
	bool full;
	bool fresh; /* observe with ObserveRequest.fresh: no dump mirrors */
	char **owners;
	size_t n, cap;
};

struct mt_fw_lists; /* fw_lists.h */
struct prober;      /* prober.h */

struct agent {
	struct mt_metal metal;
	char store_url[512];
	struct mt_store *store;
	/* The last known good configs, on the metal's own disk: what a
	 * restarted agent keeps in force for a customer whose store value is
	 * rejected (or while the store cannot be read). */
	char lkg_url[520];
	struct mt_store *lkg;
	struct mt_store_op *lkg_ops; /* writes queued by the current load */
	size_t n_lkg_ops, cap_lkg_ops;
	struct mt_rpc_client *fastpath;
	struct mt_rpc_sub *events;
	struct mt_rpc_server *api;

	struct agent_customer *customers; /* sorted by id */
	size_t n_customers, cap_customers;
	uint64_t store_revision;          /* revision of the last snapshot */
	uint64_t applied_revision;        /* revision last fully converged */

	struct agent_scope pending;       /* work queued for the loop */
	bool paused;
	bool fastpath_up;
	uint64_t fastpath_started_ms;
	uint64_t fastpath_down_since_ms;  /* monotonic; 0 while it answers */
	uint64_t started_ms;

	uint64_t reconciles;
	uint64_t kernel_writes;
	uint64_t drift_events;
	uint64_t last_full_reconcile_ms;
	uint64_t next_full_reconcile;     /* monotonic ms */
	unsigned rpc_timeout_ms;

	/* The firewall list contents this process last applied
	 * (agent/fw_lists.h), for list deltas. A restart starts it empty:
	 * the first change of each list is then a full reload. */
	struct mt_fw_lists *fw_lists;

	/* The tunnel prober (prober.h) and the fast loop's bookkeeping:
	 * the first full reconcile reads the penalties the kernel's routes
	 * carry (health_seeded) before anything is applied. */
	struct prober *prober;
	bool health_seeded;
	uint64_t health_plans, health_plan_failures;

	/* The orchestrator's last heartbeat seen in the store (wall clock
	 * ms, 0: none): its age is the replication lag (docs/store.md). */
	uint64_t heartbeat_ms;
};

/* Methods of service Fastpath, by index (proto/rpc.proto order). */
enum { FP_OBSERVE, FP_APPLY, FP_PING };

/* customers.c: the customer table and the store snapshot */

/* Re-reads every customer from the store, validates what changed and
 * updates the table; the names of customers whose config in force changed
 * (or that were deleted) are added to the pending scope. Returns the number
 * of changed customers or -errno. */
int agent_load_store(struct agent *a);
/* Puts the last known good configs in force (before the first
 * agent_load_store). Returns how many, or -errno. */
int agent_load_lkg(struct agent *a);
/* Writes the last-known-good copies queued by agent_load_store. The loop
 * calls it after reconciling, so the copy's fsync is not on the path from a
 * store change to the kernel. */
void agent_lkg_flush(struct agent *a);
struct agent_customer *agent_find(struct agent *a, uint32_t id);
struct agent_customer *agent_find_name(struct agent *a, const char *name);
/* The configs in force, as an array of pointers (valid until the next
 * agent_load_store); *n gets the count. Caller frees the array. */
Mt__Config__Customer **agent_configs(struct agent *a, size_t *n);
void agent_customers_free(struct agent *a);
const char *agent_state_name(enum agent_customer_state s);

/* scope helpers */
int agent_scope_add(struct agent_scope *s, const char *owner);
void agent_scope_clear(struct agent_scope *s);
bool agent_scope_empty(const struct agent_scope *s);

/* reconcile.c */

/* Observes the kernel (limited to scope unless scope->full), computes the
 * plan, and, unless dry_run, applies it. *plan_out (if not NULL) gets the
 * plan; *reply (if not NULL) the per-op results. Returns the number of
 * failed ops (>= 0) or -errno when the fastpath could not be reached. */
int agent_reconcile(struct agent *a, const struct agent_scope *scope,
		    bool dry_run, Mt__Kernel__Plan **plan_out,
		    Mt__Rpc__ReconcileReply *reply);

/* health.c: the fast loop */

/* Tells the prober about the customers of scope (all when full): configs
 * in force are probed, customers without one are no longer (their
 * sockets close before a plan deletes their namespace). */
void agent_health_sync(struct agent *a, const struct agent_scope *scope);
/* The first full reconcile after start: each tunnel's state machine starts
 * in the state its routes' penalties in the kernel stand for. */
void agent_health_seed(struct agent *a,
		       const Mt__Kernel__KernelState *observed);
/* Applies the tiny plans of the customers whose tunnels changed state. */
void agent_health_apply(struct agent *a);

/* Applies plan through mt-fastpath: logs a failed call and each op that
 * failed (prefixed by what, e.g. "health: "), counts the kernel writes.
 * 0 with *reply (caller frees), or -errno. */
int agent_apply_plan(struct agent *a, const Mt__Kernel__Plan *plan,
		     unsigned timeout_ms, const char *what,
		     Mt__Rpc__ApplyReply **reply);

/* api.c */
int agent_api_open(struct agent *a, const char *url);

#endif
