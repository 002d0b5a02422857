/* tunnel_add_latency: how long a new tunnel takes to carry traffic
 * (tests/bench/tunnels, figure tunnel_add_to_traffic_ms). Runs with
 * mt-agent and mt-fastpath up and the customers converged.
 *
 *   tunnel_add_latency STORE_URL WITH WITHOUT SRC_NS DST_NS ADDR PORT N
 *                      MTCTL INSTANCE CUST_NS DEV BASE_TABLE PREFIX [KINDS]
 *
 * WITH and WITHOUT are mtctl input files (a CustomerList holding one
 * customer): the customer with one more tunnel and a route for PREFIX
 * through it, and as it is in the store now. A probe thread sends a small
 * UDP datagram every PROBE_US from SRC_NS to ADDR:PORT (a receiver socket in
 * DST_NS, the origin server behind the new tunnel); before the change
 * PREFIX (which holds ADDR) is blackholed in the customer's namespace.
 *
 * A sample is the time from just before the change until the first probe
 * arrives at the receiver. After each addition the change is undone the
 * same way and the probes must stop (30 ms without one); that time is
 * reported too ("remove"). Samples are 20 ms apart. N samples of each kind
 * (KINDS, comma-separated, default "mt,mtctl,ip"; a kind not run reports
 * n = 0):
 *   "mt":    one store write of WITH (mt_store_put_customer, in-process, as
 *            change_latency does);
 *   "mtctl": posix_spawn of `MTCTL -i INSTANCE put WITH` (through the
 *            agent's API: what an operator does), waited for;
 *   "ip":    the baseline, change_latency's method: posix_spawn of
 *            `ip -n CUST_NS route add PREFIX dev DEV table BASE_TABLE`
 *            through an existing tunnel DEV (BASE_TABLE is not mt's; the
 *            caller has added a rule to it below mt's rule range), i.e.
 *            the cost of one route change that makes traffic flow.
 *
 * Prints one JSON object {"mt": {...}, "mtctl": {...}, "ip": {...},
 * "mt_remove": ..., "mtctl_remove": ..., "ip_remove": ..., "store_write":
 * ...}, each {"n", "p50", "p90", "p99", "max", "timeouts", "sorted"} in ms
 * (nearest rank; "sorted": every sample, ascending).
 * Exit 1 on setup errors or timeouts, 2 on usage errors. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.pb-c.h"
#include "mt_json.h"
#include "mt_store.h"
#include "latency_stats.h"

#define PROBE_US 100
#define TIMEOUT_MS 10000
#define QUIET_MS 30
#define GAP_US 20000

extern char **environ;

struct probe {
	int fd;
	atomic_bool stop;
	unsigned long long sent;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int socket_in(const char *ns)
{
	int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
	char path[300];
	int fd, nfd, r;

	snprintf(path, sizeof(path), "/run/netns/%s", ns);
	nfd = open(path, O_RDONLY | O_CLOEXEC);
	if (self < 0 || nfd < 0 || setns(nfd, CLONE_NEWNET) < 0) {
		r = -errno;
		goto out;
	}
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	r = fd < 0 ? -errno : fd;
	if (setns(self, CLONE_NEWNET) < 0) {
		fprintf(stderr, "tunnel_add_latency: setns back: %s\n",
			strerror(errno));
		exit(1);
	}
out:
	if (self >= 0)
		close(self);
	if (nfd >= 0)
		close(nfd);
	return r;
}

/* Sends one datagram every PROBE_US (absolute deadlines: no drift). */
static void *prober(void *arg)
{
	struct probe *p = arg;
	struct timespec next;
	uint64_t seq = 0;

	clock_gettime(CLOCK_MONOTONIC, &next);
	while (!atomic_load(&p->stop)) {
		send(p->fd, &seq, sizeof(seq), MSG_DONTWAIT);
		seq++;
		next.tv_nsec += PROBE_US * 1000;
		if (next.tv_nsec >= 1000000000) {
			next.tv_nsec -= 1000000000;
			next.tv_sec++;
		}
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
	}
	p->sent = seq;
	return NULL;
}

static unsigned drain(int fd)
{
	char buf[64];
	unsigned n = 0;

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) >= 0)
		n++;
	return n;
}

/* Waits for a probe; its arrival time in *t. False on timeout. */
static bool wait_probe(int fd, unsigned timeout_ms, double *t)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	if (poll(&p, 1, (int)timeout_ms) <= 0)
		return false;
	*t = now_ms();
	drain(fd);
	return true;
}

