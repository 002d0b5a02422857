/* A stand-in mt-agent for testing mtctl (cli/test_mtctl.sh): serves the
 * Agent service on mt_rpc_url(instance, "agent") with customers held in
 * memory. No kernel, no store, no root.
 *
 * Usage: mtctl_fake_agent INSTANCE [DELAY_MS]
 * It answers every successful call after DELAY_MS (default 0), and exits on
 * SIGTERM or SIGINT, or by itself after 120 s (a test that forgets it leaks
 * nothing).
 *
 * Canned behaviour the test relies on:
 *   - PutCustomer refuses a customer named "rejectme" (INVALID_ARGUMENT);
 *   - Plan: one "create netns" op per customer (filtered by customer_id),
 *     empty when there are no customers;
 *   - Reconcile: one op per customer, and a failure for a customer named
 *     "broken".
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mt_kstate.h"
#include "mt_rpc.h"
#include "mt_time.h"

#define MAX_CUSTOMERS 64
#define LIFETIME_MS 120000

static struct {
	const char *instance;
	unsigned delay_ms;
	Mt__Config__Customer *c[MAX_CUSTOMERS];
	size_t n;
	uint64_t rev;
	bool paused;
} fake;

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	stop = 1;
}

static void delay(void)
{
	struct timespec ts = {fake.delay_ms / 1000,
			      (long)(fake.delay_ms % 1000) * 1000000};

	if (fake.delay_ms)
		nanosleep(&ts, NULL);
}

/* Handlers build replies that borrow pointers, then return a heap copy. */
static Mt__Rpc__Code reply(const ProtobufCMessage *m, ProtobufCMessage **out,
			   struct mt_rpc_status *st)
{
	delay();
	*out = mt_message_dup(m);
	if (!*out)
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "no memory");
	return MT__RPC__CODE__OK;
}

