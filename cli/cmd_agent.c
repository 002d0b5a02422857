/* mtctl commands that only mt-agent can answer: status, plan, reconcile,
 * pause, resume. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mt_cleanup.h"
#include "mt_time.h"
#include "mtctl.h"

static int no_args(int argc, char **argv)
{
	if (argc > 1)
		return mtctl_usage_error("%s: unexpected argument '%s'",
					 argv[0], argv[1]);
	return MTCTL_EXIT_OK;
}

/* ---- status ---- */

static void print_status(const Mt__Rpc__StatusReply *s)
{
	MT_CLEANUP(mtctl_table_freep) struct mtctl_table *kv = NULL;
	MT_CLEANUP(mtctl_table_freep) struct mtctl_table *t = NULL;
	static const char *const headers[] = {"ID",	  "NAME", "STATE",
					      "REVISION", "OPS",  "ERROR"};
	uint64_t now = mt_realtime_ms();
	char buf[128];

	kv = mtctl_table_new(NULL, 2);
	t = mtctl_table_new(headers, MT_ARRAY_SIZE(headers));
	if (!kv || !t)
		return;
	mtctl_table_cell(kv, "instance:");
	mtctl_table_cell(kv, "%s", s->instance);
	mtctl_table_cell(kv, "reconciling:");
	mtctl_table_cell(kv, "%s", s->paused ? "PAUSED" : "running");
	mtctl_table_cell(kv, "fastpath:");
	mtctl_table_cell(kv, "%s",
			 s->fastpath_connected ? "connected" : "NOT CONNECTED");
	mtctl_table_cell(kv, "store:");
	mtctl_table_cell(kv, "%s", s->store);
	mtctl_table_cell(kv, "revision:");
	mtctl_table_cell(
	    kv, "store %llu, applied %llu%s",
	    (unsigned long long)s->store_revision,
	    (unsigned long long)s->applied_revision,
	    s->store_revision == s->applied_revision ? "" : " (behind)");
	mtctl_table_cell(kv, "customers:");
	mtctl_table_cell(kv, "%u (%u rejected)", s->customers, s->rejected);
	mtctl_table_cell(kv, "reconciles:");
	mtctl_table_cell(kv, "%llu (%llu kernel writes, %llu drift events)",
			 (unsigned long long)s->reconciles,
			 (unsigned long long)s->kernel_writes,
			 (unsigned long long)s->drift_events);
	mtctl_table_cell(kv, "last full reconcile:");
	mtctl_table_cell(kv, "%s",
			 mtctl_format_time(s->last_full_reconcile_ms, now, buf,
					   sizeof(buf)));
	mtctl_table_cell(kv, "started:");
	mtctl_table_cell(
	    kv, "%s", mtctl_format_time(s->started_ms, now, buf, sizeof(buf)));
	mtctl_table_print(kv, stdout);

	if (s->n_customer_status == 0)
		return;
	for (size_t i = 0; i < s->n_customer_status; i++) {
		const Mt__Rpc__CustomerStatus *c = s->customer_status[i];

		mtctl_table_cell(t, "%u", c->id);
		mtctl_table_cell(t, "%s", c->name);
		mtctl_table_cell(t, "%s", *c->state ? c->state : "-");
		mtctl_table_cell(t, "%llu", (unsigned long long)c->revision);
		mtctl_table_cell(t, "%u", c->ops_applied);
		mtctl_table_cell(t, "%s", c->error);
	}
	fputc('\n', stdout);
	mtctl_table_print(t, stdout);
}

int mtctl_cmd_status(struct mtctl *ctx, int argc, char **argv)
{
	Mt__Rpc__Empty in = MT__RPC__EMPTY__INIT;
	_cleanup_message_ ProtobufCMessage *out = NULL;
	int r;

	r = no_args(argc, argv);
	if (r != MTCTL_EXIT_OK)
		return r;
	r = mtctl_agent_call(ctx, "Status", &in.base, &out, "status", NULL);
	if (r != MTCTL_EXIT_OK)
		return r;
	if (ctx->output == MTCTL_OUTPUT_JSON)
		return mtctl_json_print_message(out, stdout) < 0
			   ? MTCTL_EXIT_FAILED
			   : MTCTL_EXIT_OK;
	print_status((const Mt__Rpc__StatusReply *)out);
	return MTCTL_EXIT_OK;
}

/* ---- plan and reconcile ---- */

/* The customer id for the optional NAME|ID argument of plan and reconcile
 * (0 = all customers); a name is resolved through the agent. */
static int customer_arg(struct mtctl *ctx, int argc, char **argv, uint32_t *id)
{
	Mt__Rpc__CustomerRef ref = MT__RPC__CUSTOMER_REF__INIT;
	_cleanup_message_ ProtobufCMessage *out = NULL;
	const Mt__Rpc__CustomerList *l;
	struct mtctl_ref cref;
	char what[128];
	int r;

	*id = 0;
	if (argc > 2)
		return mtctl_usage_error("%s: unexpected argument '%s' (one "
					 "customer at most)",
					 argv[0], argv[2]);
	if (argc < 2)
		return MTCTL_EXIT_OK;
	r = mtctl_ref_parse(argv[1], &cref);
	if (r != MTCTL_EXIT_OK)
		return r;
	if (cref.id) {
		*id = cref.id;
		return MTCTL_EXIT_OK;
	}
	ref.name = (char *)cref.name;
	snprintf(what, sizeof(what), "%s %s", argv[0], cref.arg);
	r = mtctl_agent_call(ctx, "GetCustomer", &ref.base, &out, what, NULL);
	if (r != MTCTL_EXIT_OK)
		return r;
	l = (const Mt__Rpc__CustomerList *)out;
	if (l->n_customers == 0)
		return mtctl_fail(MTCTL_EXIT_FAILED,
				  "%s: no customer named "
				  "'%s'",
				  argv[0], cref.name);
	*id = l->customers[0]->id;
	return MTCTL_EXIT_OK;
}

