/* mtctl: the operator CLI. Global options, the command table, and the
 * helpers every command shares (talking to mt-agent, naming customers). */
#include "mtctl.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "input.h"
#include "mt_cleanup.h"
#include "mt_rpc.h"

#define DEFAULT_TIMEOUT_MS 5000
#define MAX_TIMEOUT_MS 3600000

/* Which command-specific options a command accepts. */
enum {
	OPT_STORE = 1 << 0,	/* --store */
	OPT_METAL = 1 << 1,	/* --metal */
	OPT_EXIT_CODE = 1 << 2, /* --exit-code */
	OPT_FRESH = 1 << 3,	/* --fresh */
};

struct mtctl_cmd {
	const char *name;
	int (*fn)(struct mtctl *ctx, int argc, char **argv);
	unsigned opts;
	const char *args;
	const char *help;
	const char *details; /* more for mtctl COMMAND --help, or NULL */
};

static int cmd_help(struct mtctl *ctx, int argc, char **argv);

static const char firewall_details[] =
    "Shows the customer's firewall as the agent has it in force, joined with\n"
    "one observation of the kernel: each rule in order (ID, ACTION with its\n"
    "rate, MATCH, PACKETS, BYTES, LIMITED = packets over a rate limit, STATE\n"
    "installed or pending), then the default action with its counters, then\n"
    "the named lists (family, prefixes, installed or pending). -o json prints\n"
    "the mt.rpc.FirewallStatus message.\n"
    "\n"
    "Rules are not edited here: change the customer's config (firewall\n"
    "section) and push it with `mtctl put FILE`; the agent validates it and\n"
    "applies only what changed.\n";

static const struct mtctl_cmd commands[] = {
    {"status", mtctl_cmd_status, 0, "",
     "the agent and the state of every customer", NULL},
    {"customers", mtctl_cmd_customers, OPT_STORE, "[list|show NAME|ID]",
     "list customers, or show one in full", NULL},
    {"put", mtctl_cmd_put, OPT_STORE | OPT_METAL, "FILE...",
     "validate, then push customer configs (- = stdin)", NULL},
    {"apply", mtctl_cmd_put, OPT_STORE | OPT_METAL, "FILE...", "same as put",
     NULL},
    {"delete", mtctl_cmd_delete, OPT_STORE, "NAME|ID...", "delete customers",
     NULL},
    {"plan", mtctl_cmd_plan, OPT_EXIT_CODE, "[NAME|ID]",
     "dry run: the kernel changes a reconcile makes", NULL},
    {"reconcile", mtctl_cmd_reconcile, OPT_FRESH, "[NAME|ID]",
     "reconcile now and report what was applied", NULL},
    {"pause", mtctl_cmd_pause, 0, "",
     "stop reconciling (the kernel stays as it is)", NULL},
    {"resume", mtctl_cmd_resume, 0, "", "reconcile again", NULL},
    {"tunnels", mtctl_cmd_tunnels, 0, "[NAME|ID]",
     "tunnels: driver, endpoints, route priorities, counters, drops", NULL},
    {"firewall", mtctl_cmd_firewall, 0, "show NAME|ID",
     "firewall rules in order, counters (edit with put)", firewall_details},
    {"help", cmd_help, 0, "[COMMAND]", "show this help", NULL},
};

static const char global_usage[] =
    "Usage: mtctl [OPTIONS] COMMAND [ARGS]\n"
    "\n"
    "Options:\n"
    "  -i, --instance NAME  metal instance (default $MT_INSTANCE or 0)\n"
    "      --agent URL      mt-agent's socket (default\n"
    "                       ipc:///run/mt/INSTANCE/agent.sock)\n"
    "  -o, --output FORMAT  table (default) or json\n"
    "      --timeout MS     how long to wait for mt-agent (default 5000)\n"
    "      --store URL      put/delete/customers: use the store directly "
    "(lmdb:PATH),\n"
    "                       not the agent\n"
    "      --metal FILE     put: the metal settings to check against\n"
    "      --exit-code      plan: exit 10 when the plan is not empty\n"
    "  -h, --help           show help (mtctl COMMAND --help: that "
    "command's)\n";