static ssize_t find(uint32_t id, const char *name)
{
	for (size_t i = 0; i < fake.n; i++)
		if (id ? fake.c[i]->id == id
		       : strcmp(fake.c[i]->name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static void status_of(const Mt__Config__Customer *c, Mt__Rpc__CustomerStatus *s)
{
	mt__rpc__customer_status__init(s);
	s->id = c->id;
	s->name = c->name;
	s->revision = fake.rev;
	s->state = strcmp(c->name, "broken") == 0 ? "error" : "converged";
	s->error = strcmp(c->name, "broken") == 0
		       ? "netns mt0-broken: File exists"
		       : "";
	s->last_reconcile_ms = mt_realtime_ms() - 3000;
	s->ops_applied = 1;
}

static Mt__Rpc__Code h_status(void *ctx, const ProtobufCMessage *in,
			      ProtobufCMessage **out, struct mt_rpc_status *st)
{
	Mt__Rpc__StatusReply r = MT__RPC__STATUS_REPLY__INIT;
	Mt__Rpc__CustomerStatus s[MAX_CUSTOMERS], *sp[MAX_CUSTOMERS];

	r.instance = (char *)fake.instance;
	r.paused = fake.paused;
	r.fastpath_connected = true;
	r.store_revision = fake.rev;
	r.applied_revision = fake.rev;
	r.customers = (uint32_t)fake.n;
	r.reconciles = 7;
	r.kernel_writes = 42;
	r.last_full_reconcile_ms = mt_realtime_ms() - 5000;
	r.store = "lmdb:/var/lib/mt/fake";
	r.started_ms = mt_realtime_ms() - 3600000;
	for (size_t i = 0; i < fake.n; i++) {
		status_of(fake.c[i], &s[i]);
		sp[i] = &s[i];
	}
	r.n_customer_status = fake.n;
	r.customer_status = sp;
	return reply(&r.base, out, st);
}

static Mt__Rpc__Code list(ssize_t only, ProtobufCMessage **out,
			  struct mt_rpc_status *st)
{
	Mt__Rpc__CustomerList r = MT__RPC__CUSTOMER_LIST__INIT;
	Mt__Rpc__CustomerStatus s[MAX_CUSTOMERS], *sp[MAX_CUSTOMERS];
	Mt__Config__Customer *cp[MAX_CUSTOMERS];

	for (size_t i = 0; i < fake.n; i++) {
		if (only >= 0 && (size_t)only != i)
			continue;
		status_of(fake.c[i], &s[r.n_status]);
		sp[r.n_status] = &s[r.n_status];
		r.n_status++;
		cp[r.n_customers++] = fake.c[i];
	}
	r.customers = cp;
	r.status = sp;
	return reply(&r.base, out, st);
}

static Mt__Rpc__Code h_list(void *ctx, const ProtobufCMessage *in,
			    ProtobufCMessage **out, struct mt_rpc_status *st)
{
	return list(-1, out, st);
}

static Mt__Rpc__Code h_get(void *ctx, const ProtobufCMessage *in,
			   ProtobufCMessage **out, struct mt_rpc_status *st)
{
	const Mt__Rpc__CustomerRef *ref = (const Mt__Rpc__CustomerRef *)in;
	ssize_t i = find(ref->id, ref->name);

	if (i < 0)
		return mt_rpc_fail(st, MT__RPC__CODE__NOT_FOUND,
				   "no customer %u \"%s\"", ref->id, ref->name);
	return list(i, out, st);
}

static Mt__Rpc__Code put_reply(ProtobufCMessage **out, struct mt_rpc_status *st)
{
	Mt__Rpc__PutReply r = MT__RPC__PUT_REPLY__INIT;

	r.revision = ++fake.rev;
	return reply(&r.base, out, st);
}

static Mt__Rpc__Code h_put(void *ctx, const ProtobufCMessage *in,
			   ProtobufCMessage **out, struct mt_rpc_status *st)
{
	const Mt__Config__Customer *c = (const Mt__Config__Customer *)in;
	ssize_t i = find(c->id, NULL);
	ProtobufCMessage *copy;

	if (strcmp(c->name, "rejectme") == 0)
		return mt_rpc_fail(st, MT__RPC__CODE__INVALID_ARGUMENT,
				   "customer %u \"%s\": refused by the fake "
				   "agent",
				   c->id, c->name);
	copy = mt_message_dup(in);
	if (!copy)
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "no memory");
	if (i >= 0) {
		protobuf_c_message_free_unpacked(&fake.c[i]->base, NULL);
	} else if (fake.n == MAX_CUSTOMERS) {
		protobuf_c_message_free_unpacked(copy, NULL);
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "full");
	} else {
		i = (ssize_t)fake.n++;
	}
	fake.c[i] = (Mt__Config__Customer *)copy;
	return put_reply(out, st);
}

static Mt__Rpc__Code h_delete(void *ctx, const ProtobufCMessage *in,
			      ProtobufCMessage **out, struct mt_rpc_status *st)
{
	const Mt__Rpc__CustomerRef *ref = (const Mt__Rpc__CustomerRef *)in;
	ssize_t i = find(ref->id, ref->name);

	if (i < 0)
		return mt_rpc_fail(st, MT__RPC__CODE__NOT_FOUND,
				   "no customer %u \"%s\"", ref->id, ref->name);
	protobuf_c_message_free_unpacked(&fake.c[i]->base, NULL);
	fake.c[i] = fake.c[--fake.n];
	return put_reply(out, st);
}

static Mt__Rpc__Code h_plan(void *ctx, const ProtobufCMessage *in,
			    ProtobufCMessage **out, struct mt_rpc_status *st)
{
	uint32_t id = ((const Mt__Rpc__PlanRequest *)in)->customer_id;
	Mt__Rpc__PlanReply r = MT__RPC__PLAN_REPLY__INIT;
	Mt__Kernel__Plan *p = mt_plan_new();
	Mt__Rpc__Code code;

	if (!p)
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "no memory");
	for (size_t i = 0; i < fake.n; i++) {
		Mt__Kernel__Netns ns = MT__KERNEL__NETNS__INIT;
		char name[32];

		if (id && fake.c[i]->id != id)
			continue;
		snprintf(name, sizeof(name), "mt%s-%s", fake.instance,
			 fake.c[i]->name);
		ns.name = name;
		ns.owner = fake.c[i]->name;
		mt_plan_add(p, MT__KERNEL__OP__ACTION__CREATE, &ns.base);
	}
	r.plan = p;
	code = reply(&r.base, out, st);
	mt_plan_free(p);
	return code;
}

