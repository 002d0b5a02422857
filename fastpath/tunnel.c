#include "tunnel.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/if_arp.h>
#include <linux/if_ether.h>
#include <linux/if_link.h>
#include <linux/pkt_cls.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "dump_mirror.h"
#include "gre_bpf.h"
#include "gre_kernel.h"
#include "mt_cleanup.h"
#include "mt_kstate.h"
#include "mt_log.h"
#include "netns.h"
#include "nl.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

#define RBUF_LEN 8192 /* reads on namespace sockets (see rtnl_observe.c) */
#define DUMP_TRIES 10
#define VERDICTS_MAX 64

/* ---- types -------------------------------------------------------------- */

/* A cached customer namespace: its fd, a netlink socket made inside it,
 * and its cookie (SO_NETNS_COOKIE of that socket, as in the map values). */
struct tns {
	struct tns *next; /* hash chain */
	char name[NAME_MAX + 1];
	dev_t dev;
	ino_t ino;
	int nsfd;
	struct mt_nl *nl;
	uint64_t cookie;
	bool seen;	  /* scratch: observe/sweep */
	bool check_decap; /* scratch: apply removed a bpf tunnel here */
	/* the last observe's link dump, without counters (dump_mirror.h) */
	struct mt_dump_mirror *mirror;
};

/* What tc says of a program id: is it this build's encap or decap
 * program, using these maps? */
struct verdict {
	uint32_t id;
	bool encap, decap;
};

struct mt_tunnels {
	const struct mt_metal *m;
	struct mt_gre_bpf *bpf; /* NULL: the BPF object could not load */
	char bpf_err[256];
	bool kernel_gre;
	char kernel_why[256];
	int home_fd;
	int home_sock; /* AF_INET datagram socket in the metal, for ioctls */
	struct tns **buckets;
	size_t n_buckets, n_ns;
	struct mt_nl_batch *batch;
	char *rbuf; /* MT_NL_DUMP_BUF bytes */
	uint32_t tx_map_id, rx_map_id;
	uint32_t encap_id, decap_id;
	uint8_t encap_tag[BPF_TAG_SIZE], decap_tag[BPF_TAG_SIZE];
	struct verdict verdicts[VERDICTS_MAX];
	size_t n_verdicts;
	mt_ns_gen_fn ns_gen; /* the drift monitor's, NULL = no mirrors */
	void *ns_gen_data;
};

/* A link of a namespace's dump. */
struct tlink {
	uint32_t ifindex, link, flags, mtu;
	int32_t netnsid;
	char name[IFNAMSIZ];
	char kind[16];
	uint8_t mac[6];
	uint64_t tx_packets, tx_bytes, rx_packets, rx_bytes;
	bool gre; /* kind "gre": g is filled */
	struct mt_gre_kernel_link g;
};

/* A tunnel device found in a namespace, and what is in place of it. */
struct ttun {
	size_t dev;  /* index in scan.links */
	size_t wire; /* bpf: NAME.t */
	bool bpf;
	uint32_t encap_id; /* tc: program at our filter on NAME.t, 0 = none */
	/* evaluated */
	bool range_ok; /* bpf: NAME.t's ifindex is one the maps key on */
	bool link_ok;  /* devices up and shaped right */
	bool encap_ok, decap_ok, entry_ok;
	bool in_place;
	bool have_params; /* p is known (bpf: a tx entry of this netns) */
	struct mt_gre_tunnel p;
};

/* One namespace being looked at. */
struct scan {
	struct tns *ns;
	const char *owner;
	struct tlink *links;
	size_t n_links, cap_links;
	struct ttun *tuns;
	size_t n_tuns, cap_tuns;
	ssize_t uplink; /* index of metal0, -1 = none */
	uint32_t decap_id;
	uint8_t peer_mac[6]; /* expected outer Ethernet destination */
	bool stats;
	bool veth_only; /* dump only veths (no kernel gre here) */
	/* the link dump: replayed from ns->mirror, recorded into it, or
	 * neither */
	enum mt_mirror_use mirror;
	uint64_t gen;
	/* tc queries in flight */
	uint32_t **tc_out;
	size_t tc_n;
	uint32_t tc_seq0;
	int err;
};

static const uint8_t zero_mac[6];

/* ---- small helpers ------------------------------------------------------ */

static int fail(char *err, size_t len, int r, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(char *err, size_t len, int r, const char *fmt, ...)
{
	va_list ap;

	if (err && len) {
		va_start(ap, fmt);
		vsnprintf(err, len, fmt, ap);
		va_end(ap);
	}
	return r;
}

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static uint32_t default_mtu(bool has_key)
{
	return MT_GRE_DEFAULT_MTU -
	       (has_key ? MT_GRE_OVERHEAD_KEY - MT_GRE_OVERHEAD : 0);
}

/* Sends one message (built at t->batch's current slot) and returns the
 * kernel's answer; its extended ACK text goes to kmsg. */
struct ack {
	int err;
	char *kmsg;
	size_t len;
};

static void ack_cb(void *data, uint32_t cookie, int err, const char *kmsg)
{
	struct ack *a = data;

	a->err = err;
	if (a->len)
		snprintf(a->kmsg, a->len, "%s", err && kmsg ? kmsg : "");
}

static int send_one(struct mt_tunnels *t, struct mt_nl *nl, char *kmsg,
		    size_t len)
{
	struct ack a = {.err = -EIO, .kmsg = kmsg, .len = len};

	if (len)
		kmsg[0] = '\0';
	mt_nl_batch_add(t->batch, 0);
	mt_nl_batch_flush(t->batch, nl, ack_cb, &a);
	return a.err;
}

/* ---- namespace cache ---------------------------------------------------- */

static void tns_free(struct tns *h)
{
	if (!h)
		return;
	mt_nl_close(h->nl);
	mt_dump_mirror_free(h->mirror);
	if (h->nsfd >= 0)
		close(h->nsfd);
	free(h);
}

static int open_nl_inside(void *arg)
{
	return mt_nl_open(arg);
}

static int tns_open(struct mt_tunnels *t, const char *name, struct tns **out)
{
	struct tns *h = calloc(1, sizeof(*h));
	socklen_t clen = sizeof(h->cookie);
	int r;

	if (!h)
		return -ENOMEM;
	snprintf(h->name, sizeof(h->name), "%s", name);
	h->nsfd = mt_netns_open(name);
	r = h->nsfd;
	if (r >= 0)
		r = mt_netns_ident(h->nsfd, &h->dev, &h->ino);
	if (r >= 0)
		r = mt_netns_run(h->nsfd, t->home_fd, open_nl_inside, &h->nl);
	if (r >= 0 && getsockopt(mt_nl_fd(h->nl), SOL_SOCKET, SO_NETNS_COOKIE,
				 &h->cookie, &clen) < 0)
		r = mt_neg_errno();
	if (r < 0) {
		tns_free(h);
		return r;
	}
	*out = h;
	return 0;
}

static struct tns *tns_find(struct mt_tunnels *t, const char *name)
{
	for (struct tns *h = t->buckets[name_hash(name) & (t->n_buckets - 1)];
	     h; h = h->next)
		if (strcmp(h->name, name) == 0)
			return h;
	return NULL;
}

static void tns_drop(struct mt_tunnels *t, struct tns *h)
{
	struct tns **pp = &t->buckets[name_hash(h->name) & (t->n_buckets - 1)];

	for (; *pp; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			tns_free(h);
			t->n_ns--;
			return;
		}
	}
}

