/* mt-fastpath: the only process that touches the kernel. Serves Observe,
 * Apply and Ping (proto/rpc.proto service Fastpath) and publishes drift
 * events. Runs in the metal's network namespace. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "mt_cleanup.h"
#include "mt_daemon.h"
#include "mt_kstate.h"
#include "mt_log.h"
#include "mt_metal_file.h"
#include "mt_rpc.h"
#include "mt_time.h"

#include "monitor.h"
#include "nft_cust.h"
#include "nft_mark.h"
#include "nl.h"
#include "rtnl_apply.h"
#include "rtnl_observe.h"
#include "tunnel.h"

struct fastpath {
	struct mt_metal metal;
	struct mt_rtnl *rtnl;
	struct mt_monitor *monitor;
	struct mt_tunnels *tunnels;
	struct mt_nft_cust *nft_cust;
	struct mt_rpc_server *server;
	struct mt_rpc_pub *events;
	uint64_t started_ms;
	uint64_t plans_applied;
	uint64_t kernel_writes;
	/* namespaces came or went: the drift monitor is to watch them (done
	 * after the reply, before anything else is served) */
	bool monitor_sync_due;
};

static void monitor_sync(struct fastpath *fp)
{
	uint64_t t0 = mt_monotonic_us();

	if (!fp->monitor_sync_due)
		return;
	fp->monitor_sync_due = false;
	if (mt_monitor_sync(fp->monitor) < 0)
		mt_warn("drift monitor: cannot list the namespaces to watch");
	mt_debug("drift monitor: namespaces synced in %.1f ms",
		 (mt_monotonic_us() - t0) / 1e3);
}

/* Which module executes an op. */
enum applier {
	APPLY_RTNL,     /* rtnl_apply.c: namespaces, links, addrs, routes, ... */
	APPLY_MARK,     /* nft_mark.c: the marking table in the metal */
	APPLY_TUNNEL,   /* tunnel.c: GRE tunnels */
	APPLY_CUST_NFT, /* nft_cust.c: mt's table in customer namespaces
			 * (MSS clamps and firewalls, one transaction per
			 * namespace) */
};

static const char *const applier_name[] = {
	[APPLY_RTNL] = "rtnetlink",
	[APPLY_MARK] = "marking-table",
	[APPLY_TUNNEL] = "tunnel",
	[APPLY_CUST_NFT] = "customer-nft",
};

static enum applier op_applier(const Mt__Kernel__Op *op)
{
	switch (op->object_case) {
	case MT__KERNEL__OP__OBJECT_MARK_TABLE:
	case MT__KERNEL__OP__OBJECT_MARK_PREFIX:
		return APPLY_MARK;
	case MT__KERNEL__OP__OBJECT_TUNNEL:
		return APPLY_TUNNEL;
	case MT__KERNEL__OP__OBJECT_MSS_CLAMP:
	case MT__KERNEL__OP__OBJECT_FIREWALL:
		return APPLY_CUST_NFT;
	default:
		return APPLY_RTNL;
	}
}

/* The tunnel and customer-nft parts of an observation, run on a second
 * thread while the rtnetlink part runs on the loop's (they use sockets
 * and caches of their own; the kernel fills the dumps of both at once on
 * the machine's two cores). */
struct observe_side {
	struct fastpath *fp;
	const Mt__Rpc__ObserveRequest *req;
	Mt__Kernel__KernelState *ks;
	int r;
	uint64_t tunnels_us, nft_us; /* how long each part took */
};

#define SIDE_THREAD_MIN 8 /* owners */

static void *observe_side_main(void *arg)
{
	struct observe_side *o = arg;
	const char *const *owners = (const char *const *)o->req->owners;
	uint64_t t0 = mt_monotonic_us(), t1;

	o->r = mt_tunnels_observe(o->fp->tunnels, owners, o->req->n_owners,
				  o->req->counters, o->ks);
	t1 = mt_monotonic_us();
	if (o->r >= 0)
		o->r = mt_nft_cust_observe_counters(o->fp->nft_cust, owners,
						    o->req->n_owners,
						    o->req->counters, o->ks);
	o->tunnels_us = t1 - t0;
	o->nft_us = mt_monotonic_us() - t1;
	return NULL;
}

