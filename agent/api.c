/* The Agent API (proto/rpc.proto service Agent), served to mtctl and
 * orchestrators. Writes go to the store; the store watch then drives the
 * reconcile, so API writes and direct store writes take the same path. */
#include "agent.h"
#include "prober.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mt_cleanup.h"
#include "mt_kstate.h"
#include "mt_log.h"
#include "mt_time.h"
#include "mt_validate.h"
#include "fw_status.h"
#include "tunnel_status.h"

#define NEW(type, init)                                                        \
	({                                                                     \
		type *_m = malloc(sizeof(type));                               \
		if (_m)                                                        \
			init(_m);                                              \
		_m;                                                            \
	})

static char *dup_str(const char *s)
{
	return strdup(s ? s : "");
}

static Mt__Rpc__CustomerStatus *customer_status(const struct agent_customer *e)
{
	Mt__Rpc__CustomerStatus *s =
		NEW(Mt__Rpc__CustomerStatus, mt__rpc__customer_status__init);

	if (!s)
		return NULL;
	s->id = e->id;
	s->name = dup_str(e->config ? e->config->name : "");
	s->revision = e->config_rev;
	s->state = dup_str(agent_state_name(e->state));
	s->error = dup_str(e->error);
	s->last_reconcile_ms = e->last_reconcile_ms;
	s->ops_applied = e->ops_applied;
	return s;
}

static Mt__Rpc__Code h_status(void *ctx, const ProtobufCMessage *in,
			      ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct agent *a = ctx;
	Mt__Rpc__StatusReply *r =
		NEW(Mt__Rpc__StatusReply, mt__rpc__status_reply__init);

	if (!r)
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
	r->instance = dup_str(a->metal.instance);
	r->paused = a->paused;
	r->fastpath_connected = a->fastpath_up;
	r->store_revision = a->store_revision;
	r->applied_revision = a->applied_revision;
	r->reconciles = a->reconciles;
	r->kernel_writes = a->kernel_writes;
	r->last_full_reconcile_ms = a->last_full_reconcile_ms;
	r->drift_events = a->drift_events;
	r->store = dup_str(a->store_url);
	r->started_ms = a->started_ms;
	r->customer_status =
		calloc(a->n_customers + 1, sizeof(*r->customer_status));
	for (size_t i = 0; r->customer_status && i < a->n_customers; i++) {
		struct agent_customer *e = &a->customers[i];

		if (e->config)
			r->customers++;
		if (e->state == CUSTOMER_REJECTED)
			r->rejected++;
		r->customer_status[r->n_customer_status] = customer_status(e);
		if (r->customer_status[r->n_customer_status])
			r->n_customer_status++;
	}
	*out = &r->base;
	return MT__RPC__CODE__OK;
}

static int add_customer(Mt__Rpc__CustomerList *l, const struct agent_customer *e)
{
	Mt__Config__Customer *c = e->config ?
		(Mt__Config__Customer *)mt_message_dup(&e->config->base) : NULL;
	Mt__Rpc__CustomerStatus *s = customer_status(e);

	if (s)
		l->status[l->n_status++] = s;
	if (c)
		l->customers[l->n_customers++] = c;
	return 0;
}

static Mt__Rpc__CustomerList *new_list(size_t n)
{
	Mt__Rpc__CustomerList *l =
		NEW(Mt__Rpc__CustomerList, mt__rpc__customer_list__init);

	if (!l)
		return NULL;
	l->customers = calloc(n + 1, sizeof(*l->customers));
	l->status = calloc(n + 1, sizeof(*l->status));
	if (!l->customers || !l->status) {
		protobuf_c_message_free_unpacked(&l->base, NULL);
		return NULL;
	}
	return l;
}

static Mt__Rpc__Code h_list(void *ctx, const ProtobufCMessage *in,
			    ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct agent *a = ctx;
	Mt__Rpc__CustomerList *l = new_list(a->n_customers);

	if (!l)
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
	for (size_t i = 0; i < a->n_customers; i++)
		add_customer(l, &a->customers[i]);
	*out = &l->base;
	return MT__RPC__CODE__OK;
}

static struct agent_customer *lookup(struct agent *a,
				     const Mt__Rpc__CustomerRef *ref)
{
	if (ref->id)
		return agent_find(a, ref->id);
	if (ref->name && *ref->name)
		return agent_find_name(a, ref->name);
	return NULL;
}

