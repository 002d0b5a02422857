/* fw_latency: how long one firewall change takes from the store to the
 * kernel. Runs inside the customer's network namespace (nsenter --net=...,
 * which keeps the mount namespace, so the store path is the same), with
 * mt-agent and mt-fastpath running and the customers converged.
 *
 *   fw_latency STORE_URL ID TABLE MODE N [BASE_TABLE BASE_ARG]
 *
 * mt: N samples, each one store write (mt_store_put_customer) of customer
 * ID, alternating between two versions:
 *   MODE rule  rules[0].dst_ports is "1000" or "1001";
 *   MODE list  lists[0] with or without the extra prefix 198.51.100.77/32.
 * A sample is the time from just before the write until the first
 * nftables notification for TABLE (NEWRULE, NEWSETELEM or DELSETELEM: a
 * transaction's notifications are sent when it commits) arrives on a
 * netfilter socket subscribed to NFNLGRP_NFTABLES in this namespace.
 * Samples are 20 ms apart.
 *
 * Baseline, with BASE_TABLE (an inet table the script made with nft -f in
 * this namespace; mt ignores it): the nft CLI doing the same change, a
 * process per change (posix_spawn), timed to the same notification:
 *   MODE rule  nft replace rule inet BASE_TABLE c handle BASE_ARG
 *              tcp dport 1000|1001 counter drop
 *   MODE list  nft add|delete element inet BASE_TABLE BASE_ARG
 *              { 198.51.100.77 }   (BASE_ARG: the set's name)
 *
 * Prints one JSON object: {"mt": {...}, "nft": {...}} with p50/p99/max in
 * ms and the count of timeouts. Exit 1 on setup errors. */
#include <errno.h>
#include <libmnl/libmnl.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <poll.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.pb-c.h"
#include "latency_stats.h"
#include "mt_store.h"

#define TIMEOUT_MS 10000
#define GAP_US 20000
#define EXTRA_PREFIX "198.51.100.77/32"

extern char **environ;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int open_nft_monitor(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
			NETLINK_NETFILTER);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int grp = NFNLGRP_NFTABLES, sz = 32 << 20;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &grp,
		       sizeof(grp)) < 0)
		return -errno;
	return fd;
}

static void drain(int fd)
{
	char buf[65536];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0 || errno == ENOBUFS)
		;
}

/* True for a NEWRULE / NEWSETELEM / DELSETELEM notification of table. */
static bool is_change_of(const struct nlmsghdr *nlh, const char *table)
{
	uint16_t type = nlh->nlmsg_type;
	const struct nlattr *a;
	uint16_t want;

	if (NFNL_SUBSYS_ID(type) != NFNL_SUBSYS_NFTABLES)
		return false;
	type = NFNL_MSG_TYPE(type);
	if (type == NFT_MSG_NEWRULE)
		want = NFTA_RULE_TABLE;
	else if (type == NFT_MSG_NEWSETELEM || type == NFT_MSG_DELSETELEM)
		want = NFTA_SET_ELEM_LIST_TABLE;
	else
		return false;
	mnl_attr_for_each(a, nlh, sizeof(struct nfgenmsg)) {
		if (mnl_attr_get_type(a) == want)
			return strcmp(mnl_attr_get_str(a), table) == 0;
	}
	return false;
}

/* Waits until a change of table is notified; its time in ms, or -1. */
static double wait_change(int fd, const char *table, double deadline)
{
	char buf[1 << 16];

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		double left = deadline - now_ms();
		ssize_t n;

		if (left <= 0)
			return -1;
		if (poll(&p, 1, (int)left + 1) <= 0)
			continue;
		while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0 ||
		       (n < 0 && errno == ENOBUFS)) {
			const struct nlmsghdr *nlh = (const void *)buf;
			int len = (int)n;

			if (n < 0)
				continue; /* overrun: go on reading */
			for (; mnl_nlmsg_ok(nlh, len);
			     nlh = mnl_nlmsg_next(nlh, &len)) {
				if (is_change_of(nlh, table))
					return now_ms();
			}
		}
	}
}

/* The two versions of the customer (k = 0, 1). The message is edited in
 * place and never freed (it then holds strings it does not own). */
static size_t list_n0; /* lists[0]'s own prefixes */

static int prepare(Mt__Config__Customer *c, const char *mode)
{
	Mt__Config__Firewall *fw = c->firewall;

	if (!fw)
		return -EINVAL;
	if (strcmp(mode, "rule") == 0)
		return fw->n_rules > 0 && fw->rules[0]->n_dst_ports == 1 ?
			       0 : -EINVAL;
	if (strcmp(mode, "list") == 0 && fw->n_lists > 0) {
		Mt__Config__IpList *l = fw->lists[0];
		char **np = realloc(l->prefixes,
				    (l->n_prefixes + 1) * sizeof(*np));

		if (!np)
			return -ENOMEM;
		list_n0 = l->n_prefixes;
		np[list_n0] = (char *)EXTRA_PREFIX;
		l->prefixes = np;
		return 0;
	}
	return -EINVAL;
}

static void set_version(Mt__Config__Customer *c, const char *mode, int k)
{
	static char ports[2][8] = { "1000", "1001" };
	Mt__Config__Firewall *fw = c->firewall;

	if (strcmp(mode, "rule") == 0)
		fw->rules[0]->dst_ports[0] = ports[k];
	else
		fw->lists[0]->n_prefixes = list_n0 + (size_t)k;
}

