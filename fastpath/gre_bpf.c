#include "gre_bpf.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/if_arp.h>
#include <linux/magic.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <linux/veth.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "mt_cleanup.h"
#include "mt_gre.skel.h"
#include "mt_log.h"
#include "netns.h"
#include "nl.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

struct mt_gre_bpf {
	struct mt_gre_skel *skel;
	int home_fd; /* the namespace of the thread that opened us */
	int ncpus;
	uint8_t encap_tag[BPF_TAG_SIZE], decap_tag[BPF_TAG_SIZE];
};

static const char *const drop_names[MT_GRE_DROP_MAX] = {
	[MT_GRE_DROP_MALFORMED] = "malformed",
	[MT_GRE_DROP_IP_OPTIONS] = "ip_options",
	[MT_GRE_DROP_FRAGMENT] = "fragment",
	[MT_GRE_DROP_NO_TUNNEL] = "no_tunnel",
	[MT_GRE_DROP_BAD_VERSION] = "bad_version",
	[MT_GRE_DROP_BAD_FLAGS] = "bad_flags",
	[MT_GRE_DROP_SEQUENCE] = "sequence",
	[MT_GRE_DROP_BAD_PROTO] = "bad_proto",
	[MT_GRE_DROP_WRONG_KEY] = "wrong_key",
	[MT_GRE_DROP_BAD_CSUM] = "bad_csum",
	[MT_GRE_DROP_DECAP_FAILED] = "decap_failed",
	[MT_GRE_DROP_ENCAP_NO_TUNNEL] = "encap_no_tunnel",
	[MT_GRE_DROP_ENCAP_NOT_IPV4] = "encap_not_ipv4",
	[MT_GRE_DROP_ENCAP_FAILED] = "encap_failed",
};

const char *mt_gre_drop_name(unsigned reason)
{
	if (reason >= MT_GRE_DROP_MAX || !drop_names[reason])
		return "unknown";
	return drop_names[reason];
}

static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Formats "<message>: <strerror>" into err; returns r. */
static int fail(char *err, size_t errlen, int r, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (!err || !errlen)
		return r;
	va_start(ap, fmt);
	n = vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (n >= 0 && (size_t)n < errlen && r < 0)
		snprintf(err + n, errlen - (size_t)n, ": %s", strerror(-r));
	return r;
}

/* ---- libbpf boundary ---------------------------------------------------- */

static int libbpf_print(enum libbpf_print_level level, const char *fmt,
			va_list ap)
{
	char line[512];
	size_t n;

	if (level == LIBBPF_DEBUG)
		return 0;
	vsnprintf(line, sizeof(line), fmt, ap);
	/* bpf_tc_hook_create on an existing clsact: EEXIST, expected; a
	 * query or detach of a filter that is not there: reported as 0 */
	if (strstr(line, "Exclusivity flag on") ||
	    strstr(line, "Cannot find specified filter chain"))
		return 0;
	n = strlen(line);
	if (n && line[n - 1] == '\n')
		line[n - 1] = '\0';
	mt_log(level == LIBBPF_WARN ? MT_LOG_WARN : MT_LOG_INFO, "libbpf: %s",
	       line);
	return 0;
}

/* ---- pinning ------------------------------------------------------------ */

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t n = strlen(path);

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, path, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return mt_neg_errno();
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return mt_neg_errno();
	return 0;
}

/* Makes root a bpffs mount (mode 0700: pins are root's business). */
static int bpffs_ensure(const char *root, char *err, size_t errlen)
{
	struct statfs sfs;
	int r;

	r = mkdir_p(root, 0700);
	if (r < 0)
		return fail(err, errlen, r, "cannot create %s", root);
	if (statfs(root, &sfs) < 0)
		return fail(err, errlen, mt_neg_errno(), "statfs %s", root);
	if (sfs.f_type == BPF_FS_MAGIC)
		return 0;
	if (mount("bpf", root, "bpf", 0, "mode=0700") < 0)
		return fail(err, errlen, mt_neg_errno(),
			    "cannot mount a bpffs at %s", root);
	mt_info("mounted a bpffs at %s", root);
	return 0;
}

static bool instance_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > NAME_MAX || s[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(s[i] == '-' || s[i] == '_' || s[i] == '.' ||
		      (s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'z') ||
		      (s[i] >= 'A' && s[i] <= 'Z')))
			return false;
	return true;
}

static int set_pins(struct mt_gre_skel *s, const char *dir, char *err,
		    size_t errlen)
{
	struct bpf_map *maps[] = {s->maps.mt_gre_tx, s->maps.mt_gre_rx,
				  s->maps.mt_gre_drops,
				  s->maps.mt_gre_tun_drops};
	char path[PATH_MAX];
	int r;

	for (size_t i = 0; i < MT_ARRAY_SIZE(maps); i++) {
		if (snprintf(path, sizeof(path), "%s/%s", dir,
			     bpf_map__name(maps[i])) >= (int)sizeof(path))
			return fail(err, errlen, -ENAMETOOLONG,
				    "pin directory %s", dir);
		r = bpf_map__set_pin_path(maps[i], path);
		if (r < 0)
			return fail(err, errlen, r, "pin path %s", path);
	}
	return 0;
}

static int prog_tag(int fd, uint8_t tag[BPF_TAG_SIZE])
{
	struct bpf_prog_info info = {0};
	uint32_t len = sizeof(info);

	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
		return mt_neg_errno();
	memcpy(tag, info.tag, BPF_TAG_SIZE);
	return 0;
}

int mt_gre_bpf_open(const char *pin_root, const char *instance,
		    struct mt_gre_bpf **out, char *err, size_t errlen)
{
	_cleanup_free_ struct mt_gre_bpf *g = NULL;
	char dir[PATH_MAX];
	int r;

