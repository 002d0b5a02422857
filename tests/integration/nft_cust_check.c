/* Root check of mt's nft table in customer namespaces (the MSS clamps)
 * against the real kernel.
 *
 * Isolation: the process first takes a mount namespace of its own with a
 * private tmpfs on /run/netns, and a network namespace of its own (the
 * "metal"). The throwaway customer namespaces ("mtt-...", metal instance
 * "t") are mounted only there: nobody else sees them, and nothing outlives
 * the process even when it crashes. The nft / ip CLIs run as children (in
 * the same mount namespace); the daemons never use them.
 *
 * Checks: apply clamps in two namespaces, observe them back, re-apply
 * (zero writes), `nft -j list table` inside the namespace, a rule deleted by
 * hand (observe drops that clamp and reports the dirty marker; CREATE
 * repairs), a foreign rule (marker; its DELETE removes the rule), DELETE,
 * refusals (-EPERM, -EINVAL, with the namespace's other ops cancelled), an
 * atomic abort by the kernel (the table owned by another socket: nothing of
 * that namespace's transaction applies, the other namespace's does), real
 * traffic (a SYN with MSS 1460 forwarded out of a clamped device arrives
 * with 1400, its SYN-ACK coming back in is clamped too), and the time to
 * apply and observe N namespaces with 2 clamps each.
 *
 * Usage: nft_cust_check [N]   (as root; N defaults to 1000). Exit status 0 =
 * pass, 77 = skipped (not root), 1 = failures. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>

#include "mt_cleanup.h"
#include "mt_kstate.h"
#include "mt_metal.h"
#include "netns.h"
#include "nft_batch.h"
#include "nft_cust.h"
#include "nft_cust_rules.h"
#include "kcheck.h"

#define NS_A "mtt-a"
#define NS_B "mtt-b"
#define NS_SND "mtt-snd"
#define NS_RCV "mtt-rcv"
#define TABLE "mtt-cust"

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int r;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	r = system(cmd);
	if (r != 0)
		fprintf(stderr, "command failed (%d): %s\n", r, cmd);
	return r;
}

static char *sh_out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *sh_out(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	FILE *f;
	char *buf = NULL;
	size_t len = 0;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	f = popen(cmd, "r");
	if (!f)
		return NULL;
	if (getdelim(&buf, &len, '\0', f) < 0) {
		free(buf);
		buf = NULL;
	}
	pclose(f);
	return buf;
}

/* ---- plans ---- */

static Mt__Kernel__Plan *plan;
static Mt__Kernel__OpResult **res;

static void op(bool del, const char *netns, const char *dev, uint32_t mss)
{
	Mt__Kernel__MssClamp c = MT__KERNEL__MSS_CLAMP__INIT;

	c.netns = (char *)netns;
	c.dev = (char *)dev;
	c.mss = mss;
	mt_plan_add(plan,
		    del ? MT__KERNEL__OP__ACTION__DELETE
			: MT__KERNEL__OP__ACTION__CREATE,
		    &c.base);
}

static void results_free(void)
{
	for (size_t i = 0; res && i < plan->n_ops; i++)
		if (res[i])
			protobuf_c_message_free_unpacked(&res[i]->base, NULL);
	free(res);
	res = NULL;
}

/* Applies the plan built so far, prints failed results; the plan is reset
 * by plan_reset (results stay readable until then). */
static int apply(struct mt_nft_cust *c, uint64_t *writes, bool quiet)
{
	int r;

	*writes = 0;
	results_free();
	res = calloc(plan->n_ops + 1, sizeof(*res));
	r = mt_nft_cust_apply(c, plan->ops, plan->n_ops, res, writes);
	if (!quiet)
		printf("apply: %d (%s), %zu ops, %llu writes\n", r,
		       r ? strerror(-r) : "ok", plan->n_ops,
		       (unsigned long long)*writes);
	for (size_t i = 0; !quiet && i < plan->n_ops; i++)
		if (res[i] && res[i]->error)
			printf("  [%zu] %d %s\n", i, res[i]->error,
			       res[i]->message);
	return r;
}

static void plan_reset(void)
{
	results_free();
	mt_plan_free(plan);
	plan = mt_plan_new();
}

/* ---- observe ---- */