static Mt__Rpc__Code h_observe(void *ctx, const ProtobufCMessage *in,
			       ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct fastpath *fp = ctx;
	const Mt__Rpc__ObserveRequest *req = (const Mt__Rpc__ObserveRequest *)in;
	struct observe_side side = {fp, req, mt_kstate_new(), 0, 0, 0};
	Mt__Kernel__KernelState *ks = mt_kstate_new();
	uint64_t t0 = mt_monotonic_us(), t_rtnl, t_mark;
	pthread_t tid;
	bool threaded;
	int r;

	if (!ks || !side.ks) {
		mt_kstate_free(ks);
		mt_kstate_free(side.ks);
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
	}
	/* every namespace watched, and every change made so far counted in
	 * its namespace's generation, so that the mirrors of unchanged
	 * namespaces can answer */
	if (fp->monitor) {
		monitor_sync(fp);
		mt_monitor_drain(fp->monitor);
	}
	/* A second thread pays off for many namespaces, not for a few (a
	 * store change's observe of one customer: ~1 ms each side) */
	threaded = (!req->n_owners || req->n_owners > SIDE_THREAD_MIN) &&
		   pthread_create(&tid, NULL, observe_side_main, &side) == 0;
	r = mt_rtnl_observe(fp->rtnl, (const char *const *)req->owners,
			    req->n_owners, req->fresh, ks);
	t_rtnl = mt_monotonic_us();
	if (r >= 0)
		r = mt_nft_mark_observe_owners(&fp->metal,
					       (const char *const *)req->owners,
					       req->n_owners, ks);
	t_mark = mt_monotonic_us();
	if (threaded)
		pthread_join(tid, NULL);
	else
		observe_side_main(&side);
	mt_debug("observe (%zu owners): rtnetlink %.1f ms, marking %.1f ms; "
		 "beside them tunnels %.1f ms, customer nft %.1f ms; all %.1f ms",
		 req->n_owners, (t_rtnl - t0) / 1e3, (t_mark - t_rtnl) / 1e3,
		 side.tunnels_us / 1e3, side.nft_us / 1e3,
		 (mt_monotonic_us() - t0) / 1e3);
	if (r >= 0)
		r = side.r;
	if (r >= 0) {
		/* ks has no tunnels, clamps or firewalls of its own: hand
		 * them over */
		ks->tunnels = side.ks->tunnels;
		ks->n_tunnels = side.ks->n_tunnels;
		ks->mss_clamps = side.ks->mss_clamps;
		ks->n_mss_clamps = side.ks->n_mss_clamps;
		ks->firewalls = side.ks->firewalls;
		ks->n_firewalls = side.ks->n_firewalls;
		side.ks->tunnels = NULL;
		side.ks->n_tunnels = 0;
		side.ks->mss_clamps = NULL;
		side.ks->n_mss_clamps = 0;
		side.ks->firewalls = NULL;
		side.ks->n_firewalls = 0;
	}
	mt_kstate_free(side.ks);
	if (r < 0) {
		mt_kstate_free(ks);
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL,
				   "observe failed: %s", strerror(-r));
	}
	*out = &ks->base;
	return MT__RPC__CODE__OK;
}

/* Executes the plan in order: each run of consecutive ops of one module
 * goes to that module at once (rtnetlink: batched per namespace; nft: one
 * transaction per run and namespace). */