	*out = NULL;
	libbpf_set_print(libbpf_print);
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->home_fd = -1;
	g->ncpus = libbpf_num_possible_cpus();
	if (g->ncpus <= 0)
		return fail(err, errlen, g->ncpus < 0 ? g->ncpus : -EINVAL,
			    "cannot count possible CPUs");
	g->skel = mt_gre_skel__open();
	if (!g->skel)
		return fail(err, errlen, mt_neg_errno(),
			    "cannot open the GRE BPF object");
	if (pin_root) {
		if (!instance || !instance_ok(instance)) {
			r = fail(err, errlen, -EINVAL,
				 "bad instance name \"%s\" for the pin "
				 "directory", instance ? instance : "");
			goto out_skel;
		}
		r = bpffs_ensure(pin_root, err, errlen);
		if (r < 0)
			goto out_skel;
		if (snprintf(dir, sizeof(dir), "%s/%s", pin_root, instance) >=
		    (int)sizeof(dir) - 32) {
			r = fail(err, errlen, -ENAMETOOLONG,
				 "pin root %s too long", pin_root);
			goto out_skel;
		}
		r = mkdir_p(dir, 0700);
		if (r < 0) {
			fail(err, errlen, r, "cannot create %s", dir);
			goto out_skel;
		}
		r = set_pins(g->skel, dir, err, errlen);
		if (r < 0)
			goto out_skel;
	}
	r = mt_gre_skel__load(g->skel);
	if (r < 0) {
		fail(err, errlen, r,
		     "cannot load the GRE BPF programs%s%s%s (a pinned map "
		     "with an old layout must be removed by hand)",
		     pin_root ? " with maps pinned in " : "",
		     pin_root ? dir : "", "");
		goto out_skel;
	}
	g->home_fd = mt_netns_open("");
	if (g->home_fd < 0) {
		r = fail(err, errlen, g->home_fd,
			 "cannot open the current network namespace");
		goto out_skel;
	}
	prog_tag(bpf_program__fd(g->skel->progs.mt_gre_encap), g->encap_tag);
	prog_tag(bpf_program__fd(g->skel->progs.mt_gre_decap), g->decap_tag);
	*out = MT_TAKE_PTR(g);
	return 0;
out_skel:
	mt_gre_skel__destroy(g->skel);
	return r;
}

void mt_gre_bpf_free(struct mt_gre_bpf *g)
{
	if (!g)
		return;
	mt_gre_skel__destroy(g->skel);
	if (g->home_fd >= 0)
		close(g->home_fd);
	free(g);
}

int mt_gre_bpf_encap_fd(const struct mt_gre_bpf *g)
{
	return bpf_program__fd(g->skel->progs.mt_gre_encap);
}

int mt_gre_bpf_decap_fd(const struct mt_gre_bpf *g)
{
	return bpf_program__fd(g->skel->progs.mt_gre_decap);
}

int mt_gre_bpf_tx_map_fd(const struct mt_gre_bpf *g)
{
	return bpf_map__fd(g->skel->maps.mt_gre_tx);
}

int mt_gre_bpf_rx_map_fd(const struct mt_gre_bpf *g)
{
	return bpf_map__fd(g->skel->maps.mt_gre_rx);
}

int mt_gre_bpf_tun_drops_map_fd(const struct mt_gre_bpf *g)
{
	return bpf_map__fd(g->skel->maps.mt_gre_tun_drops);
}

/* ---- names -------------------------------------------------------------- */

bool mt_gre_bpf_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > MT_GRE_NAME_MAX || strcmp(name, "lo") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '_' || c == '-'))
			return false;
	}
	return true;
}

int mt_gre_bpf_wire_name(const char *name, char *buf, size_t len)
{
	if (!mt_gre_bpf_name_valid(name))
		return -EINVAL;
	if (len < IFNAMSIZ)
		return -ENOSPC;
	snprintf(buf, len, "%s%s", name, MT_GRE_WIRE_SUFFIX);
	return 0;
}

/* ---- running inside a namespace ----------------------------------------- */

static int in_ns(struct mt_gre_bpf *g, int nsfd, int (*fn)(void *), void *arg)
{
	return mt_netns_run(nsfd, g->home_fd, fn, arg);
}

/* An AF_INET datagram socket in the current namespace, for ioctls. */
static int ioctl_sock(void)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	return fd < 0 ? mt_neg_errno() : fd;
}

static int ifindex_of(int sock, const char *name)
{
	struct ifreq ifr = {0};

	if (strlen(name) >= IFNAMSIZ)
		return -ENODEV;
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(sock, SIOCGIFINDEX, &ifr) < 0)
		return mt_neg_errno();
	return ifr.ifr_ifindex;
}

static int mac_of(int sock, const char *name, uint8_t mac[6])
{
	struct ifreq ifr = {0};

	if (strlen(name) >= IFNAMSIZ)
		return -ENODEV;
	memcpy(ifr.ifr_name, name, strlen(name));
	if (ioctl(sock, SIOCGIFHWADDR, &ifr) < 0)
		return mt_neg_errno();
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER)
		return -EPROTOTYPE;
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return 0;
}

static int cookie_of(int sock, uint64_t *cookie)
{
	socklen_t len = sizeof(*cookie);

	if (getsockopt(sock, SOL_SOCKET, SO_NETNS_COOKIE, cookie, &len) < 0)
		return mt_neg_errno();
	return 0;
}

static int tx_csum_set(int sock, const char *name, bool on)
{
	struct ethtool_value ev = {.cmd = ETHTOOL_STXCSUM, .data = on};
	struct ifreq ifr = {0};

	if (strlen(name) >= IFNAMSIZ)
		return -ENODEV;
	memcpy(ifr.ifr_name, name, strlen(name));
	ifr.ifr_data = (void *)&ev;
	if (ioctl(sock, SIOCETHTOOL, &ifr) < 0)
		return mt_neg_errno();
	ev.cmd = ETHTOOL_GTXCSUM;
	if (ioctl(sock, SIOCETHTOOL, &ifr) < 0)
		return mt_neg_errno();
	return !ev.data != !on ? -EOPNOTSUPP : 0;
}

struct facts_args {
	const char *name;
	uint64_t cookie;
	uint8_t mac[6];
	bool want_mac;
};

static int facts_in(void *arg)
{
	struct facts_args *a = arg;
	_cleanup_close_ int s = ioctl_sock();

	if (s < 0)
		return s;
	if (a->want_mac)
		return mac_of(s, a->name, a->mac);
	return cookie_of(s, &a->cookie);
}

int mt_gre_bpf_netns_cookie(struct mt_gre_bpf *g, int nsfd, uint64_t *cookie)
{
	struct facts_args a = {0};
	int r = in_ns(g, nsfd, facts_in, &a);

	if (r == 0)
		*cookie = a.cookie;
	return r;
}

int mt_gre_bpf_link_mac(struct mt_gre_bpf *g, int nsfd, const char *ifname,
			uint8_t mac[6])
{
	struct facts_args a = {.name = ifname, .want_mac = true};
	int r = in_ns(g, nsfd, facts_in, &a);

	if (r == 0)
		memcpy(mac, a.mac, 6);
	return r;
}

struct csum_args {
	const char *name;
};

static int csum_in(void *arg)
{
	struct csum_args *a = arg;
	_cleanup_close_ int s = ioctl_sock();

	return s < 0 ? s : tx_csum_set(s, a->name, true);
}

