/* Small RPC probes for the benchmarks (tests/bench/run), talking to the
 * daemons of one instance over their sockets ($MT_RUN_DIR/<instance>/):
 *
 *   bench_tool wait-converged INSTANCE N MIN_REV TIMEOUT_MS
 *       Calls Agent.Status until the agent has N customers, all
 *       "converged", and applied_revision >= MIN_REV. Prints the
 *       CLOCK_REALTIME (ns) of the answer that said so. The agent serves
 *       its API from the same loop that reconciles, so a Status call made
 *       during a reconcile is answered right after it: the wait costs the
 *       agent nothing and ends within a few ms of the reconcile's end.
 *       Exit 1 on timeout (the last state on stderr).
 *   bench_tool observe INSTANCE COUNT
 *       Times COUNT Fastpath.Observe calls (everything mt owns) and prints
 *       {"median_ms", "min_ms", "max_ms", "objects"}.
 *   bench_tool fp-writes INSTANCE
 *       Prints mt-fastpath's kernel_writes counter (Fastpath.Ping).
 *
 * Exit 2 on usage errors, 3 when a call fails. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernel.pb-c.h"
#include "mt_rpc.h"
#include "rpc.pb-c.h"

enum { AGENT_STATUS = 0 };
enum { FP_OBSERVE = 0, FP_PING = 2 };

static double now_ms(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int open_client(const char *instance, const char *name,
		       struct mt_rpc_client **c)
{
	char url[300];
	int r;

	mt_rpc_url(instance, name, url, sizeof(url));
	r = mt_rpc_client_open(url, c);
	if (r < 0)
		fprintf(stderr, "bench_tool: %s: %s\n", url, strerror(-r));
	return r;
}

static bool all_converged(const Mt__Rpc__StatusReply *s, unsigned n,
			  uint64_t min_rev)
{
	if (s->customers != n || s->n_customer_status != n ||
	    s->applied_revision < min_rev)
		return false;
	for (size_t i = 0; i < s->n_customer_status; i++)
		if (strcmp(s->customer_status[i]->state, "converged") != 0)
			return false;
	return true;
}

static int wait_converged(const char *instance, unsigned n, uint64_t min_rev,
			  unsigned timeout_ms)
{
	Mt__Rpc__Empty e = MT__RPC__EMPTY__INIT;
	struct mt_rpc_client *c;
	double deadline = now_ms(CLOCK_MONOTONIC) + timeout_ms;
	char last[256] = "no answer";

	if (open_client(instance, "agent", &c) < 0)
		return 3;
	while (now_ms(CLOCK_MONOTONIC) < deadline) {
		Mt__Rpc__StatusReply *s = NULL;
		unsigned left = (unsigned)(deadline - now_ms(CLOCK_MONOTONIC));
		int r;

		r = mt_rpc_call(c, &mt__rpc__agent__descriptor, AGENT_STATUS,
				&e.base, (ProtobufCMessage **)&s,
				left ? left : 1, NULL);
		if (r == 0) {
			struct timespec ts;
			bool done = all_converged(s, n, min_rev);
			size_t conv = 0;

			clock_gettime(CLOCK_REALTIME, &ts);
			for (size_t i = 0; i < s->n_customer_status; i++)
				conv += strcmp(s->customer_status[i]->state,
					       "converged") == 0;
			snprintf(last, sizeof(last),
				 "%u customers, %zu converged, store revision %lu, applied %lu",
				 s->customers, conv,
				 (unsigned long)s->store_revision,
				 (unsigned long)s->applied_revision);
			protobuf_c_message_free_unpacked(&s->base, NULL);
			if (done) {
				printf("%lld\n", (long long)ts.tv_sec *
								 1000000000LL +
							 ts.tv_nsec);
				mt_rpc_client_close(c);
				return 0;
			}
		} else {
			snprintf(last, sizeof(last), "Status: %s",
				 strerror(-r));
		}
		usleep(5000);
	}
	fprintf(stderr, "bench_tool: not converged after %u ms: %s\n",
		timeout_ms, last);
	mt_rpc_client_close(c);
	return 1;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static size_t count_objects(const Mt__Kernel__KernelState *k)
{
	return k->n_netns + k->n_links + k->n_addrs + k->n_routes +
	       k->n_rules + k->n_sysctls + k->n_mark_tables +
	       k->n_mark_prefixes;
}

static int observe(const char *instance, unsigned count)
{
	Mt__Rpc__ObserveRequest req = MT__RPC__OBSERVE_REQUEST__INIT;
	struct mt_rpc_client *c;
	double *t = calloc(count, sizeof(*t));
	size_t objects = 0;

	if (!t || open_client(instance, "fastpath", &c) < 0)
		return 3;
	for (unsigned i = 0; i < count; i++) {
		Mt__Kernel__KernelState *k = NULL;
		double t0 = now_ms(CLOCK_MONOTONIC);
		int r = mt_rpc_call(c, &mt__rpc__fastpath__descriptor,
				    FP_OBSERVE, &req.base,
				    (ProtobufCMessage **)&k, 60000, NULL);

		if (r < 0) {
			fprintf(stderr, "bench_tool: Observe: %s\n",
				strerror(-r));
			return 3;
		}
		t[i] = now_ms(CLOCK_MONOTONIC) - t0;
		objects = count_objects(k);
		protobuf_c_message_free_unpacked(&k->base, NULL);
	}
	qsort(t, count, sizeof(*t), cmp_double);
	printf("{\"median_ms\": %.3f, \"min_ms\": %.3f, \"max_ms\": %.3f, \"objects\": %zu}\n",
	       t[count / 2], t[0], t[count - 1], objects);
	mt_rpc_client_close(c);
	free(t);
	return 0;
}

static int fp_writes(const char *instance)
{
	Mt__Rpc__Empty e = MT__RPC__EMPTY__INIT;
	Mt__Rpc__PingReply *p = NULL;
	struct mt_rpc_client *c;
	int r;

	if (open_client(instance, "fastpath", &c) < 0)
		return 3;
	r = mt_rpc_call(c, &mt__rpc__fastpath__descriptor, FP_PING, &e.base,
			(ProtobufCMessage **)&p, 5000, NULL);
	if (r < 0) {
		fprintf(stderr, "bench_tool: Ping: %s\n", strerror(-r));
		return 3;
	}
	printf("%lu\n", (unsigned long)p->kernel_writes);
	protobuf_c_message_free_unpacked(&p->base, NULL);
	mt_rpc_client_close(c);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench_tool wait-converged INSTANCE N MIN_REV TIMEOUT_MS\n"
		"       bench_tool observe INSTANCE COUNT\n"
		"       bench_tool fp-writes INSTANCE\n");
}

int main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "wait-converged") == 0)
		return wait_converged(argv[2], (unsigned)atoi(argv[3]),
				      strtoull(argv[4], NULL, 10),
				      (unsigned)atoi(argv[5]));
	if (argc == 4 && strcmp(argv[1], "observe") == 0 && atoi(argv[3]) > 0)
		return observe(argv[2], (unsigned)atoi(argv[3]));
	if (argc == 3 && strcmp(argv[1], "fp-writes") == 0)
		return fp_writes(argv[2]);
	usage();
	return 2;
}