static Mt__Kernel__KernelState *observe(struct mt_nft_cust *c,
					const char *const *owners, size_t n)
{
	Mt__Kernel__KernelState *st = mt_kstate_new();
	int r = mt_nft_cust_observe(c, owners, n, st);

	CHECK(r == 0);
	printf("observe: %d, %zu clamps\n", r, st->n_mss_clamps);
	for (size_t i = 0; i < st->n_mss_clamps && i < 20; i++)
		printf("  %s dev \"%s\" mss %u owner %s\n",
		       st->mss_clamps[i]->netns, st->mss_clamps[i]->dev,
		       st->mss_clamps[i]->mss, st->mss_clamps[i]->owner);
	return st;
}

/* The observed clamps as "ns/dev/mss ..." (sorted as observe sorts). */
static const char *clamps_str(const Mt__Kernel__KernelState *st)
{
	static char out[4096];
	size_t len = 0;

	out[0] = '\0';
	for (size_t i = 0; i < st->n_mss_clamps && len < sizeof(out); i++)
		len += snprintf(out + len, sizeof(out) - len, "%s%s/%s/%u",
				i ? " " : "", st->mss_clamps[i]->netns,
				st->mss_clamps[i]->dev, st->mss_clamps[i]->mss);
	return out;
}

static void expect(struct mt_nft_cust *c, const char *want)
{
	Mt__Kernel__KernelState *st = observe(c, NULL, 0);
	const char *got = clamps_str(st);

	if (strcmp(got, want) != 0)
		fprintf(stderr, "observed \"%s\"\n  wanted \"%s\"\n", got,
			want);
	CHECK(strcmp(got, want) == 0);
	mt_kstate_free(st);
}

/* ---- nft -j ---- */

/* Checks nft's own view of the table in ns: the mss chain as mt makes it,
 * and exactly the rules in want ("gre1 out 1400", ...). Returns the handle
 * of the rule described by handle_of (or 0). */
static uint64_t check_nft_json(const char *ns, const char *const *want,
			       size_t n_want, const char *handle_of)
{
	char *out =
	    sh_out("ip netns exec %s nft -j list table inet %s", ns, TABLE);
	json_t *root, *items, *it;
	json_error_t jerr;
	size_t i, rules = 0, found = 0, chains = 0;
	uint64_t handle = 0;

	CHECK(out != NULL);
	if (!out)
		return 0;
	root = json_loads(out, 0, &jerr);
	free(out);
	CHECK(root != NULL);
	if (!root)
		return 0;
	items = json_object_get(root, "nftables");
	json_array_foreach(items, i, it)
	{
		json_t *ch = json_object_get(it, "chain");
		json_t *ru = json_object_get(it, "rule");
		json_t *expr, *e;
		const char *dir = NULL, *dev = NULL, *comment;
		long long gt = -1, set = -1;
		bool flags = false;
		size_t k;
		char desc[64];

		if (ch &&
		    !strcmp(json_string_value(json_object_get(ch, "name")),
			    "mss")) {
			chains++;
			CHECK(!strcmp(
			    json_string_value(json_object_get(ch, "hook")),
			    "forward"));
			CHECK(!strcmp(
			    json_string_value(json_object_get(ch, "type")),
			    "filter"));
			CHECK(json_integer_value(json_object_get(ch, "prio")) ==
			      -150);
			CHECK(!strcmp(
			    json_string_value(json_object_get(ch, "policy")),
			    "accept"));
		}
		if (!ru)
			continue;
		rules++;
		comment = json_string_value(json_object_get(ru, "comment"));
		expr = json_object_get(ru, "expr");
		json_array_foreach(expr, k, e)
		{
			json_t *m = json_object_get(e, "match");
			json_t *mg = json_object_get(e, "mangle");
			json_t *left = m ? json_object_get(m, "left") : NULL;
			json_t *meta =
			    left ? json_object_get(left, "meta") : NULL;
			const char *o =
			    m ? json_string_value(json_object_get(m, "op"))
			      : NULL;

			if (meta) {
				dir = json_string_value(
				    json_object_get(meta, "key"));
				dev = json_string_value(
				    json_object_get(m, "right"));
			} else if (left && json_object_get(left, "&")) {
				flags =
				    !strcmp(json_string_value(
						json_object_get(m, "right")),
					    "syn");
			} else if (left &&
				   json_object_get(left, "tcp option") && o &&
				   !strcmp(o, ">")) {
				gt = json_integer_value(
				    json_object_get(m, "right"));
			} else if (mg) {
				set = json_integer_value(
				    json_object_get(mg, "value"));
			}
		}
		snprintf(desc, sizeof(desc), "%s %s %lld", dev ? dev : "?",
			 dir && !strcmp(dir, "oifname") ? "out" : "in", set);
		if (!(flags && gt == set && comment &&
		      !strncmp(comment, "mt mss ", 7)))
			printf("  nft: unexpected rule %s (comment %s)\n", desc,
			       comment ? comment : "-");
		for (size_t w = 0; w < n_want; w++) {
			if (!strcmp(want[w], desc) && flags && gt == set) {
				found++;
				break;
			}
		}
		if (handle_of && !strcmp(handle_of, desc))
			handle = (uint64_t)json_integer_value(
			    json_object_get(ru, "handle"));
	}
	printf("nft -j in %s: %zu mss chain, %zu rules, %zu as expected\n", ns,
	       chains, rules, found);
	CHECK(chains == (n_want ? 1 : 0));
	CHECK(rules == n_want);
	CHECK(found == n_want);
	json_decref(root);
	return handle;
}

