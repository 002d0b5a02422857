/* RPC server side: a REP socket dispatching to handlers by method index, the
 * single-instance lock, and the listener watchdog for the nng 1.5.2 ipc bug
 * (a listener that stops accepting after a peer closes before the SP
 * handshake: KERNEL_NOTES.md, upstream nng issue 1518). */
#include "mt_rpc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/un.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <nng/protocol/reqrep0/req.h>

#include "mt_cleanup.h"
#include "mt_log.h"
#include "mt_time.h"

/* The service name of the watchdog's probe calls, answered by the server
 * loop itself. */
#define PROBE_SERVICE "mt.rpc.Probe"
/* How long a reply may wait for the caller's pipe to take it. */
#define REPLY_TIMEOUT_MS 2000

struct mt_rpc_server {
	nng_socket sock;
	nng_listener listener;
	pthread_mutex_t listener_lock;
	char url[256];
	char path[256];
	int lock_fd;
	const ProtobufCServiceDescriptor *svc;
	const struct mt_rpc_method *methods;
	void *ctx;
	pthread_t watchdog;
	bool watchdog_running;
	atomic_bool stop;
	unsigned watchdog_period_ms;
	atomic_uint_fast64_t recoveries;
	/* Set while a call is being handled, or while the daemon's loop is
	 * not waiting in poll(): the watchdog does not mistake a loop busy
	 * with long work for a wedged listener. */
	atomic_bool busy;
	atomic_bool loop_busy;
	/* Milliseconds the loop has spent busy, and since when it is busy
	 * now: a probe that started while the loop was idle can still go
	 * unanswered because long work began (and ended) while it waited. */
	atomic_uint_fast64_t busy_ms, busy_since_ms;
};

static int ipc_path(const char *url, char *buf, size_t len)
{
	if (strncmp(url, "ipc://", 6) != 0)
		return -EINVAL;
	if ((size_t)snprintf(buf, len, "%s", url + 6) >= len ||
	    strlen(url + 6) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

/* Takes <path>.lock exclusively so that only one process ever listens on
 * path: a second one fails here instead of connecting to (and wedging) the
 * first one's listener. */
static int take_lock(const char *path)
{
	char lock[300];
	int fd;

	snprintf(lock, sizeof(lock), "%s.lock", path);
	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return mt_neg_errno();
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int r = errno == EWOULDBLOCK ? -EADDRINUSE : mt_neg_errno();

		close(fd);
		return r;
	}
	return fd;
}

static int start_listener(struct mt_rpc_server *s)
{
	int e;

	/* We hold the lock: whatever socket file is there is stale. */
	unlink(s->path);
	e = nng_listener_create(&s->listener, s->sock, s->url);
	if (e)
		return mt_rpc_errno(e);
	nng_listener_set_int(s->listener, NNG_OPT_IPC_PERMISSIONS, 0600);
	e = nng_listener_start(s->listener, 0);
	if (e) {
		nng_listener_close(s->listener);
		return mt_rpc_errno(e);
	}
	return 0;
}

int mt_rpc_server_open(const char *url, const ProtobufCServiceDescriptor *svc,
		       const struct mt_rpc_method *methods, size_t n_methods,
		       void *ctx, struct mt_rpc_server **out)
{
	struct mt_rpc_server *s;
	int r, e;

	if (n_methods != svc->n_methods)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->lock_fd = -1;
	pthread_mutex_init(&s->listener_lock, NULL);
	snprintf(s->url, sizeof(s->url), "%s", url);
	r = ipc_path(url, s->path, sizeof(s->path));
	if (r < 0)
		goto fail;
	r = take_lock(s->path);
	if (r < 0)
		goto fail;
	s->lock_fd = r;
	s->svc = svc;
	s->methods = methods;
	s->ctx = ctx;
	e = nng_rep0_open(&s->sock);
	if (e) {
		r = mt_rpc_errno(e);
		goto fail;
	}
	nng_socket_set_ms(s->sock, NNG_OPT_SENDTIMEO, REPLY_TIMEOUT_MS);
	nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, MT_RPC_MSG_MAX);
	r = start_listener(s);
	if (r < 0) {
		nng_close(s->sock);
		goto fail;
	}
	*out = s;
	return 0;
fail:
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	free(s);
	return r;
}

void mt_rpc_server_close(struct mt_rpc_server *s)
{
	if (!s)
		return;
	if (s->watchdog_running) {
		atomic_store(&s->stop, true);
		pthread_join(s->watchdog, NULL);
	}
	nng_close(s->sock);
	unlink(s->path);
	close(s->lock_fd);
	pthread_mutex_destroy(&s->listener_lock);
	free(s);
}

