#include "rtnl_observe.h"

#include <errno.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "addr.h"
#include "dump_mirror.h"
#include "gre_bpf.h"
#include "link.h"
#include "mt_cleanup.h"
#include "mt_kstate.h"
#include "mt_log.h"
#include "mt_metal.h"
#include "netns.h"
#include "route.h"
#include "rule.h"
#include "sysctl.h"

#define DUMP_TRIES 10
/* Scoped observes of up to this many owners read the metal per owner. */
#define BY_OWNER_MAX 32

/* A link seen in a namespace's dump: the ifindex -> name map for addresses
 * and routes, and what veth peer matching needs. */
struct lk {
	uint32_t ifindex;
	uint32_t link;
	int32_t netnsid;
	bool veth;
	char name[IFNAMSIZ];
	Mt__Kernel__Link *obj; /* the reported object, NULL = not reported */
	/* The owner of the link's addresses, NULL = they are not reported.
	 * Set for every reported link and for tunnel devices, which are not
	 * reported as Links but whose addresses are. */
	const char *owner;
};

struct ons {
	struct mt_nsh *h;
	const char *owner; /* the customer; NULL for the metal */
	struct lk *links;
	size_t n_links, cap_links;
	size_t rules_from; /* first of this namespace's rules in st->rules */
	enum mt_mirror_use mirror; /* what this observe does with h->mirror */
	uint64_t gen; /* the monitor's generation at the start */
	bool failed;  /* a dump of this namespace failed */
};

struct obs {
	struct mt_rtnl *ctx;
	const struct mt_metal *m;
	Mt__Kernel__KernelState *st;
	const char *const *owners;
	size_t n_owners;
	struct ons *v; /* v[0] = the metal, then namespaces sorted by name */
	size_t n;
	char *rbuf; /* MT_NL_DUMP_BUF bytes */
	/* Scoped: the metal's links, addresses and routes are read per owner
	 * (link by name, dumps filtered by ifindex / oif), not dumped. */
	bool metal_by_owner;
	bool fresh; /* dump everything again: use no mirror */
};

struct cbctx {
	struct obs *o;
	struct ons *ns;
};

/* Addresses and routes are dumped per family: an AF_UNSPEC dump runs every
 * family's dump under the RTNL lock (rtnl_dump_all), the per-family ones
 * without it, so the observe threads do not queue behind each other. Link
 * dumps hold the lock either way; rule dumps never. */
enum phase { PH_LINK, PH_ADDR4, PH_ADDR6, PH_ROUTE4, PH_ROUTE6, PH_RULE };

static bool is_addr(enum phase ph) { return ph == PH_ADDR4 || ph == PH_ADDR6; }
static uint8_t phase_family(enum phase ph)
{
	return ph == PH_ADDR6 || ph == PH_ROUTE6 ? AF_INET6 : AF_INET;
}

static bool wanted(const struct obs *o, const char *owner)
{
	if (!o->n_owners || !*owner)
		return true;
	for (size_t i = 0; i < o->n_owners; i++)
		if (strcmp(o->owners[i], owner) == 0)
			return true;
	return false;
}

static bool is_metal(const struct ons *ns)
{
	return ns->owner == NULL;
}

/* Drops the objects appended since a mark (an interrupted dump). */
static void truncate_to(void **arr, size_t *n, size_t to)
{
	while (*n > to)
		protobuf_c_message_free_unpacked(arr[--*n], NULL);
}

#define POP(arr, n) truncate_to((void **)(arr), &(n), (n)-1)

static int set_common(char **netns, char **owner, const struct ons *ns,
		      const char *own)
{
	int r = mt_kstate_set_str(netns, ns->h->name);

	return r < 0 ? r : mt_kstate_set_str(owner, own);
}

static int lk_cmp(const void *a, const void *b)
{
	const struct lk *x = a, *y = b;

	return x->ifindex < y->ifindex ? -1 : x->ifindex > y->ifindex;
}

static struct lk *lk_find(const struct ons *ns, uint32_t ifindex)
{
	struct lk key = {.ifindex = ifindex};

	if (!ns->n_links)
		return NULL;
	return bsearch(&key, ns->links, ns->n_links, sizeof(key), lk_cmp);
}

/* ---- dump callbacks ----------------------------------------------------- */

/* Kernel GRE tunnel devices: reported by the tunnel module as Tunnels. */
static bool tunnel_kind(const char *kind)
{
	static const char *const kinds[] = {"gre", "gretap", "ip6gre",
					    "ip6gretap"};

	for (size_t i = 0; i < MT_ARRAY_SIZE(kinds); i++)
		if (strcmp(kind, kinds[i]) == 0)
			return true;
	return false;
}

