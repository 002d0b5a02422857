/* RPC over real nng ipc sockets in a temporary directory: calls, status
 * codes, deadlines, the single-instance lock, and recovery from the nng 1.5.2
 * listener bug (a peer that connects and closes before the SP handshake). */
#include "mt_rpc.h"
#include "mt_test.h"
#include "mt_cleanup.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define SVC (&mt__rpc__fastpath__descriptor)
enum { M_OBSERVE, M_APPLY, M_PING };

static uint64_t pings;

static Mt__Rpc__Code h_observe(void *ctx, const ProtobufCMessage *in,
			       ProtobufCMessage **out, struct mt_rpc_status *st)
{
	return mt_rpc_fail(st, MT__RPC__CODE__FAILED_PRECONDITION,
			   "observe refused: %s", "test");
}

static Mt__Rpc__Code h_apply(void *ctx, const ProtobufCMessage *in,
			     ProtobufCMessage **out, struct mt_rpc_status *st)
{
	Mt__Rpc__ApplyReply *r = malloc(sizeof(*r));

	mt__rpc__apply_reply__init(r);
	r->failed = (uint32_t)((const Mt__Kernel__Plan *)in)->n_ops;
	*out = &r->base;
	return MT__RPC__CODE__OK;
}

static Mt__Rpc__Code h_ping(void *ctx, const ProtobufCMessage *in,
			    ProtobufCMessage **out, struct mt_rpc_status *st)
{
	Mt__Rpc__PingReply *r = malloc(sizeof(*r));

	mt__rpc__ping_reply__init(r);
	r->plans_applied = ++pings;
	*out = &r->base;
	return MT__RPC__CODE__OK;
}

static const struct mt_rpc_method methods[] = {
	{ h_observe }, { h_apply }, { h_ping },
};

static struct mt_rpc_server *server;
static atomic_bool stop;

static void *serve(void *arg)
{
	int fd = mt_rpc_server_fd(server);

	while (!atomic_load(&stop)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };

		if (poll(&p, 1, 20) > 0)
			mt_rpc_server_process(server);
	}
	return NULL;
}

static char url[300], path[256];

static int ping(struct mt_rpc_client *c, unsigned timeout_ms)
{
	Mt__Rpc__Empty e = MT__RPC__EMPTY__INIT;
	ProtobufCMessage *out = NULL;
	int r = mt_rpc_call(c, SVC, M_PING, &e.base, &out, timeout_ms, NULL);

	if (out)
		protobuf_c_message_free_unpacked(out, NULL);
	return r;
}

static void test_calls(void)
{
	struct mt_rpc_client *c;
	struct mt_rpc_status st;
	Mt__Rpc__ObserveRequest oreq = MT__RPC__OBSERVE_REQUEST__INIT;
	Mt__Kernel__Plan plan = MT__KERNEL__PLAN__INIT;
	Mt__Kernel__Op op = MT__KERNEL__OP__INIT, *ops[2] = { &op, &op };
	ProtobufCMessage *out = NULL;

	CHECK(mt_rpc_client_open(url, &c) == 0);
	CHECK(ping(c, 2000) == 0);
	CHECK(mt_rpc_call(c, SVC, M_OBSERVE, &oreq.base, &out, 2000, &st) ==
	      -EREMOTEIO);
	CHECK(st.code == MT__RPC__CODE__FAILED_PRECONDITION);
	CHECK_STR(st.message, "observe refused: test");
	plan.n_ops = 2;
	plan.ops = ops;
	CHECK(mt_rpc_call(c, SVC, M_APPLY, &plan.base, &out, 2000, &st) == 0);
	CHECK(out && ((Mt__Rpc__ApplyReply *)out)->failed == 2);
	protobuf_c_message_free_unpacked(out, NULL);
	/* wrong input type for the method */
	CHECK(mt_rpc_call(c, SVC, M_APPLY, &oreq.base, &out, 2000, &st) ==
	      -EINVAL);
	mt_rpc_client_close(c);
}

static void test_not_running(void)
{
	struct mt_rpc_client *c;
	char other[320];

	snprintf(other, sizeof(other), "%s-nobody", url);
	CHECK(mt_rpc_client_open(other, &c) == 0);
	CHECK(ping(c, 200) == -ECONNREFUSED);
	mt_rpc_client_close(c);
}

static void test_single_instance(void)
{
	struct mt_rpc_server *second;

	CHECK(mt_rpc_server_open(url, SVC, methods, MT_ARRAY_SIZE(methods),
				 NULL, &second) == -EADDRINUSE);
}

/* The nng 1.5.2 bug: connect and close without the SP handshake. */
static void poke_without_handshake(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	memcpy(sa.sun_path, path, strlen(path) + 1);
	CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	close(fd);
	usleep(100 * 1000);
}

static void test_listener_recovery(void)
{
	struct mt_rpc_client *c;
	int r;

	poke_without_handshake();
	/* A new client cannot get in while the listener is wedged ... */
	CHECK(mt_rpc_client_open(url, &c) == 0);
	r = ping(c, 300);
	fprintf(stderr, "  ping with a wedged listener: %d (%s)\n", r,
		r ? strerror(-r) : "answered: this nng has the bug fixed");
	mt_rpc_client_close(c);
	/* ... and the check notices and re-creates it. */
	r = mt_rpc_server_check(server, 500);
	CHECK(r == 1 || (r == 0 && mt_rpc_server_recoveries(server) == 0));
	CHECK(mt_rpc_client_open(url, &c) == 0);
	CHECK(ping(c, 2000) == 0);
	mt_rpc_client_close(c);
	/* healthy now */
	CHECK(mt_rpc_server_check(server, 500) == 0);
}

static void test_watchdog(void)
{
	struct mt_rpc_client *c;
	uint64_t before = mt_rpc_server_recoveries(server);

	CHECK(mt_rpc_server_watchdog_start(server, 200) == 0);
	poke_without_handshake();
	usleep(800 * 1000);
	CHECK(mt_rpc_client_open(url, &c) == 0);
	CHECK(ping(c, 2000) == 0);
	mt_rpc_client_close(c);
	fprintf(stderr, "  watchdog recoveries: %lu\n",
		(unsigned long)(mt_rpc_server_recoveries(server) - before));
}

int main(void)
{
	char dir[] = "/tmp/mt-rpc-test-XXXXXX";
	pthread_t t;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/fp.sock", dir);
	snprintf(url, sizeof(url), "ipc://%s", path);
	CHECK(mt_rpc_server_open(url, SVC, methods, MT_ARRAY_SIZE(methods),
				 NULL, &server) == 0);
	pthread_create(&t, NULL, serve, NULL);
	RUN(test_calls);
	RUN(test_not_running);
	RUN(test_single_instance);
	RUN(test_listener_recovery);
	RUN(test_watchdog);
	atomic_store(&stop, true);
	pthread_join(t, NULL);
	mt_rpc_server_close(server);
	unlink(path);
	strcat(path, ".lock");
	unlink(path);
	CHECK(rmdir(dir) == 0);
	TEST_MAIN_END();
}
