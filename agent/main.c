/* mt-agent: the slow loop's process. One reactor: the API socket, the store
 * watch, fastpath events, signals and timers feed one poll loop. */
#include "agent.h"
#include "fw_lists.h"

#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>

#include "mt_cleanup.h"
#include "mt_daemon.h"
#include "mt_metal_file.h"
#include "mt_log.h"
#include "mt_time.h"
#include "prober.h"
#include "metrics.h"

#define PING_INTERVAL_MS 1000
#define PING_TIMEOUT_MS 1000
#define RETRY_INTERVAL_MS 200
#define REDIAL_AFTER_MS 5000
#define DEFAULT_STORE_ROOT "/var/lib/mt"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: mt-agent [-c METAL.json] [-i INSTANCE] [-s STORE_URL] [-v]\n"
		"  -c, --config FILE   the metal's settings (mt.config.Metal as JSON)\n"
		"  -i, --instance NAME instance name (overrides the config file)\n"
		"  -s, --store URL     config store: lmdb:PATH (default lmdb:%s/<instance>)\n"
		"  -l, --lkg URL       last-known-good copy on this metal (default: the store\n"
		"                      URL + \".lkg\"; lmdb:%s/<instance>.lkg for etcd)\n"
		"  -m, --metrics ADDR  serve Prometheus metrics on ADDR (IP:PORT,\n"
		"                      e.g. 127.0.0.1:9464; default: none)\n"
		"  -v, --verbose       debug logging\n",
		DEFAULT_STORE_ROOT, DEFAULT_STORE_ROOT);
}

static void ping_fastpath(struct agent *a)
{
	Mt__Rpc__Empty e = MT__RPC__EMPTY__INIT;
	Mt__Rpc__PingReply *reply = NULL;
	int r = -ECONNREFUSED;

	/* The socket redials by itself; only call once a pipe is there, so
	 * the loop never waits on a fastpath that is not running. */
	if (mt_rpc_client_connected(a->fastpath))
		r = mt_rpc_call(a->fastpath, &mt__rpc__fastpath__descriptor,
				FP_PING, &e.base, (ProtobufCMessage **)&reply,
				PING_TIMEOUT_MS, NULL);
	if (r < 0) {
		uint64_t now = mt_monotonic_ms();

		if (a->fastpath_up) {
			mt_warn("mt-fastpath is not answering (%s): will reconcile when it is back",
				strerror(-r));
			a->fastpath_down_since_ms = now;
		}
		a->fastpath_up = false;
		/* nng redials by itself, but a dial caught half way through
		 * a fastpath restart can hang in its handshake for good (nng
		 * 1.5.2): after a while with no pipe, start the socket over. */
		if (!a->fastpath_down_since_ms)
			a->fastpath_down_since_ms = now;
		if (now - a->fastpath_down_since_ms >= REDIAL_AFTER_MS &&
		    !mt_rpc_client_connected(a->fastpath)) {
			char url[300];
			struct mt_rpc_client *c = NULL;

			mt_rpc_url(a->metal.instance, "fastpath", url, sizeof(url));
			if (mt_rpc_client_open(url, &c) == 0) {
				mt_debug("no connection to mt-fastpath for %lu ms: dialing %s afresh",
					(unsigned long)(now - a->fastpath_down_since_ms),
					url);
				mt_rpc_client_close(a->fastpath);
				a->fastpath = c;
			}
			a->fastpath_down_since_ms = now;
		}
		return;
	}
	a->fastpath_down_since_ms = 0;
	if (!a->fastpath_up || reply->started_ms != a->fastpath_started_ms) {
		mt_info("mt-fastpath is up (started %lu): full reconcile",
			(unsigned long)reply->started_ms);
		a->pending.full = true;
	}
	a->fastpath_up = true;
	a->fastpath_started_ms = reply->started_ms;
	protobuf_c_message_free_unpacked(&reply->base, NULL);
}

/* The orchestrator's heartbeat (store key "heartbeat": its wall clock in
 * ms, as decimal text, written every second or so): how far behind the
 * orchestrator this metal's view of the store is, for the metrics. */