int mt_rpc_server_fd(struct mt_rpc_server *s)
{
	int fd = -1;
	int e = nng_socket_get_int(s->sock, NNG_OPT_RECVFD, &fd);

	return e ? mt_rpc_errno(e) : fd;
}

static void reply(struct mt_rpc_server *s, Mt__Rpc__Code code,
		  const char *message, const ProtobufCMessage *body)
{
	Mt__Rpc__Response resp = MT__RPC__RESPONSE__INIT;
	_cleanup_free_ uint8_t *bbuf = NULL, *wire = NULL;
	size_t blen = 0, wlen;
	int e;

	resp.code = code;
	resp.message = (char *)(message ? message : "");
	if (body) {
		blen = protobuf_c_message_get_packed_size(body);
		bbuf = malloc(blen ? blen : 1);
		if (!bbuf) {
			resp.code = MT__RPC__CODE__INTERNAL;
			resp.message = "out of memory packing the reply";
		} else {
			protobuf_c_message_pack(body, bbuf);
			resp.body.data = bbuf;
			resp.body.len = blen;
		}
	}
	wlen = mt__rpc__response__get_packed_size(&resp);
	wire = malloc(wlen ? wlen : 1);
	if (!wire)
		return;
	mt__rpc__response__pack(&resp, wire);
	/* Blocking, bounded by the socket's send timeout: a non-blocking send
	 * fails with EAGAIN while the pipe is still writing the previous
	 * reply, and a lost reply costs the caller its whole timeout. */
	e = nng_send(s->sock, wire, wlen, 0);
	if (e)
		mt_warn("rpc %s: reply not sent: %s", s->svc->name,
			nng_strerror(e));
}

static void handle(struct mt_rpc_server *s, const uint8_t *buf, size_t len)
{
	struct mt_rpc_status st = { MT__RPC__CODE__OK, "" };
	const ProtobufCMethodDescriptor *md;
	Mt__Rpc__Request *req;
	ProtobufCMessage *in = NULL, *out = NULL;
	Mt__Rpc__Code code;

	req = mt__rpc__request__unpack(NULL, len, buf);
	if (!req) {
		reply(s, MT__RPC__CODE__INVALID_ARGUMENT,
		      "request does not decode as mt.rpc.Request", NULL);
		return;
	}
	if (strcmp(req->service, PROBE_SERVICE) == 0) {
		reply(s, MT__RPC__CODE__OK, "", NULL);
		goto out;
	}
	if (strcmp(req->service, s->svc->name) != 0) {
		char msg[256];

		snprintf(msg, sizeof(msg), "service %s is not served here (this is %s)",
			 req->service, s->svc->name);
		reply(s, MT__RPC__CODE__UNIMPLEMENTED, msg, NULL);
		goto out;
	}
	if (req->method >= s->svc->n_methods) {
		char msg[128];

		snprintf(msg, sizeof(msg), "%s has no method %u", s->svc->name,
			 req->method);
		reply(s, MT__RPC__CODE__UNIMPLEMENTED, msg, NULL);
		goto out;
	}
	md = &s->svc->methods[req->method];
	if (req->deadline_ms && req->deadline_ms < mt_realtime_ms()) {
		reply(s, MT__RPC__CODE__DEADLINE_EXCEEDED,
		      "deadline passed before the call was handled", NULL);
		goto out;
	}
	in = protobuf_c_message_unpack(md->input, NULL, req->body.len,
				       req->body.data);
	if (!in) {
		char msg[256];

		snprintf(msg, sizeof(msg), "%s.%s: request body does not decode as %s",
			 s->svc->name, md->name, md->input->name);
		reply(s, MT__RPC__CODE__INVALID_ARGUMENT, msg, NULL);
		goto out;
	}
	code = s->methods[req->method].fn(s->ctx, in, &out, &st);
	if (code == MT__RPC__CODE__OK && out && out->descriptor != md->output) {
		mt_err("rpc %s.%s: handler returned %s, not %s", s->svc->name,
		       md->name, out->descriptor->name, md->output->name);
		code = mt_rpc_fail(&st, MT__RPC__CODE__INTERNAL,
				   "handler returned the wrong message type");
	}
	if (code == MT__RPC__CODE__OK && !out)
		code = mt_rpc_fail(&st, MT__RPC__CODE__INTERNAL,
				   "handler returned no reply");
	reply(s, code, code == MT__RPC__CODE__OK ? "" : st.message,
	      code == MT__RPC__CODE__OK ? out : NULL);
out:
	if (out)
		protobuf_c_message_free_unpacked(out, NULL);
	if (in)
		protobuf_c_message_free_unpacked(in, NULL);
	mt__rpc__request__free_unpacked(req, NULL);
}