static const char exit_codes[] =
    "Exit codes: 0 ok, 1 refused or failed, 2 usage error, 3 mt-agent not "
    "reachable,\n"
    "4 bad input file, 10 plan not empty (plan --exit-code).\n";

static void print_usage(FILE *f)
{
	fputs(global_usage, f);
	fputs("\nCommands:\n", f);
	for (size_t i = 0; i < MT_ARRAY_SIZE(commands); i++) {
		char left[64];

		snprintf(left, sizeof(left), "%s %s", commands[i].name,
			 commands[i].args);
		fprintf(f, "  %-29s %s\n", left, commands[i].help);
	}
	fputc('\n', f);
	fputs(exit_codes, f);
}

static void print_command_usage(const struct mtctl_cmd *cmd, FILE *f)
{
	fprintf(f, "Usage: mtctl [OPTIONS] %s%s%s\n\n%s.\n", cmd->name,
		*cmd->args ? " " : "", cmd->args, cmd->help);
	if (cmd->details)
		fprintf(f, "\n%s", cmd->details);
	if (cmd->opts & OPT_STORE)
		fputs("\nWith --store URL, works on the store directly (for "
		      "when mt-agent is down).\n",
		      f);
	if (cmd->opts & OPT_METAL)
		fputs("Customers are validated together (and against those "
		      "already there) before\nanything is sent; --metal FILE "
		      "gives the metal settings to validate against.\n",
		      f);
	if (cmd->opts & OPT_EXIT_CODE)
		fputs("\nWith --exit-code, exits 10 when the plan is not "
		      "empty, 0 when it is.\n",
		      f);
	if (cmd->opts & OPT_FRESH)
		fputs("\nWith --fresh, mt-fastpath dumps every namespace from "
		      "the kernel again;\nwithout it, namespaces in which its "
		      "drift monitor saw no change since the\nlast observe are "
		      "answered from that observe's dumps.\n",
		      f);
	fputc('\n', f);
	fputs(exit_codes, f);
}