static int buckets_grow(struct mt_tunnels *t)
{
	size_t nb = t->n_buckets ? t->n_buckets * 2 : 256;
	struct tns **b = calloc(nb, sizeof(*b));

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < t->n_buckets; i++) {
		struct tns *h = t->buckets[i], *next;

		for (; h; h = next) {
			uint32_t k = name_hash(h->name) & (nb - 1);

			next = h->next;
			h->next = b[k];
			b[k] = h;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->n_buckets = nb;
	return 0;
}

/* The handle of namespace name whose nsfs identity is dev/ino: the cached
 * one if it still is that namespace, else a fresh one. */
static int tns_get_ident(struct mt_tunnels *t, const char *name, dev_t dev,
			 ino_t ino, struct tns **out)
{
	struct tns *h = tns_find(t, name);
	uint32_t k;
	int r;

	if (h && h->dev == dev && h->ino == ino) {
		*out = h;
		return 0;
	}
	if (h)
		tns_drop(t, h); /* replaced behind our back */
	if (t->n_ns >= t->n_buckets && (r = buckets_grow(t)) < 0)
		return r;
	r = tns_open(t, name, &h);
	if (r < 0)
		return r;
	k = name_hash(name) & (t->n_buckets - 1);
	h->next = t->buckets[k];
	t->buckets[k] = h;
	t->n_ns++;
	*out = h;
	return 0;
}

/* The handle of namespace name, checked against /run/netns/NAME now.
 * -ENOENT when it does not exist (a cached handle is dropped). */
static int tns_get(struct mt_tunnels *t, const char *name, struct tns **out)
{
	dev_t dev;
	ino_t ino;
	int r = mt_netns_stat(name, &dev, &ino);

	if (r < 0) {
		struct tns *h = tns_find(t, name);

		if (h)
			tns_drop(t, h);
		return r;
	}
	return tns_get_ident(t, name, dev, ino, out);
}

void mt_tunnels_forget_netns(struct mt_tunnels *t, const char *name)
{
	struct tns *h = t ? tns_find(t, name) : NULL;

	if (h)
		tns_drop(t, h);
}

/* A fresh socket after a transport error left the old one unusable. */
static int tns_reopen_nl(struct mt_tunnels *t, struct tns *h)
{
	mt_nl_close(h->nl);
	h->nl = NULL;
	return mt_netns_run(h->nsfd, t->home_fd, open_nl_inside, &h->nl);
}

/* ---- programs ----------------------------------------------------------- */

static int prog_info(int fd, uint8_t tag[BPF_TAG_SIZE], uint32_t *id,
		     uint32_t *map_ids, uint32_t *n_maps)
{
	struct bpf_prog_info info = {0};
	uint32_t len = sizeof(info);

	if (map_ids) {
		info.nr_map_ids = *n_maps;
		info.map_ids = (uint64_t)(uintptr_t)map_ids;
	}
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0)
		return mt_neg_errno();
	if (tag)
		memcpy(tag, info.tag, BPF_TAG_SIZE);
	if (id)
		*id = info.id;
	if (n_maps)
		*n_maps = info.nr_map_ids < *n_maps ? info.nr_map_ids : *n_maps;
	return 0;
}

static uint32_t map_id(int fd)
{
	struct bpf_map_info info = {0};
	uint32_t len = sizeof(info);

	return bpf_obj_get_info_by_fd(fd, &info, &len) < 0 ? 0 : info.id;
}

/* Is program id this build's encap/decap program on our maps? A program
 * loaded by an earlier run with the same pins counts (same tag, same
 * maps); one of the same code on other maps (an unpinned earlier run)
 * does not. */
static struct verdict prog_verdict(struct mt_tunnels *t, uint32_t id)
{
	struct verdict v = {.id = id};
	uint32_t maps[16], n = MT_ARRAY_SIZE(maps);
	uint8_t tag[BPF_TAG_SIZE];
	bool tx = false, rx = false;

	if (!id || !t->bpf)
		return v;
	if (id == t->encap_id) {
		v.encap = true;
		return v;
	}
	if (id == t->decap_id) {
		v.decap = true;
		return v;
	}
	for (size_t i = 0; i < t->n_verdicts; i++)
		if (t->verdicts[i].id == id)
			return t->verdicts[i];
	_cleanup_close_ int fd = bpf_prog_get_fd_by_id(id);

	if (fd < 0 || prog_info(fd, tag, NULL, maps, &n) < 0)
		return v; /* gone already: not ours */
	for (uint32_t i = 0; i < n; i++) {
		tx |= maps[i] == t->tx_map_id;
		rx |= maps[i] == t->rx_map_id;
	}
	v.encap = tx && memcmp(tag, t->encap_tag, BPF_TAG_SIZE) == 0;
	v.decap = rx && memcmp(tag, t->decap_tag, BPF_TAG_SIZE) == 0;
	if (t->n_verdicts == VERDICTS_MAX)
		t->n_verdicts = 0;
	t->verdicts[t->n_verdicts++] = v;
	return v;
}

/* ---- new / free --------------------------------------------------------- */

static int bpf_ids(struct mt_tunnels *t)
{
	int r;

	r = prog_info(mt_gre_bpf_encap_fd(t->bpf), t->encap_tag, &t->encap_id,
		      NULL, NULL);
	if (r == 0)
		r = prog_info(mt_gre_bpf_decap_fd(t->bpf), t->decap_tag,
			      &t->decap_id, NULL, NULL);
	t->tx_map_id = map_id(mt_gre_bpf_tx_map_fd(t->bpf));
	t->rx_map_id = map_id(mt_gre_bpf_rx_map_fd(t->bpf));
	return r;
}

int mt_tunnels_new(const struct mt_metal *m, const char *pin_root,
		   struct mt_tunnels **out, char *err, size_t errlen)
{
	struct mt_tunnels *t = calloc(1, sizeof(*t));
	struct rlimit rl;
	int r, probe;

	*out = NULL;
	if (!t)
		return -ENOMEM;
	t->m = m;
	t->home_fd = -1;
	t->home_sock = -1;
	/* two descriptors per cached namespace */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	t->rbuf = malloc(MT_NL_DUMP_BUF);
	r = t->rbuf ? buckets_grow(t) : -ENOMEM;
	if (r == 0)
		r = mt_nl_batch_new(&t->batch);
	if (r == 0) {
		t->home_sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (t->home_sock < 0)
			r = mt_neg_errno();
	}
	if (r < 0) {
		fail(err, errlen, r, "cannot set up the tunnel driver: %s",
		     strerror(-r));
		goto fail;
	}
	t->home_fd = mt_netns_open("");
	if (t->home_fd < 0) {
		r = fail(err, errlen, t->home_fd,
			 "cannot open the metal's network namespace: %s",
			 strerror(-t->home_fd));
		goto fail;
	}

	probe = mt_gre_kernel_probe(t->kernel_why, sizeof(t->kernel_why));
	t->kernel_gre = probe == 1;

	r = mt_gre_bpf_open(pin_root, m->instance, &t->bpf, t->bpf_err,
			    sizeof(t->bpf_err));
	if (r == 0)
		r = bpf_ids(t);
	if (r < 0) {
		if (!t->bpf_err[0])
			snprintf(t->bpf_err, sizeof(t->bpf_err), "%s",
				 strerror(-r));
		mt_gre_bpf_free(t->bpf);
		t->bpf = NULL;
		if (!t->kernel_gre) {
			fail(err, errlen, r,
			     "no usable GRE tunnel driver: BPF: %s; kernel "
			     "gre: %s",
			     t->bpf_err, t->kernel_why);
			goto fail;
		}
		mt_warn("tunnels: the BPF GRE driver is unavailable (%s); "
			"driver \"bpf\" tunnels will fail",
			t->bpf_err);
	}
	if (t->kernel_gre)
		mt_info("tunnels: driver auto = kernel (this kernel makes gre "
			"links: the probe in a private namespace succeeded)");
	else
		mt_info("tunnels: driver auto = bpf (this kernel makes no gre "
			"links: %s)",
			t->kernel_why);
	*out = t;
	return 0;
fail:
	mt_tunnels_free(t);
	return r;
}

void mt_tunnels_free(struct mt_tunnels *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->n_buckets; i++) {
		struct tns *h = t->buckets[i], *next;

		for (; h; h = next) {
			next = h->next;
			tns_free(h);
		}
	}
	free(t->buckets);
	mt_gre_bpf_free(t->bpf);
	mt_nl_batch_free(t->batch);
	if (t->home_sock >= 0)
		close(t->home_sock);
	if (t->home_fd >= 0)
		close(t->home_fd);
	free(t->rbuf);
	free(t);
}