static Mt__Rpc__Code h_apply(void *ctx, const ProtobufCMessage *in,
			     ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct fastpath *fp = ctx;
	const Mt__Kernel__Plan *plan = (const Mt__Kernel__Plan *)in;
	Mt__Rpc__ApplyReply *reply = malloc(sizeof(*reply));
	uint64_t writes = 0;
	bool ns_deleted = false, ns_changed = false;
	size_t i = 0;

	if (!reply)
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
	mt__rpc__apply_reply__init(reply);
	reply->results = calloc(plan->n_ops + 1, sizeof(*reply->results));
	if (!reply->results)
		goto nomem;
	for (; reply->n_results < plan->n_ops; reply->n_results++) {
		Mt__Kernel__OpResult *res = malloc(sizeof(*res));

		if (!res)
			goto nomem;
		mt__kernel__op_result__init(res);
		reply->results[reply->n_results] = res;
	}
	while (i < plan->n_ops) {
		enum applier k = op_applier(plan->ops[i]);
		Mt__Kernel__Op **ops = plan->ops + i;
		Mt__Kernel__OpResult **res = reply->results + i;
		uint64_t t_run = mt_monotonic_us();
		size_t j = i;
		int r = 0;

		while (j < plan->n_ops && op_applier(plan->ops[j]) == k) {
			const Mt__Kernel__Op *op = plan->ops[j];

			if (op->object_case == MT__KERNEL__OP__OBJECT_NETNS)
				ns_changed = true;

			/* the modules' cached sockets in a namespace keep it
			 * (and its veth) alive: let go before it is deleted */
			if (op->object_case == MT__KERNEL__OP__OBJECT_NETNS &&
			    op->action == MT__KERNEL__OP__ACTION__DELETE) {
				mt_tunnels_forget_netns(fp->tunnels,
							op->netns->name);
				mt_nft_cust_forget_netns(fp->nft_cust,
							 op->netns->name);
				mt_monitor_own_delete(fp->monitor,
						      op->netns->name);
				ns_deleted = true;
			}
			j++;
		}
		switch (k) {
		case APPLY_MARK:
			r = mt_nft_mark_apply(&fp->metal, ops, j - i, res,
					      &writes);
			break;
		case APPLY_TUNNEL:
			r = mt_tunnels_apply(fp->tunnels, ops, j - i, res,
					     &writes);
			break;
		case APPLY_CUST_NFT:
			r = mt_nft_cust_apply(fp->nft_cust, ops, j - i, res,
					      &writes);
			break;
		case APPLY_RTNL:
			r = mt_rtnl_apply(fp->rtnl, ops, j - i, res, &writes);
			break;
		}
		if (r < 0)
			mt_warn("apply: %s", strerror(-r));
		mt_debug("apply: %zu %s ops in %.2f ms", j - i,
			 applier_name[k], (mt_monotonic_us() - t_run) / 1e3);
		i = j;
	}
	/* the BPF map entries of tunnels whose namespace went away */
	if (ns_deleted && mt_tunnels_sweep(fp->tunnels) < 0)
		mt_warn("could not sweep the tunnel maps");
	for (i = 0; i < plan->n_ops; i++) {
		char what[256];

		if (!reply->results[i]->error)
			continue;
		reply->failed++;
		mt_warn("%s: %s",
			mt_op_describe(plan->ops[i], what, sizeof(what)),
			reply->results[i]->message);
	}
	reply->kernel_writes = writes;
	fp->plans_applied++;
	fp->kernel_writes += writes;
	mt_debug("applied %zu ops (%u failed, %lu kernel writes)", plan->n_ops,
		 reply->failed, (unsigned long)writes);
	/* namespaces may have come or gone (a sync lists them all: only
	 * after a plan that created or deleted one); it waits until the
	 * reply is sent */
	if (ns_changed)
		fp->monitor_sync_due = true;
	*out = &reply->base;
	return MT__RPC__CODE__OK;
nomem:
	protobuf_c_message_free_unpacked(&reply->base, NULL);
	return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
}

static Mt__Rpc__Code h_ping(void *ctx, const ProtobufCMessage *in,
			    ProtobufCMessage **out, struct mt_rpc_status *st)
{
	struct fastpath *fp = ctx;
	Mt__Rpc__PingReply *r = malloc(sizeof(*r));

	if (!r)
		return mt_rpc_fail(st, MT__RPC__CODE__INTERNAL, "out of memory");
	mt__rpc__ping_reply__init(r);
	r->instance = strdup(fp->metal.instance);
	r->started_ms = fp->started_ms;
	r->plans_applied = fp->plans_applied;
	r->kernel_writes = fp->kernel_writes;
	*out = &r->base;
	return MT__RPC__CODE__OK;
}

