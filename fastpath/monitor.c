#include "monitor.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

#include "mt_cleanup.h"
#include "mt_log.h"
#include "mt_metal.h"
#include "netns.h"

#define MON_BUF (64 * 1024)
#define MON_RCVBUF (4 * 1024 * 1024)

struct watch {
	struct watch *next;
	char *netns;              /* "" = metal */
	struct mnl_socket *rtnl;
	bool seen;
	bool replaced; /* its namespace was replaced: on its way out */
	dev_t dev; /* the namespace watched (nsfs identity) */
	ino_t ino;
	/* Counts every rtnetlink notification read and every loss of them:
	 * unchanged = nothing changed in the namespace (dump_mirror.h). */
	uint64_t gen;
};

struct mt_monitor {
	struct mt_rtnl *ctx;
	mt_monitor_cb cb;
	void *data;
	int epfd;
	struct watch *watches;
	struct watch **by_name; /* the watches sorted by netns, for lookups */
	size_t n_by_name;
	/* /run/netns: a namespace of ours deleted (or renamed away) by hand.
	 * mt-fastpath's own descriptors keep such a namespace alive, so no
	 * link goes away with it and rtnetlink says nothing. */
	int run_dir_fd;
	mt_monitor_gone_cb gone; /* called for a name deleted by hand */
	void *gone_data;
	char **own_deletes; /* names mt-fastpath itself is deleting */
	size_t n_own_deletes;
	char *buf;
	int events;
};

static struct mnl_socket *open_group_socket(int bus, const unsigned *groups,
					    size_t n)
{
	struct mnl_socket *nl = mnl_socket_open2(bus, SOCK_NONBLOCK | SOCK_CLOEXEC);
	int rcvbuf = MON_RCVBUF;

	if (!nl)
		return NULL;
	if (mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		int g = (int)groups[i];

		if (mnl_socket_setsockopt(nl, NETLINK_ADD_MEMBERSHIP, &g,
					  sizeof(g)) < 0)
			goto fail;
	}
	/* Lost notifications are repaired by the periodic reconcile, but
	 * try not to lose them. */
	setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
		   sizeof(rcvbuf));
	return nl;
fail:
	mnl_socket_close(nl);
	return NULL;
}

/* Opens w's socket (run inside the watched namespace). */
static int open_sockets(void *arg)
{
	static const unsigned rt_groups[] = {
		RTNLGRP_LINK,       RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR,
		RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE,  RTNLGRP_IPV4_RULE,
		RTNLGRP_IPV6_RULE,
	};
	struct watch *w = arg;

	/* No NFNLGRP_NFTABLES here: the kernel keeps one listener mask per
	 * netlink protocol for all namespaces, so a listener anywhere makes
	 * every nftables transaction on the machine build a notification per
	 * element (nft_mark.h, mt_nft_mark_poll) */
	w->rtnl = open_group_socket(NETLINK_ROUTE, rt_groups,
				    MT_ARRAY_SIZE(rt_groups));
	return w->rtnl ? 0 : mt_neg_errno();
}

static void watch_free(struct mt_monitor *mon, struct watch *w)
{
	if (w->rtnl) {
		epoll_ctl(mon->epfd, EPOLL_CTL_DEL, mnl_socket_get_fd(w->rtnl),
			  NULL);
		mnl_socket_close(w->rtnl);
	}
	free(w->netns);
	free(w);
}

static int watch_add(struct mt_monitor *mon, const char *netns)
{
	struct watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = { .events = EPOLLIN };
	int r;

	if (!w)
		return -ENOMEM;
	w->netns = strdup(netns);
	if (!w->netns) {
		free(w);
		return -ENOMEM;
	}
	w->gen = 1;
	if (*netns) {
		_cleanup_close_ int nsfd = mt_netns_open(netns);

		if (nsfd < 0) {
			watch_free(mon, w);
			return nsfd;
		}
		r = mt_netns_ident(nsfd, &w->dev, &w->ino);
		if (r == 0)
			r = mt_netns_run(nsfd, mon->ctx->metal_ns->nsfd,
					 open_sockets, w);
	} else {
		w->dev = mon->ctx->metal_ns->dev;
		w->ino = mon->ctx->metal_ns->ino;
		r = open_sockets(w);
	}
	if (r < 0) {
		watch_free(mon, w);
		return r;
	}
	ev.data.ptr = w;
	epoll_ctl(mon->epfd, EPOLL_CTL_ADD, mnl_socket_get_fd(w->rtnl), &ev);
	w->seen = true;
	w->next = mon->watches;
	mon->watches = w;
	return 0;
}

/* Watches /run/netns for names going away (data.ptr NULL in the epoll
 * set). Without it (no directory yet, no inotify), a namespace deleted by
 * hand is only seen by the next full reconcile. */