static Mt__Rpc__Code h_reconcile(void *ctx, const ProtobufCMessage *in,
				 ProtobufCMessage **out,
				 struct mt_rpc_status *st)
{
	uint32_t id = ((const Mt__Rpc__PlanRequest *)in)->customer_id;
	Mt__Rpc__ReconcileReply r = MT__RPC__RECONCILE_REPLY__INIT;
	Mt__Kernel__OpResult e = MT__KERNEL__OP_RESULT__INIT, *ep = &e;

	for (size_t i = 0; i < fake.n; i++) {
		if (id && fake.c[i]->id != id)
			continue;
		r.ops++;
		if (strcmp(fake.c[i]->name, "broken") == 0) {
			r.failed++;
			e.error = -EEXIST;
			e.message = "create netns mt0-broken";
			r.errors = &ep;
			r.n_errors = 1;
		}
	}
	return reply(&r.base, out, st);
}

static Mt__Rpc__Code pause_resume(bool paused, ProtobufCMessage **out,
				  struct mt_rpc_status *st)
{
	Mt__Rpc__Empty r = MT__RPC__EMPTY__INIT;

	fake.paused = paused;
	return reply(&r.base, out, st);
}

static Mt__Rpc__Code h_pause(void *ctx, const ProtobufCMessage *in,
			     ProtobufCMessage **out, struct mt_rpc_status *st)
{
	return pause_resume(true, out, st);
}

static Mt__Rpc__Code h_resume(void *ctx, const ProtobufCMessage *in,
			      ProtobufCMessage **out, struct mt_rpc_status *st)
{
	return pause_resume(false, out, st);
}

/* The order of the Agent service in proto/rpc.proto. */
static const struct {
	const char *name;
	mt_rpc_handler_fn fn;
} handlers[] = {
    {"Status", h_status},	  {"ListCustomers", h_list},
    {"GetCustomer", h_get},	  {"PutCustomer", h_put},
    {"DeleteCustomer", h_delete}, {"Plan", h_plan},
    {"Reconcile", h_reconcile},	  {"Pause", h_pause},
    {"Resume", h_resume},
};

int main(int argc, char **argv)
{
	const ProtobufCServiceDescriptor *svc = &mt__rpc__agent__descriptor;
	struct mt_rpc_method methods[16];
	struct mt_rpc_server *server;
	uint64_t deadline = mt_monotonic_ms() + LIFETIME_MS;
	char url[300];
	int r, fd;

	if (argc < 2 || svc->n_methods > 16) {
		fprintf(stderr, "usage: %s INSTANCE [DELAY_MS]\n", argv[0]);
		return 2;
	}
	fake.instance = argv[1];
	fake.delay_ms = argc > 2 ? (unsigned)atoi(argv[2]) : 0;
	/* Map handlers by method name, so a reordered service is caught. */
	for (size_t i = 0; i < svc->n_methods; i++) {
		methods[i].fn = NULL;
		for (size_t j = 0; j < sizeof(handlers) / sizeof(*handlers);
		     j++)
			if (strcmp(handlers[j].name, svc->methods[i].name) == 0)
				methods[i].fn = handlers[j].fn;
		if (!methods[i].fn) {
			fprintf(stderr, "fake agent: no handler for %s\n",
				svc->methods[i].name);
			return 1;
		}
	}
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	mt_rpc_url(fake.instance, "agent", url, sizeof(url));
	r = mt_rpc_server_open(url, svc, methods, svc->n_methods, NULL,
			       &server);
	if (r < 0) {
		fprintf(stderr, "fake agent: %s: %s\n", url, strerror(-r));
		return 1;
	}
	fd = mt_rpc_server_fd(server);
	while (!stop && mt_monotonic_ms() < deadline) {
		struct pollfd p = {.fd = fd, .events = POLLIN};

		if (poll(&p, 1, 100) > 0)
			mt_rpc_server_process(server);
	}
	mt_rpc_server_close(server);
	for (size_t i = 0; i < fake.n; i++)
		protobuf_c_message_free_unpacked(&fake.c[i]->base, NULL);
	return 0;
}