const char *mt_tunnels_auto_driver(const struct mt_tunnels *t)
{
	return t->kernel_gre ? "kernel" : "bpf";
}

bool mt_tunnels_kernel_gre(const struct mt_tunnels *t)
{
	return t->kernel_gre;
}

bool mt_tunnels_bpf_loaded(const struct mt_tunnels *t)
{
	return t->bpf != NULL;
}

/* ---- the metal-side veth's MAC ------------------------------------------ */

/* A link dump; with kind, the kernel leaves out links of other kinds
 * (lo: a link less to fill per namespace). */
static int link_dump_build(void *buf, size_t len, bool stats, const char *kind)
{
	struct ifinfomsg *ifi;
	struct nlattr *info;
	struct mt_nlb b;

	ifi = mt_nlb_start(&b, buf, len, RTM_GETLINK, 0, sizeof(*ifi));
	if (ifi)
		ifi->ifi_family = AF_UNSPEC;
	if (!stats)
		mt_nlb_u32(&b, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	if (kind) {
		info = mt_nlb_nest(&b, IFLA_LINKINFO);
		mt_nlb_str(&b, IFLA_INFO_KIND, kind);
		mt_nlb_nest_end(&b, info);
	}
	return mt_nlb_end(&b);
}

/* The outer Ethernet destination of namespace nsname's bpf tunnels: the
 * MAC of the metal's veth of that name, or zero (bpf_redirect_neigh) when
 * there is none. One ioctl on a socket of the metal's namespace: observe
 * asks this for every namespace. */
static void metal_peer_mac(struct mt_tunnels *t, const char *nsname,
			   uint8_t mac[6])
{
	struct ifreq ifr;

	memset(mac, 0, 6);
	if (strlen(nsname) >= IFNAMSIZ)
		return;
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, nsname, strlen(nsname));
	if (ioctl(t->home_sock, SIOCGIFHWADDR, &ifr) == 0 &&
	    ifr.ifr_hwaddr.sa_family == ARPHRD_ETHER)
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
}

/* ---- scanning a namespace: links ---------------------------------------- */

static void scan_reset(struct scan *sc)
{
	sc->n_links = 0;
	sc->n_tuns = 0;
	sc->uplink = -1;
	sc->decap_id = 0;
	sc->err = 0;
}

static void scan_fini(struct scan *sc)
{
	free(sc->links);
	free(sc->tuns);
	free(sc->tc_out);
	sc->links = NULL;
	sc->tuns = NULL;
	sc->tc_out = NULL;
	sc->cap_links = sc->cap_tuns = 0;
}

static void copy_kind(const struct nlattr *a, char *buf, size_t len)
{
	snprintf(buf, len, "%.*s", (int)mnl_attr_get_payload_len(a),
		 (const char *)mnl_attr_get_payload(a));
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	struct scan *sc = data;
	const struct nlattr *a, *b, *info_data = NULL;
	struct tlink *l;

	if (nlh->nlmsg_type != RTM_NEWLINK ||
	    mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifi))
		return 0;
	if (sc->n_links == sc->cap_links) {
		size_t cap = sc->cap_links ? sc->cap_links * 2 : 16;
		struct tlink *g = realloc(sc->links, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		sc->links = g;
		sc->cap_links = cap;
	}
	l = &sc->links[sc->n_links];
	memset(l, 0, sizeof(*l));
	l->ifindex = (uint32_t)ifi->ifi_index;
	l->flags = ifi->ifi_flags;
	l->netnsid = -1;
	mnl_attr_for_each (a, nlh, sizeof(*ifi)) {
		switch (mnl_attr_get_type(a)) {
		case IFLA_IFNAME:
			if (mnl_attr_validate(a, MNL_TYPE_NUL_STRING) < 0)
				return 0;
			snprintf(l->name, sizeof(l->name), "%s",
				 mnl_attr_get_str(a));
			break;
		case IFLA_MTU:
			if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
				l->mtu = mnl_attr_get_u32(a);
			break;
		case IFLA_LINK:
			if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
				l->link = mnl_attr_get_u32(a);
			break;
		case IFLA_LINK_NETNSID:
			if (mnl_attr_validate(a, MNL_TYPE_U32) == 0)
				l->netnsid = (int32_t)mnl_attr_get_u32(a);
			break;
		case IFLA_ADDRESS:
			if (mnl_attr_get_payload_len(a) == 6)
				memcpy(l->mac, mnl_attr_get_payload(a), 6);
			break;
		case IFLA_STATS64:
			if (mnl_attr_get_payload_len(a) >=
			    4 * sizeof(uint64_t)) {
				/* rtnl_link_stats64 starts rx_packets,
				 * tx_packets, rx_bytes, tx_bytes */
				uint64_t s[4];

				memcpy(s, mnl_attr_get_payload(a), sizeof(s));
				l->rx_packets = s[0];
				l->tx_packets = s[1];
				l->rx_bytes = s[2];
				l->tx_bytes = s[3];
			}
			break;
		case IFLA_LINKINFO:
			mnl_attr_for_each_nested (b, a) {
				if (mnl_attr_get_type(b) == IFLA_INFO_KIND)
					copy_kind(b, l->kind, sizeof(l->kind));
				else if (mnl_attr_get_type(b) == IFLA_INFO_DATA)
					info_data = b;
			}
			break;
		}
	}
	if (!l->name[0])
		return 0;
	if (strcmp(l->kind, "gre") == 0) {
		l->gre = true;
		if (info_data && mt_gre_kernel_parse_data(info_data, &l->g) < 0)
			l->gre = false;
		snprintf(l->g.t.name, sizeof(l->g.t.name), "%s", l->name);
		l->g.t.mtu = l->mtu;
		l->g.ifindex = l->ifindex;
		l->g.flags = l->flags;
	}
	sc->n_links++;
	return 0;
}

static int links_start(struct scan *sc)
{
	char req[128];
	int r;

	if (sc->mirror == MT_MIRROR_REPLAY)
		return 0;
	/* Without kernel gre every tunnel device is a veth. */
	r = link_dump_build(req, sizeof(req), sc->stats,
			    sc->veth_only ? "veth" : NULL);
	return r < 0 ? r : mt_nl_dump_start(sc->ns->nl, (void *)req);
}

static int links_finish(struct mt_tunnels *t, struct scan *sc)
{
	return mt_dump_mirror_finish(sc->ns->mirror, sc->mirror, 0, sc->ns->nl,
				     t->rbuf, RBUF_LEN, link_cb, sc);
}

/* Whether sc's link dump can be replayed from its namespace's mirror
 * (nothing happened there since it was taken), or is to be recorded. Link
 * counters change without notifications: with them, neither. */
static void mirror_begin(struct mt_tunnels *t, struct scan *sc)
{
	struct tns *h = sc->ns;

	sc->mirror = sc->stats ? MT_MIRROR_NONE
			       : mt_dump_mirror_begin(&h->mirror, t->ns_gen,
						      t->ns_gen_data, h->name,
						      h->dev, h->ino, false,
						      &sc->gen);
}

static void mirror_end(struct scan *sc)
{
	mt_dump_mirror_end(sc->ns->mirror, sc->mirror, sc->err == 0,
			   sc->ns->dev, sc->ns->ino, sc->gen);
	sc->mirror = MT_MIRROR_NONE;
}

void mt_tunnels_set_ns_gen(struct mt_tunnels *t, mt_ns_gen_fn fn, void *data)
{
	t->ns_gen = fn;
	t->ns_gen_data = data;
}

static ssize_t link_by_name(const struct scan *sc, const char *name)
{
	for (size_t i = 0; i < sc->n_links; i++)
		if (strcmp(sc->links[i].name, name) == 0)
			return (ssize_t)i;
	return -1;
}

static bool tunnel_name_ok(const char *name)
{
	return mt_gre_bpf_name_valid(name) && strcmp(name, MT_GRE_UPLINK) != 0;
}

/* Finds the tunnel devices among the links: a veth NAME paired with
 * NAME.t in this namespace (bpf), or a gre link with endpoints (kernel;
 * the fallback gre0 has none). */
