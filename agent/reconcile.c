/* Reconcile: observe (through mt-fastpath), diff against the desired state
 * built from the configs in force, apply the plan, record the outcome per
 * customer. The pure parts (desired.c, diff.c) do the thinking. */
#include "agent.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "desired.h"
#include "diff.h"
#include "fw_lists.h"
#include "mt_cleanup.h"
#include "mt_kstate.h"
#include "mt_log.h"
#include "mt_time.h"
#include "prober.h"

/* Observe in two halves (mt_rpc_call_start/finish): the agent builds the
 * desired state while mt-fastpath reads the kernel, each on its own core. */
static int observe_start(struct agent *a, const struct agent_scope *scope)
{
	Mt__Rpc__ObserveRequest req = MT__RPC__OBSERVE_REQUEST__INIT;
	int r;

	if (!scope->full) {
		req.owners = scope->owners;
		req.n_owners = scope->n;
	}
	req.fresh = scope->fresh;
	r = mt_rpc_call_start(a->fastpath, &mt__rpc__fastpath__descriptor,
			      FP_OBSERVE, &req.base, a->rpc_timeout_ms);
	if (r < 0)
		mt_warn("observe failed: %s", strerror(-r));
	return r;
}

static int observe_finish(struct agent *a, Mt__Kernel__KernelState **out)
{
	struct mt_rpc_status st;
	ProtobufCMessage *reply = NULL;
	int r;

	r = mt_rpc_call_finish(a->fastpath, &mt__rpc__fastpath__descriptor,
			       FP_OBSERVE, &reply, a->rpc_timeout_ms, &st);
	if (r < 0) {
		mt_warn("observe failed: %s%s%s", strerror(-r),
			r == -EREMOTEIO ? ": " : "",
			r == -EREMOTEIO ? st.message : "");
		return r;
	}
	*out = (Mt__Kernel__KernelState *)reply;
	return 0;
}

/* The customer an op belongs to, or NULL for the metal's shared objects. */
static const char *op_owner(const Mt__Kernel__Op *op)
{
	switch (op->object_case) {
	case MT__KERNEL__OP__OBJECT_NETNS:
		return op->netns->owner;
	case MT__KERNEL__OP__OBJECT_LINK:
		return op->link->owner;
	case MT__KERNEL__OP__OBJECT_ADDR:
		return op->addr->owner;
	case MT__KERNEL__OP__OBJECT_ROUTE:
		return op->route->owner;
	case MT__KERNEL__OP__OBJECT_RULE:
		return op->rule->owner;
	case MT__KERNEL__OP__OBJECT_SYSCTL:
		return op->sysctl->owner;
	case MT__KERNEL__OP__OBJECT_MARK_PREFIX:
		return op->mark_prefix->owner;
	case MT__KERNEL__OP__OBJECT_TUNNEL:
		return op->tunnel->owner;
	case MT__KERNEL__OP__OBJECT_MSS_CLAMP:
		return op->mss_clamp->owner;
	case MT__KERNEL__OP__OBJECT_FIREWALL:
		return op->firewall->owner;
	default:
		return NULL;
	}
}

static bool in_scope(const struct agent_scope *scope, const char *name)
{
	if (scope->full)
		return true;
	for (size_t i = 0; i < scope->n; i++)
		if (strcmp(scope->owners[i], name) == 0)
			return true;
	return false;
}

struct by_name {
	const char *name;
	struct agent_customer *e;
};

static int by_name_cmp(const void *x, const void *y)
{
	return strcmp(((const struct by_name *)x)->name,
		      ((const struct by_name *)y)->name);
}

static void record_outcome(struct agent *a, const struct agent_scope *scope,
			   const Mt__Kernel__Plan *plan,
			   const Mt__Rpc__ApplyReply *ar)
{
	uint64_t now = mt_realtime_ms();
	struct by_name *index = calloc(a->n_customers + 1, sizeof(*index));
	size_t n_index = 0;

	for (size_t i = 0; i < a->n_customers; i++) {
		struct agent_customer *e = &a->customers[i];

		if (!e->config || !in_scope(scope, e->config->name))
			continue;
		if (index)
			index[n_index++] = (struct by_name){ e->config->name, e };
		e->last_reconcile_ms = now;
		e->ops_applied = 0;
		if (e->state != CUSTOMER_REJECTED) {
			e->state = CUSTOMER_CONVERGED;
			e->error[0] = '\0';
		}
	}
	/* ops name their customer: find it by name in O(log n) */
	if (index)
		qsort(index, n_index, sizeof(*index), by_name_cmp);
	for (size_t i = 0; index && plan && i < plan->n_ops; i++) {
		struct by_name key = { op_owner(plan->ops[i]), NULL }, *hit;
		const Mt__Kernel__OpResult *res =
			ar && i < ar->n_results ? ar->results[i] : NULL;
		struct agent_customer *e;

		if (!key.name || !*key.name)
			continue;
		hit = bsearch(&key, index, n_index, sizeof(*index), by_name_cmp);
		if (!hit)
			continue;
		e = hit->e;
		e->ops_applied++;
		if (res && res->error) {
			e->state = CUSTOMER_ERROR;
			snprintf(e->error, sizeof(e->error), "%s", res->message);
		}
	}
	free(index);
}