/* Waits until no probe arrived for QUIET_MS; *t = the last arrival (or the
 * start when none came). False when probes still arrive after
 * TIMEOUT_MS. */
static bool wait_quiet(int fd, double t0, double *t)
{
	double last = t0, a;

	while (now_ms() - t0 < TIMEOUT_MS) {
		if (!wait_probe(fd, QUIET_MS, &a)) {
			*t = last;
			return true;
		}
		last = a;
	}
	return false;
}

static int spawn_wait(char **argv)
{
	int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, r;

	posix_spawn_file_actions_init(&fa);
	if (devnull >= 0)
		posix_spawn_file_actions_adddup2(&fa, devnull, 1);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (devnull >= 0)
		close(devnull);
	if (r != 0)
		return -r;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
		fprintf(stderr, "tunnel_add_latency: %s %s %s ... failed\n",
			argv[0], argv[1], argv[2]);
		return -EIO;
	}
	return 0;
}

static Mt__Config__Customer *load_customer(const char *file)
{
	ProtobufCMessage *m = NULL;
	Mt__Config__CustomerList *l;
	Mt__Config__Customer *c;
	char err[512], *text = NULL;
	size_t len = 0;
	FILE *f = fopen(file, "re");

	if (!f || getdelim(&text, &len, '\0', f) < 0) {
		fprintf(stderr, "tunnel_add_latency: %s: %s\n", file,
			strerror(errno));
		if (f)
			fclose(f);
		free(text);
		return NULL;
	}
	fclose(f);
	if (mt_json_parse_message(&mt__config__customer_list__descriptor, text,
				  strlen(text), &m, err, sizeof(err)) < 0) {
		fprintf(stderr, "tunnel_add_latency: %s: %s\n", file, err);
		free(text);
		return NULL;
	}
	free(text);
	l = (Mt__Config__CustomerList *)m;
	if (l->n_customers != 1) {
		fprintf(stderr, "tunnel_add_latency: %s: want one customer\n",
			file);
		return NULL;
	}
	c = l->customers[0];
	l->customers[0] = NULL;
	l->n_customers = 0;
	protobuf_c_message_free_unpacked(m, NULL);
	return c;
}

static void print_stats(const char *name, struct stats *s, bool comma)
{
	stats_sort(s);
	printf("\"%s\": {\"n\": %zu, \"p50\": %.3f, \"p90\": %.3f, \"p99\": %.3f, \"max\": %.3f, \"timeouts\": %u, \"sorted\": [",
	       name, s->n, pct(s, 50), pct(s, 90), pct(s, 99),
	       s->n ? s->v[s->n - 1] : -1, s->timeouts);
	for (size_t i = 0; i < s->n; i++)
		printf("%s%.2f", i ? ", " : "", s->v[i]);
	printf("]}%s", comma ? ", " : "");
}

enum mode { MODE_MT, MODE_MTCTL, MODE_IP };

struct ctx {
	struct mt_store *store;
	Mt__Config__Customer *with, *without;
	char *with_file, *without_file, *mtctl, *instance;
	char *cust_ns, *dev, *table, *prefix;
	int rx;
	struct stats commit;
};

static int change(struct ctx *x, enum mode m, bool add)
{
	char *mtctl[] = { x->mtctl, "-i", x->instance, "put",
			  add ? x->with_file : x->without_file, NULL };
	char *ip[] = { "ip", "-n", x->cust_ns, "route", add ? "add" : "del",
		       x->prefix, "dev", x->dev, "table", x->table, NULL };
	double t0;
	int r;

	switch (m) {
	case MODE_MT:
		t0 = now_ms();
		r = mt_store_put_customer(x->store, add ? x->with : x->without,
					  NULL);
		x->commit.v[x->commit.n++] = now_ms() - t0;
		if (r < 0)
			fprintf(stderr, "tunnel_add_latency: store write: %s\n",
				strerror(-r));
		return r;
	case MODE_MTCTL:
		return spawn_wait(mtctl);
	case MODE_IP:
		return spawn_wait(ip);
	}
	return -EINVAL;
}

static int run_mode(struct ctx *x, enum mode m, unsigned n, struct stats *add,
		    struct stats *rem)
{
	for (unsigned i = 0; i < n; i++) {
		double t0, t1;

		drain(x->rx);
		t0 = now_ms();
		if (change(x, m, true) < 0)
			return -1;
		if (wait_probe(x->rx, TIMEOUT_MS, &t1)) {
			add->v[add->n++] = t1 - t0;
		} else {
			add->timeouts++;
			fprintf(stderr, "tunnel_add_latency: sample %u: no probe within %d ms\n",
				i, TIMEOUT_MS);
		}
		usleep(GAP_US);
		t0 = now_ms();
		if (change(x, m, false) < 0)
			return -1;
		if (wait_quiet(x->rx, t0, &t1))
			rem->v[rem->n++] = t1 - t0;
		else
			rem->timeouts++;
		usleep(GAP_US);
	}
	return 0;
}