static int classify(struct scan *sc)
{
	sc->uplink = link_by_name(sc, MT_GRE_UPLINK);
	for (size_t i = 0; i < sc->n_links; i++) {
		const struct tlink *l = &sc->links[i];
		struct ttun u = {.dev = i};
		char wire[IFNAMSIZ];
		ssize_t w;

		if (l->gre) {
			if (l->g.t.local == 0 && l->g.t.remote == 0)
				continue;
		} else if (strcmp(l->kind, "veth") == 0 &&
			   tunnel_name_ok(l->name) && l->netnsid < 0 &&
			   l->link != 0 &&
			   mt_gre_bpf_wire_name(l->name, wire, sizeof(wire)) ==
			       0 &&
			   (w = link_by_name(sc, wire)) >= 0 &&
			   sc->links[w].ifindex == l->link) {
			u.bpf = true;
			u.wire = (size_t)w;
		} else {
			continue;
		}
		if (sc->n_tuns == sc->cap_tuns) {
			size_t cap = sc->cap_tuns ? sc->cap_tuns * 2 : 4;
			struct ttun *g = realloc(sc->tuns, cap * sizeof(*g));

			if (!g)
				return -ENOMEM;
			sc->tuns = g;
			sc->cap_tuns = cap;
		}
		sc->tuns[sc->n_tuns++] = u;
	}
	return 0;
}

static struct ttun *tun_by_name(struct scan *sc, const char *name)
{
	for (size_t i = 0; i < sc->n_tuns; i++)
		if (strcmp(sc->links[sc->tuns[i].dev].name, name) == 0)
			return &sc->tuns[i];
	return NULL;
}

static size_t bpf_count(const struct scan *sc)
{
	size_t n = 0;

	for (size_t i = 0; i < sc->n_tuns; i++)
		n += sc->tuns[i].bpf;
	return n;
}

/* ---- scanning a namespace: tc filters ----------------------------------- */

/* RTM_GETTFILTER of our filter slot (MT_GRE_TC_HANDLE/MT_GRE_TC_PRIO on
 * clsact ingress) of ifindex: what libbpf's bpf_tc_query asks, but many in
 * one sendmsg, on the namespace's cached socket (no namespace switch). */
static void tc_query_put(char *buf, uint32_t seq, uint32_t ifindex)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct tcmsg *tc;

	nlh->nlmsg_type = RTM_GETTFILTER;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = seq;
	tc = mnl_nlmsg_put_extra_header(nlh, sizeof(*tc));
	memset(tc, 0, sizeof(*tc));
	tc->tcm_family = AF_UNSPEC;
	tc->tcm_ifindex = (int)ifindex;
	tc->tcm_handle = MT_GRE_TC_HANDLE;
	tc->tcm_parent = TC_H_MAKE(TC_H_CLSACT, TC_H_MIN_INGRESS);
	tc->tcm_info =
	    TC_H_MAKE((uint32_t)MT_GRE_TC_PRIO << 16, htons(ETH_P_ALL));
}

#define TC_QUERY_LEN MNL_ALIGN(MNL_NLMSG_HDRLEN + sizeof(struct tcmsg))

/* Sends the queries of a namespace: metal0 (when there are bpf tunnels or
 * want_uplink) and every bpf tunnel's wire end. */
static int tc_start(struct scan *sc, bool want_uplink)
{
	size_t n = 0, max = sc->n_tuns + 1;
	_cleanup_free_ char *buf = NULL;
	struct mt_nl *nl = sc->ns->nl;
	uint32_t **g;

	sc->tc_n = 0;
	if (sc->uplink < 0 || (!bpf_count(sc) && !want_uplink))
		return 0;
	g = realloc(sc->tc_out, max * sizeof(*g));
	buf = malloc(max * TC_QUERY_LEN);
	if (!g || !buf) {
		if (g)
			sc->tc_out = g;
		return -ENOMEM;
	}
	sc->tc_out = g;
	sc->tc_seq0 = nl->seq + 1;
	tc_query_put(buf, ++nl->seq, sc->links[sc->uplink].ifindex);
	sc->tc_out[n++] = &sc->decap_id;
	for (size_t i = 0; i < sc->n_tuns; i++) {
		if (!sc->tuns[i].bpf)
			continue;
		tc_query_put(buf + n * TC_QUERY_LEN, ++nl->seq,
			     sc->links[sc->tuns[i].wire].ifindex);
		sc->tc_out[n++] = &sc->tuns[i].encap_id;
	}
	sc->tc_n = n;
	if (mnl_socket_sendto(nl->sock, buf, n * TC_QUERY_LEN) < 0) {
		sc->tc_n = 0;
		return mt_neg_errno();
	}
	return 0;
}

static uint32_t tc_bpf_id(const struct nlmsghdr *nlh)
{
	const struct nlattr *a, *b;

	mnl_attr_for_each (a, nlh, sizeof(struct tcmsg)) {
		if (mnl_attr_get_type(a) != TCA_OPTIONS)
			continue;
		mnl_attr_for_each_nested (b, a)
			if (mnl_attr_get_type(b) == TCA_BPF_ID &&
			    mnl_attr_validate(b, MNL_TYPE_U32) == 0)
				return mnl_attr_get_u32(b);
	}
	return 0;
}

/* Reads every answer of tc_start: a filter (its program id) and an ACK
 * per query; an error ACK (no clsact, no filter) means nothing there. */
static int tc_finish(struct mt_tunnels *t, struct scan *sc)
{
	enum { SLOTS = 16, SLOT_LEN = MT_NL_DUMP_BUF / SLOTS };
	struct mt_nl *nl = sc->ns->nl;
	struct mmsghdr mm[SLOTS];
	struct iovec iov[SLOTS];
	size_t pending = sc->tc_n;
	_cleanup_free_ bool *acked = calloc(sc->tc_n + 1, sizeof(bool));

	if (!acked)
		return -ENOMEM;
	for (size_t i = 0; i < sc->tc_n; i++)
		*sc->tc_out[i] = 0;
	while (pending > 0) {
		int got;

		/* Every answer is queued when sendmsg returns (rtnetlink
		 * runs requests synchronously): one syscall takes them. */
		memset(mm, 0, sizeof(mm));
		for (int k = 0; k < SLOTS; k++) {
			iov[k].iov_base = t->rbuf + k * SLOT_LEN;
			iov[k].iov_len = SLOT_LEN;
			mm[k].msg_hdr.msg_iov = &iov[k];
			mm[k].msg_hdr.msg_iovlen = 1;
		}
		got = recvmmsg(mt_nl_fd(nl), mm, SLOTS, MSG_WAITFORONE, NULL);
		if (got < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : mt_neg_errno();
		}
		for (int k = 0; k < got; k++) {
			int left = (int)mm[k].msg_len;

			for (const struct nlmsghdr *h = iov[k].iov_base;
			     mnl_nlmsg_ok(h, left);
			     h = mnl_nlmsg_next(h, &left)) {
				uint32_t idx = h->nlmsg_seq - sc->tc_seq0;

				if (idx >= sc->tc_n || acked[idx])
					continue;
				if (h->nlmsg_type == NLMSG_ERROR) {
					acked[idx] = true;
					pending--;
				} else if (h->nlmsg_type == RTM_NEWTFILTER &&
					   mnl_nlmsg_get_payload_len(h) >=
					       sizeof(struct tcmsg)) {
					*sc->tc_out[idx] = tc_bpf_id(h);
				}
			}
		}
	}
	sc->tc_n = 0;
	return 0;
}

/* ---- scanning a namespace: evaluation ----------------------------------- */

