/* RPC client side, events, and the helpers both ends share. */
#include "mt_rpc.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/pubsub0/pub.h>
#include <nng/protocol/pubsub0/sub.h>
#include <nng/protocol/reqrep0/req.h>

#include "mt_cleanup.h"
#include "mt_log.h"
#include "mt_metal.h"
#include "mt_time.h"

Mt__Rpc__Code mt_rpc_fail(struct mt_rpc_status *st, Mt__Rpc__Code code,
			  const char *fmt, ...)
{
	va_list ap;

	if (!st)
		return code;
	st->code = code;
	va_start(ap, fmt);
	vsnprintf(st->message, sizeof(st->message), fmt, ap);
	va_end(ap);
	return code;
}

const char *mt_rpc_code_name(Mt__Rpc__Code code)
{
	const ProtobufCEnumValue *v =
		protobuf_c_enum_descriptor_get_value(&mt__rpc__code__descriptor,
						     (int)code);

	return v ? v->name : "UNKNOWN";
}

int mt_rpc_errno(int e)
{
	switch (e) {
	case 0:
		return 0;
	case NNG_EINTR:
		return -EINTR;
	case NNG_ENOMEM:
		return -ENOMEM;
	case NNG_EINVAL:
		return -EINVAL;
	case NNG_EBUSY:
		return -EBUSY;
	case NNG_ETIMEDOUT:
		return -ETIMEDOUT;
	case NNG_ECONNREFUSED:
		return -ECONNREFUSED;
	case NNG_ECLOSED:
		return -EBADF;
	case NNG_EAGAIN:
		return -EAGAIN;
	case NNG_ENOTSUP:
		return -EOPNOTSUPP;
	case NNG_EADDRINUSE:
		return -EADDRINUSE;
	case NNG_ESTATE:
		return -EPROTO;
	case NNG_ENOENT:
		return -ENOENT;
	case NNG_EPROTO:
		return -EPROTO;
	case NNG_EUNREACHABLE:
		return -EHOSTUNREACH;
	case NNG_EADDRINVAL:
		return -EINVAL;
	case NNG_EPERM:
		return -EPERM;
	case NNG_EMSGSIZE:
		return -EMSGSIZE;
	case NNG_ECONNABORTED:
		return -ECONNABORTED;
	case NNG_ECONNRESET:
		return -ECONNRESET;
	case NNG_ECANCELED:
		return -ECANCELED;
	case NNG_ENOFILES:
		return -EMFILE;
	case NNG_ENOSPC:
		return -ENOSPC;
	case NNG_EEXIST:
		return -EEXIST;
	default:
		return -EIO;
	}
}

char *mt_rpc_run_dir(const char *instance, char *buf, size_t len)
{
	const char *root = getenv("MT_RUN_DIR");

	snprintf(buf, len, "%s/%s", root && *root ? root : MT_RUN_DIR,
		 instance);
	return buf;
}

char *mt_rpc_url(const char *instance, const char *name, char *buf, size_t len)
{
	char dir[256];

	snprintf(buf, len, "ipc://%s/%s.sock",
		 mt_rpc_run_dir(instance, dir, sizeof(dir)), name);
	return buf;
}

/* ---- client ---- */

/* How long a call waits for a connection to appear before it reports the
 * server as not running. */
#define CONNECT_GRACE_MS 200

struct mt_rpc_client {
	nng_socket sock;
	atomic_int pipes;
};

static void client_pipe_event(nng_pipe p, nng_pipe_ev ev, void *arg)
{
	struct mt_rpc_client *c = arg;

	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&c->pipes, 1);
	else if (ev == NNG_PIPE_EV_REM_POST)
		atomic_fetch_sub(&c->pipes, 1);
}