int mt_rpc_server_process(struct mt_rpc_server *s)
{
	int handled = 0;

	for (;;) {
		char *buf = NULL;
		size_t len = 0;
		int e = nng_recv(s->sock, &buf, &len,
				 NNG_FLAG_ALLOC | NNG_FLAG_NONBLOCK);

		if (e == NNG_EAGAIN)
			return handled;
		if (e)
			return mt_rpc_errno(e);
		atomic_store(&s->busy, true);
		handle(s, (const uint8_t *)buf, len);
		atomic_store(&s->busy, false);
		nng_free(buf, len);
		handled++;
	}
}

/* Makes a real call through the listener: a fresh REQ socket dials it and
 * sends a probe request, which the server loop answers without calling any
 * handler. A raw connect is not enough: a wedged nng 1.5.2 listener still
 * completes the SP handshake, it just never hands the new pipe to the socket.
 * Returns 0 if an answer came, -ETIMEDOUT if not, -errno otherwise. */
static int probe_listener(const char *url, unsigned timeout_ms)
{
	Mt__Rpc__Request req = MT__RPC__REQUEST__INIT;
	uint8_t wire[64];
	size_t len;
	nng_socket sock;
	char *buf = NULL;
	size_t blen = 0;
	int e;

	req.service = (char *)PROBE_SERVICE;
	len = mt__rpc__request__pack(&req, wire);
	e = nng_req0_open(&sock);
	if (e)
		return mt_rpc_errno(e);
	nng_socket_set_ms(sock, NNG_OPT_SENDTIMEO, (nng_duration)timeout_ms);
	nng_socket_set_ms(sock, NNG_OPT_RECVTIMEO, (nng_duration)timeout_ms);
	e = nng_dial(sock, url, NULL, 0);
	if (e == 0)
		e = nng_send(sock, wire, len, 0);
	if (e == 0)
		e = nng_recv(sock, &buf, &blen, NNG_FLAG_ALLOC);
	if (e == 0)
		nng_free(buf, blen);
	nng_close(sock);
	return mt_rpc_errno(e);
}

static uint64_t busy_total_ms(struct mt_rpc_server *s)
{
	uint64_t t = atomic_load(&s->busy_ms);

	if (atomic_load(&s->loop_busy))
		t += mt_monotonic_ms() - atomic_load(&s->busy_since_ms);
	return t;
}

int mt_rpc_server_check(struct mt_rpc_server *s, unsigned timeout_ms)
{
	int r;

	uint64_t busy0 = busy_total_ms(s);

	if (atomic_load(&s->busy) || atomic_load(&s->loop_busy))
		return 0; /* long work is running; check next time */
	r = probe_listener(s->url, timeout_ms);
	if (r == 0)
		return 0;
	/* the loop was busy, not the listener wedged: skip when it spent
	 * more than a quarter of the probe's wait on work */
	if (atomic_load(&s->busy) || atomic_load(&s->loop_busy) ||
	    busy_total_ms(s) - busy0 > timeout_ms / 4)
		return 0;
	mt_warn("rpc listener %s is not accepting connections (%s): re-creating it",
		s->url, strerror(-r));
	pthread_mutex_lock(&s->listener_lock);
	nng_listener_close(s->listener);
	r = start_listener(s);
	pthread_mutex_unlock(&s->listener_lock);
	if (r < 0) {
		mt_err("rpc listener %s: re-create failed: %s", s->url,
		       strerror(-r));
		return r;
	}
	atomic_fetch_add(&s->recoveries, 1);
	return 1;
}

void mt_rpc_server_idle(struct mt_rpc_server *s, bool idle)
{
	bool was_busy = atomic_load(&s->loop_busy);
	uint64_t now = mt_monotonic_ms();

	if (!idle && !was_busy)
		atomic_store(&s->busy_since_ms, now);
	else if (idle && was_busy)
		atomic_fetch_add(&s->busy_ms,
				 now - atomic_load(&s->busy_since_ms));
	atomic_store(&s->loop_busy, !idle);
}

uint64_t mt_rpc_server_recoveries(struct mt_rpc_server *s)
{
	return atomic_load(&s->recoveries);
}

static void *watchdog_main(void *arg)
{
	struct mt_rpc_server *s = arg;
	uint64_t next = mt_monotonic_ms() + s->watchdog_period_ms;

	while (!atomic_load(&s->stop)) {
		usleep(50 * 1000);
		if (mt_monotonic_ms() < next)
			continue;
		mt_rpc_server_check(s, 1000);
		next = mt_monotonic_ms() + s->watchdog_period_ms;
	}
	return NULL;
}

int mt_rpc_server_watchdog_start(struct mt_rpc_server *s, unsigned period_ms)
{
	int r;

	s->watchdog_period_ms = period_ms;
	r = pthread_create(&s->watchdog, NULL, watchdog_main, s);
	if (r)
		return -r;
	s->watchdog_running = true;
	return 0;
}