int agent_apply_plan(struct agent *a, const Mt__Kernel__Plan *plan,
		     unsigned timeout_ms, const char *what,
		     Mt__Rpc__ApplyReply **reply)
{
	struct mt_rpc_status st;
	Mt__Rpc__ApplyReply *ar = NULL;
	int r;

	r = mt_rpc_call(a->fastpath, &mt__rpc__fastpath__descriptor, FP_APPLY,
			&plan->base, (ProtobufCMessage **)&ar, timeout_ms, &st);
	if (r < 0) {
		mt_warn("%sapply of %zu ops failed: %s%s%s", what, plan->n_ops,
			strerror(-r), r == -EREMOTEIO ? ": " : "",
			r == -EREMOTEIO ? st.message : "");
		return r;
	}
	a->kernel_writes += ar->kernel_writes;
	for (size_t i = 0; i < ar->n_results && i < plan->n_ops; i++) {
		char desc[256];

		if (ar->results[i]->error)
			mt_warn("%s%s: %s", what,
				mt_op_describe(plan->ops[i], desc, sizeof(desc)),
				ar->results[i]->message);
	}
	*reply = ar;
	return 0;
}

int agent_reconcile(struct agent *a, const struct agent_scope *scope,
		    bool dry_run, Mt__Kernel__Plan **plan_out,
		    Mt__Rpc__ReconcileReply *reply)
{
	Mt__Kernel__KernelState *observed = NULL, *desired = NULL;
	Mt__Kernel__Plan *plan = NULL;
	Mt__Config__Customer **configs = NULL;
	struct mt_desired_memo ***memos = NULL;
	struct mt_fw_desired *want = NULL;
	Mt__Rpc__ApplyReply *ar = NULL;
	struct mt_diff_scope dscope = { 0 };
	struct mt_desired_penalties pen = { 0 };
	size_t n_configs;
	int r, failed = 0;
	uint64_t t0 = mt_monotonic_us(), t_built, t_obs, t_plan, t_apply;

	r = observe_start(a, scope);
	if (r < 0)
		return r;
	desired = mt_kstate_new();
	plan = mt_plan_new();
	want = mt_fw_desired_new();
	configs = calloc(a->n_customers + 1, sizeof(*configs));
	memos = calloc(a->n_customers + 1, sizeof(*memos));
	if (!desired || !plan || !want || !configs || !memos) {
		r = -ENOMEM;
		goto out;
	}
	/* A scoped reconcile plans only the scoped customers (the shared
	 * objects come with any desired state): the cost of one customer's
	 * change does not grow with the number of customers. Each customer's
	 * firewall is memoised with its config (agent_customer.memo): only
	 * a changed config is canonicalised and compiled again. */
	n_configs = 0;
	for (size_t i = 0; i < a->n_customers; i++) {
		struct agent_customer *e = &a->customers[i];

		if (!e->config || !in_scope(scope, e->config->name))
			continue;
		configs[n_configs] = e->config;
		memos[n_configs++] = &e->memo;
	}
	/* A restarted agent first reads the penalties the kernel's routes
	 * carry (agent_health_seed), so this reconcile keeps them: it must
	 * wait for the observation before it builds. */
	if (a->prober && !a->health_seeded && scope->full) {
		r = observe_finish(a, &observed);
		if (r < 0)
			goto out;
		agent_health_seed(a, observed);
	}
	if (a->prober) {
		if (scope->full)
			prober_snapshot(a->prober, NULL);
		for (size_t i = 0; !scope->full && i < scope->n; i++)
			prober_snapshot(a->prober, scope->owners[i]);
		pen = prober_snapshot_penalties(a->prober);
	}
	r = mt_desired_build_health(&a->metal, configs, memos, n_configs, want,
				    a->prober ? &pen : NULL, desired);
	t_built = mt_monotonic_us();
	if (!observed) {
		/* the answer is collected even when the build failed: the
		 * REQ socket holds it until then */
		int o = observe_finish(a, &observed);

		if (r >= 0)
			r = o;
	}
	t_obs = mt_monotonic_us();
	if (r < 0)
		goto out;
	dscope.owners = (const char *const *)scope->owners;
	dscope.n_owners = scope->n;
	r = mt_diff(desired, observed, scope->full ? NULL : &dscope, plan);
	if (r < 0)
		goto out;
	/* the desired state is not needed any more (the plan holds copies;
	 * the firewalls go back to the memos) */
	mt_desired_release(desired);
	mt_kstate_free(desired);
	desired = NULL;
	if (!a->fw_lists)
		a->fw_lists = mt_fw_lists_new();
	if (a->fw_lists) {
		r = mt_fw_lists_prepare(a->fw_lists, observed, want, plan);
		if (r < 0)
			goto out;
	}
	t_plan = mt_monotonic_us();

	if (!dry_run && plan->n_ops) {
		/* The deadline grows with the plan: a cold start of
		 * thousands of customers with tunnels is tens of thousands
		 * of ops (~0.1 ms each; 1 ms each allowed). */
		unsigned timeout = a->rpc_timeout_ms +
				   (unsigned)(plan->n_ops < 3600000 ?
						      plan->n_ops :
						      3600000);

		r = agent_apply_plan(a, plan, timeout, "", &ar);
		/* the lists the plan carried: cached on success, forgotten
		 * on failure (or when the outcome is unknown) */
		if (a->fw_lists)
			mt_fw_lists_commit(a->fw_lists, plan,
					   r < 0 ? NULL : ar->results,
					   r < 0 ? 0 : ar->n_results);
		if (r < 0)
			goto out;
		failed = (int)ar->failed;
	}
	if (a->fw_lists)
		mt_fw_lists_abort(a->fw_lists); /* dry run, or nothing to apply */
	t_apply = mt_monotonic_us();
	if (!dry_run) {
		/* the penalties this plan carried are the kernel's now */
		if (a->prober && scope->full)
			prober_commit(a->prober, NULL);
		for (size_t i = 0; a->prober && !scope->full && i < scope->n; i++)
			prober_commit(a->prober, scope->owners[i]);
		a->reconciles++;
		record_outcome(a, scope, plan, ar);
		if (plan->n_ops)
			mt_info("reconciled %s: %zu ops, %d failed",
				scope->full ? "all customers" : "changed customers",
				plan->n_ops, failed);
	}
	mt_debug("reconcile (%s, %zu ops): observe %.1f ms (desired state built meanwhile in %.1f ms), diff %.1f ms, apply %.1f ms",
		 scope->full ? "full" : "scoped", plan->n_ops,
		 (t_obs - t0) / 1e3, (t_built - t0) / 1e3,
		 (t_plan - t_obs) / 1e3, (t_apply - t_plan) / 1e3);
	if (reply) {
		reply->ops = (uint32_t)plan->n_ops;
		reply->failed = (uint32_t)failed;
		if (ar && failed) {
			/* hand the error results over to the reply */
			reply->errors = calloc(ar->n_results, sizeof(*reply->errors));
			for (size_t i = 0; reply->errors && i < ar->n_results; i++) {
				if (!ar->results[i]->error)
					continue;
				reply->errors[reply->n_errors++] = ar->results[i];
				ar->results[i] = NULL;
			}
			/* compact the donor so free_unpacked skips the holes */
			size_t k = 0;
			for (size_t i = 0; i < ar->n_results; i++)
				if (ar->results[i])
					ar->results[k++] = ar->results[i];
			ar->n_results = k;
		}
	}
	if (plan_out)
		*plan_out = MT_TAKE_PTR(plan);
	r = failed;
out:
	if (a->fw_lists)
		mt_fw_lists_abort(a->fw_lists);
	if (ar)
		protobuf_c_message_free_unpacked(&ar->base, NULL);
	mt_plan_free(plan);
	mt_desired_release(desired);
	mt_kstate_free(desired);
	mt_kstate_free(observed);
	mt_fw_desired_free(want);
	free(configs);
	free(memos);
	return r;
}