/* ---- the kernel abort: a table owned by another socket ---- */

static int open_sock(void *arg)
{
	return mt_nft_socket_open(arg);
}

/* Creates table TABLE in ns with NFT_TABLE_F_OWNER over a socket of its
 * own, holding the clamp of dev exactly as mt writes it. The table lives
 * as long as *owner stays open. */
static int owned_table(const char *ns, const char *dev, uint32_t mss,
		       struct mnl_socket **owner)
{
	_cleanup_close_ int nsfd = mt_netns_open(ns), home = mt_netns_open("");
	_cleanup_nft_batch_ struct mt_nft_batch *b = mt_nft_batch_new(0);
	struct nftnl_table *t = mt_nft_cust_table_new(TABLE);
	struct nftnl_chain *ch = mt_nft_cust_mss_chain_new(TABLE);
	struct nlmsghdr *nlh;
	int r;

	if (nsfd < 0 || home < 0 || !b || !t || !ch)
		return -ENOMEM;
	r = mt_netns_run(nsfd, home, open_sock, owner);
	if (r < 0)
		return r;
	nftnl_table_set_u32(t, NFTNL_TABLE_FLAGS, NFT_TABLE_F_OWNER);
	nlh = mt_nft_batch_msg(b, NFT_MSG_NEWTABLE, NFPROTO_INET, NLM_F_CREATE,
			       0);
	nftnl_table_nlmsg_build_payload(nlh, t);
	mt_nft_batch_msg_end(b);
	nlh = mt_nft_batch_msg(b, NFT_MSG_NEWCHAIN, NFPROTO_INET, NLM_F_CREATE,
			       0);
	nftnl_chain_nlmsg_build_payload(nlh, ch);
	mt_nft_batch_msg_end(b);
	for (int d = 0; d < 2; d++) {
		struct nftnl_rule *rule = mt_nft_cust_mss_rule_new(
		    TABLE, dev, mss, (enum mt_mss_dir)d);

		nlh = mt_nft_batch_msg(b, NFT_MSG_NEWRULE, NFPROTO_INET,
				       NLM_F_CREATE | NLM_F_APPEND, 0);
		nftnl_rule_nlmsg_build_payload(nlh, rule);
		mt_nft_batch_msg_end(b);
		nftnl_rule_free(rule);
	}
	nftnl_table_free(t);
	nftnl_chain_free(ch);
	return mt_nft_batch_send(b, *owner);
}

/* ---- traffic ---- */

struct sock_args {
	int domain, type, proto;
	const char *ifname; /* AF_PACKET: bind to it */
	int fd;
};