static void run_dir_watch(struct mt_monitor *mon)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);

	if (fd < 0)
		return;
	if (inotify_add_watch(fd, MT_NETNS_RUN_DIR,
			      IN_DELETE | IN_MOVED_FROM | IN_DELETE_SELF) < 0 ||
	    epoll_ctl(mon->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		mt_warn("drift monitor: cannot watch %s: %s", MT_NETNS_RUN_DIR,
			strerror(errno));
		close(fd);
		return;
	}
	mon->run_dir_fd = fd;
}

int mt_monitor_new(struct mt_rtnl *ctx, mt_monitor_cb cb, void *data,
		   struct mt_monitor **out)
{
	struct mt_monitor *mon = calloc(1, sizeof(*mon));
	int r;

	if (!mon)
		return -ENOMEM;
	mon->ctx = ctx;
	mon->cb = cb;
	mon->data = data;
	mon->buf = malloc(MON_BUF);
	mon->epfd = epoll_create1(EPOLL_CLOEXEC);
	mon->run_dir_fd = -1;
	if (!mon->buf || mon->epfd < 0) {
		mt_monitor_free(mon);
		return -ENOMEM;
	}
	run_dir_watch(mon);
	r = watch_add(mon, "");
	if (r < 0) {
		mt_monitor_free(mon);
		return r;
	}
	*out = mon;
	return mt_monitor_sync(mon);
}

void mt_monitor_free(struct mt_monitor *mon)
{
	if (!mon)
		return;
	while (mon->watches) {
		struct watch *w = mon->watches;

		mon->watches = w->next;
		watch_free(mon, w);
	}
	if (mon->epfd >= 0)
		close(mon->epfd);
	if (mon->run_dir_fd >= 0)
		close(mon->run_dir_fd);
	for (size_t i = 0; i < mon->n_own_deletes; i++)
		free(mon->own_deletes[i]);
	free(mon->own_deletes);
	free(mon->by_name);
	free(mon->buf);
	free(mon);
}

int mt_monitor_fd(const struct mt_monitor *mon)
{
	return mon->epfd;
}

static struct watch *find_watch(struct mt_monitor *mon, const char *netns)
{
	for (struct watch *w = mon->watches; w; w = w->next)
		if (!w->replaced && strcmp(w->netns, netns) == 0)
			return w;
	return NULL;
}

static int watch_cmp(const void *a, const void *b)
{
	const struct watch *x = *(struct watch *const *)a;
	const struct watch *y = *(struct watch *const *)b;

	return strcmp(x->netns, y->netns);
}

static int index_rebuild(struct mt_monitor *mon)
{
	size_t n = 0;
	struct watch **v;

	for (struct watch *w = mon->watches; w; w = w->next)
		n++;
	v = realloc(mon->by_name, (n ? n : 1) * sizeof(*v));
	if (!v) {
		free(mon->by_name);
		mon->by_name = NULL;
		mon->n_by_name = 0;
		return -ENOMEM;
	}
	n = 0;
	for (struct watch *w = mon->watches; w; w = w->next)
		v[n++] = w;
	qsort(v, n, sizeof(*v), watch_cmp);
	mon->by_name = v;
	mon->n_by_name = n;
	return 0;
}

bool mt_monitor_ns_gen(void *data, const char *netns, dev_t dev, ino_t ino,
		       uint64_t *gen)
{
	struct mt_monitor *mon = data;
	struct watch key = {.netns = (char *)netns}, *kp = &key, **w;

	if (!mon->n_by_name)
		return false;
	w = bsearch(&kp, mon->by_name, mon->n_by_name, sizeof(*w), watch_cmp);
	if (!w || (*w)->dev != dev || (*w)->ino != ino)
		return false;
	*gen = (*w)->gen;
	return true;
}

int mt_monitor_sync(struct mt_monitor *mon)
{
	struct mt_netns_entry *list = NULL;
	size_t n = 0;
	int r;

	r = mt_netns_list(mon->ctx->metal->prefix, &list, &n);
	if (r < 0)
		return r;
	for (struct watch *w = mon->watches; w; w = w->next)
		w->seen = !*w->netns; /* the metal always stays */
	for (size_t i = 0; i < n; i++) {
		struct watch *w = find_watch(mon, list[i].name);

		if (w && (w->dev != list[i].dev || w->ino != list[i].ino)) {
			/* the namespace was replaced by another of that name:
			 * the old watch sees nothing of it */
			w->seen = false;
			w->replaced = true; /* freed below */
			w = NULL;
		}
		if (w) {
			w->seen = true;
			continue;
		}
		r = watch_add(mon, list[i].name);
		if (r < 0)
			mt_warn("drift monitor: cannot watch netns %s: %s",
				list[i].name, strerror(-r));
	}
	free(list);
	for (struct watch **pw = &mon->watches; *pw;) {
		struct watch *w = *pw;

		if (w->seen) {
			pw = &w->next;
			continue;
		}
		*pw = w->next;
		watch_free(mon, w);
	}
	return index_rebuild(mon);
}