static void read_heartbeat(struct agent *a)
{
	void *v = NULL;
	size_t len = 0;
	char *end;
	unsigned long long ms;

	if (mt_store_get(a->store, MT_STORE_HEARTBEAT_KEY, &v, &len, NULL) < 0)
		return;
	ms = strtoull(v, &end, 10);
	if (end != (char *)v && ms)
		a->heartbeat_ms = ms;
	free(v);
}

static void drain_events(struct agent *a)
{
	Mt__Rpc__KernelEvent *ev;

	while (mt_rpc_sub_recv(a->events, &mt__rpc__kernel_event__descriptor,
			       (ProtobufCMessage **)&ev) == 0) {
		a->drift_events++;
		mt_info("kernel drift in netns %s: %s%s%s%s",
			*ev->netns ? ev->netns : "metal", ev->what,
			*ev->owner ? " (customer " : "",
			*ev->owner ? ev->owner : "", *ev->owner ? ")" : "");
		if (*ev->owner)
			agent_scope_add(&a->pending, ev->owner);
		else
			a->pending.full = true;
		protobuf_c_message_free_unpacked(&ev->base, NULL);
	}
}

static void run_pending(struct agent *a)
{
	struct agent_scope work = a->pending;
	uint64_t rev = a->store_revision, t0;
	int r;

	if (a->paused || !a->fastpath_up || agent_scope_empty(&a->pending))
		return;
	/* Take the queue; what arrives while we reconcile waits its turn. */
	memset(&a->pending, 0, sizeof(a->pending));
	/* the prober first: a customer that goes must close its sockets
	 * before the plan deletes its namespace */
	t0 = mt_monotonic_us();
	agent_health_sync(a, &work);
	mt_debug("prober: %zu customers synced in %.1f ms",
		 work.full ? a->n_customers : work.n,
		 (mt_monotonic_us() - t0) / 1e3);
	r = agent_reconcile(a, &work, false, NULL, NULL);
	if (r < 0) {
		/* Put the work back and retry once the fastpath answers. */
		a->fastpath_up = false;
		if (work.full)
			a->pending.full = true;
		if (work.fresh)
			a->pending.fresh = true;
		for (size_t i = 0; i < work.n; i++)
			agent_scope_add(&a->pending, work.owners[i]);
	} else {
		if (work.full) {
			a->last_full_reconcile_ms = mt_realtime_ms();
			a->next_full_reconcile =
				mt_monotonic_ms() +
				a->metal.reconcile_interval_s * 1000ull;
		}
		if (r == 0 && (work.full || agent_scope_empty(&a->pending)))
			a->applied_revision = rev;
	}
	agent_scope_clear(&work);
	free(work.owners);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "instance", required_argument, NULL, 'i' },
		{ "store", required_argument, NULL, 's' },
		{ "lkg", required_argument, NULL, 'l' },
		{ "metrics", required_argument, NULL, 'm' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *config = NULL, *instance = NULL, *store_url = NULL;
	const char *lkg_url = NULL, *metrics_addr = NULL;
	struct agent_metrics *metrics = NULL;
	static struct agent agent;
	struct agent *a = &agent;
	char url[300], err[512];
	int sfd, wfd, o, r;
	bool running = true;
	unsigned recheck = 0;
	uint64_t next_ping = 0;

	mt_log_init("mt-agent", MT_LOG_INFO);
	while ((o = getopt_long(argc, argv, "c:i:s:l:m:vh", opts, NULL)) != -1) {
		switch (o) {
		case 'c':
			config = optarg;
			break;
		case 'i':
			instance = optarg;
			break;
		case 's':
			store_url = optarg;
			break;
		case 'l':
			lkg_url = optarg;
			break;
		case 'm':
			metrics_addr = optarg;
			break;
		case 'v':
			mt_log_init("mt-agent", MT_LOG_DEBUG);
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
		fprintf(stderr, "mt-agent: unexpected argument \"%s\"\n",
			argv[optind]);
		usage(stderr);
		return 2;
	}
	if (mt_metal_load(config, instance, &a->metal, err, sizeof(err)) < 0) {
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
	if (!store_url) {
		snprintf(url, sizeof(url), "lmdb:" DEFAULT_STORE_ROOT "/%.8s",
			 a->metal.instance);
		store_url = url;
	}
	if (strlen(store_url) >= sizeof(a->store_url)) {
		mt_err("store URL too long (at most %zu characters)",
		       sizeof(a->store_url) - 1);
		return 2;
	}
	strcpy(a->store_url, store_url);
	if (lkg_url && strlen(lkg_url) >= sizeof(a->lkg_url)) {
		mt_err("last-known-good URL too long");
		return 2;
	}
	if (lkg_url)
		snprintf(a->lkg_url, sizeof(a->lkg_url), "%s", lkg_url);
	else if (strncmp(a->store_url, "etcd://", 7) == 0)
		/* the copy must be on this metal's own disk */
		snprintf(a->lkg_url, sizeof(a->lkg_url),
			 "lmdb:" DEFAULT_STORE_ROOT "/%.8s.lkg", a->metal.instance);
	else
		snprintf(a->lkg_url, sizeof(a->lkg_url), "%s.lkg", a->store_url);
	a->rpc_timeout_ms = 10000;
	a->started_ms = mt_realtime_ms();

	r = mt_store_open(a->store_url, 0, &a->store, err, sizeof(err));
	if (r < 0) {
		mt_err("store %s: %s", a->store_url, err);
		return 1;
	}
	r = mt_store_open(a->lkg_url, 0, &a->lkg, err, sizeof(err));
	if (r < 0) {
		mt_err("last-known-good copy %s: %s", a->lkg_url, err);
		return 1;
	}
	wfd = mt_store_watch_open(a->store);
	if (wfd < 0) {
		mt_err("store %s: cannot watch for changes: %s", a->store_url,
		       strerror(-wfd));
		return 1;
	}

	if (mt_daemon_run_dir(a->metal.instance, err, sizeof(err)) < 0) {
		mt_err("runtime directory %s", err);
		return 1;
	}
	r = agent_api_open(a, mt_rpc_url(a->metal.instance, "agent", url,
					 sizeof(url)));
	if (r < 0) {
		mt_err("API socket %s: %s%s", url, strerror(-r),
		       r == -EADDRINUSE ?
			       " (another mt-agent of this instance is running)" :
			       "");
		return 1;
	}
	/* Busy until the loop first waits in poll(): loading a large store
	 * and the first reconcile come before it, and the watchdog must not
	 * take the unanswered probes for a wedged listener. */
	mt_rpc_server_idle(a->api, false);
	mt_rpc_server_watchdog_start(a->api, 2000);
	r = mt_rpc_client_open(mt_rpc_url(a->metal.instance, "fastpath", url,
					  sizeof(url)),
			       &a->fastpath);
	if (r < 0) {
		mt_err("fastpath socket %s: %s", url, strerror(-r));
		return 1;
	}
	r = mt_rpc_sub_open(mt_rpc_url(a->metal.instance, "events", url,
				       sizeof(url)),
			    &a->events);
	if (r < 0) {
		mt_err("fastpath events %s: %s", url, strerror(-r));
		return 1;
	}

	r = prober_new(&a->metal, &a->prober);
	if (r < 0) {
		mt_err("tunnel prober: %s", strerror(-r));
		return 1;
	}
	if (metrics_addr) {
		r = agent_metrics_open(a, metrics_addr, &metrics, err,
				       sizeof(err));
		if (r < 0) {
			mt_err("metrics: %s", err);
			return 1;
		}
		mt_info("metrics on http://%s/metrics", metrics_addr);
	}
	r = agent_load_lkg(a);
	if (r < 0)
		mt_err("last-known-good copy %s: %s", a->lkg_url, strerror(-r));
	else if (r > 0)
		mt_info("%d customers from the last-known-good copy %s", r,
			a->lkg_url);
	r = agent_load_store(a);
	if (r < 0)
		mt_err("store %s: initial load failed: %s", a->store_url,
		       strerror(-r));
	read_heartbeat(a);
	a->pending.full = true;
	a->pending.fresh = true;
	mt_info("instance %s: store %s (revision %lu, %zu customers)",
		a->metal.instance, a->store_url,
		(unsigned long)a->store_revision, a->n_customers);

	while (running) {
		struct pollfd fds[6] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = mt_rpc_server_fd(a->api), .events = POLLIN },
			{ .fd = wfd, .events = POLLIN },
			{ .fd = mt_rpc_sub_fd(a->events), .events = POLLIN },
			{ .fd = prober_fd(a->prober), .events = POLLIN },
			{ .fd = metrics ? agent_metrics_fd(metrics) : -1,
			  .events = POLLIN },
		};
		uint64_t now = mt_monotonic_ms();
		int timeout;

		if (now >= next_ping) {
			ping_fastpath(a);
			next_ping = now + PING_INTERVAL_MS;
		}
		if (a->next_full_reconcile && now >= a->next_full_reconcile) {
			/* the periodic one reads the kernel afresh: a guard
			 * against a change that slipped past the drift
			 * monitor's notifications */
			a->pending.full = true;
			a->pending.fresh = true;
		}
		run_pending(a);
		agent_lkg_flush(a);

		now = mt_monotonic_ms();
		timeout = (int)(next_ping > now ? next_ping - now : 0);
		if (recheck)
			timeout = 2;
		else if (!a->fastpath_up && !agent_scope_empty(&a->pending))
			timeout = timeout < RETRY_INTERVAL_MS ? timeout :
								RETRY_INTERVAL_MS;
		if (a->next_full_reconcile) {
			int64_t d = (int64_t)a->next_full_reconcile - (int64_t)now;

			if (d < timeout)
				timeout = d < 0 ? 0 : (int)d;
		}
		mt_rpc_server_idle(a->api, true);
		r = poll(fds, MT_ARRAY_SIZE(fds), timeout);
		mt_rpc_server_idle(a->api, false);
		if (r < 0 && errno != EINTR) {
			mt_err("poll: %s", strerror(errno));
			break;
		}
		if (fds[0].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP) {
					mt_info("SIGHUP: full reconcile, the kernel dumped afresh");
					a->pending.full = true;
					a->pending.fresh = true;
				} else {
					mt_info("signal %u: exiting",
						si.ssi_signo);
					running = false;
				}
			}
		}
		if (fds[1].revents & POLLIN)
			mt_rpc_server_process(a->api);
		if ((fds[2].revents & POLLIN) || recheck) {
			uint64_t before = a->store_revision;

			if (mt_store_watch_drain(a->store) == -ESTALE) {
				/* etcd compacted the history the watch needed:
				 * read every customer again, reconcile all */
				mt_warn("store %s: the watch lost history (compaction): full resync",
					a->store_url);
				a->store_revision = 0;
				a->pending.full = true;
			}
			r = agent_load_store(a);
			if (r < 0)
				mt_warn("store %s: %s", a->store_url,
					strerror(-r));
			read_heartbeat(a);
			/* A reader can see a commit slightly after the
			 * writer's event: look again a few times (not when
			 * the store itself failed: its next event retries). */
			if (r < 0)
				recheck = 0;
			else if ((fds[2].revents & POLLIN) &&
				 a->store_revision == before)
				recheck = 5;
			else if (recheck && a->store_revision == before)
				recheck--;
			else
				recheck = 0;
		}
		if (fds[3].revents & POLLIN)
			drain_events(a);
		/* the fast loop: paused or not, store or not */
		if (fds[4].revents & POLLIN)
			agent_health_apply(a);
		if (fds[5].revents & POLLIN)
			agent_metrics_process(metrics);
	}

	agent_metrics_free(metrics);
	prober_free(a->prober);
	mt_rpc_server_close(a->api);
	mt_rpc_sub_close(a->events);
	mt_rpc_client_close(a->fastpath);
	agent_lkg_flush(a);
	mt_store_close(a->store);
	mt_store_close(a->lkg);
	mt_fw_lists_free(a->fw_lists);
	free(a->lkg_ops);
	agent_customers_free(a);
	agent_scope_clear(&a->pending);
	free(a->pending.owners);
	mt_metal_fini(&a->metal);
	return 0;
}
