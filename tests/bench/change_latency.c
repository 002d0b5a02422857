/* change_latency: how long one customer change takes to reach the kernel.
 * Runs inside the metal's network namespace (nsenter --net=..., which keeps
 * the mount namespace so the store path is the same), with mt-agent and
 * mt-fastpath running and the customers converged.
 *
 *   change_latency STORE_URL ID PREFIX GRE_TABLE N DEV VIA BASE_TABLE
 *
 * mt: N samples, alternately adding PREFIX to customer ID's prefixes and
 * removing it again, each one store write (mt_store_put_customer). A sample
 * is the time from just before the write until the RTM_NEWROUTE (add) or
 * RTM_DELROUTE (remove) for PREFIX in GRE_TABLE arrives on an rtnetlink
 * socket subscribed to RTNLGRP_IPV4_ROUTE; "full" also waits for the
 * nftables set element notification (NFNLGRP_NFTABLES NEWSETELEM /
 * DELSETELEM), i.e. the marking of the prefix. Samples are spaced 20 ms
 * apart so each change is handled on its own.
 *
 * Baselines, measured to the same notification, N samples each, alternately
 * add/delete of PREFIX via VIA dev DEV in BASE_TABLE (a table mt does not
 * own, so the daemons ignore it):
 *   "ip":  posix_spawn of `ip route add|del ...` (a process per change, as
 *          a script would do it);
 *   "raw": one RTM_NEWROUTE/RTM_DELROUTE on an open rtnetlink socket (the
 *          kernel's floor).
 *
 * Prints one JSON object: {"mt": {...}, "ip": {...}, "raw": {...}} with
 * p50/p99/max in ms and the count of timeouts. Exit 1 on setup errors. */
#include <arpa/inet.h>
#include <errno.h>
#include <libmnl/libmnl.h>
#include <net/if.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "config.pb-c.h"
#include "mt_store.h"
#include "latency_stats.h"

#define TIMEOUT_MS 10000
#define GAP_US 20000

extern char **environ;

struct target {
	uint32_t dst; /* network byte order */
	uint8_t plen;
	uint32_t table;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int open_rtnl_monitor(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
			NETLINK_ROUTE);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK,
				  .nl_groups = RTMGRP_IPV4_ROUTE };
	int sz = 8 << 20;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	return fd;
}

static int open_nft_monitor(void)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
			NETLINK_NETFILTER);
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK };
	int grp = NFNLGRP_NFTABLES, sz = 8 << 20;

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

static bool route_matches(const struct nlmsghdr *nlh, uint16_t type,
			  const struct target *t)
{
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *a;
	uint32_t table, dst = 0;

	if (nlh->nlmsg_type != type ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(*rtm) ||
	    rtm->rtm_family != AF_INET || rtm->rtm_dst_len != t->plen)
		return false;
	table = rtm->rtm_table;
	mnl_attr_for_each(a, nlh, sizeof(*rtm)) {
		if (mnl_attr_get_type(a) == RTA_TABLE)
			table = mnl_attr_get_u32(a);
		else if (mnl_attr_get_type(a) == RTA_DST &&
			 mnl_attr_get_payload_len(a) == 4)
			memcpy(&dst, mnl_attr_get_payload(a), 4);
	}
	return table == t->table && dst == t->dst;
}

/* Reads fd; true when a message for which match() holds arrived. */
static bool read_until(int fd, bool (*match)(const struct nlmsghdr *,
					     uint16_t, const struct target *),
		       uint16_t type, const struct target *t)
{
	char buf[65536];
	ssize_t n;
	bool hit = false;

	while ((n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0 ||
	       (n < 0 && errno == ENOBUFS)) {
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)buf;
		int len = (int)n;

		if (n < 0) {
			fprintf(stderr, "change_latency: notifications lost (ENOBUFS)\n");
			continue;
		}
		for (; mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
			if (match(nlh, type, t))
				hit = true;
	}
	return hit;
}

static bool nft_setelem(const struct nlmsghdr *nlh, uint16_t type,
			const struct target *t)
{
	(void)t;
	return nlh->nlmsg_type == type;
}

/* Waits (poll) until the route notification (and, when nft_fd >= 0, an
 * nft set element notification) arrived. Fills the times at which each
 * arrived; returns false on timeout. */
static bool wait_events(int rt_fd, uint16_t rt_type, const struct target *t,
			int nft_fd, uint16_t nft_type, double *t_route,
			double *t_nft)
{
	double deadline = now_ms() + TIMEOUT_MS;
	bool got_rt = false, got_nft = nft_fd < 0;

	while (!got_rt || !got_nft) {
		struct pollfd p[2] = { { .fd = rt_fd, .events = POLLIN },
				       { .fd = nft_fd, .events = POLLIN } };
		int left = (int)(deadline - now_ms());

		if (left <= 0 || poll(p, nft_fd >= 0 ? 2 : 1, left) <= 0)
			return false;
		if (!got_rt && (p[0].revents & POLLIN) &&
		    read_until(rt_fd, route_matches, rt_type, t)) {
			got_rt = true;
			*t_route = now_ms();
		}
		if (!got_nft && (p[1].revents & POLLIN) &&
		    read_until(nft_fd, nft_setelem, nft_type, NULL)) {
			got_nft = true;
			*t_nft = now_ms();
		}
	}
	return true;
}

static void print_stats(const char *name, struct stats *s, bool comma)
{
	stats_sort(s);
	printf("\"%s\": {\"n\": %zu, \"p50\": %.3f, \"p99\": %.3f, \"max\": %.3f, \"timeouts\": %u}%s",
	       name, s->n, pct(s, 50), pct(s, 99), s->n ? s->v[s->n - 1] : -1,
	       s->timeouts, comma ? ", " : "");
}

static int spawn_ip(const char *verb, const char *prefix, const char *via,
		    const char *dev, const char *table)
{
	char *argv[] = { "ip", "route", (char *)verb, (char *)prefix, "via",
			 (char *)via, "dev", (char *)dev, "table",
			 (char *)table, NULL };
	pid_t pid;
	int st;

	if (posix_spawnp(&pid, "ip", NULL, NULL, argv, environ) != 0)
		return -1;
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st))
		return -1;
	return 0;
}