static Mt__Rpc__Code not_found(struct mt_rpc_status *st,
			       const Mt__Rpc__CustomerRef *ref)
{
	if (ref->id)
		return mt_rpc_fail(st, MT__RPC__CODE__NOT_FOUND,
				   "no customer with id %u", ref->id);
	if (ref->name && *ref->name)
		return mt_rpc_fail(st, MT__RPC__CODE__NOT_FOUND,
				   "no customer named \"%s\"", ref->name);
	return mt_rpc_fail(st, MT__RPC__CODE__INVALID_ARGUMENT,
			   "a customer id or name is required");
}

static Mt__Rpc__Code h_get(void *ctx, const ProtobufCMessage *in,
			   ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct agent *a = ctx;
	const Mt__Rpc__CustomerRef *ref = (const Mt__Rpc__CustomerRef *)in;
	struct agent_customer *e = lookup(a, ref);
	Mt__Rpc__CustomerList *l;

	if (!e)
		return not_found(st, ref);
	l = new_list(1);
	if (!l)
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
	add_customer(l, e);
	*out = &l->base;
	return MT__RPC__CODE__OK;
}

static Mt__Rpc__Code put_reply(ProtobufCMessage **out, uint64_t rev,
			       struct mt_rpc_status *st)
{
	Mt__Rpc__PutReply *r = NEW(Mt__Rpc__PutReply, mt__rpc__put_reply__init);

	if (!r)
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
	r->revision = rev;
	*out = &r->base;
	return MT__RPC__CODE__OK;
}

static Mt__Rpc__Code h_put(void *ctx, const ProtobufCMessage *in,
			   ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct agent *a = ctx;
	const Mt__Config__Customer *c = (const Mt__Config__Customer *)in;
	char err[MT_VALIDATE_ERR_MAX + 64];
	Mt__Config__Customer **others;
	size_t n_others;
	uint64_t rev = 0;
	int r;

	/* Validate against the store as it is now, not just what the agent
	 * has loaded: another writer may have raced us. */
	r = agent_load_store(a);
	if (r < 0)
		return mt_rpc_fail(st, MT__RPC__CODE__UNAVAILABLE,
				   "store %s: %s", a->store_url, strerror(-r));
	others = agent_configs(a, &n_others);
	if (!others)
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
	r = mt_validate_customer_set(&a->metal, c, others, n_others, err,
				     sizeof(err));
	free(others);
	if (r < 0)
		return mt_rpc_fail(st, r == -EINVAL ? MT__RPC__CODE__INVALID_ARGUMENT :
						      MT__RPC__CODE__INTERNAL,
				   "%s", r == -EINVAL ? err : strerror(-r));
	r = mt_store_put_customer(a->store, c, &rev);
	if (r < 0)
		return mt_rpc_fail(st, MT__RPC__CODE__UNAVAILABLE,
				   "customer %u \"%s\": store write failed: %s",
				   c->id, c->name, strerror(-r));
	mt_info("customer %u \"%s\" written to the store (revision %lu)",
		c->id, c->name, (unsigned long)rev);
	return put_reply(out, rev, st);
}

static Mt__Rpc__Code h_delete(void *ctx, const ProtobufCMessage *in,
			      ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct agent *a = ctx;
	const Mt__Rpc__CustomerRef *ref = (const Mt__Rpc__CustomerRef *)in;
	struct agent_customer *e;
	uint64_t rev = 0;
	int r;

	agent_load_store(a);
	e = lookup(a, ref);
	if (!e)
		return not_found(st, ref);
	r = mt_store_delete_customer(a->store, e->id, &rev);
	if (r == -ENOENT)
		return not_found(st, ref);
	if (r < 0)
		return mt_rpc_fail(st, MT__RPC__CODE__UNAVAILABLE,
				   "customer %u: store delete failed: %s", e->id,
				   strerror(-r));
	mt_info("customer %u deleted from the store (revision %lu)", ref->id ? ref->id : e->id,
		(unsigned long)rev);
	return put_reply(out, rev, st);
}

/* The scope of a Plan/Reconcile request: one customer, or everything. */
static Mt__Rpc__Code request_scope(struct agent *a, uint32_t id,
				   struct agent_scope *scope,
				   struct mt_rpc_status *st)
{
	struct agent_customer *e;

	if (id == 0) {
		scope->full = true;
		return MT__RPC__CODE__OK;
	}
	e = agent_find(a, id);
	if (!e || !e->config)
		return mt_rpc_fail(st, MT__RPC__CODE__NOT_FOUND,
				   "no customer with id %u", id);
	agent_scope_add(scope, e->config->name);
	return MT__RPC__CODE__OK;
}