int mt_rpc_client_open(const char *url, struct mt_rpc_client **out)
{
	struct mt_rpc_client *c = calloc(1, sizeof(*c));
	int e;

	if (!c)
		return -ENOMEM;
	e = nng_req0_open(&c->sock);
	if (e) {
		free(c);
		return mt_rpc_errno(e);
	}
	nng_pipe_notify(c->sock, NNG_PIPE_EV_ADD_POST, client_pipe_event, c);
	nng_pipe_notify(c->sock, NNG_PIPE_EV_REM_POST, client_pipe_event, c);
	/* A restarted server is found again quickly. */
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(c->sock, NNG_OPT_RECONNMAXT, 500);
	nng_socket_set_size(c->sock, NNG_OPT_RECVMAXSZ, MT_RPC_MSG_MAX);
	/* Try once synchronously so a server that is up is connected before
	 * the first call; otherwise keep dialing in the background. */
	e = nng_dial(c->sock, url, NULL, 0);
	if (e)
		e = nng_dial(c->sock, url, NULL, NNG_FLAG_NONBLOCK);
	if (e) {
		nng_close(c->sock);
		free(c);
		return mt_rpc_errno(e);
	}
	*out = c;
	return 0;
}

void mt_rpc_client_close(struct mt_rpc_client *c)
{
	if (!c)
		return;
	nng_close(c->sock);
	free(c);
}

bool mt_rpc_client_connected(struct mt_rpc_client *c)
{
	return atomic_load(&c->pipes) > 0;
}

static uint8_t *pack_message(const ProtobufCMessage *m, size_t *len)
{
	uint8_t *buf;

	*len = protobuf_c_message_get_packed_size(m);
	buf = malloc(*len ? *len : 1);
	if (buf)
		protobuf_c_message_pack(m, buf);
	return buf;
}

int mt_rpc_call_start(struct mt_rpc_client *c,
		      const ProtobufCServiceDescriptor *svc, unsigned method,
		      const ProtobufCMessage *in, unsigned timeout_ms)
{
	Mt__Rpc__Request req = MT__RPC__REQUEST__INIT;
	_cleanup_free_ uint8_t *body = NULL, *wire = NULL;
	size_t body_len, wire_len;
	int e, r;

	if (method >= svc->n_methods ||
	    in->descriptor != svc->methods[method].input)
		return -EINVAL;
	body = pack_message(in, &body_len);
	if (!body)
		return -ENOMEM;
	req.service = (char *)svc->name;
	req.method = method;
	req.deadline_ms = mt_realtime_ms() + timeout_ms;
	req.body.data = body;
	req.body.len = body_len;
	wire = pack_message(&req.base, &wire_len);
	if (!wire)
		return -ENOMEM;

	/* Without a pipe the request would sit in the queue for the whole
	 * timeout: give a (re)connecting server a moment, then say so. */
	for (unsigned waited = 0; !mt_rpc_client_connected(c);
	     waited += 10) {
		if (waited >= timeout_ms || waited >= CONNECT_GRACE_MS)
			return -ECONNREFUSED;
		usleep(10 * 1000);
	}
	nng_socket_set_ms(c->sock, NNG_OPT_SENDTIMEO, (nng_duration)timeout_ms);
	nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, (nng_duration)timeout_ms);
	e = nng_send(c->sock, wire, wire_len, 0);
	if (e) {
		r = mt_rpc_errno(e);
		if (r == -ETIMEDOUT && !mt_rpc_client_connected(c))
			r = -ECONNREFUSED;
		return r;
	}
	return 0;
}

int mt_rpc_call_finish(struct mt_rpc_client *c,
		       const ProtobufCServiceDescriptor *svc, unsigned method,
		       ProtobufCMessage **out, unsigned timeout_ms,
		       struct mt_rpc_status *st)
{
	Mt__Rpc__Response *resp;
	char *rbuf = NULL;
	size_t rlen = 0;
	int e, r;