int mt_gre_bpf_tx_csum_on(struct mt_gre_bpf *g, int nsfd,
			  const char *ifname, char *err, size_t errlen)
{
	struct csum_args a = {.name = ifname};
	int r = in_ns(g, nsfd, csum_in, &a);

	if (r < 0)
		return fail(err, errlen, r,
			    "cannot turn tx checksum offload on on %s",
			    ifname);
	return 0;
}

/* ---- netlink: one request, its reply and ACK ---------------------------- */

typedef int (*reply_cb)(const struct nlmsghdr *nlh, void *data);

/* Sends the message in buf with NLM_F_ACK, passes non-error replies to cb,
 * returns the ACK's error (0 or -errno) and copies the kernel's extended
 * ACK text to kmsg. */
static int nl_request(struct mt_nl *nl, void *buf, reply_cb cb, void *data,
		      char *kmsg, size_t kmsglen)
{
	struct nlmsghdr *req = buf;
	char rbuf[8192];
	ssize_t n;

	if (kmsglen)
		kmsg[0] = '\0';
	req->nlmsg_flags |= NLM_F_ACK;
	req->nlmsg_seq = ++nl->seq;
	if (mnl_socket_sendto(nl->sock, req, req->nlmsg_len) < 0)
		return mt_neg_errno();
	for (;;) {
		n = recv(mt_nl_fd(nl), rbuf, sizeof(rbuf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : mt_neg_errno();
		}
		int left = (int)n;

		for (const struct nlmsghdr *h = (const void *)rbuf;
		     mnl_nlmsg_ok(h, left); h = mnl_nlmsg_next(h, &left)) {
			const struct nlmsgerr *e;
			const char *m;

			if (h->nlmsg_seq != req->nlmsg_seq)
				continue;
			if (h->nlmsg_type != NLMSG_ERROR) {
				if (cb)
					cb(h, data);
				continue;
			}
			if (mnl_nlmsg_get_payload_len(h) < sizeof(*e))
				return -EBADMSG;
			e = mnl_nlmsg_get_payload(h);
			m = e->error ? mt_nl_ack_msg(h) : NULL;
			if (m && kmsglen)
				snprintf(kmsg, kmsglen, "%s", m);
			return e->error;
		}
	}
}

struct getlink {
	uint32_t ifindex;
	uint32_t link; /* veth peer ifindex */
	int32_t netnsid;
	char kind[16];
};

static int getlink_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	struct getlink *gl = data;
	const struct nlattr *a, *b;

	if (nlh->nlmsg_type != RTM_NEWLINK ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifi))
		return 0;
	gl->ifindex = (uint32_t)ifi->ifi_index;
	mnl_attr_for_each (a, nlh, sizeof(*ifi)) {
		switch (mnl_attr_get_type(a)) {
		case IFLA_LINK:
			gl->link = mnl_attr_get_u32(a);
			break;
		case IFLA_LINK_NETNSID:
			gl->netnsid = (int32_t)mnl_attr_get_u32(a);
			break;
		case IFLA_LINKINFO:
			mnl_attr_for_each_nested (b, a)
				if (mnl_attr_get_type(b) == IFLA_INFO_KIND)
					snprintf(gl->kind, sizeof(gl->kind),
						 "%.*s",
						 (int)mnl_attr_get_payload_len(
						     b),
						 (const char *)
						     mnl_attr_get_payload(b));
			break;
		}
	}
	return 0;
}