/* True when a is b + MT_GRE_WIRE_SUFFIX. */
static bool wire_name_of(const char *a, const char *b)
{
	size_t n = strlen(b);

	return strncmp(a, b, n) == 0 && strcmp(a + n, MT_GRE_WIRE_SUFFIX) == 0;
}

/* Removes obj, appended earlier in this dump, from st->links. */
static void unreport(Mt__Kernel__KernelState *st, Mt__Kernel__Link *obj)
{
	for (size_t i = st->n_links; i-- > 0;) {
		if (st->links[i] != obj)
			continue;
		memmove(&st->links[i], &st->links[i + 1],
			(st->n_links - i - 1) * sizeof(*st->links));
		st->n_links--;
		protobuf_c_message_free_unpacked(&obj->base, NULL);
		return;
	}
}

/* A BPF tunnel (gre_bpf.h): the veth pair X / X.t inside one customer
 * namespace. Called for each veth whose peer is in the same namespace, in
 * dump order: when e's peer was seen already and the names pair up, both
 * are hidden (the peer's Link object is taken back). Links of this
 * namespace are few and not yet sorted: a linear scan. */
static bool bpf_tunnel_pair(Mt__Kernel__KernelState *st, struct ons *ns,
			    struct lk *e)
{
	for (size_t k = 0; k + 1 < ns->n_links; k++) {
		struct lk *p = &ns->links[k];

		if (p->ifindex != e->link || p->link != e->ifindex ||
		    !p->veth || p->netnsid >= 0)
			continue;
		if (!wire_name_of(e->name, p->name) &&
		    !wire_name_of(p->name, e->name))
			return false;
		if (p->obj)
			unreport(st, p->obj);
		p->obj = NULL;
		p->owner = ns->owner; /* was p->obj's string */
		return true;
	}
	return false;
}

static int link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct cbctx *c = data;
	Mt__Kernel__KernelState *st = c->o->st;
	struct ons *ns = c->ns;
	struct mt_link_meta meta;
	Mt__Kernel__Link *l;
	const char *owner;
	struct lk *e;
	int r;

	if (ns->n_links == ns->cap_links) {
		size_t cap = ns->cap_links ? ns->cap_links * 2 : 8;
		struct lk *g = realloc(ns->links, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		ns->links = g;
		ns->cap_links = cap;
	}
	l = mt_kstate_add_link(st);
	if (!l)
		return -ENOMEM;
	r = mt_link_parse(nlh, l, &meta);
	if (r < 0) {
		POP(st->links, st->n_links);
		return r == -EINVAL ? 0 : r; /* skip a malformed message */
	}
	e = &ns->links[ns->n_links++];
	e->ifindex = meta.ifindex;
	e->link = meta.link;
	e->netnsid = meta.link_netnsid;
	e->veth = strcmp(l->kind, "veth") == 0;
	snprintf(e->name, sizeof(e->name), "%s", l->name);
	e->obj = NULL;
	e->owner = NULL;
	owner = is_metal(ns) ? mt_metal_owner(c->o->m, l->name) : ns->owner;
	if (!owner || !wanted(c->o, owner)) {
		POP(st->links, st->n_links);
		return 0;
	}
	/* Tunnel devices are Tunnels, not Links: reported as Links, the
	 * agent's diff would delete them as unknown links. Their addresses
	 * and the routes through them are still reported. */
	if (!is_metal(ns) &&
	    (tunnel_kind(l->kind) ||
	     (e->veth && e->link && e->netnsid < 0 &&
	      bpf_tunnel_pair(st, ns, e)))) {
		POP(st->links, st->n_links);
		e->owner = ns->owner;
		return 0;
	}
	e->obj = l;
	r = set_common(&l->netns, &l->owner, ns, owner);
	e->owner = l->owner;
	return r;
}

static bool ipv6_link_local(const char *prefix)
{
	struct mt_prefix p;
	char err[64];

	return mt_prefix_parse(prefix, false, &p, err, sizeof(err)) == 0 &&
	       p.family == AF_INET6 && p.addr[0] == 0xfe &&
	       (p.addr[1] & 0xc0) == 0x80;
}