static int sock_inside(void *arg)
{
	struct sock_args *a = arg;
	struct timeval tv = {.tv_sec = 2};

	a->fd = socket(a->domain, a->type | SOCK_CLOEXEC, a->proto);
	if (a->fd < 0)
		return -errno;
	if (a->ifname) {
		struct sockaddr_ll sll = {
		    .sll_family = AF_PACKET,
		    .sll_protocol = htons(ETH_P_IP),
		    .sll_ifindex = (int)if_nametoindex(a->ifname),
		};

		if (bind(a->fd, (struct sockaddr *)&sll, sizeof(sll)) < 0)
			return -errno;
		setsockopt(a->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	return 0;
}

/* A socket created inside namespace ns (it stays bound to it). */
static int sock_in(const char *ns, int domain, int type, int proto,
		   const char *ifname)
{
	_cleanup_close_ int nsfd = mt_netns_open(ns), home = mt_netns_open("");
	struct sock_args a = {domain, type, proto, ifname, -1};
	int r;

	if (nsfd < 0 || home < 0)
		return -ENOENT;
	r = mt_netns_run(nsfd, home, sock_inside, &a);
	if (r < 0) {
		if (a.fd >= 0)
			close(a.fd);
		return r;
	}
	return a.fd;
}

/* Reads IPv4 packets from an AF_PACKET socket until a TCP segment with SYN
 * (and ack as given) to/from port; returns its MSS option, 0 when it has
 * none, -1 on timeout. */
static int capture_mss(int fd, uint16_t port, bool ack)
{
	uint8_t buf[2048];

	for (int tries = 0; tries < 50; tries++) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		const struct iphdr *ip = (const struct iphdr *)buf;
		const struct tcphdr *tcp;
		const uint8_t *opt;
		size_t ihl, doff;

		if (n < 0)
			return -1;
		if ((size_t)n < sizeof(*ip) || ip->protocol != IPPROTO_TCP)
			continue;
		ihl = ip->ihl * 4u;
		if ((size_t)n < ihl + sizeof(*tcp))
			continue;
		tcp = (const struct tcphdr *)(buf + ihl);
		if (!tcp->syn || tcp->ack != ack ||
		    (ntohs(tcp->dest) != port && ntohs(tcp->source) != port))
			continue;
		doff = tcp->doff * 4u;
		opt = buf + ihl + sizeof(*tcp);
		for (size_t i = 0; i + 1 < doff - sizeof(*tcp);) {
			if (opt[i] == 0)
				break;
			if (opt[i] == 1) {
				i++;
				continue;
			}
			if (opt[i] == 2 && opt[i + 1] == 4)
				return opt[i + 2] << 8 | opt[i + 3];
			if (opt[i + 1] < 2)
				break;
			i += opt[i + 1];
		}
		return 0;
	}
	return -1;
}

static void topology(void)
{
	/* snd s0 10.77.1.1 -- a0 10.77.1.2 [mtt-a] gre1 10.77.2.1 -- r0
	 * 10.77.2.2 rcv. "gre1" is a veth here: the clamp matches by name. */
	sh("ip -n " NS_SND " link add s0 type veth peer a0 netns " NS_A);
	sh("ip -n " NS_A " link add gre1 type veth peer r0 netns " NS_RCV);
	sh("ip -n " NS_SND " addr add 10.77.1.1/24 dev s0");
	sh("ip -n " NS_A " addr add 10.77.1.2/24 dev a0");
	sh("ip -n " NS_A " addr add 10.77.2.1/24 dev gre1");
	sh("ip -n " NS_RCV " addr add 10.77.2.2/24 dev r0");
	for (const char *const *l =
		 (const char *const[]){NS_SND " s0", NS_A " a0", NS_A " gre1",
				       NS_RCV " r0", NS_SND " lo", NS_A " lo",
				       NS_RCV " lo", NULL};
	     *l; l++) {
		char ns[32], dev[16];

		sscanf(*l, "%31s %15s", ns, dev);
		sh("ip -n %s link set %s up", ns, dev);
	}
	sh("ip -n " NS_SND " route add 10.77.2.0/24 via 10.77.1.2");
	sh("ip -n " NS_RCV " route add default via 10.77.2.1");
	sh("ip netns exec " NS_A " sysctl -qw net.ipv4.ip_forward=1");
}

/* Connects snd -> rcv:port through mtt-a; returns the MSS the receiver saw
 * in the SYN and (in *synack) the MSS the sender saw in the SYN-ACK. */
static int traffic(uint16_t port, int *synack)
{
	int cap_r =
	    sock_in(NS_RCV, AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP), "r0");
	int cap_s =
	    sock_in(NS_SND, AF_PACKET, SOCK_DGRAM, htons(ETH_P_IP), "s0");
	int lst = sock_in(NS_RCV, AF_INET, SOCK_STREAM, 0, NULL);
	int cli = sock_in(NS_SND, AF_INET, SOCK_STREAM, 0, NULL);
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(port)};
	int one = 1, mss = -1;

	*synack = -1;
	CHECK(cap_r >= 0 && cap_s >= 0 && lst >= 0 && cli >= 0);
	if (cap_r < 0 || cap_s < 0 || lst < 0 || cli < 0)
		goto out;
	setsockopt(lst, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	sa.sin_addr.s_addr = htonl(INADDR_ANY);
	CHECK(bind(lst, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	CHECK(listen(lst, 4) == 0);
	inet_pton(AF_INET, "10.77.2.2", &sa.sin_addr);
	fcntl(cli, F_SETFL, O_NONBLOCK);
	(void)connect(cli, (struct sockaddr *)&sa, sizeof(sa));
	mss = capture_mss(cap_r, port, false);
	*synack = capture_mss(cap_s, port, true);
out:
	for (int *fd = (int[]){cap_r, cap_s, lst, cli, -2}; *fd != -2; fd++)
		if (*fd >= 0)
			close(*fd);
	return mss;
}

/* ---- scale ---- */

static void scale(struct mt_nft_cust *c, int n)
{
	char name[32];
	double t0, t1;
	uint64_t w;
	int r, bad = 0;

	t0 = now_ms();
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "mtt-p%04d", i);
		if (mt_netns_create(name) < 0)
			bad++;
	}
	t1 = now_ms();
	printf("scale: %d namespaces created in %.0f ms\n", n, t1 - t0);
	CHECK(bad == 0);

	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "mtt-p%04d", i);
		op(false, name, "gre1", 1436);
		op(false, name, "gre2", 1400);
	}
	t0 = now_ms();
	r = apply(c, &w, true);
	t1 = now_ms();
	printf("scale: apply from empty, %d namespaces x 2 clamps: %.1f ms, "
	       "%llu writes (sockets opened in the apply)\n",
	       n, t1 - t0, (unsigned long long)w);
	CHECK(r == 0);
	CHECK(w == (uint64_t)n * 6);

	for (int k = 0; k < 3; k++) {
		Mt__Kernel__KernelState *st = mt_kstate_new();

		if (k == 1) {
			t0 = now_ms();
			r = apply(c, &w, true);
			t1 = now_ms();
			printf("scale: the same plan again: %.1f ms, %llu "
			       "writes\n",
			       t1 - t0, (unsigned long long)w);
			CHECK(r == 0 && w == 0);
		}
		t0 = now_ms();
		r = mt_nft_cust_observe(c, NULL, 0, st);
		t1 = now_ms();
		printf("scale: observe all (%s): %.1f ms, %zu clamps\n",
		       k == 0 ? "every chain listed after the commits"
			      : "generation ids unchanged",
		       t1 - t0, st->n_mss_clamps);
		CHECK(r == 0);
		/* + the clamp of mtt-a at this point */
		CHECK(st->n_mss_clamps == (size_t)n * 2 + 1);
		mt_kstate_free(st);
	}
	plan_reset();

	{
		const char *owners[] = {"p0001", "p0500"};
		Mt__Kernel__KernelState *st = mt_kstate_new();

		t0 = now_ms();
		r = mt_nft_cust_observe(c, owners, 2, st);
		t1 = now_ms();
		printf("scale: observe 2 owners: %.2f ms, %zu clamps\n",
		       t1 - t0, st->n_mss_clamps);
		CHECK(r == 0 && st->n_mss_clamps == (n > 500 ? 4 : 2));
		mt_kstate_free(st);
	}

	/* one namespace replaced behind the cache's back: a fresh socket */
	mt_netns_delete("mtt-p0000");
	mt_netns_create("mtt-p0000");
	{
		const char *owners[] = {"p0000"};
		Mt__Kernel__KernelState *st = mt_kstate_new();

		CHECK(mt_nft_cust_observe(c, owners, 1, st) == 0);
		CHECK(st->n_mss_clamps == 0); /* the new one is empty */
		mt_kstate_free(st);
		op(false, "mtt-p0000", "gre1", 1436);
		CHECK(apply(c, &w, false) == 0 && w == 4);
		plan_reset();
		st = mt_kstate_new();
		CHECK(mt_nft_cust_observe(c, owners, 1, st) == 0);
		CHECK(st->n_mss_clamps == 1);
		mt_kstate_free(st);
	}

	t0 = now_ms();
	for (int i = 0; i < n; i++) {
		snprintf(name, sizeof(name), "mtt-p%04d", i);
		mt_netns_delete(name);
	}
	printf("scale: deleted in %.0f ms\n", now_ms() - t0);
}