/* True when one of mt-fastpath's own request sockets caused the change. */
static bool ours(struct mt_monitor *mon, const char *netns, uint32_t pid)
{
	struct mt_nsh *h;

	if (pid == 0)
		return false;
	h = mt_rtnl_ns_find(mon->ctx, netns);
	if (h && h->nl && h->nl->portid == pid)
		return true;
	/* a veth peer created from the metal's socket notifies in the
	 * customer namespace with the metal socket's port id */
	h = mon->ctx->metal_ns;
	return h && h->nl && h->nl->portid == pid;
}

static void report(struct mt_monitor *mon, const char *owner,
		   const char *netns, const char *what)
{
	mon->events++;
	mon->cb(mon->data, owner ? owner : "", netns, what);
}

static const char *metal_owner(struct mt_monitor *mon, unsigned ifindex,
			       char *name)
{
	if (!ifindex || !if_indextoname(ifindex, name))
		return NULL;
	return mt_metal_owner(mon->ctx->metal, name);
}

static int attr_cb(const struct nlattr *a, void *data)
{
	const struct nlattr **tb = data;
	int type = mnl_attr_get_type(a);

	if (type <= RTA_MAX) /* the largest *_MAX among the families used */
		tb[type] = a;
	return MNL_CB_OK;
}

static void rtnl_event(struct mt_monitor *mon, struct watch *w,
		       const struct nlmsghdr *nlh)
{
	const struct mt_metal *m = mon->ctx->metal;
	const struct nlattr *tb[RTA_MAX + 1] = { 0 };
	const char *cust = *w->netns ? mt_metal_owner(m, w->netns) : NULL;
	bool metal = !*w->netns;
	char what[256], ifname[IF_NAMESIZE] = "";
	const char *owner = cust;
	const char *verb;

	if (ours(mon, w->netns, nlh->nlmsg_pid))
		return;
	switch (nlh->nlmsg_type) {
	case RTM_NEWLINK:
	case RTM_DELLINK: {
		const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);

		mnl_attr_parse(nlh, sizeof(*ifi), attr_cb, tb);
		if (tb[IFLA_IFNAME])
			snprintf(ifname, sizeof(ifname), "%s",
				 mnl_attr_get_str(tb[IFLA_IFNAME]));
		if (metal)
			owner = mt_metal_owner(m, ifname);
		if (!owner)
			return;
		if (nlh->nlmsg_type == RTM_NEWLINK) {
			/* only a link going down is drift; new links and
			 * statistics changes are not */
			if (ifi->ifi_flags & IFF_UP)
				return;
			verb = "down";
		} else {
			verb = "deleted";
		}
		snprintf(what, sizeof(what), "link %s %s", ifname, verb);
		break;
	}
	case RTM_DELADDR: {
		/* Additions are not drift: the kernel adds link-local and
		 * local addresses of its own whenever a link comes up. */
		const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);

		if (metal)
			owner = metal_owner(mon, ifa->ifa_index, ifname);
		if (!owner)
			return;
		snprintf(what, sizeof(what), "address deleted on ifindex %u",
			 ifa->ifa_index);
		break;
	}
	case RTM_NEWROUTE:
	case RTM_DELROUTE: {
		/* Only routes mt makes (protocol MT_RTPROT), and in the metal
		 * anything in GRE_table: the kernel's own local and connected
		 * routes come and go with addresses. */
		const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
		uint32_t table = rtm->rtm_table;

		mnl_attr_parse(nlh, sizeof(*rtm), attr_cb, tb);
		if (tb[RTA_TABLE])
			table = mnl_attr_get_u32(tb[RTA_TABLE]);
		if (metal) {
			if (table != m->gre_table)
				return;
			owner = tb[RTA_OIF] ? metal_owner(mon,
				mnl_attr_get_u32(tb[RTA_OIF]), ifname) : NULL;
			if (!owner)
				owner = ""; /* a foreign route in our table */
		} else if (rtm->rtm_protocol != MT_RTPROT &&
			   !(nlh->nlmsg_type == RTM_NEWROUTE &&
			     (nlh->nlmsg_flags & NLM_F_REPLACE) &&
			     (table == m->cust_table ||
			      table == m->cust_table_alt))) {
			/* a foreign route that replaced one in mt's tables
			 * (ip route replace without proto 77) is drift too */
			return;
		}
		snprintf(what, sizeof(what), "route in table %u %s", table,
			 nlh->nlmsg_type == RTM_NEWROUTE ? "added or changed" :
							   "deleted");
		break;
	}
	case RTM_NEWRULE:
	case RTM_DELRULE: {
		const struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
		uint32_t prio = 0;

		mnl_attr_parse(nlh, sizeof(*frh), attr_cb, tb);
		if (tb[FRA_PRIORITY])
			prio = mnl_attr_get_u32(tb[FRA_PRIORITY]);
		if (prio < m->rule_priority ||
		    prio >= m->rule_priority + MT_RULE_RANGE)
			return;
		if (metal)
			owner = "";
		snprintf(what, sizeof(what), "rule priority %u %s", prio,
			 nlh->nlmsg_type == RTM_NEWRULE ? "added" : "deleted");
		break;
	}
	default:
		return;
	}
	report(mon, owner, w->netns, what);
}

