/* Check of the kernel GRE tunnel driver (fastpath/tunnel.c with
 * gre_kernel.c) on a kernel that has ip_gre: tests/vm/run-in-vm boots one
 * (this machine's kernel has none) and runs this inside it. Sandboxed like
 * tunnel_apply_check: the process unshares a network namespace (its
 * "metal") and a private mount namespace with a tmpfs over /run, so every
 * namespace it makes dies with it, pass or fail.
 *
 *   gre_kernel_check
 *
 * Checks: mt_tunnels_new finds kernel gre, auto = "kernel"; in an owned
 * customer namespace, CREATE of keyed, unkeyed and "auto" kernel tunnels;
 * observe returns them field for field (driver, local, remote, key, ttl,
 * mtu, owner) and `ip -d -j link` agrees (kind gre, endpoints, ikey = okey,
 * ttl, pmtudisc, up); a second apply writes nothing; key, ttl, mtu and
 * remote changes (and key removal and addition) are made in place (same
 * ifindex, address kept); a link put down or given asymmetric keys by hand
 * is observed as needing a CREATE, which repairs it; refusals (the
 * kernel's gre0, a foreign namespace, a missing one); DELETE (twice), and
 * observe empty although the kernel's gre0 is there.
 * Data plane: mt's gre1 in the customer namespace and a peer made with
 * `ip link add ... type gre` in a router namespace reached through the
 * metal (routed); UDP both ways and ping through the tunnel, GRE with the
 * right key seen on the metal-side veth (AF_PACKET, and tcpdump's decode
 * when tcpdump is installed); after a key change the peer with the old key
 * is unreachable until it gets the new key.
 *
 * Exit status: 0 pass, 1 fail, 77 skip (not root, or no kernel gre here
 * outside run-in-vm; inside it, no kernel gre is a failure). */
#include <net/if.h> /* before the linux/ headers (libc-compat) */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mt_cleanup.h"
#include "mt_kstate.h"
#include "mt_log.h"
#include "mt_metal.h"
#include "netns.h"
#include "nl.h"
#include "rtnl_apply.h"
#include "tunnel.h"
#include "kcheck.h"

/* The underlay: customer metal0 192.0.2.10/24, metal side 192.0.2.1;
 * metal to router 198.51.100.1/24 - .2; inside the tunnel 203.0.113.1/30
 * (customer) - .2 (router). Documentation ranges, in namespaces of a VM
 * without a network device. */
#define EDGE "192.0.2.10"
#define EDGE_GW "192.0.2.1"
#define RTR "198.51.100.2"
#define RTR_GW "198.51.100.1"
#define IN_C "203.0.113.1"
#define IN_R "203.0.113.2"
#define UDP_PORT 4789
#define POS_MS 3000 /* what must get through: generous under TCG */
#define NEG_MS 600  /* what must not */

static struct mt_metal metal;
static char pfx[16], cust_ns[32], rtr_ns[32];


static uint32_t ip4(const char *s)
{
	uint32_t a = 0;

	inet_pton(AF_INET, s, &a);
	return a;
}

/* Runs a shell command (iproute2, mostly); 0 when it exited 0. */
static int sh(const char *cmd)
{
	int r = system(cmd);

	if (r != 0)
		fprintf(stderr, "  command failed (%d): %s\n", r, cmd);
	return r == 0 ? 0 : -1;
}

/* ---- plans ---------------------------------------------------------------- */

struct tspec {
	const char *ns, *name, *driver, *local, *remote;
	bool has_key;
	uint32_t key, ttl, mtu;
};

static void add_tun(Mt__Kernel__Plan *p, Mt__Kernel__Op__Action act,
		    const struct tspec *s)
{
	Mt__Kernel__Tunnel o = MT__KERNEL__TUNNEL__INIT;

	o.netns = (char *)s->ns;
	o.name = (char *)s->name;
	o.driver = (char *)(s->driver ? s->driver : "");
	o.local = (char *)(s->local ? s->local : "");
	o.remote = (char *)(s->remote ? s->remote : "");
	o.has_key = s->has_key;
	o.key = s->key;
	o.ttl = s->ttl;
	o.mtu = s->mtu;
	CHECK(mt_plan_add(p, act, &o.base) != NULL);
}

static Mt__Kernel__Plan *plan_of(Mt__Kernel__Op__Action act,
				 const struct tspec *const *s, size_t n)
{
	Mt__Kernel__Plan *p = mt_plan_new();

	for (size_t i = 0; i < n; i++)
		add_tun(p, act, s[i]);
	return p;
}

