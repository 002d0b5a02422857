/* mtctl internals shared by the command files: the invocation context, the
 * exit codes, and the helpers that talk to mt-agent or to the store.
 *
 * Commands return an exit code (enum mtctl_exit) and print their own
 * diagnostics on stderr ("mtctl: ..."); results go to stdout.
 */
#ifndef MTCTL_H
#define MTCTL_H

#include <stdbool.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "config.pb-c.h"
#include "mt_metal.h"
#include "output.h"
#include "rpc.pb-c.h"

/* Exit codes: documented in docs/mtctl.md; scripts rely on them. */
enum mtctl_exit {
	MTCTL_EXIT_OK = 0,
	MTCTL_EXIT_FAILED = 1,	      /* refused, not found, apply errors */
	MTCTL_EXIT_USAGE = 2,	      /* unknown command/option, bad argument */
	MTCTL_EXIT_UNREACHABLE = 3,   /* mt-agent did not answer */
	MTCTL_EXIT_INPUT = 4,	      /* input file unreadable or unparsable */
	MTCTL_EXIT_PLAN_CHANGES = 10, /* plan --exit-code: plan not empty */
};

/* Scoped release of an unpacked (or protobuf-c allocated) message. */
static inline void mtctl_message_freep(void *p)
{
	ProtobufCMessage **m = p;

	if (*m)
		protobuf_c_message_free_unpacked(*m, NULL);
}

#define _cleanup_message_ __attribute__((cleanup(mtctl_message_freep)))

struct mt_rpc_client;
struct mt_store;

struct mtctl {
	char instance[MT_INSTANCE_MAX + 1];
	char agent_url[512];
	enum mtctl_output output;
	unsigned timeout_ms;
	const char *store_url;	   /* --store: work on the store directly */
	const char *metal_file;	   /* --metal */
	bool exit_code;		   /* plan --exit-code */
	bool fresh;		   /* reconcile --fresh */
	struct mt_rpc_client *rpc; /* opened on first use */
};

/* Prints "mtctl: <message>" and a hint to stderr; returns MTCTL_EXIT_USAGE. */
int mtctl_usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* Prints "mtctl: <message>" to stderr. Returns code, for `return
 * mtctl_fail(MTCTL_EXIT_FAILED, ...)`. */
int mtctl_fail(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Calls method (by name, e.g. "Status") of the Agent service. Returns
 * MTCTL_EXIT_OK with *out set (free with protobuf_c_message_free_unpacked),
 * or prints why it failed and returns MTCTL_EXIT_FAILED (the agent refused:
 * its message follows "what: "), MTCTL_EXIT_UNREACHABLE, or
 * MTCTL_EXIT_USAGE (bad --agent URL). When code is not NULL, it receives the
 * agent's status code (MT__RPC__CODE__OK unless the agent refused). */
int mtctl_agent_call(struct mtctl *ctx, const char *method,
		     const ProtobufCMessage *in, ProtobufCMessage **out,
		     const char *what, Mt__Rpc__Code *code);

/* A customer named on the command line: a decimal id or a name. */
struct mtctl_ref {
	uint32_t id;	  /* 0 when given by name */
	const char *name; /* NULL when given by id */
	const char *arg;  /* as typed */
};

/* Parses NAME|ID. Returns MTCTL_EXIT_OK, or prints a usage error naming arg
 * and returns MTCTL_EXIT_USAGE. */
int mtctl_ref_parse(const char *arg, struct mtctl_ref *ref);
bool mtctl_ref_match(const struct mtctl_ref *ref,
		     const Mt__Config__Customer *c);

/* Loads the metal settings for local validation: --metal FILE, or the
 * defaults. Returns an exit code; on success m must be released with
 * mt_metal_fini. */
int mtctl_metal_load(struct mtctl *ctx, struct mt_metal *m);

/* ---- commands ---- */

int mtctl_cmd_status(struct mtctl *ctx, int argc, char **argv);
int mtctl_cmd_plan(struct mtctl *ctx, int argc, char **argv);
int mtctl_cmd_reconcile(struct mtctl *ctx, int argc, char **argv);
int mtctl_cmd_pause(struct mtctl *ctx, int argc, char **argv);
int mtctl_cmd_resume(struct mtctl *ctx, int argc, char **argv);
int mtctl_cmd_customers(struct mtctl *ctx, int argc, char **argv);
int mtctl_cmd_put(struct mtctl *ctx, int argc, char **argv);
int mtctl_cmd_delete(struct mtctl *ctx, int argc, char **argv);
int mtctl_cmd_tunnels(struct mtctl *ctx, int argc, char **argv);
int mtctl_cmd_firewall(struct mtctl *ctx, int argc, char **argv);

#endif