static int read_socket(struct mt_monitor *mon, struct watch *w,
		       struct mnl_socket *nl)
{
	for (;;) {
		ssize_t n = mnl_socket_recvfrom(nl, mon->buf, MON_BUF);
		const struct nlmsghdr *nlh;
		int len;

		if (n < 0) {
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			w->gen++;
			if (errno == ENOBUFS) {
				/* lost notifications: say so, the agent
				 * reconciles everything */
				report(mon, "", w->netns,
				       "notifications lost (ENOBUFS)");
				continue;
			}
			return mt_neg_errno();
		}
		len = (int)n;
		w->gen++;
		for (nlh = (const struct nlmsghdr *)mon->buf;
		     mnl_nlmsg_ok(nlh, len); nlh = mnl_nlmsg_next(nlh, &len))
			rtnl_event(mon, w, nlh);
	}
}

static bool own_delete_take(struct mt_monitor *mon, const char *name)
{
	for (size_t i = 0; i < mon->n_own_deletes; i++) {
		if (strcmp(mon->own_deletes[i], name) != 0)
			continue;
		free(mon->own_deletes[i]);
		mon->own_deletes[i] = mon->own_deletes[--mon->n_own_deletes];
		return true;
	}
	return false;
}

void mt_monitor_set_gone_cb(struct mt_monitor *mon, mt_monitor_gone_cb fn,
			    void *data)
{
	mon->gone = fn;
	mon->gone_data = data;
}

void mt_monitor_own_delete(struct mt_monitor *mon, const char *name)
{
	char **v;

	if (!mon || mon->run_dir_fd < 0)
		return;
	v = realloc(mon->own_deletes,
		    (mon->n_own_deletes + 1) * sizeof(*mon->own_deletes));
	if (!v)
		return; /* the deletion is then reported as drift: harmless */
	mon->own_deletes = v;
	if ((v[mon->n_own_deletes] = strdup(name)))
		mon->n_own_deletes++;
}

/* Names of ours gone from /run/netns: drift of their customer (the
 * reconcile makes the namespace again), and their watch retired. */
static void run_dir_read(struct mt_monitor *mon)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	const struct mt_metal *m = mon->ctx->metal;
	ssize_t n;

	while ((n = read(mon->run_dir_fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *e = (const void *)p;
			const char *owner;
			struct watch *w;

			p += sizeof(*e) + e->len;
			if (!e->len || !(e->mask & (IN_DELETE | IN_MOVED_FROM)))
				continue;
			owner = mt_metal_owner(m, e->name);
			if (!owner || !*owner || own_delete_take(mon, e->name))
				continue;
			w = find_watch(mon, e->name);
			if (w)
				w->gen++;
			if (mon->gone)
				mon->gone(mon->gone_data, e->name);
			report(mon, owner, e->name, "netns deleted by hand");
		}
	}
}

/* One epoll_wait's worth of ready sockets; returns how many were ready. */
static int process_ready(struct mt_monitor *mon)
{
	struct epoll_event evs[64];
	int n, r;

	n = epoll_wait(mon->epfd, evs, MT_ARRAY_SIZE(evs), 0);
	if (n < 0)
		return mt_neg_errno();
	for (int i = 0; i < n; i++) {
		struct watch *w = evs[i].data.ptr;

		if (!w) {
			run_dir_read(mon);
			continue;
		}
		r = read_socket(mon, w, w->rtnl);
		if (r < 0) {
			w->gen++; /* the socket's state is unknown */
			mt_warn("drift monitor netns %s: %s",
				*w->netns ? w->netns : "metal", strerror(-r));
		}
	}
	return n;
}

int mt_monitor_process(struct mt_monitor *mon)
{
	int n;

	mon->events = 0;
	n = process_ready(mon);
	return n < 0 ? n : mon->events;
}

int mt_monitor_drain(struct mt_monitor *mon)
{
	int n;

	mon->events = 0;
	do
		n = process_ready(mon);
	while (n == 64);
	return n < 0 ? n : mon->events;
}