static void free_results(Mt__Kernel__OpResult **res, size_t n)
{
	for (size_t i = 0; res && i < n; i++)
		if (res[i])
			protobuf_c_message_free_unpacked(&res[i]->base, NULL);
	free(res);
}

/* Applies p; returns the failed op count (printing their messages unless
 * out is given), the writes in *w, the results in *out when not NULL. */
static int apply(struct mt_tunnels *t, Mt__Kernel__Plan *p, uint64_t *w,
		 Mt__Kernel__OpResult ***out)
{
	Mt__Kernel__OpResult **res = calloc(p->n_ops + 1, sizeof(*res));
	int failed = 0;

	*w = 0;
	CHECK(mt_tunnels_apply(t, p->ops, p->n_ops, res, w) == 0);
	for (size_t i = 0; i < p->n_ops; i++) {
		if (res[i] && res[i]->error) {
			failed++;
			if (!out)
				fprintf(stderr, "  op %zu: %s\n", i,
					res[i]->message);
		}
	}
	if (out)
		*out = res;
	else
		free_results(res, p->n_ops);
	return failed;
}

/* Applies the one op (act, s); returns its error, writes in *w. */
static int apply1(struct mt_tunnels *t, Mt__Kernel__Op__Action act,
		  const struct tspec *s, uint64_t *w, char *msg, size_t len)
{
	Mt__Kernel__Plan *p = mt_plan_new();
	Mt__Kernel__OpResult **res = NULL;
	int err;

	add_tun(p, act, s);
	apply(t, p, w, &res);
	err = res[0] ? res[0]->error : -EIO;
	if (msg)
		snprintf(msg, len, "%s",
			 res[0] && res[0]->message ? res[0]->message : "");
	free_results(res, p->n_ops);
	mt_plan_free(p);
	return err;
}

static Mt__Kernel__KernelState *observe(struct mt_tunnels *t, bool counters)
{
	Mt__Kernel__KernelState *st = mt_kstate_new();
	const char *owners[1] = {"acme"};

	CHECK(mt_tunnels_observe(t, owners, 1, counters, st) == 0);
	return st;
}

static Mt__Kernel__Tunnel *find_tun(Mt__Kernel__KernelState *st,
				    const char *name)
{
	for (size_t i = 0; i < st->n_tunnels; i++)
		if (streq(st->tunnels[i]->netns, cust_ns) &&
		    streq(st->tunnels[i]->name, name))
			return st->tunnels[i];
	return NULL;
}

/* Observed tunnel s->name equals s as the agent would desire it, with the
 * kernel driver and the defaults ttl/mtu resolved. */
static bool tun_is(Mt__Kernel__KernelState *st, const struct tspec *s,
		   uint32_t ttl, uint32_t mtu)
{
	Mt__Kernel__Tunnel *o = find_tun(st, s->name);
	bool ok = o && streq(o->driver, "kernel") &&
		  streq(o->local, s->local) && streq(o->remote, s->remote) &&
		  o->has_key == s->has_key &&
		  o->key == (s->has_key ? s->key : 0) && o->ttl == ttl &&
		  o->mtu == mtu && streq(o->owner, "acme");

	if (!o)
		fprintf(stderr, "  %s/%s not observed\n", s->ns, s->name);
	else if (!ok)
		fprintf(stderr,
			"  observed %s/%s: driver %s local \"%s\" remote "
			"\"%s\" key %d/%u ttl %u mtu %u owner %s\n",
			o->netns, o->name, o->driver, o->local, o->remote,
			o->has_key, o->key, o->ttl, o->mtu, o->owner);
	return ok;
}

static bool needs_create(struct mt_tunnels *t, const char *name)
{
	Mt__Kernel__KernelState *st = observe(t, false);
	Mt__Kernel__Tunnel *o = find_tun(st, name);
	bool r = o && !*o->local && !*o->remote && streq(o->driver, "kernel");

	mt_kstate_free(st);
	return r;
}

/* ---- iproute2's view ------------------------------------------------------ */

/* `ip -d -j link show dev name` in namespace ns, the one object; NULL when
 * there is no such link. */
static json_t *ip_link(const char *ns, const char *name)
{
	FILE *f = popen(fmt("ip -n %s -d -j link show dev %s 2>/dev/null", ns,
			    name),
			"r");
	json_error_t e;
	json_t *a, *o = NULL;

	if (!f)
		return NULL;
	a = json_loadf(f, 0, &e);
	pclose(f);
	if (json_is_array(a) && json_array_size(a) == 1)
		o = json_incref(json_array_get(a, 0));
	json_decref(a);
	return o;
}