static int link_get(struct mt_nl *nl, const char *name, struct getlink *gl)
{
	char buf[MT_NL_MSG_MAX], kmsg[128];
	struct ifinfomsg *ifi;
	struct mt_nlb b;
	int r;

	memset(gl, 0, sizeof(*gl));
	gl->netnsid = -1;
	ifi = mt_nlb_start(&b, buf, sizeof(buf), RTM_GETLINK, 0, sizeof(*ifi));
	if (ifi)
		ifi->ifi_family = AF_UNSPEC;
	mt_nlb_str(&b, IFLA_IFNAME, name);
	mt_nlb_u32(&b, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	r = mt_nlb_end(&b);
	if (r < 0)
		return r;
	r = nl_request(nl, buf, getlink_cb, gl, kmsg, sizeof(kmsg));
	if (r == 0 && gl->ifindex == 0)
		r = -ENODEV;
	return r;
}

/* ---- devices ------------------------------------------------------------ */

struct link_args {
	struct mt_gre_bpf *g;
	const char *name;
	char wire[IFNAMSIZ];
	uint32_t mtu;
	uint32_t dev_ifindex;  /* requested for NAME (even) */
	uint32_t wire_ifindex; /* requested for the wire end (odd) */
	char *err;
	size_t errlen;
};

/* Ifindexes for a new pair: NAME gets an even one, its wire end the next
 * (odd) one, random in the mt range and not a key of the tx map. Unique
 * across namespaces as long as every tunnel pair comes from here (the
 * kernel's own per-namespace numbering never reaches the range). The
 * kernel takes the peer's requested ifindex only when the first device's
 * is requested too (veth_newlink), hence a pair. */
static void ifindex_pick(struct mt_gre_bpf *g, struct link_args *a)
{
	struct mt_gre_tx_key k;
	struct mt_gre_tx_val v;
	uint32_t span = (MT_GRE_IFINDEX_MAX - MT_GRE_IFINDEX_MIN) / 2;
	uint32_t x;

	for (int i = 0; i < 64; i++) {
		if (getrandom(&x, sizeof(x), 0) != sizeof(x))
			x = (uint32_t)random();
		a->dev_ifindex = MT_GRE_IFINDEX_MIN + (x % span) * 2;
		k.ifindex = a->dev_ifindex + 1;
		if (bpf_map_lookup_elem(mt_gre_bpf_tx_map_fd(g), &k, &v) < 0)
			break;
	}
	a->wire_ifindex = a->dev_ifindex + 1;
}

/* RTM_NEWLINK creating the pair; both ends stay down (a veth end cannot
 * be opened before its peer exists). */
static int build_pair(void *buf, size_t len, const struct link_args *a)
{
	struct nlattr *info, *data, *peer;
	struct ifinfomsg *ifi;
	struct mt_nlb b;

	ifi = mt_nlb_start(&b, buf, len, RTM_NEWLINK,
			   NLM_F_CREATE | NLM_F_EXCL, sizeof(*ifi));
	if (ifi) {
		ifi->ifi_family = AF_UNSPEC;
		ifi->ifi_index = (int)a->dev_ifindex;
	}
	mt_nlb_str(&b, IFLA_IFNAME, a->name);
	mt_nlb_u32(&b, IFLA_MTU, a->mtu);
	mt_nlb_u32(&b, IFLA_GSO_MAX_SIZE, MT_GRE_GSO_MAX_SIZE);
	info = mt_nlb_nest(&b, IFLA_LINKINFO);
	mt_nlb_str(&b, IFLA_INFO_KIND, "veth");
	data = mt_nlb_nest(&b, IFLA_INFO_DATA);
	peer = mt_nlb_nest(&b, VETH_INFO_PEER);
	if (!b.full) {
		size_t need = MNL_ALIGN(sizeof(struct ifinfomsg));

		if (b.nlh->nlmsg_len + need > b.len) {
			b.full = true;
		} else {
			ifi = mnl_nlmsg_get_payload_tail(b.nlh);
			memset(ifi, 0, need);
			ifi->ifi_family = AF_UNSPEC;
			/* the kernel gives the peer this ifindex */
			ifi->ifi_index = (int)a->wire_ifindex;
			b.nlh->nlmsg_len += need;
		}
	}
	mt_nlb_str(&b, IFLA_IFNAME, a->wire);
	mt_nlb_u32(&b, IFLA_MTU, a->mtu + MT_GRE_OVERHEAD_KEY);
	mt_nlb_nest_end(&b, peer);
	mt_nlb_nest_end(&b, data);
	mt_nlb_nest_end(&b, info);
	return mt_nlb_end(&b);
}

/* RTM_NEWLINK on an existing device: flags (NOARP, and UP when up), MTU
 * and gso_max_size when nonzero, and optionally addrgenmode none (IPv6
 * then makes no link-local). */
static int build_set(void *buf, size_t len, const char *name, uint32_t mtu,
		     uint32_t gso_max, bool up, bool addrgen)
{
	struct nlattr *af, *in6;
	struct ifinfomsg *ifi;
	struct mt_nlb b;

	ifi = mt_nlb_start(&b, buf, len, RTM_NEWLINK, 0, sizeof(*ifi));
	if (ifi) {
		ifi->ifi_family = AF_UNSPEC;
		ifi->ifi_change = IFF_NOARP | (up ? IFF_UP : 0);
		ifi->ifi_flags = IFF_NOARP | (up ? IFF_UP : 0);
	}
	mt_nlb_str(&b, IFLA_IFNAME, name);
	if (mtu)
		mt_nlb_u32(&b, IFLA_MTU, mtu);
	if (gso_max)
		mt_nlb_u32(&b, IFLA_GSO_MAX_SIZE, gso_max);
	if (addrgen) {
		af = mt_nlb_nest(&b, IFLA_AF_SPEC);
		in6 = mt_nlb_nest(&b, AF_INET6);
		mt_nlb_u8(&b, IFLA_INET6_ADDR_GEN_MODE,
			  IN6_ADDR_GEN_MODE_NONE);
		mt_nlb_nest_end(&b, in6);
		mt_nlb_nest_end(&b, af);
	}
	return mt_nlb_end(&b);
}

static int link_set(struct mt_nl *nl, struct link_args *a, const char *name,
		    uint32_t mtu, bool up, bool addrgen)
{
	char buf[MT_NL_MSG_MAX], kmsg[256] = "";
	/* the tunnel device (not its wire end) gets the GSO cap */
	uint32_t gso_max = mtu && strcmp(name, a->name) == 0
				   ? MT_GRE_GSO_MAX_SIZE
				   : 0;
	int r = build_set(buf, sizeof(buf), name, mtu, gso_max, up, addrgen);

	if (r < 0)
		return r;
	r = nl_request(nl, buf, NULL, NULL, kmsg, sizeof(kmsg));
	if (r < 0)
		fail(a->err, a->errlen, r, "cannot set up %s%s%s", name,
		     *kmsg ? ": " : "", kmsg);
	return r;
}

static int link_create_in(void *arg)
{
	struct link_args *a = arg;
	struct mt_nl *nl = NULL;
	_cleanup_close_ int s = -1;
	char buf[MT_NL_MSG_MAX], kmsg[256] = "";
	struct getlink gl;
	int r, wire_ifindex;

	r = mt_nl_open(&nl);
	if (r < 0)
		return fail(a->err, a->errlen, r, "netlink socket");
	/* -EBUSY: the ifindex is taken in this namespace; pick again */
	for (int i = 0; i < 8; i++) {
		ifindex_pick(a->g, a);
		r = build_pair(buf, sizeof(buf), a);
		if (r >= 0)
			r = nl_request(nl, buf, NULL, NULL, kmsg,
				       sizeof(kmsg));
		if (r != -EBUSY)
			break;
	}
	if (r == -EEXIST) {
		/* Ours only if NAME is a veth whose peer is NAME.t here. */
		s = ioctl_sock();
		wire_ifindex = s < 0 ? s : ifindex_of(s, a->wire);
		r = link_get(nl, a->name, &gl);
		if (r == 0 && (strcmp(gl.kind, "veth") != 0 ||
			       wire_ifindex < 0 || gl.netnsid != -1 ||
			       gl.link != (uint32_t)wire_ifindex)) {
			r = fail(a->err, a->errlen, -EEXIST,
				 "device %s exists and is not the tunnel "
				 "pair %s/%s", a->name, a->name, a->wire);
			goto out;
		}
		if (r == 0 && (uint32_t)wire_ifindex < MT_GRE_IFINDEX_MIN) {
			r = fail(a->err, a->errlen, -EEXIST,
				 "%s has ifindex %d, outside the range the "
				 "GRE maps key on: delete %s to recreate it",
				 a->wire, wire_ifindex, a->name);
			goto out;
		}
	} else if (r < 0) {
		fail(a->err, a->errlen, r, "cannot create veth pair %s/%s%s%s",
		     a->name, a->wire, *kmsg ? ": " : "", kmsg);
		goto out;
	}
	if (r < 0) {
		fail(a->err, a->errlen, r, "cannot inspect %s", a->name);
		goto out;
	}
	/* addrgenmode is refused where IPv6 is absent: not an error. */
	r = link_set(nl, a, a->wire, 0, false, true);
	if (r == -EAFNOSUPPORT || r == -EOPNOTSUPP)
		r = 0;
	if (r == 0) {
		r = link_set(nl, a, a->name, 0, false, true);
		if (r == -EAFNOSUPPORT || r == -EOPNOTSUPP)
			r = 0;
	}
	if (r < 0)
		goto out;
	if (s < 0)
		s = ioctl_sock();
	/* Offloads on (the veth default; tunnels made by earlier versions
	 * had them off): GSO packets cross the tunnel whole (header). */
	r = s < 0 ? s : tx_csum_set(s, a->wire, true);
	if (r == 0)
		r = tx_csum_set(s, a->name, true);
	if (r < 0) {
		fail(a->err, a->errlen, r,
		     "cannot turn tx checksum offload on on %s/%s", a->name,
		     a->wire);
		goto out;
	}
	r = link_set(nl, a, a->wire, a->mtu + MT_GRE_OVERHEAD_KEY, true,
		     false);
	if (r == 0)
		r = link_set(nl, a, a->name, a->mtu, true, false);
out:
	mt_nl_close(nl);
	return r;
}

int mt_gre_bpf_link_create(struct mt_gre_bpf *g, int nsfd, const char *name,
			   uint32_t mtu, char *err, size_t errlen)
{
	struct link_args a = {.g = g,
			      .name = name,
			      .mtu = mtu ? mtu : MT_GRE_DEFAULT_MTU,
			      .err = err,
			      .errlen = errlen};

	if (mt_gre_bpf_wire_name(name, a.wire, sizeof(a.wire)) < 0)
		return fail(err, errlen, -EINVAL,
			    "tunnel name \"%s\" is not 1-%d characters of "
			    "[A-Za-z0-9_-]", name, MT_GRE_NAME_MAX);
	if (a.mtu < 68 || a.mtu > 65535 - MT_GRE_OVERHEAD_KEY)
		return fail(err, errlen, -EINVAL, "tunnel %s: bad mtu %u",
			    name, a.mtu);
	return in_ns(g, nsfd, link_create_in, &a);
}

static int link_delete_in(void *arg)
{
	struct link_args *a = arg;
	char buf[MT_NL_MSG_MAX], kmsg[256] = "";
	struct mt_nl *nl = NULL;
	struct ifinfomsg *ifi;
	struct getlink gl;
	struct mt_nlb b;
	int r;

	r = mt_nl_open(&nl);
	if (r < 0)
		return fail(a->err, a->errlen, r, "netlink socket");
	r = link_get(nl, a->name, &gl);
	if (r == -ENODEV) {
		r = 0;
		goto out;
	}
	if (r == 0 && strcmp(gl.kind, "veth") != 0) {
		r = fail(a->err, a->errlen, -EPERM,
			 "refusing to delete %s: not a tunnel veth (kind "
			 "\"%s\")", a->name, gl.kind);
		goto out;
	}
	ifi = mt_nlb_start(&b, buf, sizeof(buf), RTM_DELLINK, 0, sizeof(*ifi));
	if (ifi)
		ifi->ifi_family = AF_UNSPEC;
	mt_nlb_str(&b, IFLA_IFNAME, a->name);
	r = mt_nlb_end(&b);
	if (r >= 0)
		r = nl_request(nl, buf, NULL, NULL, kmsg, sizeof(kmsg));
	if (r == -ENODEV)
		r = 0;
	if (r < 0)
		fail(a->err, a->errlen, r, "cannot delete %s%s%s", a->name,
		     *kmsg ? ": " : "", kmsg);
out:
	mt_nl_close(nl);
	return r;
}

int mt_gre_bpf_link_delete(struct mt_gre_bpf *g, int nsfd, const char *name,
			   char *err, size_t errlen)
{
	struct link_args a = {.name = name, .err = err, .errlen = errlen};

	if (mt_gre_bpf_wire_name(name, a.wire, sizeof(a.wire)) < 0)
		return fail(err, errlen, -EINVAL, "bad tunnel name \"%s\"",
			    name);
	return in_ns(g, nsfd, link_delete_in, &a);
}

/* ---- tc ----------------------------------------------------------------- */

struct tc_args {
	const char *ifname;
	int prog_fd;	 /* attach: this program; < 0: detach/query */
	bool detach;
	uint32_t prog_id; /* query result */
	char *err;
	size_t errlen;
};

static int tc_in(void *arg)
{
	struct tc_args *a = arg;
	_cleanup_close_ int s = ioctl_sock();
	int ifindex, r;

	if (s < 0)
		return s;
	ifindex = ifindex_of(s, a->ifname);
	if (ifindex < 0) {
		if (a->prog_fd < 0) /* detach/query: nothing there */
			return 0;
		return fail(a->err, a->errlen, ifindex, "no device %s",
			    a->ifname);
	}
	DECLARE_LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex,
			    .attach_point = BPF_TC_INGRESS);
	DECLARE_LIBBPF_OPTS(bpf_tc_opts, opts, .handle = MT_GRE_TC_HANDLE,
			    .priority = MT_GRE_TC_PRIO);
	if (a->detach) {
		r = bpf_tc_detach(&hook, &opts);
		if (r == -ENOENT || r == -EINVAL) /* no filter / no clsact */
			r = 0;
		if (r < 0)
			fail(a->err, a->errlen, r,
			     "cannot detach the GRE program from %s",
			     a->ifname);
		return r;
	}
	if (a->prog_fd < 0) {
		r = bpf_tc_query(&hook, &opts);
		if (r == -ENOENT || r == -EINVAL)
			return 0;
		if (r == 0)
			a->prog_id = opts.prog_id;
		return r;
	}
	r = bpf_tc_hook_create(&hook);
	if (r < 0 && r != -EEXIST)
		return fail(a->err, a->errlen, r,
			    "cannot create clsact on %s", a->ifname);
	opts.prog_fd = a->prog_fd;
	opts.flags = BPF_TC_F_REPLACE;
	r = bpf_tc_attach(&hook, &opts);
	if (r < 0)
		return fail(a->err, a->errlen, r,
			    "cannot attach the GRE program to %s ingress",
			    a->ifname);
	return 0;
}