	*out = NULL;
	if (st) {
		st->code = MT__RPC__CODE__OK;
		st->message[0] = '\0';
	}
	if (method >= svc->n_methods)
		return -EINVAL;
	nng_socket_set_ms(c->sock, NNG_OPT_RECVTIMEO, (nng_duration)timeout_ms);
	e = nng_recv(c->sock, &rbuf, &rlen, NNG_FLAG_ALLOC);
	if (e) {
		r = mt_rpc_errno(e);
		/* Nobody to talk to is not the same as a slow server. */
		if (r == -ETIMEDOUT && !mt_rpc_client_connected(c))
			r = -ECONNREFUSED;
		return r;
	}
	resp = mt__rpc__response__unpack(NULL, rlen, (uint8_t *)rbuf);
	nng_free(rbuf, rlen);
	if (!resp)
		return -EPROTO;
	if (resp->code != MT__RPC__CODE__OK) {
		if (st) {
			st->code = resp->code;
			snprintf(st->message, sizeof(st->message), "%s",
				 resp->message);
		}
		mt__rpc__response__free_unpacked(resp, NULL);
		return -EREMOTEIO;
	}
	*out = protobuf_c_message_unpack(svc->methods[method].output, NULL,
					 resp->body.len, resp->body.data);
	mt__rpc__response__free_unpacked(resp, NULL);
	return *out ? 0 : -EPROTO;
}

int mt_rpc_call(struct mt_rpc_client *c, const ProtobufCServiceDescriptor *svc,
		unsigned method, const ProtobufCMessage *in,
		ProtobufCMessage **out, unsigned timeout_ms,
		struct mt_rpc_status *st)
{
	int r;

	*out = NULL;
	if (st) {
		st->code = MT__RPC__CODE__OK;
		st->message[0] = '\0';
	}
	r = mt_rpc_call_start(c, svc, method, in, timeout_ms);
	if (r < 0)
		return r;
	return mt_rpc_call_finish(c, svc, method, out, timeout_ms, st);
}

/* ---- events ---- */

/* The PUB side listens on an ipc path, so it has the nng 1.5.2 listener bug
 * too (KERNEL_NOTES.md): after one peer closes before the SP handshake it
 * accepts no subscriber again, and a restarted mt-agent would never get
 * another drift event. A watchdog thread dials the listener with a probe
 * SUB every PUB_WATCHDOG_MS and re-creates the listener when the PUB socket
 * does not see the probe's pipe arrive. (A raw connect is not enough: the
 * wedged listener still completes the connect.) */
#define PUB_WATCHDOG_MS 2000
#define PUB_PROBE_MS 1000

struct mt_rpc_pub {
	nng_socket sock;
	nng_listener listener;
	char url[256];
	atomic_uint_fast64_t pipes_added;
	pthread_t watchdog;
	bool watchdog_running;
	atomic_bool stop;
};

static void pub_pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	struct mt_rpc_pub *p = arg;

	if (ev == NNG_PIPE_EV_ADD_POST)
		atomic_fetch_add(&p->pipes_added, 1);
}

static int pub_listen(struct mt_rpc_pub *p)
{
	int e = nng_listener_create(&p->listener, p->sock, p->url);

	if (e == 0) {
		nng_listener_set_int(p->listener, NNG_OPT_IPC_PERMISSIONS, 0600);
		e = nng_listener_start(p->listener, 0);
		if (e)
			nng_listener_close(p->listener);
	}
	return mt_rpc_errno(e);
}

/* 0 when a probe subscriber reached the PUB socket within timeout_ms,
 * -ETIMEDOUT when it did not, -errno when the probe could not be made. */
static int pub_probe(struct mt_rpc_pub *p, unsigned timeout_ms)
{
	uint64_t before = atomic_load(&p->pipes_added);
	nng_socket sub;
	int e, r = -ETIMEDOUT;

	e = nng_sub0_open(&sub);
	if (e)
		return mt_rpc_errno(e);
	e = nng_dial(sub, p->url, NULL, NNG_FLAG_NONBLOCK);
	if (e) {
		nng_close(sub);
		return mt_rpc_errno(e);
	}
	for (unsigned waited = 0; waited < timeout_ms; waited += 10) {
		if (atomic_load(&p->pipes_added) != before) {
			r = 0;
			break;
		}
		usleep(10 * 1000);
	}
	nng_close(sub);
	return r;
}