static const char *jstr(json_t *o, const char *path)
{
	char buf[128], *save = NULL, *k;

	snprintf(buf, sizeof(buf), "%s", path);
	for (k = strtok_r(buf, ".", &save); k && o;
	     k = strtok_r(NULL, ".", &save))
		o = json_object_get(o, k);
	return json_is_string(o) ? json_string_value(o) : NULL;
}

static json_int_t jint(json_t *o, const char *path)
{
	char buf[128], *save = NULL, *k;

	snprintf(buf, sizeof(buf), "%s", path);
	for (k = strtok_r(buf, ".", &save); k && o;
	     k = strtok_r(NULL, ".", &save))
		o = json_object_get(o, k);
	if (json_is_boolean(o))
		return json_is_true(o);
	return json_is_integer(o) ? json_integer_value(o) : -1;
}

static bool has_flag(json_t *o, const char *flag)
{
	json_t *fl = json_object_get(o, "flags"), *v;
	size_t i;

	json_array_foreach (fl, i, v)
		if (streq(json_string_value(v), flag))
			return true;
	return false;
}

/* iproute2 agrees with s (kind gre, endpoints, keys both ways, ttl,
 * PMTU discovery, up, mtu); returns the ifindex or -1. */
static int ip_agrees(const struct tspec *s, uint32_t ttl, uint32_t mtu)
{
	json_t *o = ip_link(cust_ns, s->name);
	char key[16];
	int ifindex = -1;
	bool ok;

	if (!o) {
		fprintf(stderr, "  ip: no link %s in %s\n", s->name, cust_ns);
		return -1;
	}
	snprintf(key, sizeof(key), "%u.%u.%u.%u", s->key >> 24,
		 (s->key >> 16) & 255, (s->key >> 8) & 255, s->key & 255);
	ok = streq(jstr(o, "linkinfo.info_kind"), "gre") &&
	     streq(jstr(o, "linkinfo.info_data.local"), s->local) &&
	     streq(jstr(o, "linkinfo.info_data.remote"), s->remote) &&
	     jint(o, "linkinfo.info_data.ttl") == ttl &&
	     jint(o, "linkinfo.info_data.pmtudisc") == 1 &&
	     jint(o, "mtu") == mtu && has_flag(o, "UP");
	if (s->has_key)
		ok = ok && streq(jstr(o, "linkinfo.info_data.ikey"), key) &&
		     streq(jstr(o, "linkinfo.info_data.okey"), key);
	else
		ok = ok && !jstr(o, "linkinfo.info_data.ikey") &&
		     !jstr(o, "linkinfo.info_data.okey");
	if (ok) {
		ifindex = (int)jint(o, "ifindex");
	} else {
		char *d = json_dumps(o, JSON_COMPACT);

		fprintf(stderr, "  ip disagrees with %s: %s\n", s->name, d);
		free(d);
	}
	json_decref(o);
	return ifindex;
}

/* ---- the data plane --------------------------------------------------------- */

struct sock_args {
	int type, proto, fd;
};

static int sock_fn(void *arg)
{
	struct sock_args *a = arg;

	a->fd = socket(a->type == SOCK_RAW ? AF_PACKET : AF_INET,
		       a->type | SOCK_CLOEXEC, a->proto);
	return a->fd < 0 ? -errno : 0;
}

/* A socket that lives in namespace ns ("" = ours). */
static int socket_in(const char *ns, int type, int proto)
{
	_cleanup_close_ int nsfd = mt_netns_open(ns), home = mt_netns_open("");
	struct sock_args a = {type, proto, -1};

	if (nsfd < 0 || home < 0)
		return -1;
	if (mt_netns_run(nsfd, home, sock_fn, &a) < 0)
		return -1;
	return a.fd;
}

static int udp_in(const char *ns, const char *addr)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(UDP_PORT)};
	int fd = socket_in(ns, SOCK_DGRAM, 0);

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = ip4(addr);
	if (bind(fd, (void *)&sa, sizeof(sa)) < 0) {
		perror("udp bind");
		close(fd);
		return -1;
	}
	return fd;
}

/* Sends msg from fd to addr, and expects it on rfd from src within
 * wait_ms. */