static void eval_bpf(struct mt_tunnels *t, struct scan *sc, struct ttun *u)
{
	const struct tlink *dev = &sc->links[u->dev],
			   *wire = &sc->links[u->wire];
	const struct tlink *up =
	    sc->uplink >= 0 ? &sc->links[sc->uplink] : NULL;
	struct mt_gre_tx_key txk = {.ifindex = wire->ifindex};
	struct mt_gre_tx_val txv;
	struct mt_gre_rx_key rxk;
	struct mt_gre_rx_val rxv;
	bool neigh;

	u->range_ok = wire->ifindex >= MT_GRE_IFINDEX_MIN &&
		      wire->ifindex <= MT_GRE_IFINDEX_MAX;
	u->link_ok = u->range_ok && (dev->flags & IFF_UP) &&
		     (wire->flags & IFF_UP) && dev->mtu &&
		     wire->mtu >= dev->mtu + MT_GRE_OVERHEAD_KEY;
	u->encap_ok = prog_verdict(t, u->encap_id).encap;
	u->decap_ok = up && prog_verdict(t, sc->decap_id).decap;
	if (!t->bpf || !u->range_ok ||
	    bpf_map_lookup_elem(mt_gre_bpf_tx_map_fd(t->bpf), &txk, &txv) < 0 ||
	    txv.netns_cookie != sc->ns->cookie)
		return;
	u->have_params = true;
	u->p.local = txv.local;
	u->p.remote = txv.remote;
	u->p.has_key = (txv.flags & MT_GRE_TUN_KEY) != 0;
	u->p.key = u->p.has_key ? ntohl(txv.key) : 0;
	u->p.ttl = txv.ttl;
	u->p.wire_ifindex = wire->ifindex;
	if (!(txv.flags & MT_GRE_TUN_NEIGH))
		memcpy(u->p.peer_mac, txv.peer_mac, 6);
	if (!up)
		return;
	neigh = memcmp(sc->peer_mac, zero_mac, 6) == 0;
	rxk = (struct mt_gre_rx_key){.uplink_ifindex = up->ifindex,
				     .local = txv.local,
				     .remote = txv.remote};
	u->entry_ok =
	    txv.uplink_ifindex == up->ifindex &&
	    memcmp(txv.uplink_mac, up->mac, 6) == 0 &&
	    neigh == !!(txv.flags & MT_GRE_TUN_NEIGH) &&
	    (neigh || memcmp(txv.peer_mac, sc->peer_mac, 6) == 0) &&
	    bpf_map_lookup_elem(mt_gre_bpf_rx_map_fd(t->bpf), &rxk, &rxv) ==
		0 &&
	    rxv.ifindex == wire->ifindex &&
	    rxv.netns_cookie == sc->ns->cookie &&
	    (rxv.flags & MT_GRE_TUN_KEY) == (txv.flags & MT_GRE_TUN_KEY) &&
	    rxv.key == txv.key && memcmp(rxv.dev_mac, dev->mac, 6) == 0 &&
	    memcmp(rxv.wire_mac, wire->mac, 6) == 0;
}

static void eval_kernel(struct scan *sc, struct ttun *u)
{
	const struct tlink *dev = &sc->links[u->dev];

	u->p = dev->g.t;
	u->have_params = true;
	u->link_ok = (dev->flags & IFF_UP) && dev->g.t.local &&
		     dev->g.t.remote && dev->g.pmtudisc && dev->g.symmetric;
	u->in_place = u->link_ok;
}

static void evaluate(struct mt_tunnels *t, struct scan *sc)
{
	for (size_t i = 0; i < sc->n_tuns; i++) {
		struct ttun *u = &sc->tuns[i];

		if (!u->bpf) {
			eval_kernel(sc, u);
			continue;
		}
		eval_bpf(t, sc, u);
		u->in_place =
		    u->link_ok && u->encap_ok && u->decap_ok && u->entry_ok;
	}
}

/* One namespace, start to end (apply). On a transport error the socket is
 * replaced and the scan repeated. */
static int scan_one(struct mt_tunnels *t, struct scan *sc, bool want_tc,
		    bool want_uplink)
{
	int r, tries = 0;

	if (sc->ns->mirror)
		mt_dump_mirror_reset(sc->ns->mirror);
	sc->mirror = MT_MIRROR_NONE;
	for (;;) {
		scan_reset(sc);
		r = links_start(sc);
		if (r == 0)
			r = links_finish(t, sc);
		if (r == 0)
			r = classify(sc);
		if (r == 0 && want_tc)
			r = tc_start(sc, want_uplink);
		if (r == 0 && want_tc)
			r = tc_finish(t, sc);
		if (r == 0 || r == -ENOMEM || ++tries >= DUMP_TRIES)
			break;
		if (r != -EAGAIN && tns_reopen_nl(t, sc->ns) < 0)
			break;
	}
	if (r == 0 && want_tc)
		evaluate(t, sc);
	return r;
}

/* ---- apply: checks ------------------------------------------------------ */

struct want {
	const char *driver; /* "bpf" / "kernel" */
	struct mt_gre_tunnel g;
};

struct op_state {
	int err;
	char why[512];
	char kmsg[256];
};