/* ---- isolation ---- */

/* A mount namespace with a private /run/netns, and a network namespace of
 * our own as the metal. */
static int isolate(void)
{
	if (unshare(CLONE_NEWNS) < 0) {
		perror("unshare(CLONE_NEWNS)");
		return -1;
	}
	if (mount("none", "/", NULL, MS_REC | MS_SLAVE, NULL) < 0) {
		perror("mount --make-rslave /");
		return -1;
	}
	mkdir("/run", 0755);
	mkdir(MT_NETNS_RUN_DIR, 0755);
	if (mount("mtt-netns", MT_NETNS_RUN_DIR, "tmpfs", 0, "mode=0755") < 0) {
		perror("mount tmpfs " MT_NETNS_RUN_DIR);
		return -1;
	}
	if (unshare(CLONE_NEWNET) < 0) {
		perror("unshare(CLONE_NEWNET)");
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	Mt__Config__Metal pbm = MT__CONFIG__METAL__INIT;
	struct mt_nft_cust *c = NULL;
	struct mt_metal m;
	Mt__Kernel__KernelState *st;
	char err[256];
	int n_scale = argc > 1 ? atoi(argv[1]) : 1000;
	uint64_t w, h;
	int r, synack;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (geteuid() != 0) {
		fprintf(stderr, "nft_cust_check: needs root, skipped\n");
		return 77;
	}
	if (isolate() < 0)
		return 1;
	pbm.instance = "t";
	if (mt_metal_init(&m, &pbm, err, sizeof(err)) < 0) {
		fprintf(stderr, "metal: %s\n", err);
		return 1;
	}
	printf("metal prefix %s, table %s\n", m.prefix, m.cust_nft_table);
	CHECK(!strcmp(m.cust_nft_table, TABLE));
	for (const char *const *ns =
		 (const char *const[]){NS_A, NS_B, NS_SND, NS_RCV, NULL};
	     *ns; ns++)
		CHECK(mt_netns_create(*ns) == 1);
	CHECK(mt_nft_cust_new(&m, &c) == 0);
	if (!c)
		goto out;
	plan = mt_plan_new();

	/* 1. nothing there */
	expect(c, "");

	/* 2. clamps in two namespaces, one transaction each */
	op(false, NS_A, "gre1", 1400);
	op(false, NS_B, "gre1", 1436);
	op(false, NS_A, "gre2", 1436);
	op(false, NS_B, "gre5", 600);
	CHECK(apply(c, &w, false) == 0);
	CHECK(w == 12); /* per namespace: table, chain, 4 rules */
	for (size_t i = 0; i < plan->n_ops; i++)
		CHECK(res[i] && res[i]->error == 0);
	expect(
	    c,
	    "mtt-a/gre1/1400 mtt-a/gre2/1436 mtt-b/gre1/1436 mtt-b/gre5/600");
	st = observe(c, (const char *const[]){"b"}, 1);
	CHECK(!strcmp(clamps_str(st), "mtt-b/gre1/1436 mtt-b/gre5/600"));
	CHECK(st->n_mss_clamps == 2 && !strcmp(st->mss_clamps[0]->owner, "b"));
	mt_kstate_free(st);

	/* 3. the same again: nothing written */
	CHECK(apply(c, &w, false) == 0);
	CHECK(w == 0);
	plan_reset();

	/* 4. nft's own view */
	check_nft_json(NS_A,
		       (const char *const[]){"gre1 out 1400", "gre1 in 1400",
					     "gre2 out 1436", "gre2 in 1436"},
		       4, NULL);
	{
		char *out = sh_out("ip netns exec %s nft list table inet %s",
				   NS_A, TABLE);

		printf("%s", out ? out : "(nft list failed)\n");
		CHECK(
		    out &&
		    strstr(
			out,
			"oifname \"gre1\" tcp flags syn / syn,rst tcp option "
			"maxseg size > 1400 tcp option maxseg size set 1400"));
		CHECK(out && strstr(out, "type filter hook forward priority "
					 "mangle; policy accept;"));
		free(out);
	}

	/* 5. a rule deleted by hand: that clamp is not reported, the marker
	 * is; CREATE (+ the marker's DELETE, as a planner sends) repairs */
	h = check_nft_json(
	    NS_A,
	    (const char *const[]){"gre1 out 1400", "gre1 in 1400",
				  "gre2 out 1436", "gre2 in 1436"},
	    4, "gre2 in 1436");
	CHECK(h != 0);
	sh("ip netns exec %s nft delete rule inet %s mss handle %llu", NS_A,
	   TABLE, (unsigned long long)h);
	expect(c, "mtt-a//0 mtt-a/gre1/1400 mtt-b/gre1/1436 mtt-b/gre5/600");
	op(false, NS_A, "gre2", 1436);
	op(true, NS_A, "", 0);
	CHECK(apply(c, &w, false) == 0);
	CHECK(w == 7); /* table, del chain, chain, 4 rules */
	plan_reset();
	expect(
	    c,
	    "mtt-a/gre1/1400 mtt-a/gre2/1436 mtt-b/gre1/1436 mtt-b/gre5/600");
	/* a rule changed by hand (the mss of one half) */
	h = check_nft_json(
	    NS_A,
	    (const char *const[]){"gre1 out 1400", "gre1 in 1400",
				  "gre2 out 1436", "gre2 in 1436"},
	    4, "gre1 out 1400");
	sh("ip netns exec %s nft replace rule inet %s mss handle %llu oifname "
	   "gre1 tcp flags \\& \\(syn \\| rst\\) == syn tcp option maxseg size "
	   "\\> 1300 tcp option maxseg size set 1300 comment '\"mt mss gre1 "
	   "out\"'",
	   NS_A, TABLE, (unsigned long long)h);
	expect(c, "mtt-a//0 mtt-a/gre2/1436 mtt-b/gre1/1436 mtt-b/gre5/600");
	op(false, NS_A, "gre1", 1400);
	op(true, NS_A, "", 0);
	CHECK(apply(c, &w, false) == 0);
	plan_reset();
	expect(
	    c,
	    "mtt-a/gre1/1400 mtt-a/gre2/1436 mtt-b/gre1/1436 mtt-b/gre5/600");

	/* 6. a foreign rule in the chain: marker; its DELETE removes it */
	sh("ip netns exec %s nft add rule inet %s mss counter", NS_B, TABLE);
	expect(c, "mtt-a/gre1/1400 mtt-a/gre2/1436 mtt-b//0 mtt-b/gre1/1436 "
		  "mtt-b/gre5/600");
	op(true, NS_B, "", 0);
	CHECK(apply(c, &w, false) == 0);
	CHECK(w == 7);
	plan_reset();
	expect(
	    c,
	    "mtt-a/gre1/1400 mtt-a/gre2/1436 mtt-b/gre1/1436 mtt-b/gre5/600");
	check_nft_json(NS_B,
		       (const char *const[]){"gre1 out 1436", "gre1 in 1436",
					     "gre5 out 600", "gre5 in 600"},
		       4, NULL);
	/* another chain in the table (a later firewall) is left alone */
	sh("ip netns exec %s nft add chain inet %s fw", NS_B, TABLE);
	op(false, NS_B, "gre6", 1200);
	CHECK(apply(c, &w, false) == 0 && w == 2);
	plan_reset();
	{
		char *out = sh_out("ip netns exec %s nft list chain inet %s fw",
				   NS_B, TABLE);

		CHECK(out && strstr(out, "chain fw"));
		free(out);
	}

	/* 7. DELETE; again (absent: 0, nothing sent); the last one takes
	 * the chain, the table stays */
	op(true, NS_A, "gre2", 0);
	CHECK(apply(c, &w, false) == 0 && w == 2);
	CHECK(apply(c, &w, false) == 0 && w == 0);
	plan_reset();
	op(true, NS_A, "gre1", 0);
	CHECK(apply(c, &w, false) == 0 && w == 1);
	plan_reset();
	check_nft_json(NS_A, NULL, 0, NULL);
	expect(c, "mtt-b/gre1/1436 mtt-b/gre5/600 mtt-b/gre6/1200");

	/* 8. refusals: nothing sent to that namespace, its other ops
	 * cancelled; other namespaces proceed */
	op(false, "mt0-acme", "gre1", 1436);
	op(false, NS_A, "gre1", 1436);
	op(false, NS_A, "a/b", 1436);
	op(false, NS_B, "gre7", 100);
	op(false, NS_B, "gre8", 1300);
	op(false, "mtt-nope", "gre1", 1436);
	op(true, "mtt-nope", "gre1", 0);
	op(false, NS_SND, "gre1", 1436);
	r = apply(c, &w, false);
	CHECK(r == -EPERM);
	CHECK(res[0]->error == -EPERM);
	CHECK(strstr(res[0]->message, "mt0-acme") &&
	      strstr(res[0]->message, "not an mt customer namespace"));
	CHECK(res[1]->error == -ECANCELED);
	CHECK(strstr(res[1]->message,
		     "aborted by create mss clamp 1436 dev a/b"));
	CHECK(res[2]->error == -EPERM &&
	      strstr(res[2]->message,
		     "dev \"a/b\" is not a valid interface name"));
	CHECK(res[3]->error == -EINVAL &&
	      strstr(res[3]->message, "mss 100 is outside 536..65495"));
	CHECK(res[4]->error == -ECANCELED);
	CHECK(res[5]->error == -ENOENT);
	CHECK(res[6]->error == 0);
	CHECK(res[7]->error == 0);
	CHECK(w == 4); /* mtt-snd: table, chain, 2 rules */
	plan_reset();
	expect(
	    c,
	    "mtt-b/gre1/1436 mtt-b/gre5/600 mtt-b/gre6/1200 mtt-snd/gre1/1436");
	op(true, NS_SND, "gre1", 0);
	CHECK(apply(c, &w, false) == 0);
	plan_reset();

	/* 9. atomic abort by the kernel: B's table taken over by a socket
	 * that owns it (NFT_TABLE_F_OWNER) with one intact clamp; an apply
	 * replacing it and adding another fails as a whole; A's part of the
	 * same apply is committed */
	{
		_cleanup_nft_socket_ struct mnl_socket *owner = NULL;

		sh("ip netns exec %s nft delete table inet %s", NS_B, TABLE);
		r = owned_table(NS_B, "gre1", 1436, &owner);
		printf("owned table in %s: %d\n", NS_B, r);
		CHECK(r == 0);
		expect(c, "mtt-b/gre1/1436");
		op(false, NS_B, "gre1", 1300);
		op(false, NS_A, "gre3", 1300);
		op(false, NS_B, "gre9", 1400);
		r = apply(c, &w, false);
		CHECK(r == -EPERM);
		CHECK(res[0]->error == -EPERM);
		CHECK(strstr(res[0]->message,
			     "create mss clamp 1300 dev gre1 in netns mtt-b"));
		CHECK(res[1]->error == 0);
		CHECK(res[2]->error == -ECANCELED);
		CHECK(w == 4); /* mtt-a: table, chain, 2 rules */
		plan_reset();
		expect(c, "mtt-a/gre3/1300 mtt-b/gre1/1436");
	}
	/* the owner is gone, and its table with it */
	expect(c, "mtt-a/gre3/1300");
	op(true, NS_A, "gre3", 0);
	CHECK(apply(c, &w, false) == 0);
	plan_reset();

	/* 10. traffic: a SYN with MSS 1460 out of gre1 arrives with 1400
	 * when clamped, and the SYN-ACK in from gre1 too */
	topology();
	r = traffic(5001, &synack);
	printf("traffic without a clamp: SYN mss %d, SYN-ACK mss %d\n", r,
	       synack);
	CHECK(r == 1460 && synack == 1460);
	op(false, NS_A, "gre1", 1400);
	CHECK(apply(c, &w, false) == 0);
	plan_reset();
	r = traffic(5002, &synack);
	printf("traffic with clamp 1400 on gre1: SYN mss %d, SYN-ACK mss %d\n",
	       r, synack);
	CHECK(r == 1400 && synack == 1400);
	/* a clamp on another device does not touch it */
	op(true, NS_A, "gre1", 0);
	op(false, NS_A, "gre2", 1300);
	CHECK(apply(c, &w, false) == 0);
	plan_reset();
	r = traffic(5003, &synack);
	printf("traffic with a clamp on another device: SYN mss %d\n", r);
	CHECK(r == 1460);
	/* above the clamp only: a smaller MSS passes unchanged */
	op(true, NS_A, "gre2", 0);
	op(false, NS_A, "gre1", 1500);
	CHECK(apply(c, &w, false) == 0);
	plan_reset();
	r = traffic(5004, &synack);
	printf("traffic with clamp 1500 (above 1460): SYN mss %d\n", r);
	CHECK(r == 1460);

	/* 11. scale */
	if (n_scale > 0)
		scale(c, n_scale);

out:
	plan_reset();
	mt_plan_free(plan);
	mt_nft_cust_free(c);
	for (const char *const *ns =
		 (const char *const[]){NS_A, NS_B, NS_SND, NS_RCV, NULL};
	     *ns; ns++)
		mt_netns_delete(*ns);
	mt_metal_fini(&m);
	printf("%s (%d failed checks)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