/* One RTM_NEWROUTE / RTM_DELROUTE on fd, with its ACK read. */
static int raw_route(int fd, bool add, const struct target *t, uint32_t gw,
		     unsigned ifindex)
{
	char buf[MNL_SOCKET_BUFFER_SIZE];
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct rtmsg *rtm;
	struct nlmsgerr *e;
	ssize_t n;

	nlh->nlmsg_type = add ? RTM_NEWROUTE : RTM_DELROUTE;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK |
			   (add ? NLM_F_CREATE | NLM_F_EXCL : 0);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_INET;
	rtm->rtm_dst_len = t->plen;
	rtm->rtm_table = RT_TABLE_UNSPEC;
	rtm->rtm_protocol = RTPROT_STATIC;
	rtm->rtm_scope = add ? RT_SCOPE_UNIVERSE : RT_SCOPE_NOWHERE;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put_u32(nlh, RTA_TABLE, t->table);
	mnl_attr_put(nlh, RTA_DST, 4, &t->dst);
	mnl_attr_put(nlh, RTA_GATEWAY, 4, &gw);
	mnl_attr_put_u32(nlh, RTA_OIF, ifindex);
	if (send(fd, nlh, nlh->nlmsg_len, 0) < 0)
		return -errno;
	n = recv(fd, buf, sizeof(buf), 0);
	if (n < (ssize_t)(sizeof(*nlh) + sizeof(*e)))
		return -EIO;
	nlh = (struct nlmsghdr *)buf;
	e = mnl_nlmsg_get_payload(nlh);
	return nlh->nlmsg_type == NLMSG_ERROR ? e->error : -EIO;
}

static int parse_prefix(const char *s, struct target *t)
{
	char a[64];
	const char *slash = strchr(s, '/');

	if (!slash || (size_t)(slash - s) >= sizeof(a))
		return -EINVAL;
	memcpy(a, s, (size_t)(slash - s));
	a[slash - s] = '\0';
	if (inet_pton(AF_INET, a, &t->dst) != 1)
		return -EINVAL;
	t->plen = (uint8_t)atoi(slash + 1);
	return 0;
}