static const struct mtctl_cmd *find_command(const char *name)
{
	for (size_t i = 0; i < MT_ARRAY_SIZE(commands); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int cmd_help(struct mtctl *ctx, int argc, char **argv)
{
	const struct mtctl_cmd *cmd;

	if (argc > 2)
		return mtctl_usage_error("help: unexpected argument '%s'",
					 argv[2]);
	if (argc == 2) {
		cmd = find_command(argv[1]);
		if (!cmd)
			return mtctl_usage_error("help: unknown command '%s'",
						 argv[1]);
		print_command_usage(cmd, stdout);
		return MTCTL_EXIT_OK;
	}
	print_usage(stdout);
	return MTCTL_EXIT_OK;
}

int mtctl_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("mtctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'mtctl --help'.\n", stderr);
	return MTCTL_EXIT_USAGE;
}

int mtctl_fail(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("mtctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* ---- mt-agent ---- */

static bool unreachable_errno(int r)
{
	switch (r) {
	case -ECONNREFUSED:
	case -ETIMEDOUT:
	case -ENOENT:
	case -ECONNRESET:
	case -ECONNABORTED:
	case -EHOSTUNREACH:
	case -EPIPE:
		return true;
	}
	return false;
}

/* For ipc:// URLs, the socket file must exist for anyone to answer: say so
 * at once instead of waiting for the timeout. */
static bool ipc_socket_missing(const char *url)
{
	struct stat st;

	if (strncmp(url, "ipc://", 6) != 0)
		return false;
	return stat(url + 6, &st) < 0 && errno == ENOENT;
}

static int agent_open(struct mtctl *ctx)
{
	int r;

	if (ctx->rpc)
		return MTCTL_EXIT_OK;
	if (ipc_socket_missing(ctx->agent_url))
		return mtctl_fail(MTCTL_EXIT_UNREACHABLE,
				  "mt-agent (instance %s) is not running: no "
				  "socket at %s",
				  ctx->instance, ctx->agent_url);
	r = mt_rpc_client_open(ctx->agent_url, &ctx->rpc);
	if (r == -EINVAL || r == -EOPNOTSUPP)
		return mtctl_usage_error("--agent '%s': not a usable nng URL "
					 "(%s)",
					 ctx->agent_url, strerror(-r));
	if (r < 0 && unreachable_errno(r))
		return mtctl_fail(MTCTL_EXIT_UNREACHABLE,
				  "mt-agent (instance %s) is not running: "
				  "cannot dial %s: %s",
				  ctx->instance, ctx->agent_url, strerror(-r));
	if (r < 0)
		return mtctl_fail(MTCTL_EXIT_FAILED,
				  "cannot open a socket "
				  "to %s: %s",
				  ctx->agent_url, strerror(-r));
	return MTCTL_EXIT_OK;
}

int mtctl_agent_call(struct mtctl *ctx, const char *method,
		     const ProtobufCMessage *in, ProtobufCMessage **out,
		     const char *what, Mt__Rpc__Code *code)
{
	const ProtobufCServiceDescriptor *svc = &mt__rpc__agent__descriptor;
	const ProtobufCMethodDescriptor *md;
	struct mt_rpc_status st;
	int r;

	*out = NULL;
	if (code)
		*code = MT__RPC__CODE__OK;
	md = protobuf_c_service_descriptor_get_method_by_name(svc, method);
	if (!md)
		return mtctl_fail(MTCTL_EXIT_FAILED,
				  "internal error: %s has "
				  "no method %s",
				  svc->name, method);
	r = agent_open(ctx);
	if (r != MTCTL_EXIT_OK)
		return r;
	r = mt_rpc_call(ctx->rpc, svc, (unsigned)(md - svc->methods), in, out,
			ctx->timeout_ms, &st);
	if (r == 0)
		return MTCTL_EXIT_OK;
	if (r == -EREMOTEIO) {
		if (code)
			*code = st.code;
		return mtctl_fail(MTCTL_EXIT_FAILED, "%s: %s", what,
				  st.message[0] ? st.message
						: mt_rpc_code_name(st.code));
	}
	if (r == -ETIMEDOUT)
		return mtctl_fail(MTCTL_EXIT_UNREACHABLE,
				  "mt-agent (instance %s) did not answer on %s "
				  "within %u ms: it is connected but busy or "
				  "stuck (try a larger --timeout)",
				  ctx->instance, ctx->agent_url,
				  ctx->timeout_ms);
	if (unreachable_errno(r))
		return mtctl_fail(MTCTL_EXIT_UNREACHABLE,
				  "mt-agent (instance %s) is not running: no "
				  "answer on %s within %u ms",
				  ctx->instance, ctx->agent_url,
				  ctx->timeout_ms);
	if (r == -EPROTO)
		return mtctl_fail(MTCTL_EXIT_FAILED,
				  "%s: the answer of "
				  "mt-agent on %s does not decode (a different "
				  "version?)",
				  what, ctx->agent_url);
	return mtctl_fail(MTCTL_EXIT_FAILED, "%s: calling mt-agent on %s: %s",
			  what, ctx->agent_url, strerror(-r));
}

/* ---- customers on the command line ---- */

int mtctl_ref_parse(const char *arg, struct mtctl_ref *ref)
{
	*ref = (struct mtctl_ref){.arg = arg};
	if (!*arg)
		return mtctl_usage_error("empty customer name or id");
	if (isdigit((unsigned char)arg[0])) {
		bool digits = true;

		for (const char *p = arg; *p; p++)
			if (!isdigit((unsigned char)*p))
				digits = false;
		if (digits) {
			unsigned long v;

			errno = 0;
			v = strtoul(arg, NULL, 10);
			if (errno || v < 1 || v > MT_CUSTOMER_ID_MAX)
				return mtctl_usage_error(
				    "customer id '%s' is out of range "
				    "1..%u",
				    arg, MT_CUSTOMER_ID_MAX);
			ref->id = (uint32_t)v;
			return MTCTL_EXIT_OK;
		}
	}
	for (const char *p = arg; *p; p++)
		if (!(islower((unsigned char)*p) ||
		      isdigit((unsigned char)*p) || (*p == '-' && p != arg)))
			return mtctl_usage_error(
			    "'%s' is neither a customer id (1..%u) nor a "
			    "customer name ([a-z0-9][a-z0-9-]*)",
			    arg, MT_CUSTOMER_ID_MAX);
	ref->name = arg;
	return MTCTL_EXIT_OK;
}

bool mtctl_ref_match(const struct mtctl_ref *ref, const Mt__Config__Customer *c)
{
	if (ref->id)
		return c->id == ref->id;
	return c->name && strcmp(c->name, ref->name) == 0;
}

int mtctl_metal_load(struct mtctl *ctx, struct mt_metal *m)
{
	ProtobufCMessage *pb = NULL;
	char err[512];
	int r;

	if (ctx->metal_file) {
		r = mtctl_message_load(ctx->metal_file,
				       &mt__config__metal__descriptor, &pb, err,
				       sizeof(err));
		if (r < 0)
			return mtctl_fail(MTCTL_EXIT_INPUT, "%s", err);
	}
	r = mt_metal_init(m, (const Mt__Config__Metal *)pb, err, sizeof(err));
	if (pb)
		protobuf_c_message_free_unpacked(pb, NULL);
	if (r < 0)
		return mtctl_fail(MTCTL_EXIT_FAILED, "%s: %s",
				  ctx->metal_file ? ctx->metal_file
						  : "default metal settings",
				  err);
	return MTCTL_EXIT_OK;
}

/* ---- main ---- */

static bool instance_valid(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > MT_INSTANCE_MAX)
		return false;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s))
			return false;
	return true;
}

