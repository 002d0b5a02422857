/* gRPC-style calls over nng REQ/REP.
 *
 * A call is one mt.rpc.Request (service name, method index, deadline, packed
 * input) answered by one mt.rpc.Response (status code, message, packed
 * output). Method ids are indices into protobuf-c service descriptors
 * (proto/rpc.proto), so both ends agree by construction.
 *
 * nng returns positive NNG_E* codes; this file adapts them to -errno at the
 * boundary (mt_rpc_errno). Remote failures are not errnos: a call that
 * reached the server and got a non-OK status returns -EREMOTEIO with the code
 * and message in struct mt_rpc_status.
 */
#ifndef MT_RPC_H
#define MT_RPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "rpc.pb-c.h"

/* Largest message either end accepts (NNG_OPT_RECVMAXSZ; nng's default is
 * 1 MiB). A plan that loads a 1M-prefix firewall list is ~25 MiB; observing
 * 1000 customers with firewalls a few MiB. */
#define MT_RPC_MSG_MAX (256u << 20)

struct mt_rpc_status {
	Mt__Rpc__Code code;
	char message[512];
};

/* Sets a status; returns the code so handlers can `return mt_rpc_fail(...)`. */
Mt__Rpc__Code mt_rpc_fail(struct mt_rpc_status *st, Mt__Rpc__Code code,
			  const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

const char *mt_rpc_code_name(Mt__Rpc__Code code);

/* Maps an nng error (positive NNG_E*) to -errno. */
int mt_rpc_errno(int nng_err);

/* The ipc:// URL of a daemon's socket: ipc:///run/mt/<instance>/<name>.sock
 * (MT_RUN_DIR can be overridden with the MT_RUN_DIR environment variable, for
 * tests). Returns buf. */
char *mt_rpc_url(const char *instance, const char *name, char *buf, size_t len);
/* The directory of that socket (created 0700 by daemons). */
char *mt_rpc_run_dir(const char *instance, char *buf, size_t len);

/* ---- client ---- */

struct mt_rpc_client;

/* Opens a REQ socket dialing url. The dial is asynchronous and retried, so
 * opening succeeds while the server is down; calls then fail with
 * -ECONNREFUSED/-ETIMEDOUT until it is up. */
int mt_rpc_client_open(const char *url, struct mt_rpc_client **out);
void mt_rpc_client_close(struct mt_rpc_client *c);

/* Calls svc's method (an index into svc->methods) with input in (which must be
 * of the method's input type). On success returns 0 and *out is the unpacked
 * output (free it with protobuf_c_message_free_unpacked(*out, NULL)).
 * Returns -ETIMEDOUT when no answer came within timeout_ms, -ECONNREFUSED
 * when the server is not there (no pipe after the first ~timeout), -EREMOTEIO
 * when the server answered with a non-OK status (st says what), -EPROTO when
 * the answer did not decode. st may be NULL. */
int mt_rpc_call(struct mt_rpc_client *c, const ProtobufCServiceDescriptor *svc,
		unsigned method, const ProtobufCMessage *in,
		ProtobufCMessage **out, unsigned timeout_ms,
		struct mt_rpc_status *st);
/* The same call in two halves, so the caller can work while the server
 * does: start sends the request (0 or the errors above), finish waits for
 * the answer to the one outstanding request (a REQ socket has one).
 * Nothing else may be called on c in between. */
int mt_rpc_call_start(struct mt_rpc_client *c,
		      const ProtobufCServiceDescriptor *svc, unsigned method,
		      const ProtobufCMessage *in, unsigned timeout_ms);
int mt_rpc_call_finish(struct mt_rpc_client *c,
		       const ProtobufCServiceDescriptor *svc, unsigned method,
		       ProtobufCMessage **out, unsigned timeout_ms,
		       struct mt_rpc_status *st);

/* True when the client has a connected pipe to the server. */
bool mt_rpc_client_connected(struct mt_rpc_client *c);

/* ---- server ---- */

/* A method handler: in is the decoded input; the handler sets *out to its
 * output message (heap-allocated and owned by the caller afterwards, who
 * frees it with protobuf_c_message_free_unpacked, or a static message with
 * *out_static = true) and returns MT__RPC__CODE__OK, or another code with
 * st filled. */
typedef Mt__Rpc__Code (*mt_rpc_handler_fn)(void *ctx, const ProtobufCMessage *in,
					   ProtobufCMessage **out,
					   struct mt_rpc_status *st);

struct mt_rpc_method {
	mt_rpc_handler_fn fn;
};

struct mt_rpc_server;

/* Listens on url (ipc://...) for calls to svc, dispatching method i to
 * methods[i].fn (n_methods must equal svc->n_methods). Takes an exclusive
 * lock on <path>.lock first, so a second instance fails with -EADDRINUSE
 * instead of probing (and, with nng 1.5.2, wedging) the listener. The socket
 * file is mode 0600. */
int mt_rpc_server_open(const char *url, const ProtobufCServiceDescriptor *svc,
		       const struct mt_rpc_method *methods, size_t n_methods,
		       void *ctx, struct mt_rpc_server **out);
void mt_rpc_server_close(struct mt_rpc_server *s);

/* An fd that becomes readable when a request may be waiting; poll it from
 * the daemon's event loop, then call mt_rpc_server_process. */
int mt_rpc_server_fd(struct mt_rpc_server *s);
/* Handles every pending request without blocking. Returns the number
 * handled or -errno. */
int mt_rpc_server_process(struct mt_rpc_server *s);

/* Checks that the listener still accepts connections (nng 1.5.2 ipc
 * listeners stop accepting after a peer closes before the SP handshake,
 * KERNEL_NOTES.md), and re-creates it if not. Blocks for at most
 * timeout_ms. Returns 0 if healthy, 1 if it had to be re-created, -errno on
 * failure. Daemons call it periodically (mt_rpc_server_watchdog_start runs
 * it on its own thread). */
int mt_rpc_server_check(struct mt_rpc_server *s, unsigned timeout_ms);
/* The daemon's loop says when it is idle, waiting in poll(), and when it is
 * busy: a probe that goes unanswered while the loop is busy (a long
 * reconcile) says nothing about the listener, so the check skips it. A
 * loop that never calls this is taken as always idle. */
void mt_rpc_server_idle(struct mt_rpc_server *s, bool idle);
int mt_rpc_server_watchdog_start(struct mt_rpc_server *s, unsigned period_ms);
uint64_t mt_rpc_server_recoveries(struct mt_rpc_server *s);

/* ---- events (PUB/SUB) ---- */

struct mt_rpc_pub;
int mt_rpc_pub_open(const char *url, struct mt_rpc_pub **out);
void mt_rpc_pub_close(struct mt_rpc_pub *p);
/* Publishes a KernelEvent (best effort: PUB drops when nobody listens). */
int mt_rpc_pub_send(struct mt_rpc_pub *p, const ProtobufCMessage *msg);

struct mt_rpc_sub;
int mt_rpc_sub_open(const char *url, struct mt_rpc_sub **out);
void mt_rpc_sub_close(struct mt_rpc_sub *s);
int mt_rpc_sub_fd(struct mt_rpc_sub *s);
/* Receives one pending message of type d without blocking: 0 and *out, or
 * -EAGAIN when none is pending. */
int mt_rpc_sub_recv(struct mt_rpc_sub *s, const ProtobufCMessageDescriptor *d,
		    ProtobufCMessage **out);

#endif