static int addr_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	struct cbctx *c = data;
	Mt__Kernel__KernelState *st = c->o->st;
	struct mt_ifaddr_meta meta;
	Mt__Kernel__Addr *a;
	struct lk *e;
	int r;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifa) ||
	    ifa->ifa_scope != RT_SCOPE_UNIVERSE)
		return 0;
	e = lk_find(c->ns, ifa->ifa_index);
	if (!e || !e->owner)
		return 0;
	a = mt_kstate_add_addr(st);
	if (!a)
		return -ENOMEM;
	r = mt_ifaddr_parse(nlh, a, &meta);
	if (r < 0 || ipv6_link_local(a->prefix)) {
		POP(st->addrs, st->n_addrs);
		return r == -ENOMEM ? r : 0;
	}
	r = mt_kstate_set_str(&a->dev, e->name);
	return r < 0 ? r : set_common(&a->netns, &a->owner, c->ns, e->owner);
}

/* Device names for route parsing: the namespace's link dump. */
static const char *ns_ifname(void *data, uint32_t ifindex)
{
	const struct lk *e = lk_find(data, ifindex);

	return e ? e->name : NULL;
}

static int route_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	struct cbctx *c = data;
	Mt__Kernel__KernelState *st = c->o->st;
	struct mt_route_meta meta;
	Mt__Kernel__Route *rt;
	const char *owner;
	int r;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*rtm) ||
	    rtm->rtm_protocol != MT_RTPROT || (rtm->rtm_flags & RTM_F_CLONED))
		return 0;
	rt = mt_kstate_add_route(st);
	if (!rt)
		return -ENOMEM;
	r = mt_route_parse(nlh, rt, &meta, ns_ifname, c->ns);
	if (r < 0 || (is_metal(c->ns) && rt->table != c->o->m->gre_table)) {
		POP(st->routes, st->n_routes);
		return r == -ENOMEM ? r : 0;
	}
	owner = c->ns->owner;
	if (!owner) {
		/* a multipath route belongs to its first nexthop's owner */
		owner = mt_metal_owner(c->o->m, rt->n_nexthops
						    ? rt->nexthops[0]->dev
						    : rt->dev);
		if (!owner)
			owner = "";
		if (!wanted(c->o, owner)) {
			POP(st->routes, st->n_routes);
			return 0;
		}
	}
	return set_common(&rt->netns, &rt->owner, c->ns, owner);
}

static int rule_cb(const struct nlmsghdr *nlh, void *data)
{
	struct cbctx *c = data;
	Mt__Kernel__KernelState *st = c->o->st;
	Mt__Kernel__Rule tmp = MT__KERNEL__RULE__INIT, *r;
	const struct mt_metal *m = c->o->m;
	struct mt_rule_meta meta;

	if (mt_rule_parse(nlh, &tmp, &meta) < 0 ||
	    (meta.family != AF_INET && meta.family != AF_INET6) ||
	    tmp.priority < m->rule_priority ||
	    tmp.priority >= m->rule_priority + MT_RULE_RANGE)
		return 0;
	for (size_t i = c->ns->rules_from; i < st->n_rules; i++) {
		r = st->rules[i];
		if (r->priority == tmp.priority && r->fwmark == tmp.fwmark &&
		    r->fwmask == tmp.fwmask && r->table == tmp.table) {
			/* the other family's twin */
			r->families |= meta.family == AF_INET ? 1 : 2;
			return 0;
		}
	}
	r = mt_kstate_add_rule(st);
	if (!r)
		return -ENOMEM;
	r->families = meta.family == AF_INET ? 1 : 2;
	r->priority = tmp.priority;
	r->fwmark = tmp.fwmark;
	r->fwmask = tmp.fwmask;
	r->table = tmp.table;
	return set_common(&r->netns, &r->owner, c->ns,
			  c->ns->owner ? c->ns->owner : "");
}

/* ---- phases ------------------------------------------------------------- */

static int build_req(struct obs *o, struct ons *ns, enum phase ph, void *buf,
		     size_t len)
{
	switch (ph) {
	case PH_LINK:
		return mt_link_build_dump(buf, len);
	case PH_ADDR4:
	case PH_ADDR6:
		return mt_ifaddr_build_dump(buf, len, phase_family(ph));
	case PH_ROUTE4:
	case PH_ROUTE6:
		return mt_route_build_dump(buf, len, phase_family(ph), MT_RTPROT,
					   is_metal(ns) ? o->m->gre_table : 0);
	case PH_RULE:
		return mt_rule_build_dump(buf, len);
	}
	return -EINVAL;
}

static const mt_nl_dump_cb phase_cb[] = {
    [PH_LINK] = link_cb,
    [PH_ADDR4] = addr_cb,
    [PH_ADDR6] = addr_cb,
    [PH_ROUTE4] = route_cb,
    [PH_ROUTE6] = route_cb,
    [PH_RULE] = rule_cb,
};