static int parse_timeout(const char *s, unsigned *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || !isdigit((unsigned char)*s) || v < 1 ||
	    v > MAX_TIMEOUT_MS)
		return -EINVAL;
	*out = (unsigned)v;
	return 0;
}

enum {
	LOPT_AGENT = 256,
	LOPT_TIMEOUT,
	LOPT_STORE,
	LOPT_METAL,
	LOPT_EXIT_CODE,
	LOPT_FRESH,
};

static const struct option long_options[] = {
    {"instance", required_argument, NULL, 'i'},
    {"agent", required_argument, NULL, LOPT_AGENT},
    {"output", required_argument, NULL, 'o'},
    {"timeout", required_argument, NULL, LOPT_TIMEOUT},
    {"store", required_argument, NULL, LOPT_STORE},
    {"metal", required_argument, NULL, LOPT_METAL},
    {"exit-code", no_argument, NULL, LOPT_EXIT_CODE},
    {"fresh", no_argument, NULL, LOPT_FRESH},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int unknown_option(int opt, const char *arg)
{
	const char *eq = strchr(arg, '=');

	if (strncmp(arg, "--", 2) == 0 && eq && opt)
		return mtctl_usage_error("option '%.*s' takes no argument",
					 (int)(eq - arg), arg);
	if (opt > 0 && opt < 256 && arg[0] == '-' && arg[1] != '-')
		return mtctl_usage_error("unknown option '-%c'", opt);
	return mtctl_usage_error("unknown option '%s'", arg);
}

/* Options may come before or after the command (getopt permutes); "--" ends
 * them, for file names that start with '-'. */
static int parse_options(struct mtctl *ctx, int argc, char **argv, bool *help,
			 unsigned *used)
{
	const char *instance = getenv("MT_INSTANCE");
	const char *agent = NULL;
	int c;

	if (!instance || !*instance)
		instance = "0";
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":i:o:h", long_options, NULL)) !=
	       -1) {
		switch (c) {
		case 'i':
			instance = optarg;
			break;
		case LOPT_AGENT:
			agent = optarg;
			break;
		case 'o':
			if (mtctl_output_parse(optarg, &ctx->output) < 0)
				return mtctl_usage_error(
				    "-o '%s': expected table or json", optarg);
			break;
		case LOPT_TIMEOUT:
			if (parse_timeout(optarg, &ctx->timeout_ms) < 0)
				return mtctl_usage_error(
				    "--timeout '%s': expected "
				    "milliseconds, 1..%u",
				    optarg, MAX_TIMEOUT_MS);
			break;
		case LOPT_STORE:
			ctx->store_url = optarg;
			*used |= OPT_STORE;
			break;
		case LOPT_METAL:
			ctx->metal_file = optarg;
			*used |= OPT_METAL;
			break;
		case LOPT_EXIT_CODE:
			ctx->exit_code = true;
			*used |= OPT_EXIT_CODE;
			break;
		case LOPT_FRESH:
			ctx->fresh = true;
			*used |= OPT_FRESH;
			break;
		case 'h':
			*help = true;
			break;
		case ':':
			if (optopt)
				return mtctl_usage_error(
				    "option '-%c' needs an argument", optopt);
			return mtctl_usage_error(
			    "option '%s' needs an argument", argv[optind - 1]);
		default:
			return unknown_option(optopt, argv[optind - 1]);
		}
	}
	if (!instance_valid(instance))
		return mtctl_usage_error("instance '%s': expected 1 to %d "
					 "characters [a-z0-9]",
					 instance, MT_INSTANCE_MAX);
	snprintf(ctx->instance, sizeof(ctx->instance), "%s", instance);
	if (agent)
		snprintf(ctx->agent_url, sizeof(ctx->agent_url), "%s", agent);
	else
		mt_rpc_url(ctx->instance, "agent", ctx->agent_url,
			   sizeof(ctx->agent_url));
	return MTCTL_EXIT_OK;
}