static int refuse(struct op_state *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int refuse(struct op_state *s, int err, const char *fmt, ...)
{
	va_list ap;

	if (s->err)
		return s->err;
	s->err = err;
	va_start(ap, fmt);
	vsnprintf(s->why, sizeof(s->why), fmt, ap);
	va_end(ap);
	return err;
}

static int parse_ip(const char *s, uint32_t *out)
{
	return inet_pton(AF_INET, s, out) == 1 && *out != 0 ? 0 : -EINVAL;
}

/* Ownership and sanity: nothing is done for an op that fails here. */
static int check_op(struct mt_tunnels *t, const Mt__Kernel__Op *op,
		    struct want *w, struct op_state *s)
{
	const Mt__Kernel__Tunnel *T = op->tunnel;
	const char *owner = mt_metal_owner(t->m, T->netns);
	const char *drv = T->driver;

	if (!owner || !*owner)
		return refuse(s, -EPERM,
			      "refused: netns \"%s\" is not a customer "
			      "namespace of this metal (prefix \"%s\")",
			      T->netns, t->m->prefix);
	if (!mt_netns_name_valid(T->netns))
		return refuse(s, -EINVAL,
			      "netns name \"%s\" is not a valid /run/netns "
			      "name",
			      T->netns);
	if (!tunnel_name_ok(T->name))
		return refuse(s, -EINVAL,
			      "tunnel name \"%s\" must be 1-%d characters of "
			      "[A-Za-z0-9_-], not \"lo\" or \"%s\"",
			      T->name, MT_GRE_NAME_MAX, MT_GRE_UPLINK);
	if (op->action == MT__KERNEL__OP__ACTION__DELETE)
		return 0;
	if (!*drv || strcmp(drv, "auto") == 0)
		drv = mt_tunnels_auto_driver(t);
	if (strcmp(drv, "bpf") == 0)
		w->driver = "bpf";
	else if (strcmp(drv, "kernel") == 0)
		w->driver = "kernel";
	else
		return refuse(s, -EINVAL,
			      "driver \"%s\": must be auto, bpf or kernel",
			      T->driver);
	memset(&w->g, 0, sizeof(w->g));
	snprintf(w->g.name, sizeof(w->g.name), "%s", T->name);
	if (parse_ip(T->local, &w->g.local) < 0)
		return refuse(s, -EINVAL,
			      "local \"%s\": not an IPv4 host address",
			      T->local);
	if (parse_ip(T->remote, &w->g.remote) < 0)
		return refuse(s, -EINVAL,
			      "remote \"%s\": not an IPv4 host address",
			      T->remote);
	if (w->g.local == w->g.remote)
		return refuse(s, -EINVAL, "local and remote are both %s",
			      T->local);
	if (T->ttl > 255)
		return refuse(s, -EINVAL, "ttl %u: must be 1-255 (0 = %d)",
			      T->ttl, MT_GRE_DEFAULT_TTL);
	if (T->mtu && (T->mtu < 68 || T->mtu > 65535 - MT_GRE_OVERHEAD_KEY))
		return refuse(s, -EINVAL, "mtu %u: must be 68-%u", T->mtu,
			      65535 - MT_GRE_OVERHEAD_KEY);
	w->g.has_key = T->has_key;
	w->g.key = T->has_key ? T->key : 0;
	w->g.ttl = (uint8_t)(T->ttl ? T->ttl : MT_GRE_DEFAULT_TTL);
	w->g.mtu = T->mtu ? T->mtu : default_mtu(T->has_key);
	if (strcmp(w->driver, "kernel") == 0) {
		if (!t->kernel_gre)
			return refuse(s, -EOPNOTSUPP,
				      "driver \"kernel\": this kernel makes no "
				      "gre links (%s); use driver \"bpf\" or "
				      "\"auto\"",
				      t->kernel_why);
		if (mt_gre_kernel_name_reserved(T->name))
			return refuse(s, -EINVAL,
				      "tunnel name \"%s\" is the kernel's own "
				      "gre device",
				      T->name);
	} else if (!t->bpf) {
		return refuse(s, -EOPNOTSUPP,
			      "driver \"bpf\": the BPF GRE object is not "
			      "loaded (%s)",
			      t->bpf_err);
	}
	return 0;
}

/* ---- apply: steps ------------------------------------------------------- */

struct apply {
	struct mt_tunnels *t;
	struct scan sc;
	/* sc (with tc) still describes sc.ns: the last op there changed
	 * nothing, so the next op on it (gre2 after gre1) needs no rescan */
	bool sc_valid;
	dev_t sc_dev; /* the namespace sc describes (a handle's address */
	ino_t sc_ino; /* may be reused after the cache dropped it) */
	uint64_t writes;
	/* namespaces to check for a last bpf tunnel, by name: a handle may
	 * be dropped (namespace replaced) before the check runs */
	char (*touched)[NAME_MAX + 1];
	size_t n_touched, cap_touched;
};

static int touch(struct apply *a, struct tns *ns)
{
	if (ns->check_decap)
		return 0;
	if (a->n_touched == a->cap_touched) {
		size_t cap = a->cap_touched ? a->cap_touched * 2 : 8;
		char(*g)[NAME_MAX + 1] = realloc(a->touched, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		a->touched = g;
		a->cap_touched = cap;
	}
	ns->check_decap = true;
	snprintf(a->touched[a->n_touched++], NAME_MAX + 1, "%s", ns->name);
	return 0;
}

/* RTM_DELLINK of NAME (a gre link, or any device in the tunnel's way). */
static int del_link(struct apply *a, struct tns *ns, const char *name,
		    struct op_state *s)
{
	size_t room;
	void *buf = mt_nl_batch_current(a->t->batch, &room);
	int r = mt_gre_kernel_build_delete(buf, room, name);

	if (r >= 0)
		r = send_one(a->t, ns->nl, s->kmsg, sizeof(s->kmsg));
	if (r == -ENODEV)
		return 0;
	if (r < 0)
		return refuse(s, r, "cannot delete device %s: %s", name,
			      strerror(-r));
	a->writes++;
	return 0;
}

/* Removes a tunnel found by a scan, whichever driver. */
static int remove_tunnel(struct apply *a, struct tns *ns, const struct ttun *u,
			 struct op_state *s)
{
	const char *name = a->sc.links[u->dev].name;
	char err[256] = "";
	int r;

	if (!u->bpf || !a->t->bpf)
		r = del_link(a, ns, name, s);
	else if ((r = mt_gre_bpf_tunnel_down(a->t->bpf, ns->nsfd, name, err,
					     sizeof(err))) < 0)
		refuse(s, r, "%s", err);
	else
		a->writes++;
	if (r == 0 && u->bpf)
		r = touch(a, ns);
	return r;
}

static bool params_match(const struct ttun *u, const struct mt_gre_tunnel *g,
			 uint32_t dev_mtu)
{
	return u->have_params && u->p.local == g->local &&
	       u->p.remote == g->remote && u->p.has_key == g->has_key &&
	       (!g->has_key || u->p.key == g->key) && u->p.ttl == g->ttl &&
	       dev_mtu == g->mtu;
}

static int scan_fail(struct op_state *s, struct tns *ns, int r)
{
	return refuse(s, r, "cannot read the devices of netns %s: %s", ns->name,
		      strerror(-r));
}

static int create_bpf(struct apply *a, struct tns *ns, struct want *w,
		      struct op_state *s)
{
	struct mt_tunnels *t = a->t;
	struct mt_gre_bpf *g = t->bpf;
	char err[256] = "";
	struct ttun *u;
	ssize_t other;
	int r;

	memcpy(w->g.peer_mac, a->sc.peer_mac, 6);
	u = tun_by_name(&a->sc, w->g.name);
	other = link_by_name(&a->sc, w->g.name);
	if ((u && (!u->bpf || !u->range_ok)) || (!u && other >= 0)) {
		mt_info("tunnels: netns %s: replacing device %s (%s) with a "
			"bpf tunnel",
			ns->name, w->g.name,
			u && !u->bpf ? "a kernel gre link"
			: u	     ? "a pair outside the GRE ifindex range"
				     : "not a tunnel");
		r = u ? remove_tunnel(a, ns, u, s)
		      : del_link(a, ns, w->g.name, s);
		if (r < 0)
			return r;
		if ((r = scan_one(t, &a->sc, true, false)) < 0)
			return scan_fail(s, ns, r);
		u = tun_by_name(&a->sc, w->g.name);
	}
	if (u && u->in_place && params_match(u, &w->g, a->sc.links[u->dev].mtu))
		return 0; /* already so: no write */
	if (!u || !u->link_ok || a->sc.links[u->dev].mtu != w->g.mtu) {
		r = mt_gre_bpf_link_create(g, ns->nsfd, w->g.name, w->g.mtu,
					   err, sizeof(err));
		if (r < 0)
			return refuse(s, r, "%s", err);
		a->writes++;
		if ((r = scan_one(t, &a->sc, true, false)) < 0)
			return scan_fail(s, ns, r);
		u = tun_by_name(&a->sc, w->g.name);
		if (!u)
			return refuse(s, -EIO,
				      "tunnel pair %s/%s%s missing "
				      "right after it was made",
				      w->g.name, w->g.name, MT_GRE_WIRE_SUFFIX);
	}
	if (!u->decap_ok) {
		r = mt_gre_bpf_attach_decap(g, ns->nsfd, "", err, sizeof(err));
		if (r < 0)
			return refuse(s, r, "%s", err);
		a->writes++;
	}
	if (!u->encap_ok) {
		r = mt_gre_bpf_attach_encap(g, ns->nsfd, w->g.name, err,
					    sizeof(err));
		if (r < 0)
			return refuse(s, r, "%s", err);
		a->writes++;
	}
	if (!u->entry_ok || !params_match(u, &w->g, w->g.mtu)) {
		r = mt_gre_bpf_tunnel_set(g, ns->nsfd, &w->g, err, sizeof(err));
		if (r == -EEXIST) {
			/* Entries left by a pair deleted behind our back
			 * hold the endpoints: unset prunes this namespace's
			 * entries whose wire end is gone. A live conflict
			 * stays one. */
			r = mt_gre_bpf_tunnel_unset(g, ns->nsfd, w->g.name, err,
						    sizeof(err));
			if (r == 0)
				r = mt_gre_bpf_tunnel_set(g, ns->nsfd, &w->g,
							  err, sizeof(err));
		}
		if (r < 0)
			return refuse(s, r, "%s", err);
		a->writes++;
	}
	return 0;
}

static int create_kernel(struct apply *a, struct tns *ns, struct want *w,
			 struct op_state *s)
{
	struct ttun *u = tun_by_name(&a->sc, w->g.name);
	ssize_t other = link_by_name(&a->sc, w->g.name);
	bool exists;
	size_t room;
	void *buf;
	int r;

	if ((u && u->bpf) || (!u && other >= 0)) {
		mt_info("tunnels: netns %s: replacing device %s (%s) with a "
			"kernel gre link",
			ns->name, w->g.name,
			u ? "a bpf tunnel" : "not a tunnel");
		r = u ? remove_tunnel(a, ns, u, s)
		      : del_link(a, ns, w->g.name, s);
		if (r < 0)
			return r;
		u = NULL;
	}
	if (u && u->in_place && params_match(u, &w->g, a->sc.links[u->dev].mtu))
		return 0;
	exists = u != NULL;
	buf = mt_nl_batch_current(a->t->batch, &room);
	r = mt_gre_kernel_build(buf, room, &w->g, !exists);
	if (r >= 0)
		r = send_one(a->t, ns->nl, s->kmsg, sizeof(s->kmsg));
	if (r < 0)
		return refuse(s, r, "cannot %s gre link %s: %s",
			      exists ? "change" : "create", w->g.name,
			      strerror(-r));
	a->writes++;
	return 0;
}

static void do_op(struct apply *a, const Mt__Kernel__Op *op, struct op_state *s)
{
	const Mt__Kernel__Tunnel *T = op->tunnel;
	bool del = op->action == MT__KERNEL__OP__ACTION__DELETE;
	struct want w = {0};
	struct tns *ns;
	struct ttun *u;
	int r;

	if (check_op(a->t, op, &w, s) < 0)
		return;
	r = tns_get(a->t, T->netns, &ns);
	if (r == -ENOENT && del)
		return;
	if (r < 0) {
		refuse(s, r,
		       r == -ENOENT ? "netns %s does not exist"
				    : "cannot open netns %s: %s",
		       T->netns, strerror(-r));
		return;
	}
	if (!a->sc_valid || a->sc.ns != ns || a->sc_dev != ns->dev ||
	    a->sc_ino != ns->ino) {
		a->sc_valid = false;
		a->sc.ns = ns;
		a->sc_dev = ns->dev;
		a->sc_ino = ns->ino;
		a->sc.stats = false;
		a->sc.veth_only = !a->t->kernel_gre;
		if (!del)
			metal_peer_mac(a->t, ns->name, a->sc.peer_mac);
		r = scan_one(a->t, &a->sc, !del, false);
		if (r < 0) {
			scan_fail(s, ns, r);
			return;
		}
		a->sc_valid = !del;
	}
	if (del) {
		u = tun_by_name(&a->sc, T->name);
		if (u)
			remove_tunnel(a, ns, u, s);
		return;
	}
	if (strcmp(w.driver, "bpf") == 0)
		create_bpf(a, ns, &w, s);
	else
		create_kernel(a, ns, &w, s);
}

/* After all ops: a namespace a bpf tunnel left that has none now gets the
 * decap program off metal0 (the kernel's state decides, not our memory). */
static void decap_cleanup(struct apply *a)
{
	for (size_t i = 0; i < a->n_touched; i++) {
		struct tns *ns;
		char err[256];
		int r;

		if (tns_get(a->t, a->touched[i], &ns) < 0) {
			ns = tns_find(a->t, a->touched[i]);
			if (ns)
				ns->check_decap = false;
			continue; /* gone: nothing to detach from */
		}
		ns->check_decap = false;
		a->sc.ns = ns;
		a->sc.veth_only = !a->t->kernel_gre;
		if (scan_one(a->t, &a->sc, true, true) < 0 ||
		    bpf_count(&a->sc) || a->sc.decap_id == 0 || !a->t->bpf)
			continue;
		r = mt_gre_bpf_detach(a->t->bpf, ns->nsfd, MT_GRE_UPLINK, err,
				      sizeof(err));
		if (r < 0)
			mt_warn("tunnels: netns %s: %s", ns->name, err);
		else
			a->writes++;
	}
	a->n_touched = 0;
}

static int result_set(Mt__Kernel__OpResult **slot, const Mt__Kernel__Op *op,
		      const struct op_state *s)
{
	return mt_op_result_describe(slot, op, s->err, s->why, s->kmsg);
}

int mt_tunnels_apply(struct mt_tunnels *t, Mt__Kernel__Op *const *ops, size_t n,
		     Mt__Kernel__OpResult **results, uint64_t *writes)
{
	struct apply a = {.t = t};
	int ret = 0;

	for (size_t i = 0; i < n; i++) {
		struct op_state s = {0};

		if (ops[i]->object_case != MT__KERNEL__OP__OBJECT_TUNNEL)
			continue;
		uint64_t before = a.writes;

		do_op(&a, ops[i], &s);
		if (s.err || a.writes != before)
			a.sc_valid = false;
		if (s.err)
			mt_debug("tunnels: op %zu failed: %s", i, s.why);
		if (result_set(&results[i], ops[i], &s) < 0)
			ret = -ENOMEM;
	}
	decap_cleanup(&a);
	scan_fini(&a.sc);
	free(a.touched);
	if (writes)
		*writes += a.writes;
	return ret;
}

/* ---- observe ------------------------------------------------------------ */

/* The owned namespaces: all (one directory listing) or those of the given
 * customers (one stat each). */
static int list_owned(struct mt_tunnels *t, const char *const *owners,
		      size_t n_owners, struct mt_netns_entry **out, size_t *n)
{
	struct mt_netns_entry *v;
	size_t cnt = 0;

	if (!n_owners)
		return mt_netns_list(t->m->prefix, out, n);
	*out = NULL;
	*n = 0;
	v = calloc(n_owners, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0; i < n_owners; i++) {
		struct mt_netns_entry *e = &v[cnt];
		bool dup = false;

		for (size_t k = 0; k < i && !dup; k++)
			dup = strcmp(owners[k], owners[i]) == 0;
		if (dup || !*owners[i] ||
		    snprintf(e->name, sizeof(e->name), "%s%s", t->m->prefix,
			     owners[i]) >= (int)sizeof(e->name))
			continue;
		if (mt_netns_stat(e->name, &e->dev, &e->ino) == 0)
			cnt++;
	}
	*out = v;
	*n = cnt;
	return 0;
}

static int entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct mt_netns_entry *)a)->name,
		      ((const struct mt_netns_entry *)b)->name);
}