/* The st array a phase appends to. */
static void phase_arr(struct obs *o, enum phase ph, void ***arr, size_t **n)
{
	Mt__Kernel__KernelState *st = o->st;

	*arr = (void **)st->links, *n = &st->n_links;
	switch (ph) {
	case PH_LINK:
		*arr = (void **)st->links, *n = &st->n_links;
		break;
	case PH_ADDR4:
	case PH_ADDR6:
		*arr = (void **)st->addrs, *n = &st->n_addrs;
		break;
	case PH_ROUTE4:
	case PH_ROUTE6:
		*arr = (void **)st->routes, *n = &st->n_routes;
		break;
	case PH_RULE:
		*arr = (void **)st->rules, *n = &st->n_rules;
		break;
	}
}

static size_t phase_count(struct obs *o, enum phase ph)
{
	void **arr;
	size_t *n;

	phase_arr(o, ph, &arr, &n);
	return *n;
}

static void phase_reset(struct obs *o, struct ons *ns, enum phase ph,
			size_t mark)
{
	void **arr;
	size_t *n;

	phase_arr(o, ph, &arr, &n);
	truncate_to(arr, n, mark);
	if (ph == PH_LINK)
		ns->n_links = 0;
}

/* ---- the metal, per owner (scoped observe) ------------------------------ */

static bool by_owner(const struct obs *o, const struct ons *ns, enum phase ph)
{
	return o->metal_by_owner && is_metal(ns) && ph != PH_RULE;
}