int main(int argc, char **argv)
{
	struct mtctl ctx = {
	    .output = MTCTL_OUTPUT_TABLE,
	    .timeout_ms = DEFAULT_TIMEOUT_MS,
	};
	const struct mtctl_cmd *cmd;
	bool help = false;
	unsigned used = 0;
	int r;

	r = parse_options(&ctx, argc, argv, &help, &used);
	if (r != MTCTL_EXIT_OK)
		return r;
	if (optind >= argc) {
		if (help) {
			print_usage(stdout);
			return MTCTL_EXIT_OK;
		}
		fputs("mtctl: no command given\n\n", stderr);
		print_usage(stderr);
		return MTCTL_EXIT_USAGE;
	}
	cmd = find_command(argv[optind]);
	if (!cmd)
		return mtctl_usage_error("unknown command '%s'", argv[optind]);
	if (help) {
		print_command_usage(cmd, stdout);
		return MTCTL_EXIT_OK;
	}
	if (used & ~cmd->opts) {
		const char *opt = (used & ~cmd->opts & OPT_STORE) ? "--store"
				  : (used & ~cmd->opts & OPT_METAL)   ? "--metal"
				  : (used & ~cmd->opts & OPT_FRESH)   ? "--fresh"
								      : "--exit-code";

		return mtctl_usage_error("%s does not apply to '%s'", opt,
					 cmd->name);
	}
	r = cmd->fn(&ctx, argc - optind, argv + optind);
	mt_rpc_client_close(ctx.rpc);
	if (fflush(stdout) != 0 && r == MTCTL_EXIT_OK)
		r = mtctl_fail(MTCTL_EXIT_FAILED, "writing output: %s",
			       strerror(errno));
	return r;
}