/* In the order of service Fastpath in proto/rpc.proto. */
static const struct mt_rpc_method fastpath_methods[] = {
	{ h_observe },
	{ h_apply },
	{ h_ping },
};

static void on_drift(void *data, const char *owner, const char *netns,
		     const char *what)
{
	struct fastpath *fp = data;
	Mt__Rpc__KernelEvent ev = MT__RPC__KERNEL_EVENT__INIT;

	mt_info("drift in netns %s: %s", *netns ? netns : "metal", what);
	ev.owner = (char *)owner;
	ev.netns = (char *)netns;
	ev.what = (char *)what;
	mt_rpc_pub_send(fp->events, &ev.base);
}

/* A namespace of ours deleted by hand (its name gone from /run/netns):
 * every module lets go of it, the drift monitor's watch included. */
static void on_netns_gone(void *data, const char *netns)
{
	struct fastpath *fp = data;

	mt_rtnl_ns_drop(fp->rtnl, netns);
	mt_tunnels_forget_netns(fp->tunnels, netns);
	mt_nft_cust_forget_netns(fp->nft_cust, netns);
	fp->monitor_sync_due = true;
}

/* Drift in a customer namespace's nftables (mt_nft_cust_poll). */
static void on_nft_drift(void *data, const char *owner, const char *netns)
{
	on_drift(data, owner, netns,
		 "nftables ruleset changed by another process");
}

/* Between requests, how often each customer namespace's nftables
 * generation id is compared with mt's (drift in the firewall and the MSS
 * clamps; one small request per namespace): once a second, a twentieth of
 * them every 50 ms, so that a thousand namespaces never hold the loop (and
 * a request waiting behind it) for more than a few dozen requests. */
#define NFT_POLL_MS 50
#define NFT_POLL_SLICES 20

/* Where the BPF maps are pinned: $MT_RUN_DIR/bpf when MT_RUN_DIR is set
 * (labs and tests keep their runtime state apart), else MT_BPF_PIN_ROOT. */