int mt_gre_bpf_attach_encap(struct mt_gre_bpf *g, int nsfd, const char *name,
			    char *err, size_t errlen)
{
	struct tc_args a = {.prog_fd = mt_gre_bpf_encap_fd(g),
			    .err = err,
			    .errlen = errlen};
	char wire[IFNAMSIZ];

	if (mt_gre_bpf_wire_name(name, wire, sizeof(wire)) < 0)
		return fail(err, errlen, -EINVAL, "bad tunnel name \"%s\"",
			    name);
	a.ifname = wire;
	return in_ns(g, nsfd, tc_in, &a);
}

int mt_gre_bpf_attach_decap(struct mt_gre_bpf *g, int nsfd,
			    const char *uplink, char *err, size_t errlen)
{
	struct tc_args a = {.ifname = *uplink ? uplink : MT_GRE_UPLINK,
			    .prog_fd = mt_gre_bpf_decap_fd(g),
			    .err = err,
			    .errlen = errlen};
	int r = in_ns(g, nsfd, tc_in, &a);

	if (r == 0)
		r = mt_gre_bpf_tx_csum_on(g, nsfd, a.ifname, err, errlen);
	return r;
}

int mt_gre_bpf_detach(struct mt_gre_bpf *g, int nsfd, const char *ifname,
		      char *err, size_t errlen)
{
	struct tc_args a = {.ifname = ifname,
			    .prog_fd = -1,
			    .detach = true,
			    .err = err,
			    .errlen = errlen};

	return in_ns(g, nsfd, tc_in, &a);
}