/* The per-tunnel drop counters, all of them in one walk of the map (most
 * tunnels have none, so this beats 14 lookups per tunnel). */
struct drop_ent {
	uint32_t ifindex, reason;
	uint64_t packets;
};

struct drop_tab {
	struct drop_ent *v;
	size_t n, cap;
};

static int drop_ent_cmp(const void *a, const void *b)
{
	const struct drop_ent *x = a, *y = b;

	if (x->ifindex != y->ifindex)
		return x->ifindex < y->ifindex ? -1 : 1;
	return x->reason < y->reason ? -1 : x->reason > y->reason;
}

static int drop_tab_load(struct mt_tunnels *t, struct drop_tab *tab)
{
	int fd = mt_gre_bpf_tun_drops_map_fd(t->bpf);
	int ncpus = libbpf_num_possible_cpus();
	struct mt_gre_tun_drop_key k, next, *prev = NULL;
	_cleanup_free_ uint64_t *vals = NULL;

	if (ncpus <= 0)
		return ncpus < 0 ? ncpus : -EINVAL;
	vals = calloc((size_t)ncpus, sizeof(*vals));
	if (!vals)
		return -ENOMEM;
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		uint64_t sum = 0;

		k = next;
		prev = &k;
		if (bpf_map_lookup_elem(fd, &k, vals) < 0)
			continue; /* deleted meanwhile */
		for (int c = 0; c < ncpus; c++)
			sum += vals[c];
		if (!sum || k.reason >= MT_GRE_DROP_MAX)
			continue;
		if (tab->n == tab->cap) {
			size_t cap = tab->cap ? tab->cap * 2 : 64;
			struct drop_ent *g = realloc(tab->v, cap * sizeof(*g));

			if (!g)
				return -ENOMEM;
			tab->v = g;
			tab->cap = cap;
		}
		tab->v[tab->n++] = (struct drop_ent){k.ifindex, k.reason, sum};
	}
	qsort(tab->v, tab->n, sizeof(*tab->v), drop_ent_cmp);
	return 0;
}

static int add_drops(const struct drop_tab *tab, Mt__Kernel__TunnelCounters *c,
		     uint32_t wire_ifindex)
{
	size_t lo = 0, hi = tab->n;

	while (lo < hi) { /* the first entry of wire_ifindex */
		size_t mid = lo + (hi - lo) / 2;

		if (tab->v[mid].ifindex < wire_ifindex)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = lo; i < tab->n && tab->v[i].ifindex == wire_ifindex;
	     i++) {
		Mt__Kernel__DropCount *d, **g;
		int r;

		g = realloc(c->drops, (c->n_drops + 1) * sizeof(*g));
		if (!g)
			return -ENOMEM;
		c->drops = g;
		d = malloc(sizeof(*d));
		if (!d)
			return -ENOMEM;
		mt__kernel__drop_count__init(d);
		c->drops[c->n_drops++] = d;
		d->packets = tab->v[i].packets;
		r = mt_kstate_set_str(&d->reason,
				      mt_gre_drop_name(tab->v[i].reason));
		if (r < 0)
			return r;
	}
	return 0;
}