/* True when the comma-separated list holds the word k. */
static bool has_kind(const char *list, const char *k)
{
	size_t n = strlen(k);
	const char *p = list;

	while (p) {
		if (strncmp(p, k, n) == 0 && (p[n] == ',' || p[n] == '\0'))
			return true;
		p = strchr(p, ',');
		if (p)
			p++;
	}
	return false;
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct stats st[6] = { 0 };
	struct probe p = { 0 };
	struct ctx x = { 0 };
	pthread_t pt;
	char err[512];
	unsigned n;
	const char *kinds;
	int buf = 4 << 20, r = 0;

	if (argc != 15 && argc != 16) {
		fprintf(stderr,
			"usage: tunnel_add_latency STORE_URL WITH WITHOUT SRC_NS DST_NS ADDR PORT N\n"
			"                          MTCTL INSTANCE CUST_NS DEV BASE_TABLE PREFIX [KINDS]\n");
		return 2;
	}
	x.with_file = argv[2];
	x.without_file = argv[3];
	n = (unsigned)atoi(argv[8]);
	x.mtctl = argv[9];
	x.instance = argv[10];
	x.cust_ns = argv[11];
	x.dev = argv[12];
	x.table = argv[13];
	x.prefix = argv[14];
	kinds = argc > 15 ? argv[15] : "mt,mtctl,ip";
	sa.sin_port = htons((uint16_t)atoi(argv[7]));
	if (inet_pton(AF_INET, argv[6], &sa.sin_addr) != 1 || !n) {
		fprintf(stderr, "tunnel_add_latency: bad ADDR or N\n");
		return 2;
	}
	if (!(x.with = load_customer(x.with_file)) ||
	    !(x.without = load_customer(x.without_file)))
		return 1;
	r = mt_store_open(argv[1], 0, &x.store, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "tunnel_add_latency: store: %s\n", err);
		return 1;
	}
	x.rx = socket_in(argv[5]);
	p.fd = socket_in(argv[4]);
	if (x.rx < 0 || p.fd < 0) {
		fprintf(stderr, "tunnel_add_latency: sockets: %s\n",
			strerror(x.rx < 0 ? -x.rx : -p.fd));
		return 1;
	}
	setsockopt(x.rx, SOL_SOCKET, SO_RCVBUFFORCE, &buf, sizeof(buf));
	if (bind(x.rx, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    connect(p.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "tunnel_add_latency: bind/connect %s: %s\n",
			argv[6], strerror(errno));
		return 1;
	}
	for (int i = 0; i < 6; i++)
		st[i].v = calloc(n, sizeof(double));
	x.commit.v = calloc(2 * (size_t)n, sizeof(double));
	if (pthread_create(&pt, NULL, prober, &p)) {
		fprintf(stderr, "tunnel_add_latency: thread\n");
		return 1;
	}
	/* Nothing may arrive before the first change. */
	usleep(200000);
	if (drain(x.rx)) {
		fprintf(stderr, "tunnel_add_latency: probes to %s arrive before the tunnel exists: the setup is wrong\n",
			argv[6]);
		return 1;
	}
	if (has_kind(kinds, "mt"))
		r = run_mode(&x, MODE_MT, n, &st[0], &st[1]);
	if (r == 0 && has_kind(kinds, "mtctl"))
		r = run_mode(&x, MODE_MTCTL, n, &st[2], &st[3]);
	if (r == 0 && has_kind(kinds, "ip"))
		r = run_mode(&x, MODE_IP, n, &st[4], &st[5]);
	atomic_store(&p.stop, true);
	pthread_join(pt, NULL);
	if (r < 0)
		return 1;
	printf("{");
	print_stats("mt", &st[0], true);
	print_stats("mtctl", &st[2], true);
	print_stats("ip", &st[4], true);
	print_stats("mt_remove", &st[1], true);
	print_stats("mtctl_remove", &st[3], true);
	print_stats("ip_remove", &st[5], true);
	print_stats("store_write", &x.commit, false);
	printf(", \"probes_sent\": %llu, \"probe_interval_us\": %d}\n", p.sent,
	       PROBE_US);
	mt_store_close(x.store);
	for (int i = 0; i < 6; i++)
		if (st[i].timeouts)
			return 1;
	return 0;
}