static Mt__Rpc__Code fastpath_error(struct mt_rpc_status *st, int r)
{
	return mt_rpc_fail(st, MT__RPC__CODE__UNAVAILABLE,
			   "mt-fastpath did not answer: %s", strerror(-r));
}

static Mt__Rpc__Code h_plan(void *ctx, const ProtobufCMessage *in,
			    ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct agent *a = ctx;
	const Mt__Rpc__PlanRequest *req = (const Mt__Rpc__PlanRequest *)in;
	struct agent_scope scope = { 0 };
	Mt__Rpc__PlanReply *reply;
	Mt__Kernel__Plan *plan = NULL;
	Mt__Rpc__Code code;
	int r;

	agent_load_store(a);
	code = request_scope(a, req->customer_id, &scope, st);
	if (code != MT__RPC__CODE__OK)
		goto out;
	r = agent_reconcile(a, &scope, true, &plan, NULL);
	if (r < 0) {
		code = fastpath_error(st, r);
		goto out;
	}
	reply = NEW(Mt__Rpc__PlanReply, mt__rpc__plan_reply__init);
	if (!reply) {
		mt_plan_free(plan);
		code = mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
		goto out;
	}
	reply->plan = plan;
	*out = &reply->base;
out:
	agent_scope_clear(&scope);
	free(scope.owners);
	return code;
}

static Mt__Rpc__Code h_reconcile(void *ctx, const ProtobufCMessage *in,
				 ProtobufCMessage **out,
				 struct mt_rpc_status *st)
{
	struct agent *a = ctx;
	const Mt__Rpc__PlanRequest *req = (const Mt__Rpc__PlanRequest *)in;
	struct agent_scope scope = { 0 };
	Mt__Rpc__ReconcileReply *reply;
	Mt__Rpc__Code code;
	uint64_t rev;
	int r;

	agent_load_store(a);
	rev = a->store_revision;
	code = request_scope(a, req->customer_id, &scope, st);
	if (code != MT__RPC__CODE__OK)
		goto out;
	scope.fresh = req->fresh;
	reply = NEW(Mt__Rpc__ReconcileReply, mt__rpc__reconcile_reply__init);
	if (!reply) {
		code = mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
		goto out;
	}
	r = agent_reconcile(a, &scope, false, NULL, reply);
	if (r < 0) {
		protobuf_c_message_free_unpacked(&reply->base, NULL);
		code = fastpath_error(st, r);
		goto out;
	}
	if (r == 0 && scope.full) {
		/* the kernel now matches rev, as after run_pending's full
		 * reconciles (which a paused agent does not run) */
		a->applied_revision = rev;
		a->last_full_reconcile_ms = mt_realtime_ms();
	}
	*out = &reply->base;
out:
	agent_scope_clear(&scope);
	free(scope.owners);
	return code;
}

static Mt__Rpc__Code empty_reply(ProtobufCMessage **out,
				 struct mt_rpc_status *st)
{
	Mt__Rpc__Empty *e = NEW(Mt__Rpc__Empty, mt__rpc__empty__init);

	if (!e)
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
	*out = &e->base;
	return MT__RPC__CODE__OK;
}

static Mt__Rpc__Code h_pause(void *ctx, const ProtobufCMessage *in,
			     ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct agent *a = ctx;

	if (!a->paused)
		mt_info("paused: automatic reconciles stop until resume");
	a->paused = true;
	return empty_reply(out, st);
}

static Mt__Rpc__Code h_resume(void *ctx, const ProtobufCMessage *in,
			      ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct agent *a = ctx;

	if (a->paused)
		mt_info("resumed: reconciling everything");
	a->paused = false;
	a->pending.full = true;
	return empty_reply(out, st);
}

/* ListTunnels: the configs in force joined with one observation (with
 * counters) of the customers asked for. */