int mt_gre_bpf_attached(struct mt_gre_bpf *g, int nsfd, const char *ifname)
{
	struct tc_args a = {.ifname = ifname, .prog_fd = -1};
	int r = in_ns(g, nsfd, tc_in, &a);

	if (r < 0)
		return r;
	if (a.prog_id == 0)
		return 0;
	_cleanup_close_ int fd = bpf_prog_get_fd_by_id(a.prog_id);
	uint8_t tag[BPF_TAG_SIZE];

	if (fd < 0 || prog_tag(fd, tag) < 0)
		return 2;
	return memcmp(tag, g->encap_tag, BPF_TAG_SIZE) == 0 ||
		       memcmp(tag, g->decap_tag, BPF_TAG_SIZE) == 0
		   ? 1
		   : 2;
}

/* ---- map entries -------------------------------------------------------- */

struct set_args {
	const struct mt_gre_tunnel *t;
	const char *name;
	char wire[IFNAMSIZ];
	const char *uplink;
	uint64_t cookie;
	int wire_ifindex;
	int dev_ifindex;
	int uplink_ifindex;
	uint8_t dev_mac[6], wire_mac[6], uplink_mac[6];
	char *err;
	size_t errlen;
};

/* Reads what the entries need, inside the namespace. */
static int set_facts_in(void *arg)
{
	struct set_args *a = arg;
	_cleanup_close_ int s = ioctl_sock();
	int r;

	if (s < 0)
		return s;
	r = cookie_of(s, &a->cookie);
	if (r < 0)
		return fail(a->err, a->errlen, r, "SO_NETNS_COOKIE");
	a->wire_ifindex = ifindex_of(s, a->wire);
	if (a->wire_ifindex < 0)
		return a->wire_ifindex; /* caller decides */
	if (!a->t) /* unset/get: only the key is needed */
		return 0;
	a->dev_ifindex = ifindex_of(s, a->name);
	if (a->dev_ifindex < 0)
		return fail(a->err, a->errlen, a->dev_ifindex, "no device %s",
			    a->name);
	a->uplink_ifindex = ifindex_of(s, a->uplink);
	if (a->uplink_ifindex < 0)
		return fail(a->err, a->errlen, a->uplink_ifindex,
			    "no uplink device %s", a->uplink);
	r = mac_of(s, a->name, a->dev_mac);
	if (r == 0)
		r = mac_of(s, a->wire, a->wire_mac);
	if (r == 0)
		r = mac_of(s, a->uplink, a->uplink_mac);
	if (r < 0)
		return fail(a->err, a->errlen, r, "cannot read the MACs of "
			    "%s/%s/%s", a->name, a->wire, a->uplink);
	return 0;
}

static bool mac_zero(const uint8_t m[6])
{
	static const uint8_t z[6];

	return memcmp(m, z, 6) == 0;
}

int mt_gre_bpf_tunnel_set(struct mt_gre_bpf *g, int nsfd,
			  const struct mt_gre_tunnel *t, char *err,
			  size_t errlen)
{
	struct set_args a = {.t = t,
			     .name = t->name,
			     .uplink = *t->uplink ? t->uplink : MT_GRE_UPLINK,
			     .err = err,
			     .errlen = errlen};
	struct mt_gre_tx_key txk = {0};
	struct mt_gre_tx_val txv = {0}, old;
	struct mt_gre_rx_key rxk = {0}, oldk = {0};
	uint32_t wi;
	struct mt_gre_rx_val rxv = {0}, cur;
	int txfd = mt_gre_bpf_tx_map_fd(g), rxfd = mt_gre_bpf_rx_map_fd(g);
	char l[INET_ADDRSTRLEN], rm[INET_ADDRSTRLEN];
	bool had_old;
	int r;

	if (mt_gre_bpf_wire_name(t->name, a.wire, sizeof(a.wire)) < 0)
		return fail(err, errlen, -EINVAL,
			    "tunnel name \"%s\" is not 1-%d characters of "
			    "[A-Za-z0-9_-]", t->name, MT_GRE_NAME_MAX);
	inet_ntop(AF_INET, &t->local, l, sizeof(l));
	inet_ntop(AF_INET, &t->remote, rm, sizeof(rm));
	if (t->local == 0 || t->remote == 0 || t->local == t->remote)
		return fail(err, errlen, -EINVAL,
			    "tunnel %s: bad endpoints local %s remote %s",
			    t->name, l, rm);
	r = in_ns(g, nsfd, set_facts_in, &a);
	if (r < 0) {
		if (r == -ENODEV && a.wire_ifindex < 0)
			fail(err, errlen, r, "no device %s", a.wire);
		return r;
	}

	wi = (uint32_t)a.wire_ifindex;
	if (wi < MT_GRE_IFINDEX_MIN)
		return fail(err, errlen, -EINVAL,
			    "tunnel %s: %s has ifindex %u, outside the range "
			    "the GRE maps key on (not made by "
			    "mt_gre_bpf_link_create): delete it to recreate",
			    t->name, a.wire, wi);
	txk.ifindex = wi;
	txv.netns_cookie = a.cookie;
	txv.local = t->local;
	txv.remote = t->remote;
	txv.key = htonl(t->key);
	txv.flags = t->has_key ? MT_GRE_TUN_KEY : 0;
	if (mac_zero(t->peer_mac))
		txv.flags |= MT_GRE_TUN_NEIGH;
	txv.uplink_ifindex = (uint32_t)a.uplink_ifindex;
	txv.ttl = t->ttl ? t->ttl : MT_GRE_DEFAULT_TTL;
	memcpy(txv.uplink_mac, a.uplink_mac, 6);
	memcpy(txv.peer_mac, t->peer_mac, 6);

	rxk.uplink_ifindex = (uint32_t)a.uplink_ifindex;
	rxk.local = t->local;
	rxk.remote = t->remote;
	rxv.ifindex = wi;
	rxv.netns_cookie = a.cookie;
	rxv.flags = t->has_key ? MT_GRE_TUN_KEY : 0;
	rxv.key = htonl(t->key);
	memcpy(rxv.dev_mac, a.dev_mac, 6);
	memcpy(rxv.wire_mac, a.wire_mac, 6);

	/* Another tunnel with the same endpoints behind this uplink? */
	if (bpf_map_lookup_elem(rxfd, &rxk, &cur) == 0 &&
	    cur.ifindex != rxv.ifindex)
		return fail(err, errlen, -EEXIST,
			    "tunnel %s: another tunnel already has local %s "
			    "remote %s", t->name, l, rm);
	had_old = bpf_map_lookup_elem(txfd, &txk, &old) == 0;
	if (had_old && old.netns_cookie != a.cookie)
		return fail(err, errlen, -EEXIST,
			    "tunnel %s: ifindex %u of %s is already a tunnel "
			    "of another namespace: delete %s to recreate it",
			    t->name, wi, a.wire, t->name);
	if (bpf_map_update_elem(rxfd, &rxk, &rxv, BPF_ANY) < 0)
		return fail(err, errlen, mt_neg_errno(),
			    "tunnel %s: cannot write the rx map entry",
			    t->name);
	if (bpf_map_update_elem(txfd, &txk, &txv, BPF_ANY) < 0) {
		r = mt_neg_errno();
		if (!had_old)
			bpf_map_delete_elem(rxfd, &rxk);
		return fail(err, errlen, r,
			    "tunnel %s: cannot write the tx map entry",
			    t->name);
	}
	if (had_old && (old.local != t->local || old.remote != t->remote ||
			old.uplink_ifindex != txv.uplink_ifindex)) {
		oldk.uplink_ifindex = old.uplink_ifindex;
		oldk.local = old.local;
		oldk.remote = old.remote;
		bpf_map_delete_elem(rxfd, &oldk);
	}
	return 0;
}