static int spawn_nft(char *const argv[])
{
	pid_t pid;
	int st;

	if (posix_spawnp(&pid, "nft", NULL, NULL, argv, environ) != 0)
		return -1;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return 0;
}

static void print_stats(const char *name, struct stats *s, bool comma)
{
	stats_sort(s);
	printf("\"%s\": {\"samples\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, "
	       "\"max_ms\": %.3f, \"timeouts\": %u}%s",
	       name, s->n, pct(s, 50), pct(s, 99), s->n ? s->v[s->n - 1] : -1,
	       s->timeouts, comma ? ", " : "");
}

int main(int argc, char **argv)
{
	const char *url, *table, *mode, *base_table = NULL, *base_arg = NULL;
	struct stats smt = { 0 }, snft = { 0 }, sput = { 0 }, srest = { 0 };
	Mt__Config__Customer *c;
	char err[256], key[64];
	struct mt_store *s;
	unsigned id, n;
	void *val;
	size_t len;
	int fd, r;

	if (argc != 6 && argc != 8) {
		fprintf(stderr, "usage: fw_latency STORE_URL ID TABLE rule|list N [BASE_TABLE BASE_ARG]\n");
		return 2;
	}
	url = argv[1];
	id = (unsigned)strtoul(argv[2], NULL, 10);
	table = argv[3];
	mode = argv[4];
	n = (unsigned)strtoul(argv[5], NULL, 10);
	if (argc == 8) {
		base_table = argv[6];
		base_arg = argv[7];
	}
	smt.v = calloc(n + 1, sizeof(double));
	snft.v = calloc(n + 1, sizeof(double));
	sput.v = calloc(n + 1, sizeof(double));
	srest.v = calloc(n + 1, sizeof(double));
	if (!smt.v || !snft.v || !sput.v || !srest.v)
		return 1;
	r = mt_store_open(url, 0, &s, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "fw_latency: store: %s\n", err);
		return 1;
	}
	r = mt_store_get(s, mt_store_customer_key(id, key, sizeof(key)), &val,
			 &len, NULL);
	if (r < 0) {
		fprintf(stderr, "fw_latency: customer %u: %s\n", id,
			strerror(-r));
		return 1;
	}
	c = mt__config__customer__unpack(NULL, len, val);
	free(val);
	if (!c || prepare(c, mode) < 0) {
		fprintf(stderr, "fw_latency: customer %u has no firewall for mode %s\n",
			id, mode);
		return 1;
	}
	fd = open_nft_monitor();
	if (fd < 0) {
		fprintf(stderr, "fw_latency: netfilter socket: %s\n",
			strerror(-fd));
		return 1;
	}

	/* mt: store write -> notification */
	for (unsigned i = 0; i < n; i++) {
		double t0, tp, t1;

		set_version(c, mode, (int)((i + 1) % 2));
		drain(fd);
		t0 = now_ms();
		r = mt_store_put_customer(s, c, NULL);
		if (r < 0) {
			fprintf(stderr, "fw_latency: put: %s\n", strerror(-r));
			return 1;
		}
		tp = now_ms();
		t1 = wait_change(fd, table, t0 + TIMEOUT_MS);
		if (t1 < 0) {
			smt.timeouts++;
		} else {
			smt.v[smt.n++] = t1 - t0;
			sput.v[sput.n++] = tp - t0;
			srest.v[srest.n++] = t1 - tp;
		}
		usleep(GAP_US);
	}
	/* leave the customer as it was */
	if (n % 2) {
		set_version(c, mode, 0);
		drain(fd);
		double t0 = now_ms();
		if (mt_store_put_customer(s, c, NULL) == 0)
			wait_change(fd, table, t0 + TIMEOUT_MS);
	}

	/* the nft CLI, a process per change */
	for (unsigned i = 0; base_table && i < n; i++) {
		char port[8];
		double t0, t1;

		snprintf(port, sizeof(port), "%u", 1000 + (i + 1) % 2);
		drain(fd);
		t0 = now_ms();
		if (strcmp(mode, "rule") == 0) {
			char *av[] = { "nft", "replace", "rule", "inet",
				       (char *)base_table, "c", "handle",
				       (char *)base_arg, "tcp", "dport", port,
				       "counter", "drop", NULL };
			r = spawn_nft(av);
		} else {
			char *av[] = { "nft", i % 2 ? "delete" : "add",
				       "element", "inet", (char *)base_table,
				       (char *)base_arg, "{ 198.51.100.77 }",
				       NULL };
			r = spawn_nft(av);
		}
		if (r < 0) {
			fprintf(stderr, "fw_latency: nft failed\n");
			return 1;
		}
		t1 = wait_change(fd, base_table, t0 + TIMEOUT_MS);
		if (t1 < 0)
			snft.timeouts++;
		else
			snft.v[snft.n++] = t1 - t0;
		usleep(GAP_US);
	}
	/* where mt's time went: the store write itself (an LMDB commit with
	 * its fsyncs), and from its return to the notification */
	stats_sort(&sput);
	stats_sort(&srest);
	fprintf(stderr, "fw_latency: store write p50 %.3f p99 %.3f max %.3f ms; "
		"after it, until the notification: p50 %.3f p99 %.3f max %.3f ms\n",
		pct(&sput, 50), pct(&sput, 99), sput.n ? sput.v[sput.n - 1] : -1,
		pct(&srest, 50), pct(&srest, 99),
		srest.n ? srest.v[srest.n - 1] : -1);
	printf("{");
	print_stats("mt", &smt, true);
	print_stats("nft", &snft, false);
	printf("}\n");
	mt_store_close(s);
	return 0;
}
