#include "rtnl_apply.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "addr.h"
#include "link.h"
#include "mt_cleanup.h"
#include "mt_kstate.h"
#include "netns.h"
#include "netns_maker.h"
#include "route.h"
#include "rule.h"
#include "sysctl.h"

/* ---- ownership ---------------------------------------------------------- */

static int refuse(char *why, size_t len, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int refuse(char *why, size_t len, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return err;
}

static int check_netns(const struct mt_metal *m, const char *name, char *why,
		       size_t len)
{
	if (!mt_metal_owner(m, name))
		return refuse(
		    why, len, -EPERM,
		    "refused: netns \"%s\" does not carry mt's prefix \"%s\"",
		    name, m->prefix);
	if (!mt_netns_name_valid(name))
		return refuse(
		    why, len, -EINVAL,
		    "netns name \"%s\" is not a valid /run/netns name", name);
	return 0;
}

static bool owned_ifname(const struct mt_metal *m, const char *name)
{
	return strlen(name) < IFNAMSIZ && mt_metal_owner(m, name);
}

/* ip_forward, all/forwarding, and per-interface keys of owned links. */
static bool metal_sysctl_owned(const struct mt_metal *m, const char *key)
{
	static const char *const per_if[] = {"net/ipv4/conf/",
					     "net/ipv6/conf/"};

	if (strcmp(key, "net/ipv4/ip_forward") == 0 ||
	    strcmp(key, "net/ipv6/conf/all/forwarding") == 0)
		return true;
	for (size_t i = 0; i < MT_ARRAY_SIZE(per_if); i++) {
		size_t n = strlen(per_if[i]);
		const char *dev = key + n, *slash;
		char ifname[IFNAMSIZ];

		if (strncmp(key, per_if[i], n) != 0)
			continue;
		slash = strchr(dev, '/');
		if (!slash || slash == dev || !slash[1] ||
		    strchr(slash + 1, '/') ||
		    (size_t)(slash - dev) >= sizeof(ifname))
			return false;
		memcpy(ifname, dev, (size_t)(slash - dev));
		ifname[slash - dev] = '\0';
		return owned_ifname(m, ifname);
	}
	return false;
}

static int check_link(const struct mt_metal *m, const Mt__Kernel__Link *l,
		      char *why, size_t len)
{
	bool veth = strcmp(l->kind, "veth") == 0;
	int r;

	if (!*l->netns && !owned_ifname(m, l->name))
		return refuse(why, len, -EPERM,
			      "refused: link \"%s\" in the metal does not "
			      "carry mt's prefix \"%s\"",
			      l->name, m->prefix);
	if (!veth)
		return 0;
	if (*l->peer_netns) {
		r = check_netns(m, l->peer_netns, why, len);
		if (r < 0)
			return r;
	} else if (!owned_ifname(m, l->peer_name)) {
		return refuse(why, len, -EPERM,
			      "refused: veth peer \"%s\" in the metal does not "
			      "carry mt's prefix \"%s\"",
			      l->peer_name, m->prefix);
	}
	return 0;
}

int mt_rtnl_check_op(const struct mt_metal *m, const Mt__Kernel__Op *op,
		     char *why, size_t len)
{
	const char *ns;
	int r;

	switch (op->object_case) {
	case MT__KERNEL__OP__OBJECT_NETNS:
		return check_netns(m, op->netns->name, why, len);
	case MT__KERNEL__OP__OBJECT_LINK:
		ns = op->link->netns;
		break;
	case MT__KERNEL__OP__OBJECT_ADDR:
		ns = op->addr->netns;
		break;
	case MT__KERNEL__OP__OBJECT_ROUTE:
		ns = op->route->netns;
		break;
	case MT__KERNEL__OP__OBJECT_RULE:
		ns = op->rule->netns;
		break;
	case MT__KERNEL__OP__OBJECT_SYSCTL:
		ns = op->sysctl->netns;
		if (!mt_sysctl_key_valid(op->sysctl->key))
			return refuse(why, len, -EINVAL,
				      "sysctl key \"%s\" must be [a-z0-9_./-] "
				      "without \"..\"",
				      op->sysctl->key);
		break;
	default:
		return refuse(why, len, -EINVAL, "not a rtnetlink object");
	}
	if (*ns) {
		r = check_netns(m, ns, why, len);
		if (r < 0)
			return r;
	}
	switch (op->object_case) {
	case MT__KERNEL__OP__OBJECT_LINK:
		return check_link(m, op->link, why, len);
	case MT__KERNEL__OP__OBJECT_ADDR:
		if (!*ns && !owned_ifname(m, op->addr->dev))
			return refuse(why, len, -EPERM,
				      "refused: address on link \"%s\" in the "
				      "metal, which mt does not own",
				      op->addr->dev);
		return 0;
	case MT__KERNEL__OP__OBJECT_ROUTE:
		if (!*ns && op->route->table != m->gre_table)
			return refuse(why, len, -EPERM,
				      "refused: route in metal table %u; mt "
				      "only owns table %u",
				      op->route->table, m->gre_table);
		return mt_route_check(op->route,
				      op->action != MT__KERNEL__OP__ACTION__DELETE,
				      why, len);
	case MT__KERNEL__OP__OBJECT_RULE:
		if (!*ns &&
		    (op->rule->priority < m->rule_priority ||
		     op->rule->priority >= m->rule_priority + MT_RULE_RANGE))
			return refuse(why, len, -EPERM,
				      "refused: rule priority %u in the metal "
				      "is outside mt's range %u-%u",
				      op->rule->priority, m->rule_priority,
				      m->rule_priority + MT_RULE_RANGE - 1);
		return 0;
	case MT__KERNEL__OP__OBJECT_SYSCTL:
		if (!*ns && !metal_sysctl_owned(m, op->sysctl->key))
			return refuse(why, len, -EPERM,
				      "refused: metal sysctl \"%s\" is not one "
				      "mt manages",
				      op->sysctl->key);
		return 0;
	default:
		return 0;
	}
}

/* ---- apply -------------------------------------------------------------- */

#define FOLLOWUP 0x80000000u /* cookie flag: a veth's re-applied settings */
#define IFC_SLOTS 8	     /* device name -> ifindex cache entries */

struct op_state {
	bool handled;
	bool followup; /* veth existed: re-apply up/MTU after the flush */
	int err;
	char why[256];	/* our reason, or "" for strerror */
	char kmsg[256]; /* the kernel's extended ACK text */
};

struct apply {
	struct mt_rtnl *ctx;
	Mt__Kernel__Op **ops;
	struct op_state *st;
	struct mt_nsh *batch_ns; /* namespace of the messages in ctx->batch */
	struct mt_nl_batch *fb;	 /* follow-up messages, outside the batch */
	size_t *fu;		 /* ops waiting for a follow-up */
	size_t n_fu, cap_fu;
	uint64_t writes;
	/* recently resolved devices of ifc_ns: routes come in runs through
	 * one device, or one set of nexthop devices (a customer's tunnels) */
	struct mt_nsh *ifc_ns;
	struct {
		char name[IFNAMSIZ];
		int index;
	} ifc[IFC_SLOTS];
	unsigned ifc_next; /* the slot to fill next, round robin */
	struct mt_nsh *checked; /* the handle revalidate() saw current last */
	/* a run of namespace creations in progress on another thread */
	struct mt_netns_maker *maker;
	const char **maker_names;
	size_t *maker_ops; /* their op indices */
	int *maker_res;	   /* their results */
	size_t n_maker;
};

static void op_fail(struct apply *a, size_t i, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void op_fail(struct apply *a, size_t i, int err, const char *fmt, ...)
{
	struct op_state *s = &a->st[i];
	va_list ap;

	if (s->err)
		return; /* keep the first error */
	s->err = err;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(s->why, sizeof(s->why), fmt, ap);
		va_end(ap);
	}
}

static bool benign(const Mt__Kernel__Op *op, int err)
{
	if (op->object_case == MT__KERNEL__OP__OBJECT_RULE &&
	    err == -EAFNOSUPPORT)
		return true; /* a kernel without IPv6 */
	if (op->action == MT__KERNEL__OP__ACTION__DELETE)
		return err == -ENOENT || err == -ESRCH ||
		       err == -EADDRNOTAVAIL || err == -ENODEV;
	switch (op->object_case) {
	case MT__KERNEL__OP__OBJECT_LINK:
		return err == -EEXIST && strcmp(op->link->kind, "veth") == 0;
	case MT__KERNEL__OP__OBJECT_RULE:
		return err == -EEXIST;
	default:
		return false;
	}
}

static int fu_push(struct apply *a, size_t i)
{
	if (a->n_fu == a->cap_fu) {
		size_t cap = a->cap_fu ? a->cap_fu * 2 : 8;
		size_t *g = realloc(a->fu, cap * sizeof(*g));

		if (!g)
			return -ENOMEM;
		a->fu = g;
		a->cap_fu = cap;
	}
	a->fu[a->n_fu++] = i;
	return 0;
}

static void on_ack(void *data, uint32_t cookie, int err, const char *kmsg)
{
	struct apply *a = data;
	size_t i = cookie & ~FOLLOWUP;
	const Mt__Kernel__Op *op = a->ops[i];

	if (err == 0)
		return;
	if (!(cookie & FOLLOWUP) && benign(op, err)) {
		if (op->object_case == MT__KERNEL__OP__OBJECT_LINK &&
		    op->action == MT__KERNEL__OP__ACTION__CREATE &&
		    err == -EEXIST && !a->st[i].followup) {
			a->st[i].followup = true;
			if (fu_push(a, i) < 0)
				op_fail(a, i, -ENOMEM, NULL);
		}
		return;
	}
	if (!a->st[i].err && kmsg)
		snprintf(a->st[i].kmsg, sizeof(a->st[i].kmsg), "%s", kmsg);
	op_fail(a, i, err, NULL);
}

/* Sends one follow-up message built by build_set on ns's socket. */
static void followup_send(struct apply *a, size_t i, struct mt_nsh *ns,
			  const char *name, const Mt__Kernel__Link *l)
{
	size_t room;
	void *buf = mt_nl_batch_current(a->fb, &room);
	int r = mt_link_build_set(buf, room, name, l->up, l->mtu);

	if (r < 0) {
		op_fail(a, i, r, "cannot build the settings of %s", name);
		return;
	}
	mt_nl_batch_add(a->fb, FOLLOWUP | (uint32_t)i);
	a->writes += (uint64_t)mt_nl_batch_flush(a->fb, ns->nl, on_ack, a);
}

/* A veth that already existed: make its up/MTU settings hold on both ends
 * (RTM_NEWLINK without CREATE on each existing device). */
static void run_followups(struct apply *a)
{
	for (size_t k = 0; k < a->n_fu; k++) {
		size_t i = a->fu[k];
		const Mt__Kernel__Link *l = a->ops[i]->link;
		struct mt_nsh *ns, *peer;
		int r;

		if (!a->fb && (r = mt_nl_batch_new(&a->fb)) < 0) {
			op_fail(a, i, r, NULL);
			continue;
		}
		r = mt_rtnl_ns_get(a->ctx, l->netns, &ns);
		if (r == 0)
			followup_send(a, i, ns, l->name, l);
		r = mt_rtnl_ns_get(a->ctx, l->peer_netns, &peer);
		if (r < 0) {
			op_fail(a, i, r,
				"veth exists but its peer netns %s cannot be "
				"opened",
				l->peer_netns);
			continue;
		}
		followup_send(a, i, peer, l->peer_name, l);
		if (a->st[i].err == -ENODEV)
			snprintf(
			    a->st[i].why, sizeof(a->st[i].why),
			    "veth %s exists but its peer %s is not in netns %s",
			    l->name, l->peer_name,
			    *l->peer_netns ? l->peer_netns : "metal");
	}
	a->n_fu = 0;
}

static void flush(struct apply *a)
{
	struct mt_nl_batch *b = a->ctx->batch;

	if (a->batch_ns && mt_nl_batch_count(b))
		a->writes +=
		    (uint64_t)mt_nl_batch_flush(b, a->batch_ns->nl, on_ack, a);
	if (mt_nl_batch_count(b) == 0)
		a->batch_ns = NULL;
	run_followups(a);
}

/* Where to build the next message for ns; flushes another namespace's
 * batch first. */
static void *msg_room(struct apply *a, struct mt_nsh *ns, size_t *room)
{
	if (a->batch_ns != ns) {
		flush(a);
		a->batch_ns = ns;
	}
	return mt_nl_batch_current(a->ctx->batch, room);
}

static void msg_add(struct apply *a, size_t cookie)
{
	if (mt_nl_batch_add(a->ctx->batch, (uint32_t)cookie))
		flush(a);
}

/* Drops the cached handle of name when /run/netns/NAME no longer is that
 * namespace (deleted or replaced behind mt's back): its socket would
 * still work, on a namespace nobody can see. Checked once per namespace
 * switch, not per op. */
static void revalidate(struct apply *a, const char *name)
{
	struct mt_nsh *h = mt_rtnl_ns_find(a->ctx, name);
	dev_t dev;
	ino_t ino;

	if (!h || h == a->checked)
		return;
	if (mt_netns_stat(name, &dev, &ino) == 0 && dev == h->dev &&
	    ino == h->ino) {
		a->checked = h;
		return;
	}
	if (a->batch_ns == h)
		flush(a);
	if (a->ifc_ns == h)
		a->ifc_ns = NULL;
	mt_rtnl_ns_drop(a->ctx, name);
}

static int get_ns(struct apply *a, size_t i, const char *name,
		  struct mt_nsh **out)
{
	int r;

	if (a->maker && *name)
		mt_netns_maker_wait(a->maker, name);
	if (*name)
		revalidate(a, name);
	r = mt_rtnl_ns_get(a->ctx, name, out);

	if (r == -ENOENT)
		op_fail(a, i, r, "netns %s does not exist", name);
	else if (r < 0)
		op_fail(a, i, r, "cannot open netns %s: %s", name,
			strerror(-r));
	return r;
}

/* The ifindex of dev in ns (0 for ""). A device missing now may be created
 * by a message still waiting in the batch: flush and look again. */
static int resolve_dev(struct apply *a, struct mt_nsh *ns, const char *dev)
{
	int r;

	if (!*dev)
		return 0;
	if (a->ifc_ns == ns)
		for (size_t k = 0; k < IFC_SLOTS; k++)
			if (a->ifc[k].index > 0 &&
			    strcmp(a->ifc[k].name, dev) == 0)
				return a->ifc[k].index;
	r = mt_link_ifindex(ns->nl, dev);
	if (r == -ENODEV && a->batch_ns == ns &&
	    mt_nl_batch_count(a->ctx->batch)) {
		flush(a);
		r = mt_link_ifindex(ns->nl, dev);
	}
	if (r > 0) {
		size_t k;

		if (a->ifc_ns != ns) {
			memset(a->ifc, 0, sizeof(a->ifc));
			a->ifc_ns = ns;
			a->ifc_next = 0;
		}
		k = a->ifc_next++ % IFC_SLOTS;
		snprintf(a->ifc[k].name, sizeof(a->ifc[k].name), "%s", dev);
		a->ifc[k].index = r;
	}
	return r;
}

static void maker_free_arrays(struct apply *a)
{
	free(a->maker_names);
	free(a->maker_ops);
	free(a->maker_res);
	a->maker_names = NULL;
	a->maker_ops = NULL;
	a->maker_res = NULL;
	a->n_maker = 0;
}

/* Collects the results of the namespace creations run by the maker. */
static void maker_finish(struct apply *a)
{
	const int *res = a->maker_res;

	if (!a->maker)
		return;
	mt_netns_maker_finish(a->maker, a->maker_res);
	a->maker = NULL;
	for (size_t k = 0; k < a->n_maker; k++) {
		if (res[k] < 0)
			op_fail(a, a->maker_ops[k], res[k], "%s",
				strerror(-res[k]));
		else
			a->writes += (uint64_t)res[k];
	}
	maker_free_arrays(a);
}

/* At op i, the first of a run of namespace creations: hands the run (the
 * ops of it that pass their checks) to a maker thread and returns the
 * index of the op after the run, or i when the run is done here, one by
 * one (short, or no thread). */
#define MAKER_MIN 8
static size_t maker_start(struct apply *a, size_t i, size_t n)
{
	size_t j = i, k = 0;

	while (j < n && a->ops[j]->object_case == MT__KERNEL__OP__OBJECT_NETNS &&
	       a->ops[j]->action == MT__KERNEL__OP__ACTION__CREATE)
		j++;
	if (j - i < MAKER_MIN)
		return i;
	a->maker_names = calloc(j - i, sizeof(*a->maker_names));
	a->maker_ops = calloc(j - i, sizeof(*a->maker_ops));
	a->maker_res = calloc(j - i, sizeof(*a->maker_res));
	if (!a->maker_names || !a->maker_ops || !a->maker_res)
		goto inline_run;
	for (size_t x = i; x < j; x++) {
		struct op_state *s = &a->st[x];

		s->handled = true;
		s->err = mt_rtnl_check_op(a->ctx->metal, a->ops[x], s->why,
					  sizeof(s->why));
		if (s->err < 0)
			continue;
		a->maker_names[k] = a->ops[x]->netns->name;
		a->maker_ops[k++] = x;
	}
	if (!k) { /* every one refused */
		maker_free_arrays(a);
		return j;
	}
	flush(a);
	if (mt_netns_maker_start(a->maker_names, k, &a->maker) < 0) {
		for (size_t x = i; x < j; x++)
			a->st[x].handled = false; /* checked again inline */
		goto inline_run;
	}
	a->n_maker = k;
	return j;
inline_run:
	maker_free_arrays(a);
	return i;
}

static void do_netns(struct apply *a, size_t i)
{
	const Mt__Kernel__Op *op = a->ops[i];
	const char *name = op->netns->name;
	int r;

	flush(a);
	maker_finish(a); /* a deletion waits for the creations before it */
	a->ifc_ns = NULL;
	a->checked = NULL;
	if (op->action == MT__KERNEL__OP__ACTION__DELETE) {
		mt_rtnl_ns_drop(a->ctx, name);
		r = mt_netns_delete(name);
	} else {
		r = mt_netns_create(name);
	}
	if (r < 0)
		op_fail(a, i, r, "%s", strerror(-r));
	else
		a->writes += (uint64_t)r;
}

static void do_sysctl(struct apply *a, size_t i)
{
	const Mt__Kernel__Sysctl *s = a->ops[i]->sysctl;
	struct mt_nsh *ns;
	int r;

	if (a->ops[i]->action == MT__KERNEL__OP__ACTION__DELETE)
		return; /* sysctls are set, never removed */
	flush(a);
	if (get_ns(a, i, s->netns, &ns) < 0)
		return;
	r = mt_sysctl_write(a->ctx, ns, s->key, s->value);
	if (r < 0)
		op_fail(a, i, r, "cannot write /proc/sys/%s: %s", s->key,
			strerror(-r));
	else
		a->writes += (uint64_t)r;
}

static bool peer_fd_up(const Mt__Kernel__Op *op)
{
	return op->action == MT__KERNEL__OP__ACTION__CREATE &&
	       strcmp(op->link->kind, "veth") == 0 && op->link->up;
}

static void do_link(struct apply *a, size_t i)
{
	const Mt__Kernel__Op *op = a->ops[i];
	const Mt__Kernel__Link *l = op->link;
	struct mt_nsh *ns, *peer = NULL;
	int peer_fd = -1, r;
	size_t room;
	void *buf;

	if (get_ns(a, i, l->netns, &ns) < 0)
		return;
	if (op->action == MT__KERNEL__OP__ACTION__CREATE &&
	    strcmp(l->kind, "veth") == 0 &&
	    strcmp(l->peer_netns, l->netns) != 0) {
		if (get_ns(a, i, l->peer_netns, &peer) < 0)
			return;
		peer_fd = peer->nsfd;
	}
	a->ifc_ns = NULL; /* names may change meaning */
	buf = msg_room(a, ns, &room);
	r = mt_link_build(buf, room, op->action, l, peer_fd);
	if (r == -EOPNOTSUPP)
		op_fail(a, i, r,
			"link kind \"%s\" is not supported (only veth, or \"\" "
			"for an existing link)",
			l->kind);
	else if (r < 0)
		op_fail(a, i, r, "bad link or peer name");
	else
		msg_add(a, i);
	if (r < 0 || !peer_fd_up(op))
		return;
	/* The new peer comes up with a second message, in its namespace. */
	if (peer_fd >= 0)
		ns = peer;
	buf = msg_room(a, ns, &room);
	r = mt_link_build_set(buf, room, l->peer_name, true, 0);
	if (r < 0)
		op_fail(a, i, r, "bad peer name");
	else
		msg_add(a, FOLLOWUP | i);
}

static void do_addr(struct apply *a, size_t i)
{
	const Mt__Kernel__Op *op = a->ops[i];
	const Mt__Kernel__Addr *ad = op->addr;
	struct mt_nsh *ns;
	size_t room;
	void *buf;
	int idx, r;

	if (get_ns(a, i, ad->netns, &ns) < 0)
		return;
	idx = resolve_dev(a, ns, ad->dev);
	if (idx <= 0) {
		if (op->action == MT__KERNEL__OP__ACTION__DELETE)
			return; /* no device, no address */
		op_fail(a, i, idx < 0 ? idx : -ENODEV, "device %s not found",
			ad->dev);
		return;
	}
	buf = msg_room(a, ns, &room);
	r = mt_ifaddr_build(buf, room, op->action, ad, (uint32_t)idx);
	if (r < 0)
		op_fail(a, i, r, "bad prefix \"%s\"", ad->prefix);
	else
		msg_add(a, i);
}

static void do_route(struct apply *a, size_t i)
{
	const Mt__Kernel__Op *op = a->ops[i];
	const Mt__Kernel__Route *rt = op->route;
	bool del = op->action == MT__KERNEL__OP__ACTION__DELETE;
	uint32_t nh_idx[MT_ROUTE_NEXTHOPS_MAX];
	struct mt_nsh *ns;
	size_t room;
	void *buf;
	int idx, r;

	if (get_ns(a, i, rt->netns, &ns) < 0)
		return;
	idx = resolve_dev(a, ns, rt->dev);
	if (idx < 0) {
		if (del)
			return; /* routes die with their device */
		op_fail(a, i, idx, "device %s not found", rt->dev);
		return;
	}
	/* A delete sends no nexthops (route.h); mt_rtnl_check_op has
	 * bounded n_nexthops for a create. */
	for (size_t k = 0; !del && k < rt->n_nexthops; k++) {
		const char *dev = rt->nexthops[k]->dev;

		r = resolve_dev(a, ns, dev);
		if (r <= 0) {
			op_fail(a, i, r < 0 ? r : -ENODEV,
				"nexthop device %s not found", dev);
			return;
		}
		nh_idx[k] = (uint32_t)r;
	}
	buf = msg_room(a, ns, &room);
	r = mt_route_build(buf, room, op->action, rt, (uint32_t)idx, nh_idx);
	if (r == -EMSGSIZE)
		op_fail(a, i, r, "route does not fit one netlink message");
	else if (r < 0)
		op_fail(a, i, r, "bad dst, gateway, prefsrc or nexthops");
	else
		msg_add(a, i);
}

static void do_rule(struct apply *a, size_t i)
{
	static const int families[] = {AF_INET, AF_INET6};
	const Mt__Kernel__Op *op = a->ops[i];
	struct mt_nsh *ns;

	if (get_ns(a, i, op->rule->netns, &ns) < 0)
		return;
	for (size_t f = 0; f < MT_ARRAY_SIZE(families); f++) {
		size_t room;
		void *buf = msg_room(a, ns, &room);
		int r =
		    mt_rule_build(buf, room, op->action, op->rule, families[f]);

		if (r < 0) {
			op_fail(a, i, r, NULL);
			return;
		}
		msg_add(a, i);
	}
}

/* Fills *slot (allocating it when NULL) with the op's outcome. */
static int result_set(Mt__Kernel__OpResult **slot, const Mt__Kernel__Op *op,
		      const struct op_state *s)
{
	return mt_op_result_describe(slot, op, s->err, s->why, s->kmsg);
}

int mt_rtnl_apply(struct mt_rtnl *ctx, Mt__Kernel__Op **ops, size_t n,
		  Mt__Kernel__OpResult **results, uint64_t *kernel_writes)
{
	struct apply a = {.ctx = ctx, .ops = ops};
	int failed = 0;

	a.st = calloc(n ? n : 1, sizeof(*a.st));
	if (!a.st)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const Mt__Kernel__Op *op = ops[i];
		struct op_state *s = &a.st[i];
		size_t next;
		int r;

		if (op->object_case == MT__KERNEL__OP__OBJECT_MARK_TABLE ||
		    op->object_case == MT__KERNEL__OP__OBJECT_MARK_PREFIX)
			continue; /* nft_mark.c's */
		if (op->object_case == MT__KERNEL__OP__OBJECT_NETNS &&
		    op->action == MT__KERNEL__OP__ACTION__CREATE && !a.maker &&
		    (next = maker_start(&a, i, n)) > i) {
			i = next - 1;
			continue;
		}
		s->handled = true;
		r = mt_rtnl_check_op(ctx->metal, op, s->why, sizeof(s->why));
		if (r < 0) {
			s->err = r;
			continue;
		}
		switch (op->object_case) {
		case MT__KERNEL__OP__OBJECT_NETNS:
			do_netns(&a, i);
			break;
		case MT__KERNEL__OP__OBJECT_LINK:
			do_link(&a, i);
			break;
		case MT__KERNEL__OP__OBJECT_ADDR:
			do_addr(&a, i);
			break;
		case MT__KERNEL__OP__OBJECT_ROUTE:
			do_route(&a, i);
			break;
		case MT__KERNEL__OP__OBJECT_RULE:
			do_rule(&a, i);
			break;
		case MT__KERNEL__OP__OBJECT_SYSCTL:
			do_sysctl(&a, i);
			break;
		default:
			break;
		}
	}
	flush(&a);
	if (mt_nl_batch_count(ctx->batch)) /* an overflow left behind */
		flush(&a);
	maker_finish(&a);
	for (size_t i = 0; i < n && failed >= 0; i++) {
		if (!a.st[i].handled)
			continue;
		if (result_set(&results[i], ops[i], &a.st[i]) < 0)
			failed = -ENOMEM;
		else if (a.st[i].err)
			failed++;
	}
	if (kernel_writes)
		*kernel_writes += a.writes;
	mt_nl_batch_free(a.fb);
	free(a.fu);
	free(a.st);
	return failed;
}