static void *pub_watchdog_main(void *arg)
{
	struct mt_rpc_pub *p = arg;
	uint64_t next = mt_monotonic_ms() + PUB_WATCHDOG_MS;
	const char *path = p->url + strlen("ipc://");

	while (!atomic_load(&p->stop)) {
		int r;

		usleep(50 * 1000);
		if (mt_monotonic_ms() < next)
			continue;
		if (pub_probe(p, PUB_PROBE_MS) == -ETIMEDOUT &&
		    !atomic_load(&p->stop)) {
			mt_warn("events listener %s is not accepting subscribers: re-creating it",
				p->url);
			nng_listener_close(p->listener);
			/* the path is ours: the daemon holds its instance lock */
			unlink(path);
			r = pub_listen(p);
			if (r < 0)
				mt_err("events listener %s: re-create failed: %s",
				       p->url, strerror(-r));
		}
		next = mt_monotonic_ms() + PUB_WATCHDOG_MS;
	}
	return NULL;
}

int mt_rpc_pub_open(const char *url, struct mt_rpc_pub **out)
{
	struct mt_rpc_pub *p = calloc(1, sizeof(*p));
	int e, r;

	if (!p)
		return -ENOMEM;
	if ((size_t)snprintf(p->url, sizeof(p->url), "%s", url) >=
	    sizeof(p->url)) {
		free(p);
		return -ENAMETOOLONG;
	}
	e = nng_pub0_open(&p->sock);
	if (e) {
		free(p);
		return mt_rpc_errno(e);
	}
	nng_pipe_notify(p->sock, NNG_PIPE_EV_ADD_POST, pub_pipe_event, p);
	r = pub_listen(p);
	if (r < 0) {
		nng_close(p->sock);
		free(p);
		return r;
	}
	if (strncmp(url, "ipc://", 6) == 0 &&
	    pthread_create(&p->watchdog, NULL, pub_watchdog_main, p) == 0)
		p->watchdog_running = true;
	*out = p;
	return 0;
}

void mt_rpc_pub_close(struct mt_rpc_pub *p)
{
	if (!p)
		return;
	if (p->watchdog_running) {
		atomic_store(&p->stop, true);
		pthread_join(p->watchdog, NULL);
	}
	nng_close(p->sock);
	free(p);
}

int mt_rpc_pub_send(struct mt_rpc_pub *p, const ProtobufCMessage *msg)
{
	_cleanup_free_ uint8_t *buf = NULL;
	size_t len;

	buf = pack_message(msg, &len);
	if (!buf)
		return -ENOMEM;
	return mt_rpc_errno(nng_send(p->sock, buf, len, NNG_FLAG_NONBLOCK));
}

struct mt_rpc_sub {
	nng_socket sock;
};

int mt_rpc_sub_open(const char *url, struct mt_rpc_sub **out)
{
	struct mt_rpc_sub *s = calloc(1, sizeof(*s));
	int e;

	if (!s)
		return -ENOMEM;
	e = nng_sub0_open(&s->sock);
	if (e) {
		free(s);
		return mt_rpc_errno(e);
	}
	nng_socket_set(s->sock, NNG_OPT_SUB_SUBSCRIBE, "", 0);
	nng_socket_set_ms(s->sock, NNG_OPT_RECONNMINT, 20);
	nng_socket_set_ms(s->sock, NNG_OPT_RECONNMAXT, 500);
	e = nng_dial(s->sock, url, NULL, NNG_FLAG_NONBLOCK);
	if (e) {
		nng_close(s->sock);
		free(s);
		return mt_rpc_errno(e);
	}
	*out = s;
	return 0;
}

void mt_rpc_sub_close(struct mt_rpc_sub *s)
{
	if (!s)
		return;
	nng_close(s->sock);
	free(s);
}

int mt_rpc_sub_fd(struct mt_rpc_sub *s)
{
	int fd = -1;
	int e = nng_socket_get_int(s->sock, NNG_OPT_RECVFD, &fd);

	return e ? mt_rpc_errno(e) : fd;
}

int mt_rpc_sub_recv(struct mt_rpc_sub *s, const ProtobufCMessageDescriptor *d,
		    ProtobufCMessage **out)
{
	char *buf = NULL;
	size_t len = 0;
	int e = nng_recv(s->sock, &buf, &len, NNG_FLAG_ALLOC | NNG_FLAG_NONBLOCK);

	if (e)
		return mt_rpc_errno(e);
	*out = protobuf_c_message_unpack(d, NULL, len, (uint8_t *)buf);
	nng_free(buf, len);
	return *out ? 0 : -EPROTO;
}