int main(int argc, char **argv)
{
	const char *url, *prefix, *dev, *via, *btable;
	struct target t, bt;
	struct stats mt = { 0 }, full = { 0 }, commit = { 0 }, ip = { 0 },
		     raw = { 0 };
	Mt__Config__Customer *c;
	struct mt_store *s;
	char **with, **without, key[64], err[512];
	size_t n_without = 0, len;
	unsigned id, n;
	uint32_t gw;
	void *val;
	int rt_fd, nft_fd, req_fd, r;

	if (argc != 9) {
		fprintf(stderr,
			"usage: change_latency STORE_URL ID PREFIX GRE_TABLE N DEV VIA BASE_TABLE\n");
		return 2;
	}
	url = argv[1];
	id = (unsigned)atoi(argv[2]);
	prefix = argv[3];
	n = (unsigned)atoi(argv[5]);
	dev = argv[6];
	via = argv[7];
	btable = argv[8];
	if (parse_prefix(prefix, &t) < 0 || inet_pton(AF_INET, via, &gw) != 1 ||
	    !n) {
		fprintf(stderr, "change_latency: bad PREFIX, VIA or N\n");
		return 2;
	}
	t.table = (uint32_t)atoi(argv[4]);
	bt = t;
	bt.table = (uint32_t)atoi(btable);

	r = mt_store_open(url, 0, &s, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "change_latency: store: %s\n", err);
		return 1;
	}
	r = mt_store_get(s, mt_store_customer_key(id, key, sizeof(key)), &val,
			 &len, NULL);
	if (r < 0) {
		fprintf(stderr, "change_latency: customer %u: %s\n", id,
			strerror(-r));
		return 1;
	}
	c = mt__config__customer__unpack(NULL, len, val);
	free(val);
	if (!c)
		return 1;
	/* The two prefix lists the samples alternate between. */
	with = calloc(c->n_prefixes + 1, sizeof(*with));
	without = calloc(c->n_prefixes + 1, sizeof(*without));
	for (size_t i = 0; i < c->n_prefixes; i++)
		if (strcmp(c->prefixes[i], prefix) != 0)
			without[n_without++] = c->prefixes[i];
	memcpy(with, without, n_without * sizeof(*with));
	with[n_without] = (char *)prefix;

	rt_fd = open_rtnl_monitor();
	nft_fd = open_nft_monitor();
	req_fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (rt_fd < 0 || nft_fd < 0 || req_fd < 0) {
		fprintf(stderr, "change_latency: netlink sockets: %s\n",
			strerror(rt_fd < 0 ? -rt_fd : nft_fd < 0 ? -nft_fd : errno));
		return 1;
	}
	mt.v = calloc(n, sizeof(double));
	full.v = calloc(n, sizeof(double));
	commit.v = calloc(n, sizeof(double));
	ip.v = calloc(n, sizeof(double));
	raw.v = calloc(n, sizeof(double));

	/* Start from "without": the first sample adds. */
	c->prefixes = without;
	c->n_prefixes = n_without;
	mt_store_put_customer(s, c, NULL);
	usleep(500000);

	for (unsigned i = 0; i < n; i++) {
		bool add = i % 2 == 0;
		double t0, t1, tr = 0, tn = 0;

		c->prefixes = add ? with : without;
		c->n_prefixes = add ? n_without + 1 : n_without;
		drain(rt_fd);
		drain(nft_fd);
		t0 = now_ms();
		r = mt_store_put_customer(s, c, NULL);
		t1 = now_ms();
		if (r < 0) {
			fprintf(stderr, "change_latency: store write: %s\n",
				strerror(-r));
			return 1;
		}
		if (!wait_events(rt_fd, add ? RTM_NEWROUTE : RTM_DELROUTE, &t,
				 nft_fd,
				 (NFNL_SUBSYS_NFTABLES << 8) |
					 (add ? NFT_MSG_NEWSETELEM :
						NFT_MSG_DELSETELEM),
				 &tr, &tn)) {
			mt.timeouts++;
			full.timeouts++;
			fprintf(stderr, "change_latency: sample %u timed out\n",
				i);
		} else {
			mt.v[mt.n++] = tr - t0;
			full.v[full.n++] = (tn > tr ? tn : tr) - t0;
		}
		commit.v[commit.n++] = t1 - t0;
		usleep(GAP_US);
	}
	/* leave the customer as it was */
	c->prefixes = without;
	c->n_prefixes = n_without;
	mt_store_put_customer(s, c, NULL);
	usleep(200000);

	for (unsigned i = 0; i < n; i++) {
		bool add = i % 2 == 0;
		double t0, tr = 0;

		drain(rt_fd);
		t0 = now_ms();
		if (spawn_ip(add ? "add" : "del", prefix, via, dev, btable) < 0) {
			fprintf(stderr, "change_latency: ip route %s failed\n",
				add ? "add" : "del");
			return 1;
		}
		if (wait_events(rt_fd, add ? RTM_NEWROUTE : RTM_DELROUTE, &bt,
				-1, 0, &tr, NULL))
			ip.v[ip.n++] = tr - t0;
		else
			ip.timeouts++;
	}
	for (unsigned i = 0; i < n; i++) {
		bool add = i % 2 == 0;
		double t0, tr = 0;

		drain(rt_fd);
		t0 = now_ms();
		r = raw_route(req_fd, add, &bt, gw, if_nametoindex(dev));
		if (r < 0) {
			fprintf(stderr, "change_latency: raw route %s: %s\n",
				add ? "add" : "del", strerror(-r));
			return 1;
		}
		if (wait_events(rt_fd, add ? RTM_NEWROUTE : RTM_DELROUTE, &bt,
				-1, 0, &tr, NULL))
			raw.v[raw.n++] = tr - t0;
		else
			raw.timeouts++;
	}

	printf("{");
	print_stats("mt", &mt, true);
	print_stats("mt_full", &full, true);
	print_stats("store_write", &commit, true);
	print_stats("ip", &ip, true);
	print_stats("raw", &raw, false);
	printf("}\n");
	mt_store_close(s);
	return mt.timeouts ? 1 : 0;
}