static const char *bpf_pin_root(char *buf, size_t len)
{
	const char *run = getenv("MT_RUN_DIR");

	if (!run || !*run)
		return MT_BPF_PIN_ROOT;
	snprintf(buf, len, "%s/bpf", run);
	return buf;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mt-fastpath [-c METAL.json] [-i INSTANCE] [-v]\n"
		"  -c, --config FILE   the metal's settings (mt.config.Metal as JSON)\n"
		"  -i, --instance NAME instance name (overrides the config file)\n"
		"  -v, --verbose       debug logging\n"
		"Runs in the network namespace it is started in (the metal).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "instance", required_argument, NULL, 'i' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *config = NULL, *instance = NULL;
	static struct fastpath fastpath;
	struct fastpath *fp = &fastpath;
	char url[300], err[512], pins[300];
	bool running = true;
	int o, r, sfd;

	mt_log_init("mt-fastpath", MT_LOG_INFO);
	while ((o = getopt_long(argc, argv, "c:i:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'i':
			instance = optarg;
			break;
		case 'v':
			mt_log_init("mt-fastpath", MT_LOG_DEBUG);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "mt-fastpath: unexpected argument \"%s\"\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	if (mt_metal_load(config, instance, &fp->metal, err, sizeof(err)) < 0) {
		mt_err("config %s", err);
		return 1;
	}
	/* Before any thread exists (nng's, the watchdogs): threads inherit
	 * the signal mask, and a thread that does not block SIGTERM takes
	 * its default action, killing the process without cleanup. */
	sfd = mt_daemon_signalfd();
	if (sfd < 0) {
		mt_err("signalfd: %s", strerror(-sfd));
		return 1;
	}
	fp->started_ms = mt_realtime_ms();

	if (mt_daemon_run_dir(fp->metal.instance, err, sizeof(err)) < 0) {
		mt_err("runtime directory %s", err);
		return 1;
	}
	r = mt_rpc_server_open(mt_rpc_url(fp->metal.instance, "fastpath", url,
					  sizeof(url)),
			       &mt__rpc__fastpath__descriptor, fastpath_methods,
			       MT_ARRAY_SIZE(fastpath_methods), fp,
			       &fp->server);
	if (r < 0) {
		mt_err("socket %s: %s%s", url, strerror(-r),
		       r == -EADDRINUSE ?
			       " (another mt-fastpath of this instance is running)" :
			       "");
		return 1;
	}
	r = mt_rpc_pub_open(mt_rpc_url(fp->metal.instance, "events", url,
				       sizeof(url)),
			    &fp->events);
	if (r < 0) {
		mt_err("events socket %s: %s", url, strerror(-r));
		return 1;
	}
	r = mt_rtnl_new(&fp->metal, &fp->rtnl);
	if (r < 0) {
		mt_err("netlink: %s", strerror(-r));
		return 1;
	}
	r = mt_tunnels_new(&fp->metal, bpf_pin_root(pins, sizeof(pins)),
			   &fp->tunnels, err, sizeof(err));
	if (r < 0) {
		mt_err("tunnels: %s", err);
		return 1;
	}
	r = mt_nft_cust_new(&fp->metal, &fp->nft_cust);
	if (r < 0) {
		mt_err("nftables in customer namespaces: %s", strerror(-r));
		return 1;
	}
	r = mt_monitor_new(fp->rtnl, on_drift, fp, &fp->monitor);
	if (r == 0) {
		fp->rtnl->ns_gen = mt_monitor_ns_gen;
		fp->rtnl->ns_gen_data = fp->monitor;
		mt_tunnels_set_ns_gen(fp->tunnels, mt_monitor_ns_gen,
				      fp->monitor);
		mt_monitor_set_gone_cb(fp->monitor, on_netns_gone, fp);
	}
	if (r < 0) {
		mt_err("drift monitor: %s", strerror(-r));
		return 1;
	}
	mt_rpc_server_watchdog_start(fp->server, 2000);
	mt_info("instance %s: serving %s", fp->metal.instance,
		mt_rpc_url(fp->metal.instance, "fastpath", url, sizeof(url)));

	uint64_t next_nft_poll = 0;

	while (running) {
		struct pollfd fds[3] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = mt_rpc_server_fd(fp->server), .events = POLLIN },
			{ .fd = mt_monitor_fd(fp->monitor), .events = POLLIN },
		};

		uint64_t now = mt_monotonic_us() / 1000;

		if (now >= next_nft_poll) {
			mt_nft_cust_poll(fp->nft_cust, NFT_POLL_SLICES,
					 on_nft_drift, fp);
			if (mt_nft_mark_poll(&fp->metal) == 1)
				on_drift(fp, "", "",
					 "nft marking table changed by another process");
			now = mt_monotonic_us() / 1000;
			next_nft_poll = now + NFT_POLL_MS;
		}
		mt_rpc_server_idle(fp->server, true);
		r = poll(fds, MT_ARRAY_SIZE(fds),
			 (int)(next_nft_poll - now));
		mt_rpc_server_idle(fp->server, false);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			mt_err("poll: %s", strerror(errno));
			break;
		}
		if (fds[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) != sizeof(si))
				continue;
			if (si.ssi_signo == SIGHUP) {
				/* the fastpath holds no configuration */
				mt_info("SIGHUP: nothing to reload");
				continue;
			}
			mt_info("signal %u: exiting", si.ssi_signo);
			running = false;
		}
		if (fds[1].revents & POLLIN)
			mt_rpc_server_process(fp->server);
		monitor_sync(fp);
		if (fds[2].revents & POLLIN)
			mt_monitor_process(fp->monitor);
	}

	mt_rpc_server_close(fp->server);
	mt_rpc_pub_close(fp->events);
	mt_monitor_free(fp->monitor);
	mt_nft_cust_free(fp->nft_cust);
	mt_tunnels_free(fp->tunnels);
	mt_rtnl_free(fp->rtnl);
	mt_metal_fini(&fp->metal);
	return 0;
}