static int link_get_build(void *buf, size_t len, const char *name)
{
	struct ifinfomsg *ifi;
	struct mt_nlb b;

	ifi = mt_nlb_start(&b, buf, len, RTM_GETLINK, 0, sizeof(*ifi));
	if (ifi)
		ifi->ifi_family = AF_UNSPEC;
	mt_nlb_str(&b, IFLA_IFNAME, name);
	mt_nlb_u32(&b, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	return mt_nlb_end(&b);
}

/* An address dump the kernel filters by link (strict checking). */
static int addr_dump_build(void *buf, size_t len, uint8_t family,
			   uint32_t ifindex)
{
	struct ifaddrmsg *ifa;
	struct mt_nlb b;

	ifa = mt_nlb_start(&b, buf, len, RTM_GETADDR, 0, sizeof(*ifa));
	if (ifa) {
		ifa->ifa_family = family;
		ifa->ifa_index = ifindex;
	}
	return mt_nlb_end(&b);
}

/* A route dump the kernel filters by table, protocol and output link. */
static int route_dump_build(void *buf, size_t len, uint8_t family,
			    uint32_t table, uint32_t oif)
{
	struct mt_nlb b;
	struct rtmsg *rtm;

	rtm = mt_nlb_start(&b, buf, len, RTM_GETROUTE, 0, sizeof(*rtm));
	if (rtm) {
		rtm->rtm_family = family;
		rtm->rtm_protocol = MT_RTPROT;
	}
	mt_nlb_u32(&b, RTA_TABLE, table);
	mt_nlb_u32(&b, RTA_OIF, oif);
	return mt_nlb_end(&b);
}

static bool owner_dup(const struct obs *o, size_t i)
{
	for (size_t k = 0; k < i; k++)
		if (strcmp(o->owners[k], o->owners[i]) == 0)
			return true;
	return false;
}

/* One phase of the metal for the owners only: each owner's veth by name,
 * then addresses and gre_table routes per found link. A link deleted in
 * between (-ENODEV) has none. -EAGAIN (an interrupted dump) makes the
 * caller redo the phase. */
static int metal_by_owner(struct obs *o, struct ons *ns, enum phase ph)
{
	struct cbctx c = {.o = o, .ns = ns};
	char req[256];
	int r = 0;

	if (ph == PH_LINK) {
		for (size_t i = 0; r == 0 && i < o->n_owners; i++) {
			char name[IFNAMSIZ];

			if (!*o->owners[i] || owner_dup(o, i) ||
			    mt_metal_ifname(o->m, o->owners[i], name,
					    sizeof(name)) < 0)
				continue;
			r = link_get_build(req, sizeof(req), name);
			if (r >= 0)
				r = mt_nl_get(ns->h->nl, (void *)req, o->rbuf,
					      MT_NL_DUMP_BUF, link_cb, &c);
			if (r == -ENODEV)
				r = 0;
		}
		return r;
	}
	for (size_t k = 0; r == 0 && k < ns->n_links; k++) {
		uint32_t ifindex = ns->links[k].ifindex;

		if (!ns->links[k].obj)
			continue;
		r = is_addr(ph)
			? addr_dump_build(req, sizeof(req), phase_family(ph),
					  ifindex)
			: route_dump_build(req, sizeof(req), phase_family(ph),
					   o->m->gre_table, ifindex);
		if (r >= 0)
			r = mt_nl_dump(ns->h->nl, (void *)req, o->rbuf,
				       MT_NL_DUMP_BUF, phase_cb[ph], &c);
		if (r == -ENODEV || r == -ENOENT) /* link or table gone */
			r = 0;
	}
	return r;
}

static int dump_start(struct obs *o, struct ons *ns, enum phase ph)
{
	char req[256];
	int r;

	if (by_owner(o, ns, ph) || ns->mirror == MT_MIRROR_REPLAY)
		return 0; /* all of it in dump_finish */
	r = build_req(o, ns, ph, req, sizeof(req));

	return r < 0 ? r : mt_nl_dump_start(ns->h->nl, (void *)req);
}

static int dump_finish_raw(struct obs *o, struct ons *ns, enum phase ph);

/* A route dump filtered by a table that does not exist (yet) in that family
 * answers ENOENT when asked per family (AF_UNSPEC ones say nothing): no
 * routes. */
static int dump_finish(struct obs *o, struct ons *ns, enum phase ph)
{
	int r = dump_finish_raw(o, ns, ph);

	return r == -ENOENT && (ph == PH_ROUTE4 || ph == PH_ROUTE6) ? 0 : r;
}

static int dump_finish_raw(struct obs *o, struct ons *ns, enum phase ph)
{
	struct cbctx c = {.o = o, .ns = ns};

	if (ph == PH_RULE)
		ns->rules_from = o->st->n_rules;
	if (by_owner(o, ns, ph))
		return metal_by_owner(o, ns, ph);
	/* The kernel sizes each dump skb to the largest read seen on the
	 * socket (up to 32 KiB, an order-3 allocation). Namespaces hold a
	 * handful of objects: small reads keep their dumps cheap. */
	return mt_dump_mirror_finish(ns->h->mirror, ns->mirror, ph, ns->h->nl,
				     o->rbuf,
				     is_metal(ns) ? MT_NL_DUMP_BUF : 8192,
				     phase_cb[ph], &c);
}

/* Decides, for each namespace of o, whether its dumps are replayed from its
 * mirror (nothing happened in it since), recorded, or neither. */
static void mirrors_begin(struct obs *o)
{
	struct mt_rtnl *ctx = o->ctx;

	for (size_t i = 0; i < o->n; i++) {
		struct ons *ns = &o->v[i];
		struct mt_nsh *h = ns->h;

		ns->failed = false;
		/* the scoped metal is read per owner: its mirror stays */
		ns->mirror = is_metal(ns) && o->metal_by_owner
				 ? MT_MIRROR_NONE
				 : mt_dump_mirror_begin(&h->mirror, ctx->ns_gen,
							ctx->ns_gen_data,
							h->name, h->dev, h->ino,
							o->fresh, &ns->gen);
	}
}

/* Seals the recordings of the namespaces whose dumps all succeeded (none
 * when the slice failed: ok false). */
static void mirrors_end(struct obs *o, bool ok)
{
	for (size_t i = 0; i < o->n; i++) {
		struct ons *ns = &o->v[i];

		mt_dump_mirror_end(ns->h->mirror, ns->mirror, ok && !ns->failed,
				   ns->h->dev, ns->h->ino, ns->gen);
	}
}

/* Runs one dump kind over every namespace: all requests go out first, then
 * the replies are read, so the kernel fills every socket's first reply
 * while we are still sending. An interrupted dump is repeated alone. */
static int run_phase(struct obs *o, enum phase ph)
{
	_cleanup_free_ int *started = calloc(o->n ? o->n : 1, sizeof(int));
	int err = 0;

	if (!started)
		return -ENOMEM;
	for (size_t i = 0; i < o->n; i++)
		started[i] = dump_start(o, &o->v[i], ph);
	for (size_t i = 0; i < o->n; i++) {
		struct ons *ns = &o->v[i];
		size_t mark = phase_count(o, ph);
		int r = started[i], tries = 0;

		if (r == 0)
			r = dump_finish(o, ns, ph);
		while ((r == -EAGAIN || started[i] < 0) &&
		       tries++ < DUMP_TRIES) {
			phase_reset(o, ns, ph, mark);
			started[i] = 0;
			r = dump_start(o, ns, ph);
			if (r == 0)
				r = dump_finish(o, ns, ph);
		}
		if (r < 0) {
			ns->failed = true;
			mt_err("observe: dump of netns %s failed: %s",
			       *ns->h->name ? ns->h->name : "metal",
			       strerror(-r));
			if (r != -ENOMEM && r != -EAGAIN)
				mt_rtnl_ns_reopen(o->ctx, ns->h);
			if (!err)
				err = r;
		}
	}
	if (ph == PH_LINK)
		for (size_t i = 0; i < o->n; i++)
			qsort(o->v[i].links, o->v[i].n_links, sizeof(struct lk),
			      lk_cmp);
	return err;
}

/* ---- veth peers --------------------------------------------------------- */

static int ons_name_cmp(const void *a, const void *b)
{
	const struct ons *x = a, *y = b;

	return strcmp(x->h->name, y->h->name);
}

static struct ons *ons_find(struct obs *o, const char *name)
{
	struct mt_nsh h = {.name = (char *)name};
	struct ons key = {.h = &h};

	if (o->n < 2)
		return NULL;
	return bsearch(&key, o->v + 1, o->n - 1, sizeof(key), ons_name_cmp);
}

static int set_peer(Mt__Kernel__Link *l, const char *netns, const char *name)
{
	int r = mt_kstate_set_str(&l->peer_netns, netns);

	return r < 0 ? r : mt_kstate_set_str(&l->peer_name, name);
}

/* A veth's peer, where mt puts it: the metal end mt0-x pairs with a link in
 * namespace mt0-x, the customer end with the metal link named like its
 * namespace. Both ends must point at each other (IFLA_LINK). */
static int find_peers(struct obs *o)
{
	for (size_t i = 0; i < o->n; i++) {
		struct ons *ns = &o->v[i];

		for (size_t k = 0; k < ns->n_links; k++) {
			struct lk *e = &ns->links[k], *p;
			struct ons *other;
			int r;

			if (!e->obj || !e->veth || !e->link)
				continue;
			if (e->netnsid < 0) { /* both ends here */
				p = lk_find(ns, e->link);
				if (p && p->link == e->ifindex &&
				    (r = set_peer(e->obj, ns->h->name,
						  p->name)) < 0)
					return r;
				continue;
			}
			other = is_metal(ns) ? ons_find(o, e->name) : &o->v[0];
			if (!other)
				continue;
			p = lk_find(other, e->link);
			if (!p || !p->veth || p->link != e->ifindex ||
			    p->netnsid < 0)
				continue;
			if (!is_metal(ns) && strcmp(p->name, ns->h->name) != 0)
				continue;
			r = set_peer(e->obj, other->h->name, p->name);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

/* ---- sysctls ------------------------------------------------------------ */

static int add_sysctl(struct obs *o, struct ons *ns, const char *key,
		      const char *owner)
{
	char val[MT_SYSCTL_VALUE_MAX];
	Mt__Kernel__Sysctl *s;
	int r = mt_sysctl_read(o->ctx, ns->h, key, val, sizeof(val));

	if (r == -ENOENT)
		return 0;
	if (r < 0) {
		mt_err("observe: cannot read /proc/sys/%s in netns %s: %s", key,
		       *ns->h->name ? ns->h->name : "metal", strerror(-r));
		return r;
	}
	s = mt_kstate_add_sysctl(o->st);
	if (!s)
		return -ENOMEM;
	if ((r = mt_kstate_set_str(&s->key, key)) < 0 ||
	    (r = mt_kstate_set_str(&s->value, val)) < 0)
		return r;
	return set_common(&s->netns, &s->owner, ns, owner);
}

static const char *const cust_keys[] = {
    "net/ipv4/ip_forward",
    "net/ipv4/fib_multipath_hash_policy",
    "net/ipv4/conf/all/rp_filter",
    "net/ipv4/conf/default/rp_filter",
    "net/ipv4/conf/" MT_CUST_VETH "/rp_filter",
};

static int metal_sysctls(struct obs *o, struct ons *metal)
{
	int r = add_sysctl(o, metal, "net/ipv4/ip_forward", "");

	for (size_t k = 0; r == 0 && k < metal->n_links; k++) {
		char key[64];

		if (!metal->links[k].obj)
			continue;
		snprintf(key, sizeof(key), "net/ipv4/conf/%s/rp_filter",
			 metal->links[k].name);
		r = add_sysctl(o, metal, key, metal->links[k].obj->owner);
	}
	return r;
}

static int observe_sysctls(struct obs *o)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < o->n; i++) {
		struct ons *ns = &o->v[i];

		if (is_metal(ns)) {
			r = metal_sysctls(o, ns);
			continue;
		}
		r = mt_sysctl_open_many(o->ctx, ns->h, cust_keys,
					MT_ARRAY_SIZE(cust_keys));
		for (size_t k = 0; r == 0 && k < MT_ARRAY_SIZE(cust_keys); k++)
			r = add_sysctl(o, ns, cust_keys[k], ns->owner);
	}
	return r;
}

/* ---- namespaces --------------------------------------------------------- */

static void unmark(struct mt_rtnl *ctx, struct mt_nsh *h, void *data)
{
	h->seen = false;
}

static void sweep(struct mt_rtnl *ctx, struct mt_nsh *h, void *data)
{
	if (!h->seen)
		mt_rtnl_ns_drop(ctx, h->name);
}

/* Lists the owned namespaces, refreshes the handle cache (drops handles of
 * namespaces that are gone or were replaced), and fills o->v. */
/* Scoped to a few owners: their namespaces looked up by name (a stat
 * each) instead of listing /run/netns, which costs a stat per namespace on
 * the metal (1000 customers: ~1 ms). Absent ones are skipped. */
#define SCOPED_LOOKUP_MAX 64

static int scoped_entries(struct obs *o, struct mt_netns_entry **out,
			  size_t *n)
{
	struct mt_netns_entry *ents = calloc(o->n_owners + 1, sizeof(*ents));

	if (!ents)
		return -ENOMEM;
	*n = 0;
	for (size_t i = 0; i < o->n_owners; i++) {
		struct mt_netns_entry *e = &ents[*n];
		bool dup = false;

		for (size_t k = 0; k < i; k++)
			dup |= strcmp(o->owners[k], o->owners[i]) == 0;
		if (dup || !*o->owners[i] ||
		    mt_metal_ifname(o->m, o->owners[i], e->name,
				    sizeof(e->name)) < 0)
			continue;
		if (mt_netns_stat(e->name, &e->dev, &e->ino) == 0)
			(*n)++;
	}
	*out = ents;
	return 0;
}

static int collect_namespaces(struct obs *o)
{
	_cleanup_free_ struct mt_netns_entry *ents = NULL;
	bool scoped = o->n_owners && o->n_owners <= SCOPED_LOOKUP_MAX;
	size_t n = 0;
	int r;

	r = scoped ? scoped_entries(o, &ents, &n)
		   : mt_netns_list(o->m->prefix, &ents, &n);
	if (r < 0)
		return r;
	o->v = calloc(n + 1, sizeof(*o->v));
	if (!o->v)
		return -ENOMEM;
	o->v[0].h = o->ctx->metal_ns;
	o->n = 1;
	/* only a complete listing tells which cached handles are gone */
	if (!scoped)
		mt_rtnl_ns_foreach(o->ctx, unmark, NULL);
	for (size_t i = 0; i < n; i++) {
		const char *owner = mt_metal_owner(o->m, ents[i].name);
		struct mt_nsh *h = mt_rtnl_ns_find(o->ctx, ents[i].name);
		Mt__Kernel__Netns *pb;

		if (h && (h->dev != ents[i].dev || h->ino != ents[i].ino)) {
			mt_rtnl_ns_drop(o->ctx, ents[i].name); /* replaced */
			h = NULL;
		}
		if (h)
			h->seen = true;
		if (!owner || !wanted(o, owner))
			continue;
		r = mt_rtnl_ns_get(o->ctx, ents[i].name, &h);
		if (r == -ENOENT)
			continue; /* deleted since the listing */
		if (r < 0) {
			mt_err("observe: cannot open netns %s: %s",
			       ents[i].name, strerror(-r));
			return r;
		}
		h->seen = true;
		o->v[o->n].h = h;
		/* in h->name: ents is freed on return */
		o->v[o->n].owner = mt_metal_owner(o->m, h->name);
		o->n++;
		pb = mt_kstate_add_netns(o->st);
		if (!pb)
			return -ENOMEM;
		if ((r = mt_kstate_set_str(&pb->name, ents[i].name)) < 0 ||
		    (r = mt_kstate_set_str(&pb->owner, owner)) < 0)
			return r;
	}
	if (!scoped)
		mt_rtnl_ns_foreach(o->ctx, sweep, NULL);
	qsort(o->v + 1, o->n - 1, sizeof(*o->v), ons_name_cmp);
	return 0;
}

/* ---- workers ------------------------------------------------------------ */

/* Below this many namespaces one thread is faster than starting others. */
#define PARALLEL_MIN 64
#define WORKERS_MAX 4

struct worker {
	struct obs o; /* a slice of the namespaces, its own state */
	pthread_t thread;
	bool started;
	int err;
};

static const enum phase phases[] = {PH_LINK,   PH_ADDR4, PH_ADDR6,
				    PH_ROUTE4, PH_ROUTE6, PH_RULE};

/* Everything but peer matching, for the namespaces of o. Safe to run on
 * several threads over disjoint slices: each handle (socket, sysctl files)
 * belongs to one slice, and a thread that enters a namespace to open a
 * sysctl file returns to the metal, where it was started. */
static int observe_slice(struct obs *o)
{
	int r = 0;

	mirrors_begin(o);
	for (size_t p = 0; r == 0 && p < MT_ARRAY_SIZE(phases); p++)
		r = run_phase(o, phases[p]);
	mirrors_end(o, r == 0);
	return r == 0 ? observe_sysctls(o) : r;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	w->err = observe_slice(&w->o);
	return NULL;
}

/* Moves the objects of from's repeated field to the end of into's, keeping
 * mt_kstate's invariant that capacity >= the next power of two. */
static int move_all(void ***into, size_t *n_into, void ***from, size_t *n_from)
{
	size_t total = *n_into + *n_from, cap = 4;
	void **g;

	if (!*n_from)
		return 0;
	while (cap < total)
		cap *= 2;
	g = realloc(*into, cap * sizeof(*g));
	if (!g)
		return -ENOMEM;
	memcpy(g + *n_into, *from, *n_from * sizeof(*g));
	*into = g;
	*n_into = total;
	*n_from = 0;
	return 0;
}

#define MOVE(st, w, field)                                 \
	move_all((void ***)&(st)->field, &(st)->n_##field, \
		 (void ***)&(w)->field, &(w)->n_##field)

static int merge(Mt__Kernel__KernelState *st, Mt__Kernel__KernelState *w)
{
	int r = MOVE(st, w, links);

	if (r == 0)
		r = MOVE(st, w, addrs);
	if (r == 0)
		r = MOVE(st, w, routes);
	if (r == 0)
		r = MOVE(st, w, rules);
	if (r == 0)
		r = MOVE(st, w, sysctls);
	return r;
}

/* Splits o's namespaces over up to WORKERS_MAX threads (one per CPU), each
 * dumping its slice into a state of its own; merges them into o->st. */
static int observe_parallel(struct obs *o)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t nw = cpus > 1 ? (size_t)cpus : 1, per, at = 0;
	struct worker w[WORKERS_MAX];
	int r = 0;

	if (nw > WORKERS_MAX)
		nw = WORKERS_MAX;
	if (o->n < PARALLEL_MIN || nw == 1)
		return observe_slice(o);
	per = (o->n + nw - 1) / nw;
	memset(w, 0, sizeof(w));
	for (size_t k = 0; k < nw; k++) {
		w[k].o = *o;
		w[k].o.v = o->v + at;
		w[k].o.n = at + per <= o->n ? per : o->n - at;
		at += w[k].o.n;
		w[k].o.st = k ? mt_kstate_new() : o->st;
		w[k].o.rbuf = k ? malloc(MT_NL_DUMP_BUF) : o->rbuf;
		if (!w[k].o.st || !w[k].o.rbuf)
			w[k].err = -ENOMEM;
		else if (k)
			w[k].err = -pthread_create(&w[k].thread, NULL,
						   worker_main, &w[k]);
		w[k].started = k && w[k].err == 0;
	}
	w[0].err = observe_slice(&w[0].o);
	for (size_t k = 1; k < nw; k++) {
		if (w[k].started)
			pthread_join(w[k].thread, NULL);
		if (!r && w[k].err)
			r = w[k].err;
		if (!r && w[k].o.st)
			r = merge(o->st, w[k].o.st);
		mt_kstate_free(w[k].o.st);
		free(w[k].o.rbuf);
	}
	return w[0].err ? w[0].err : r;
}

int mt_rtnl_observe(struct mt_rtnl *ctx, const char *const *owners,
		    size_t n_owners, bool fresh, Mt__Kernel__KernelState *st)
{
	struct obs o = {
	    .ctx = ctx,
	    .m = ctx->metal,
	    .st = st,
	    .owners = owners,
	    .n_owners = n_owners,
	    .rbuf = ctx->rbuf,
	    /* Many owners: one dump of each kind is cheaper than per-owner
	     * requests (each route dump walks the whole table). */
	    .metal_by_owner = n_owners > 0 && n_owners <= BY_OWNER_MAX,
	    .fresh = fresh,
	};
	int r;

	r = collect_namespaces(&o);
	if (r == 0)
		r = observe_parallel(&o);
	if (r == 0)
		r = find_peers(&o);
	for (size_t i = 0; i < o.n; i++)
		free(o.v[i].links);
	free(o.v);
	return r;
}