/* Deletes a tunnel's per-tunnel drop counters. */
static void tun_drops_forget(struct mt_gre_bpf *g, uint32_t ifindex)
{
	int fd = bpf_map__fd(g->skel->maps.mt_gre_tun_drops);

	for (uint32_t r = 0; r < MT_GRE_DROP_MAX; r++) {
		struct mt_gre_tun_drop_key k = {.ifindex = ifindex,
						.reason = r};

		bpf_map_delete_elem(fd, &k);
	}
}

/* Deletes a tx entry and the rx entry it points at. */
static void entry_delete(struct mt_gre_bpf *g,
			 const struct mt_gre_tx_key *k,
			 const struct mt_gre_tx_val *v)
{
	struct mt_gre_rx_key rk = {.uplink_ifindex = v->uplink_ifindex,
				   .local = v->local,
				   .remote = v->remote};
	struct mt_gre_rx_val rv;
	int rxfd = mt_gre_bpf_rx_map_fd(g);

	bpf_map_delete_elem(mt_gre_bpf_tx_map_fd(g), k);
	/* only if it still belongs to this tunnel */
	if (bpf_map_lookup_elem(rxfd, &rk, &rv) == 0 &&
	    rv.ifindex == k->ifindex)
		bpf_map_delete_elem(rxfd, &rk);
	tun_drops_forget(g, k->ifindex);
}

struct alive_args {
	uint32_t *ifindexes;
	size_t n;
	bool *alive;
};

/* Which of the ifindexes exist in the namespace (SIOCGIFNAME). */
static int alive_in(void *arg)
{
	struct alive_args *a = arg;
	_cleanup_close_ int s = ioctl_sock();

	if (s < 0)
		return s;
	for (size_t i = 0; i < a->n; i++) {
		struct ifreq ifr = {.ifr_ifindex = (int)a->ifindexes[i]};

		a->alive[i] = ioctl(s, SIOCGIFNAME, &ifr) == 0;
	}
	return 0;
}

int mt_gre_bpf_tunnel_unset(struct mt_gre_bpf *g, int nsfd, const char *name,
			    char *err, size_t errlen)
{
	struct set_args a = {.name = name, .err = err, .errlen = errlen};
	int txfd = mt_gre_bpf_tx_map_fd(g);
	struct mt_gre_tx_key k, next, *prev = NULL;
	struct mt_gre_tx_val v;
	_cleanup_free_ struct mt_gre_tx_key *keys = NULL;
	_cleanup_free_ uint32_t *idx = NULL;
	_cleanup_free_ bool *alive = NULL;
	size_t n = 0;
	int r;

	if (mt_gre_bpf_wire_name(name, a.wire, sizeof(a.wire)) < 0)
		return fail(err, errlen, -EINVAL, "bad tunnel name \"%s\"",
			    name);
	r = in_ns(g, nsfd, set_facts_in, &a);
	if (r < 0 && r != -ENODEV)
		return r;
	if (r == 0) {
		k = (struct mt_gre_tx_key){.ifindex =
					       (uint32_t)a.wire_ifindex};
		if (bpf_map_lookup_elem(txfd, &k, &v) == 0 &&
		    v.netns_cookie == a.cookie)
			entry_delete(g, &k, &v);
	} else if (a.cookie == 0) {
		return 0;
	}
	/* Prune entries of this namespace whose wire end is gone (deleted
	 * before its entries were). */
	keys = calloc(MT_GRE_TX_MAX, sizeof(*keys));
	if (!keys)
		return -ENOMEM;
	while (bpf_map_get_next_key(txfd, prev, &next) == 0) {
		if (bpf_map_lookup_elem(txfd, &next, &v) == 0 &&
		    v.netns_cookie == a.cookie && n < MT_GRE_TX_MAX)
			keys[n++] = next;
		k = next;
		prev = &k;
	}
	if (n == 0)
		return 0;
	idx = calloc(n, sizeof(*idx));
	alive = calloc(n, sizeof(*alive));
	if (!idx || !alive)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		idx[i] = keys[i].ifindex;
	struct alive_args aa = {.ifindexes = idx, .n = n, .alive = alive};

	r = in_ns(g, nsfd, alive_in, &aa);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (!alive[i] && bpf_map_lookup_elem(txfd, &keys[i], &v) == 0)
			entry_delete(g, &keys[i], &v);
	return 0;
}

int mt_gre_bpf_tunnel_get(struct mt_gre_bpf *g, int nsfd, const char *name,
			  struct mt_gre_tunnel *t)
{
	struct set_args a = {.name = name};
	struct mt_gre_tx_key k = {0};
	struct mt_gre_tx_val v;
	int r;