static int report(const struct drop_tab *drops, const struct scan *sc,
		  const struct ttun *u, bool counters,
		  Mt__Kernel__KernelState *st)
{
	const struct tlink *dev = &sc->links[u->dev];
	char l[INET_ADDRSTRLEN] = "", rm[INET_ADDRSTRLEN] = "";
	Mt__Kernel__Tunnel *o = mt_kstate_add_tunnel(st);
	Mt__Kernel__TunnelCounters *c;
	int r;

	if (!o)
		return -ENOMEM;
	if (u->in_place) {
		inet_ntop(AF_INET, &u->p.local, l, sizeof(l));
		inet_ntop(AF_INET, &u->p.remote, rm, sizeof(rm));
	}
	if ((r = mt_kstate_set_str(&o->netns, sc->ns->name)) < 0 ||
	    (r = mt_kstate_set_str(&o->name, dev->name)) < 0 ||
	    (r = mt_kstate_set_str(&o->driver, u->bpf ? "bpf" : "kernel")) <
		0 ||
	    (r = mt_kstate_set_str(&o->local, l)) < 0 ||
	    (r = mt_kstate_set_str(&o->remote, rm)) < 0 ||
	    (r = mt_kstate_set_str(&o->owner, sc->owner)) < 0)
		return r;
	o->has_key = u->have_params && u->p.has_key;
	o->key = o->has_key ? u->p.key : 0;
	o->ttl = u->have_params ? u->p.ttl : 0;
	o->mtu = dev->mtu;
	if (!counters)
		return 0;
	c = malloc(sizeof(*c));
	if (!c)
		return -ENOMEM;
	mt__kernel__tunnel_counters__init(c);
	o->counters = c;
	c->tx_packets = dev->tx_packets;
	c->tx_bytes = dev->tx_bytes;
	c->rx_packets = dev->rx_packets;
	c->rx_bytes = dev->rx_bytes;
	if (u->bpf && u->range_ok)
		return add_drops(drops, c, sc->links[u->wire].ifindex);
	return 0;
}

/* Mark and sweep of the namespace cache over a listing of /run/netns. */
static void cache_unmark(struct mt_tunnels *t)
{
	for (size_t i = 0; i < t->n_buckets; i++)
		for (struct tns *h = t->buckets[i]; h; h = h->next)
			h->seen = false;
}

static void cache_drop_unseen(struct mt_tunnels *t)
{
	for (size_t i = 0; i < t->n_buckets; i++) {
		struct tns *h = t->buckets[i], *next;

		for (; h; h = next) {
			next = h->next;
			if (!h->seen)
				tns_drop(t, h);
		}
	}
}

/* The cached namespace of a listed entry, marked seen: 0 and owner and ns set;
 * 1 when it is not a customer namespace or was deleted since the listing;
 * -errno. */
static int entry_ns(struct mt_tunnels *t, const struct mt_netns_entry *e,
		    const char **owner, struct tns **ns)
{
	int r;

	*owner = mt_metal_owner(t->m, e->name);
	if (!*owner || !**owner)
		return 1;
	r = tns_get_ident(t, e->name, e->dev, e->ino, ns);
	if (r == -ENOENT)
		return 1;
	if (r < 0)
		return r;
	(*ns)->seen = true;
	return 0;
}

int mt_tunnels_observe(struct mt_tunnels *t, const char *const *owners,
		       size_t n_owners, bool counters,
		       Mt__Kernel__KernelState *st)
{
	_cleanup_free_ struct mt_netns_entry *ents = NULL;
	_cleanup_free_ struct scan *v = NULL;
	struct drop_tab drops = {0};
	size_t n_ents = 0, n = 0;
	int r;

	r = list_owned(t, owners, n_owners, &ents, &n_ents);
	if (r < 0)
		return r;
	qsort(ents, n_ents, sizeof(*ents), entry_cmp);
	v = calloc(n_ents ? n_ents : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	cache_unmark(t);
	for (size_t i = 0; i < n_ents; i++) {
		const char *owner;
		struct tns *ns;

		r = entry_ns(t, &ents[i], &owner, &ns);
		if (r > 0)
			continue;
		if (r < 0)
			goto out;
		v[n].ns = ns;
		v[n].owner = owner;
		v[n].stats = counters;
		v[n].veth_only = !t->kernel_gre;
		v[n].uplink = -1;
		n++;
	}
	if (!n_owners) /* a full listing: drop what is gone */
		cache_drop_unseen(t);
	for (size_t i = 0; i < n; i++)
		metal_peer_mac(t, v[i].ns->name, v[i].peer_mac);

	/* links: every dump request out first, then the replies */
	for (size_t i = 0; i < n; i++) {
		mirror_begin(t, &v[i]);
		v[i].err = links_start(&v[i]);
	}
	for (size_t i = 0; i < n; i++) {
		if (v[i].err == 0)
			v[i].err = links_finish(t, &v[i]);
		mirror_end(&v[i]);
		if (v[i].err == 0)
			v[i].err = classify(&v[i]);
		if (v[i].err == -ENOMEM) {
			r = -ENOMEM;
			goto out;
		}
	}
	/* tc filters of the namespaces with bpf tunnels, the same way */
	for (size_t i = 0; i < n; i++)
		if (v[i].err == 0)
			v[i].err = tc_start(&v[i], false);
	for (size_t i = 0; i < n; i++) {
		if (v[i].err == 0)
			v[i].err = tc_finish(t, &v[i]);
		if (v[i].err == 0)
			evaluate(t, &v[i]);
	}
	/* an interrupted dump or a broken socket: that namespace alone again */
	for (size_t i = 0; i < n; i++) {
		if (v[i].err == 0)
			continue;
		if (v[i].err != -EAGAIN && (r = tns_reopen_nl(t, v[i].ns)) < 0)
			goto out;
		r = scan_one(t, &v[i], true, false);
		if (r < 0) {
			mt_warn("tunnels: cannot observe netns %s: %s",
				v[i].ns->name, strerror(-r));
			goto out;
		}
	}
	r = counters && t->bpf ? drop_tab_load(t, &drops) : 0;
	for (size_t i = 0; i < n && r == 0; i++)
		for (size_t k = 0; k < v[i].n_tuns && r == 0; k++)
			r = report(&drops, &v[i], &v[i].tuns[k], counters, st);
out:
	for (size_t i = 0; i < n; i++)
		scan_fini(&v[i]);
	free(drops.v);
	return r;
}

/* ---- sweep, drops ------------------------------------------------------- */

int mt_tunnels_sweep(struct mt_tunnels *t)
{
	_cleanup_free_ struct mt_netns_entry *ents = NULL;
	_cleanup_free_ uint64_t *live = NULL;
	size_t n_ents = 0, n = 0;
	int r;

	r = mt_netns_list(t->m->prefix, &ents, &n_ents);
	if (r < 0)
		return r;
	live = calloc(n_ents ? n_ents : 1, sizeof(*live));
	if (!live)
		return -ENOMEM;
	cache_unmark(t);
	for (size_t i = 0; i < n_ents; i++) {
		const char *owner;
		struct tns *ns;

		r = entry_ns(t, &ents[i], &owner, &ns);
		if (r > 0)
			continue;
		if (r < 0)
			return r;
		live[n++] = ns->cookie;
	}
	cache_drop_unseen(t);
	if (!t->bpf)
		return 0;
	return mt_gre_bpf_sweep(t->bpf, live, n);
}

int mt_tunnels_drops_total(struct mt_tunnels *t, uint64_t out[MT_GRE_DROP_MAX])
{
	if (!t->bpf) {
		memset(out, 0, MT_GRE_DROP_MAX * sizeof(out[0]));
		return 0;
	}
	return mt_gre_bpf_drops(t->bpf, 0, out);
}