static bool udp_through(int fd, int rfd, const char *addr, const char *src,
			const char *msg, int wait_ms)
{
	struct pollfd pfd = {.fd = rfd, .events = POLLIN};
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons(UDP_PORT)}, from;
	socklen_t fl = sizeof(from);
	char buf[256];
	ssize_t n;

	sa.sin_addr.s_addr = ip4(addr);
	if (sendto(fd, msg, strlen(msg), 0, (void *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "  udp send to %s: %s\n", addr,
			strerror(errno));
		return false;
	}
	if (poll(&pfd, 1, wait_ms) != 1)
		return false;
	n = recvfrom(rfd, buf, sizeof(buf) - 1, MSG_DONTWAIT, (void *)&from,
		     &fl);
	if (n < 0)
		return false;
	buf[n] = 0;
	return streq(buf, msg) && from.sin_addr.s_addr == ip4(src);
}

/* An AF_PACKET socket on dev in our namespace (the metal), all frames. */
static int wire_open(const char *dev)
{
	struct sockaddr_ll ll = {.sll_family = AF_PACKET,
				 .sll_protocol = htons(ETH_P_ALL)};
	int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK,
			htons(ETH_P_ALL));

	ll.sll_ifindex = (int)if_nametoindex(dev);
	if (fd < 0 || !ll.sll_ifindex ||
	    bind(fd, (void *)&ll, sizeof(ll)) < 0) {
		perror("AF_PACKET");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

struct wire_count {
	unsigned out, in;	/* GRE edge -> router, router -> edge */
	unsigned out_key_ok;	/* ... with the expected key and inner */
	unsigned in_key_ok;
	unsigned other_key;	/* GRE with another key (or none) */
};

static uint32_t be32_at(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* Drains fd and counts the GRE frames between EDGE and RTR: key must be
 * `key` and the inner packet IPv4 between IN_C and IN_R. */
static void wire_count(int fd, uint32_t key, struct wire_count *c)
{
	uint8_t f[2048];
	ssize_t n;

	memset(c, 0, sizeof(*c));
	while ((n = recv(fd, f, sizeof(f), 0)) > 0) {
		const uint8_t *ip = f + 14, *gre, *in;
		size_t ihl, glen;
		uint16_t gflags;
		uint32_t src, dst, k = 0;
		bool out, keyed;

		if (n < 14 + 20 + 4 || f[12] != 0x08 || f[13] != 0x00)
			continue;
		ihl = (size_t)(ip[0] & 15) * 4;
		if ((ip[0] >> 4) != 4 || ip[9] != 47 || (size_t)n < 14 + ihl + 4)
			continue;
		memcpy(&src, ip + 12, 4);
		memcpy(&dst, ip + 16, 4);
		if (src == ip4(EDGE) && dst == ip4(RTR))
			out = true;
		else if (src == ip4(RTR) && dst == ip4(EDGE))
			out = false;
		else
			continue;
		gre = ip + ihl;
		gflags = (uint16_t)(gre[0] << 8 | gre[1]);
		keyed = gflags & 0x2000;
		glen = 4 + (gflags & 0x8000 ? 4 : 0) + (keyed ? 4 : 0) +
		       (gflags & 0x1000 ? 4 : 0);
		if ((size_t)n < 14 + ihl + glen + 20)
			continue;
		if (keyed)
			k = be32_at(gre + 4 + (gflags & 0x8000 ? 4 : 0));
		in = gre + glen;
		/* The devices' own IPv6 (router solicitations, MLD) is not
		 * this test's traffic. */
		if (gre[2] == 0x86 && gre[3] == 0xdd)
			continue;
		out ? c->out++ : c->in++;
		if (!keyed || k != key || gre[2] != 0x08 || gre[3] != 0x00 ||
		    (in[0] >> 4) != 4) {
			c->other_key++;
			continue;
		}
		memcpy(&src, in + 12, 4);
		memcpy(&dst, in + 16, 4);
		if (out && src == ip4(IN_C) && dst == ip4(IN_R))
			c->out_key_ok++;
		if (!out && src == ip4(IN_R) && dst == ip4(IN_C))
			c->in_key_ok++;
	}
}

/* tcpdump's stderr, read until it listens and closed once it is gone. */
static FILE *tcpdump_err;

/* tcpdump on dev (when installed), writing to a pcap until stopped;
 * returns its pid once it captures, 0 when there is no tcpdump, -1 on
 * error. */
static pid_t tcpdump_start(const char *dev, const char *pcap)
{
	char line[512];
	int p[2];
	pid_t pid;

	if (system("command -v tcpdump >/dev/null 2>&1") != 0)
		return 0;
	if (pipe(p) < 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		close(p[1]);
		execlp("tcpdump", "tcpdump", "-n", "-U", "--immediate-mode",
		       "-i", dev, "-w", pcap, "ip proto 47", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -1;
	}
	tcpdump_err = fdopen(p[0], "r");
	while (tcpdump_err && fgets(line, sizeof(line), tcpdump_err))
		if (strstr(line, "listening on"))
			return pid;
	fprintf(stderr, "  tcpdump did not start\n");
	return -1;
}

/* Stops tcpdump; returns how many decoded lines of `tcpdump -r` mention
 * GRE with key (and print them). -1 when it did not run. */
static int tcpdump_stop(pid_t pid, const char *pcap, uint32_t key)
{
	char line[512], want[32];
	int st, hits = 0;
	FILE *f;

	if (pid <= 0)
		return -1;
	usleep(300 * 1000); /* the last frames reach the file */
	kill(pid, SIGINT);
	waitpid(pid, &st, 0);
	if (tcpdump_err)
		fclose(tcpdump_err);
	tcpdump_err = NULL;
	snprintf(want, sizeof(want), "key=0x%x", key);
	f = popen(fmt("tcpdump -n -v -r %s 2>/dev/null", pcap), "r");
	while (f && fgets(line, sizeof(line), f)) {
		if (strstr(line, "GREv0") && strstr(line, want) &&
		    !strstr(line, "ip6")) {
			if (hits < 4)
				fprintf(stderr, "  tcpdump: %s", line);
			hits++;
		}
	}
	if (f)
		pclose(f);
	unlink(pcap);
	return hits;
}

/* ---- the checks ------------------------------------------------------------ */

/* The customer namespace the agent would make (mt's own plan: the
 * namespace and its veth metal0, metal side named like it). */
static int customer(struct mt_rtnl *ctx, Mt__Kernel__Op__Action act)
{
	Mt__Kernel__Plan *p = mt_plan_new();
	Mt__Kernel__Netns ns = MT__KERNEL__NETNS__INIT;
	Mt__Kernel__Link l = MT__KERNEL__LINK__INIT;
	Mt__Kernel__OpResult *res[2] = {NULL, NULL};
	uint64_t w = 0;
	int bad = 0;

	ns.name = cust_ns;
	mt_plan_add(p, act, &ns.base);
	if (act == CREATE) {
		l.netns = "";
		l.name = cust_ns;
		l.kind = "veth";
		l.peer_netns = cust_ns;
		l.peer_name = MT_CUST_VETH;
		l.up = true;
		mt_plan_add(p, CREATE, &l.base);
	}
	CHECK(mt_rtnl_apply(ctx, p->ops, p->n_ops, res, &w) == 0);
	for (size_t i = 0; i < p->n_ops; i++) {
		if (res[i] && res[i]->error) {
			fprintf(stderr, "  customer op %zu: %s\n", i,
				res[i]->message);
			bad++;
		}
		if (res[i])
			protobuf_c_message_free_unpacked(&res[i]->base, NULL);
	}
	mt_plan_free(p);
	return bad ? -1 : 0;
}

static void check_control(struct mt_tunnels *t)
{
	struct tspec k1 = {cust_ns, "gre1", "kernel", EDGE, RTR, true, 42, 0, 0};
	struct tspec k2 = {cust_ns, "gre2", "kernel", EDGE, "198.51.100.3",
			   false, 0, 30, 1400};
	struct tspec k3 = {cust_ns, "gre3", "auto", EDGE, "198.51.100.4",
			   false, 0, 0, 0};
	const struct tspec *all[] = {&k1, &k2, &k3};
	Mt__Kernel__KernelState *st;
	Mt__Kernel__Plan *p;
	int ix1, ix2;
	char msg[512];
	uint64_t w;

	/* create: keyed, unkeyed with explicit ttl/mtu, auto */
	p = plan_of(CREATE, all, 3);
	CHECK(apply(t, p, &w, NULL) == 0);
	CHECK(w == 3);
	st = observe(t, true);
	CHECK(st->n_tunnels == 3);
	CHECK(tun_is(st, &k1, 64, 1472));
	CHECK(tun_is(st, &k2, 30, 1400));
	CHECK(tun_is(st, &k3, 64, 1476));
	for (size_t i = 0; i < st->n_tunnels; i++)
		CHECK(st->tunnels[i]->counters &&
		      st->tunnels[i]->counters->n_drops == 0);
	mt_kstate_free(st);
	ix1 = ip_agrees(&k1, 64, 1472);
	ix2 = ip_agrees(&k2, 30, 1400);
	CHECK(ix1 > 0 && ix2 > 0);
	CHECK(ip_agrees(&k3, 64, 1476) > 0);

	/* idempotent: nothing written the second time */
	CHECK(apply(t, p, &w, NULL) == 0 && w == 0);
	mt_plan_free(p);

	/* changes in place (changelink: same ifindex) */
	k1.key = 43;
	CHECK(apply1(t, CREATE, &k1, &w, NULL, 0) == 0 && w == 1);
	CHECK(ip_agrees(&k1, 64, 1472) == ix1);
	k2.has_key = true; /* add a key, new remote, ttl, mtu */
	k2.key = 0x01020304;
	k2.remote = "198.51.100.5";
	k2.ttl = 200;
	k2.mtu = 1300;
	CHECK(apply1(t, CREATE, &k2, &w, NULL, 0) == 0 && w == 1);
	CHECK(ip_agrees(&k2, 200, 1300) == ix2);
	k2.has_key = false; /* and remove it */
	k2.key = 0;
	CHECK(apply1(t, CREATE, &k2, &w, NULL, 0) == 0 && w == 1);
	CHECK(ip_agrees(&k2, 200, 1300) == ix2);
	st = observe(t, false);
	CHECK(tun_is(st, &k1, 64, 1472) && tun_is(st, &k2, 200, 1300));
	mt_kstate_free(st);
	p = plan_of(CREATE, all, 3);
	CHECK(apply(t, p, &w, NULL) == 0 && w == 0);
	mt_plan_free(p);

	/* broken by hand: down; asymmetric keys. Observed as needing a
	 * CREATE, which repairs it. */
	CHECK(sh(fmt("ip -n %s link set gre1 down", cust_ns)) == 0);
	CHECK(needs_create(t, "gre1"));
	CHECK(apply1(t, CREATE, &k1, &w, NULL, 0) == 0 && w >= 1);
	CHECK(ip_agrees(&k1, 64, 1472) > 0);
	CHECK(sh(fmt("ip -n %s link change gre1 type gre local %s remote %s "
		     "ikey 43 okey 44 ttl 64",
		     cust_ns, EDGE, RTR)) == 0);
	CHECK(needs_create(t, "gre1"));
	CHECK(apply1(t, CREATE, &k1, &w, NULL, 0) == 0 && w >= 1);
	CHECK(ip_agrees(&k1, 64, 1472) > 0);
	st = observe(t, false);
	CHECK(tun_is(st, &k1, 64, 1472));
	mt_kstate_free(st);

	/* refusals */
	{
		struct tspec r = k3;

		r.name = "gre0"; /* the kernel's fallback device */
		CHECK(apply1(t, CREATE, &r, &w, msg, sizeof(msg)) == -EINVAL &&
		      w == 0);
		CHECK(strstr(msg, "gre0") != NULL);
		r.name = "gre9";
		r.ns = "mtt-notmine";
		CHECK(apply1(t, CREATE, &r, &w, msg, sizeof(msg)) == -EPERM &&
		      w == 0);
		r.ns = fmt("%snobody", pfx);
		CHECK(apply1(t, CREATE, &r, &w, msg, sizeof(msg)) == -ENOENT &&
		      w == 0);
		r.ns = cust_ns;
		r.local = r.remote;
		CHECK(apply1(t, CREATE, &r, &w, msg, sizeof(msg)) == -EINVAL &&
		      w == 0);
	}

	/* delete gre2, gre3 (gre1 carries the data plane next), twice */
	{
		const struct tspec *two[] = {&k2, &k3};

		p = plan_of(DELETE, two, 2);
		CHECK(apply(t, p, &w, NULL) == 0 && w == 2);
		CHECK(apply(t, p, &w, NULL) == 0 && w == 0);
		mt_plan_free(p);
		st = observe(t, false);
		CHECK(st->n_tunnels == 1 && find_tun(st, "gre1"));
		mt_kstate_free(st);
		CHECK(!ip_link(cust_ns, "gre2") && !ip_link(cust_ns, "gre3"));
	}
}

/* The router namespace reached through the metal, with the peer gre link
 * made by iproute2. */
static int underlay(void)
{
	const char *c = cust_ns, *r = rtr_ns;
	int fd;

	if (sh(fmt("ip addr add %s/24 dev %s", EDGE_GW, c)) ||
	    sh(fmt("ip -n %s addr add %s/24 dev %s", c, EDGE, MT_CUST_VETH)) ||
	    sh(fmt("ip -n %s link set lo up", c)) ||
	    sh(fmt("ip -n %s route add default via %s", c, EDGE_GW)) ||
	    sh(fmt("ip netns add %s", r)) ||
	    sh(fmt("ip link add mtt-rtr type veth peer name up0 netns %s", r)) ||
	    sh(fmt("ip addr add %s/24 dev mtt-rtr", RTR_GW)) ||
	    sh("ip link set mtt-rtr up") ||
	    sh(fmt("ip -n %s addr add %s/24 dev up0", r, RTR)) ||
	    sh(fmt("ip -n %s link set up0 up", r)) ||
	    sh(fmt("ip -n %s link set lo up", r)) ||
	    sh(fmt("ip -n %s route add 192.0.2.0/24 via %s", r, RTR_GW)) ||
	    sh(fmt("ip -n %s link add gre-r type gre local %s remote %s "
		   "key 42 ttl 64",
		   r, RTR, EDGE)) ||
	    sh(fmt("ip -n %s addr add %s/30 dev gre-r", r, IN_R)) ||
	    sh(fmt("ip -n %s link set gre-r up", r)))
		return -1;
	/* the metal routes between them (our own sandbox namespace) */
	fd = open("/proc/sys/net/ipv4/ip_forward", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "1", 1) != 1) {
		perror("ip_forward");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static void check_data(struct mt_tunnels *t)
{
	struct tspec k1 = {cust_ns, "gre1", "kernel", EDGE, RTR, true, 42, 0, 0};
	_cleanup_close_ int cfd = -1, rfd = -1, wire = -1;
	Mt__Kernel__KernelState *st;
	Mt__Kernel__Tunnel *o;
	struct wire_count wc;
	const char *pcap = "/tmp/mtt-gre.pcap";
	int ix, hits;
	uint64_t w;
	pid_t td;

	/* gre1 back to key 42, the router's */
	CHECK(apply1(t, CREATE, &k1, &w, NULL, 0) == 0 && w == 1);
	ix = ip_agrees(&k1, 64, 1472);
	if (underlay() < 0 ||
	    sh(fmt("ip -n %s addr add %s/30 dev gre1", cust_ns, IN_C))) {
		CHECK(!"underlay set up");
		return;
	}
	cfd = udp_in(cust_ns, IN_C);
	rfd = udp_in(rtr_ns, IN_R);
	wire = wire_open(cust_ns);
	CHECK(cfd >= 0 && rfd >= 0 && wire >= 0);
	if (cfd < 0 || rfd < 0 || wire < 0)
		return;
	td = tcpdump_start(cust_ns, pcap);

	/* UDP both ways, and ping */
	CHECK(udp_through(cfd, rfd, IN_R, IN_C, "edge to router", POS_MS));
	CHECK(udp_through(rfd, cfd, IN_C, IN_R, "router to edge", POS_MS));
	CHECK(sh(fmt("ip netns exec %s ping -q -c 3 -i 0.2 -W 2 %s "
		     ">/dev/null",
		     cust_ns, IN_R)) == 0);
	wire_count(wire, 42, &wc);
	fprintf(stderr,
		"  wire (key 42): %u GRE out (%u with key and inner ok), %u in "
		"(%u ok), %u other\n",
		wc.out, wc.out_key_ok, wc.in, wc.in_key_ok, wc.other_key);
	CHECK(wc.out_key_ok >= 4 && wc.in_key_ok >= 4 && wc.other_key == 0);
	hits = tcpdump_stop(td, pcap, 42);
	if (td == 0) {
		fprintf(stderr, "  (no tcpdump here: AF_PACKET check only)\n");
	} else {
		fprintf(stderr, "  tcpdump: %d GRE packets with key 42\n",
			hits);
		CHECK(td > 0 && hits >= 8);
	}

	/* counters of the kernel driver */
	st = observe(t, true);
	o = find_tun(st, "gre1");
	CHECK(o && o->counters && o->counters->tx_packets >= 4 &&
	      o->counters->rx_packets >= 4 && o->counters->tx_bytes > 0 &&
	      o->counters->rx_bytes > 0);
	mt_kstate_free(st);

	/* key change in place: the wire shows the new key, the router with
	 * the old key is unreachable, then reachable with the new one */
	k1.key = 4242;
	CHECK(apply1(t, CREATE, &k1, &w, NULL, 0) == 0 && w == 1);
	CHECK(ip_agrees(&k1, 64, 1472) == ix);
	CHECK(!udp_through(cfd, rfd, IN_R, IN_C, "old key", NEG_MS));
	wire_count(wire, 4242, &wc);
	fprintf(stderr,
		"  wire (key 4242, router on 42): %u GRE out (%u ok), %u in, "
		"%u other\n",
		wc.out, wc.out_key_ok, wc.in, wc.other_key);
	CHECK(wc.out_key_ok >= 1 && wc.in == 0);
	CHECK(sh(fmt("ip -n %s link change gre-r type gre local %s remote %s "
		     "key 4242 ttl 64",
		     rtr_ns, RTR, EDGE)) == 0);
	CHECK(udp_through(cfd, rfd, IN_R, IN_C, "new key", POS_MS));
	CHECK(udp_through(rfd, cfd, IN_C, IN_R, "new key back", POS_MS));
	wire_count(wire, 4242, &wc);
	CHECK(wc.out_key_ok >= 1 && wc.in_key_ok >= 1 && wc.other_key == 0);

	/* delete: gone, and traffic with it; observe empty although the
	 * kernel's own gre0 is in the namespace */
	CHECK(apply1(t, DELETE, &k1, &w, NULL, 0) == 0 && w == 1);
	CHECK(apply1(t, DELETE, &k1, &w, NULL, 0) == 0 && w == 0);
	st = observe(t, false);
	CHECK(st->n_tunnels == 0);
	mt_kstate_free(st);
	CHECK(!ip_link(cust_ns, "gre1"));
	{
		json_t *g0 = ip_link(cust_ns, "gre0");

		CHECK(g0 != NULL);
		json_decref(g0);
	}
	CHECK(!udp_through(rfd, cfd, IN_C, IN_R, "after delete", NEG_MS));
}

static int sandbox(void)
{
	if (unshare(CLONE_NEWNET | CLONE_NEWNS) < 0) {
		perror("unshare");
		return -1;
	}
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0 ||
	    mount("tmpfs", "/run", "tmpfs", 0, "mode=0755") < 0) {
		perror("mount");
		return -1;
	}
	return 0;
}

int main(void)
{
	Mt__Config__Metal cfg = MT__CONFIG__METAL__INIT;
	bool in_vm = getenv("MT_VM_OUT") != NULL;
	struct mt_tunnels *t = NULL;
	struct mt_rtnl *ctx = NULL;
	char err[512], inst[8];
	int r;

	if (geteuid() != 0) {
		fprintf(stderr, "SKIP: needs root (run it with "
				"tests/vm/run-in-vm)\n");
		return 77;
	}
	mt_log_init("gre_kernel_check", MT_LOG_WARN);
	if (sandbox() < 0)
		return 1;
	snprintf(inst, sizeof(inst), "v%d", (int)(getpid() % 1000));
	cfg.instance = inst;
	if (mt_metal_init(&metal, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	snprintf(pfx, sizeof(pfx), "%s", metal.prefix);
	snprintf(cust_ns, sizeof(cust_ns), "%sacme", pfx);
	snprintf(rtr_ns, sizeof(rtr_ns), "mtt-rtr%d", (int)(getpid() % 1000));
	/* The BPF driver may not load on this kernel: that is logged as a
	 * warning and is not what this checks. */
	mt_log_init("gre_kernel_check", MT_LOG_ERR);
	r = mt_tunnels_new(&metal, NULL, &t, err, sizeof(err));
	mt_log_init("gre_kernel_check", MT_LOG_WARN);
	if (r < 0 || mt_rtnl_new(&metal, &ctx) < 0) {
		fprintf(stderr, "setup: %s\n", r < 0 ? err : "mt_rtnl_new");
		return 1;
	}
	fprintf(stderr, "  auto driver: %s (kernel gre %s)\n",
		mt_tunnels_auto_driver(t),
		mt_tunnels_kernel_gre(t) ? "yes" : "no");
	if (!mt_tunnels_kernel_gre(t)) {
		fprintf(stderr, "%s: this kernel makes no gre links\n",
			in_vm ? "FAIL" : "SKIP");
		return in_vm ? 1 : 77;
	}
	CHECK(streq(mt_tunnels_auto_driver(t), "kernel"));
	if (customer(ctx, CREATE) < 0) {
		fprintf(stderr, "FAIL: cannot make the customer namespace\n");
		return 1;
	}
	check_control(t);
	check_data(t);
	mt_tunnels_forget_netns(t, cust_ns);
	customer(ctx, DELETE);
	mt_tunnels_free(t);
	mt_rtnl_free(ctx);
	mt_metal_fini(&metal);
	printf("%s (%d failed checks)\n", failures ? "FAIL" : "PASS", failures);
	return failures ? 1 : 0;
}