static void print_plan(const Mt__Kernel__Plan *p)
{
	size_t creates = 0, deletes = 0;
	char line[512];

	if (!p || p->n_ops == 0) {
		puts("No changes: the kernel matches the configuration.");
		return;
	}
	for (size_t i = 0; i < p->n_ops; i++) {
		const Mt__Kernel__Op *op = p->ops[i];

		if (op->action == MT__KERNEL__OP__ACTION__DELETE)
			deletes++;
		else
			creates++;
		puts(mtctl_format_op(op, line, sizeof(line)));
	}
	printf("\nPlan: %zu to create, %zu to delete.\n", creates, deletes);
}

int mtctl_cmd_plan(struct mtctl *ctx, int argc, char **argv)
{
	Mt__Rpc__PlanRequest in = MT__RPC__PLAN_REQUEST__INIT;
	Mt__Kernel__Plan empty = MT__KERNEL__PLAN__INIT;
	_cleanup_message_ ProtobufCMessage *out = NULL;
	const Mt__Kernel__Plan *plan;
	int r;

	r = customer_arg(ctx, argc, argv, &in.customer_id);
	if (r != MTCTL_EXIT_OK)
		return r;
	r = mtctl_agent_call(ctx, "Plan", &in.base, &out, "plan", NULL);
	if (r != MTCTL_EXIT_OK)
		return r;
	plan = ((const Mt__Rpc__PlanReply *)out)->plan;
	if (!plan)
		plan = &empty;
	if (ctx->output == MTCTL_OUTPUT_JSON) {
		if (mtctl_json_print_message(&plan->base, stdout) < 0)
			return MTCTL_EXIT_FAILED;
	} else {
		print_plan(plan);
	}
	if (ctx->exit_code && plan->n_ops > 0)
		return MTCTL_EXIT_PLAN_CHANGES;
	return MTCTL_EXIT_OK;
}

int mtctl_cmd_reconcile(struct mtctl *ctx, int argc, char **argv)
{
	Mt__Rpc__PlanRequest in = MT__RPC__PLAN_REQUEST__INIT;
	_cleanup_message_ ProtobufCMessage *out = NULL;
	const Mt__Rpc__ReconcileReply *rr;
	int r;

	in.fresh = ctx->fresh;
	r = customer_arg(ctx, argc, argv, &in.customer_id);
	if (r != MTCTL_EXIT_OK)
		return r;
	r = mtctl_agent_call(ctx, "Reconcile", &in.base, &out, "reconcile",
			     NULL);
	if (r != MTCTL_EXIT_OK)
		return r;
	rr = (const Mt__Rpc__ReconcileReply *)out;
	if (ctx->output == MTCTL_OUTPUT_JSON) {
		if (mtctl_json_print_message(out, stdout) < 0)
			return MTCTL_EXIT_FAILED;
	} else {
		printf("reconcile: %u op%s applied, %u failed\n", rr->ops,
		       rr->ops == 1 ? "" : "s", rr->failed);
		for (size_t i = 0; i < rr->n_errors; i++) {
			const Mt__Kernel__OpResult *e = rr->errors[i];

			if (e->error)
				printf("  error: %s (%s)\n", e->message,
				       strerror(-e->error));
			else
				printf("  error: %s\n", e->message);
		}
	}
	return rr->failed > 0 ? MTCTL_EXIT_FAILED : MTCTL_EXIT_OK;
}

/* ---- pause and resume ---- */

static int pause_resume(struct mtctl *ctx, int argc, char **argv, bool pause)
{
	Mt__Rpc__Empty in = MT__RPC__EMPTY__INIT;
	_cleanup_message_ ProtobufCMessage *out = NULL;
	json_t *j;
	int r;

	r = no_args(argc, argv);
	if (r != MTCTL_EXIT_OK)
		return r;
	r = mtctl_agent_call(ctx, pause ? "Pause" : "Resume", &in.base, &out,
			     argv[0], NULL);
	if (r != MTCTL_EXIT_OK)
		return r;
	if (ctx->output == MTCTL_OUTPUT_JSON) {
		j = json_pack("{s:s, s:b}", "instance", ctx->instance, "paused",
			      pause);
		return mtctl_json_print(j, stdout) < 0 ? MTCTL_EXIT_FAILED
						       : MTCTL_EXIT_OK;
	}
	printf("mt-agent (instance %s): reconciling %s\n", ctx->instance,
	       pause ? "paused; the kernel keeps its state" : "resumed");
	return MTCTL_EXIT_OK;
}

int mtctl_cmd_pause(struct mtctl *ctx, int argc, char **argv)
{
	return pause_resume(ctx, argc, argv, true);
}

int mtctl_cmd_resume(struct mtctl *ctx, int argc, char **argv)
{
	return pause_resume(ctx, argc, argv, false);
}