	if (mt_gre_bpf_wire_name(name, a.wire, sizeof(a.wire)) < 0)
		return -EINVAL;
	r = in_ns(g, nsfd, set_facts_in, &a);
	if (r < 0)
		return r == -ENODEV ? -ENOENT : r;
	k.ifindex = (uint32_t)a.wire_ifindex;
	if (bpf_map_lookup_elem(mt_gre_bpf_tx_map_fd(g), &k, &v) < 0)
		return errno == ENOENT ? -ENOENT : mt_neg_errno();
	if (v.netns_cookie != a.cookie)
		return -ENOENT;
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->local = v.local;
	t->remote = v.remote;
	t->has_key = (v.flags & MT_GRE_TUN_KEY) != 0;
	t->key = ntohl(v.key);
	t->ttl = v.ttl;
	t->wire_ifindex = k.ifindex;
	if (!(v.flags & MT_GRE_TUN_NEIGH))
		memcpy(t->peer_mac, v.peer_mac, 6);
	return 0;
}

static bool cookie_live(uint64_t c, const uint64_t *live, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (live[i] == c)
			return true;
	return false;
}

/* Deletes the entries of fd (a tx or rx map: key_size/val_size bytes,
 * the value's netns_cookie at cookie_off) whose namespace is not live.
 * Keys are collected first: deleting while walking restarts the walk of a
 * hash map. Returns the number deleted. */
static int sweep_map(int fd, size_t key_size, size_t val_size,
		     size_t cookie_off, size_t max, const uint64_t *live,
		     size_t n)
{
	_cleanup_free_ uint8_t *keys = calloc(max, key_size);
	uint8_t cur[32], next[32], val[64];
	size_t cnt = 0;
	void *prev = NULL;
	int deleted = 0;

	if (!keys)
		return -ENOMEM;
	while (bpf_map_get_next_key(fd, prev, next) == 0) {
		uint64_t c;

		if (bpf_map_lookup_elem(fd, next, val) == 0) {
			memcpy(&c, val + cookie_off, sizeof(c));
			if (!cookie_live(c, live, n) && cnt < max)
				memcpy(keys + cnt++ * key_size, next,
				       key_size);
		}
		memcpy(cur, next, key_size);
		prev = cur;
	}
	(void)val_size;
	for (size_t i = 0; i < cnt; i++)
		if (bpf_map_delete_elem(fd, keys + i * key_size) == 0)
			deleted++;
	return deleted;
}

int mt_gre_bpf_sweep(struct mt_gre_bpf *g, const uint64_t *live, size_t n)
{
	int tunfd = bpf_map__fd(g->skel->maps.mt_gre_tun_drops);
	int txfd = mt_gre_bpf_tx_map_fd(g);
	_cleanup_free_ struct mt_gre_tun_drop_key *dead = NULL;
	struct mt_gre_tun_drop_key k, next, *prev = NULL;
	struct mt_gre_tx_key tk;
	struct mt_gre_tx_val tv;
	size_t cnt = 0;
	int a, b, c = 0;

	_Static_assert(sizeof(struct mt_gre_tx_key) <= 32 &&
			   sizeof(struct mt_gre_rx_key) <= 32 &&
			   sizeof(struct mt_gre_tx_val) <= 64 &&
			   sizeof(struct mt_gre_rx_val) <= 64,
		       "sweep buffers");
	a = sweep_map(txfd, sizeof(struct mt_gre_tx_key),
		      sizeof(struct mt_gre_tx_val),
		      offsetof(struct mt_gre_tx_val, netns_cookie),
		      MT_GRE_TX_MAX, live, n);
	b = sweep_map(mt_gre_bpf_rx_map_fd(g), sizeof(struct mt_gre_rx_key),
		      sizeof(struct mt_gre_rx_val),
		      offsetof(struct mt_gre_rx_val, netns_cookie),
		      MT_GRE_RX_MAX, live, n);
	if (a < 0 || b < 0)
		return a < 0 ? a : b;
	/* per-tunnel counters of tunnels that no longer exist */
	dead = calloc(MT_GRE_TUN_DROPS_MAX, sizeof(*dead));
	if (!dead)
		return -ENOMEM;
	while (bpf_map_get_next_key(tunfd, prev, &next) == 0) {
		tk.ifindex = next.ifindex;
		if (bpf_map_lookup_elem(txfd, &tk, &tv) < 0 &&
		    cnt < MT_GRE_TUN_DROPS_MAX)
			dead[cnt++] = next;
		k = next;
		prev = &k;
	}
	for (size_t i = 0; i < cnt; i++)
		if (bpf_map_delete_elem(tunfd, &dead[i]) == 0)
			c++;
	return a + b + c;
}

/* ---- the whole tunnel --------------------------------------------------- */

int mt_gre_bpf_tunnel_up(struct mt_gre_bpf *g, int nsfd,
			 const struct mt_gre_tunnel *t, char *err,
			 size_t errlen)
{
	uint32_t mtu = t->mtu ? t->mtu
			      : 1500 - (t->has_key ? MT_GRE_OVERHEAD_KEY
						   : MT_GRE_OVERHEAD);
	int r;

	r = mt_gre_bpf_link_create(g, nsfd, t->name, mtu, err, errlen);
	if (r == 0)
		r = mt_gre_bpf_attach_decap(g, nsfd, t->uplink, err, errlen);
	if (r == 0)
		r = mt_gre_bpf_attach_encap(g, nsfd, t->name, err, errlen);
	if (r == 0)
		r = mt_gre_bpf_tunnel_set(g, nsfd, t, err, errlen);
	return r;
}

int mt_gre_bpf_tunnel_down(struct mt_gre_bpf *g, int nsfd, const char *name,
			   char *err, size_t errlen)
{
	int r = mt_gre_bpf_tunnel_unset(g, nsfd, name, err, errlen);

	if (r == 0)
		r = mt_gre_bpf_link_delete(g, nsfd, name, err, errlen);
	return r;
}

/* ---- counters ----------------------------------------------------------- */

int mt_gre_bpf_drops(struct mt_gre_bpf *g, uint32_t wire_ifindex,
		     uint64_t out[MT_GRE_DROP_MAX])
{
	_cleanup_free_ uint64_t *v = calloc((size_t)g->ncpus, sizeof(*v));
	int arr = bpf_map__fd(g->skel->maps.mt_gre_drops);
	int tun = bpf_map__fd(g->skel->maps.mt_gre_tun_drops);

	if (!v)
		return -ENOMEM;
	for (uint32_t r = 0; r < MT_GRE_DROP_MAX; r++) {
		struct mt_gre_tun_drop_key k = {.ifindex = wire_ifindex,
						.reason = r};
		int ret;

		out[r] = 0;
		if (wire_ifindex == 0)
			ret = bpf_map_lookup_elem(arr, &r, v);
		else
			ret = bpf_map_lookup_elem(tun, &k, v);
		if (ret < 0) {
			if (errno == ENOENT)
				continue;
			return mt_neg_errno();
		}
		for (int c = 0; c < g->ncpus; c++)
			out[r] += v[c];
	}
	return 0;
}