static Mt__Rpc__Code h_tunnels(void *ctx, const ProtobufCMessage *in,
			       ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct agent *a = ctx;
	const Mt__Rpc__CustomerRef *ref = (const Mt__Rpc__CustomerRef *)in;
	Mt__Rpc__ObserveRequest req = MT__RPC__OBSERVE_REQUEST__INIT;
	const Mt__Config__Customer **cs = NULL;
	Mt__Rpc__TunnelList *list = NULL;
	ProtobufCMessage *obs = NULL;
	struct mt_rpc_status fst;
	Mt__Rpc__Code code = MT__RPC__CODE__OK;
	char **owners = NULL;
	size_t n = 0;
	int r;

	cs = calloc(a->n_customers + 1, sizeof(*cs));
	owners = calloc(a->n_customers + 1, sizeof(*owners));
	if (!cs || !owners) {
		code = mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
		goto out;
	}
	if (ref->id || (ref->name && *ref->name)) {
		struct agent_customer *e = lookup(a, ref);

		if (!e || !e->config) {
			code = not_found(st, ref);
			goto out;
		}
		cs[n] = e->config;
		owners[n++] = e->config->name;
	} else {
		for (size_t i = 0; i < a->n_customers; i++)
			if (a->customers[i].config &&
			    a->customers[i].config->n_tunnels) {
				cs[n] = a->customers[i].config;
				owners[n] = cs[n]->name;
				n++;
			}
	}
	list = NEW(Mt__Rpc__TunnelList, mt__rpc__tunnel_list__init);
	if (!list) {
		code = mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
		goto out;
	}
	if (n == 0) {
		*out = &list->base;
		list = NULL;
		goto out;
	}
	req.owners = owners;
	req.n_owners = n;
	req.counters = true;
	r = mt_rpc_call(a->fastpath, &mt__rpc__fastpath__descriptor,
			FP_OBSERVE, &req.base, &obs, a->rpc_timeout_ms, &fst);
	if (r < 0) {
		code = fastpath_error(st, r);
		goto out;
	}
	for (size_t i = 0; i < n; i++)
		if (mt_tunnel_status_build(&a->metal, cs[i],
					   (const Mt__Kernel__KernelState *)obs,
					   list) < 0) {
			code = mt_rpc_fail(st, MT__RPC__CODE__INTERNAL,
					   "out of memory");
			goto out;
		}
	/* what the prober knows of each */
	for (size_t i = 0; a->prober && i < list->n_tunnels; i++) {
		Mt__Rpc__TunnelStatus *t = list->tunnels[i];

		t->health = prober_health(a->prober, t->customer, t->name);
	}
	*out = &list->base;
	list = NULL;
out:
	if (list)
		protobuf_c_message_free_unpacked(&list->base, NULL);
	if (obs)
		protobuf_c_message_free_unpacked(obs, NULL);
	free(cs);
	free(owners);
	return code;
}

/* ShowFirewall: one customer's firewall config in force joined with one
 * observation (with counters) of that customer's namespace only. */
static Mt__Rpc__Code h_firewall(void *ctx, const ProtobufCMessage *in,
				ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct agent *a = ctx;
	const Mt__Rpc__CustomerRef *ref = (const Mt__Rpc__CustomerRef *)in;
	Mt__Rpc__ObserveRequest req = MT__RPC__OBSERVE_REQUEST__INIT;
	Mt__Rpc__FirewallStatus *status = NULL;
	ProtobufCMessage *obs = NULL;
	struct agent_customer *e;
	struct mt_rpc_status fst;
	char err[512];
	char *owner;
	int r;

	e = lookup(a, ref);
	if (!e)
		return not_found(st, ref);
	if (!e->config)
		return mt_rpc_fail(st, MT__RPC__CODE__FAILED_PRECONDITION,
				   "customer %u has no valid config in force%s%s",
				   e->id, *e->error ? ": " : "", e->error);
	owner = e->config->name;
	req.owners = &owner;
	req.n_owners = 1;
	req.counters = true;
	r = mt_rpc_call(a->fastpath, &mt__rpc__fastpath__descriptor,
			FP_OBSERVE, &req.base, &obs, a->rpc_timeout_ms, &fst);
	if (r == -EREMOTEIO)
		return mt_rpc_fail(st, MT__RPC__CODE__UNAVAILABLE,
				   "customer %u \"%s\": mt-fastpath could not "
				   "observe the firewall: %s",
				   e->id, owner,
				   fst.message[0] ? fst.message :
						    mt_rpc_code_name(fst.code));
	if (r < 0)
		return fastpath_error(st, r);
	r = mt_fw_status_build(&a->metal, e->config,
			       (const Mt__Kernel__KernelState *)obs, &status,
			       err, sizeof(err));
	protobuf_c_message_free_unpacked(obs, NULL);
	if (r < 0)
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "%s", err);
	*out = &status->base;
	return MT__RPC__CODE__OK;
}

/* In the order of service Agent in proto/rpc.proto. */
static const struct mt_rpc_method agent_methods[] = {
	{ h_status }, { h_list },      { h_get },   { h_put },   { h_delete },
	{ h_plan },   { h_reconcile }, { h_pause }, { h_resume },
	{ h_tunnels }, { h_firewall },
};

int agent_api_open(struct agent *a, const char *url)
{
	return mt_rpc_server_open(url, &mt__rpc__agent__descriptor,
				  agent_methods, MT_ARRAY_SIZE(agent_methods),
				  a, &a->api);
}
