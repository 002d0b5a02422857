#include "route.h"

#include <errno.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mt_kstate.h"
#include "mt_metal.h"
#include "mt_prefix.h"

static size_t alen(int family)
{
	return family == AF_INET ? 4 : 16;
}

static int ipv(int family)
{
	return family == AF_INET ? 4 : 6;
}

/* ---- check -------------------------------------------------------------- */

static int bad(char *why, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

/* An address of family in s, or -EINVAL naming the field. */
static int check_addr(const char *field, const char *s, int family,
		      struct mt_prefix *out, char *why, size_t len)
{
	char err[128];

	if (mt_addr_parse(s, out, err, sizeof(err)) < 0)
		return bad(why, len, "%s \"%s\": %s", field, s, err);
	if (out->family != family)
		return bad(why, len, "%s \"%s\" is not an IPv%d address like dst",
			   field, s, ipv(family));
	return 0;
}

static int check_nexthop(const Mt__Kernel__Nexthop *h, size_t i, int family,
			 char *why, size_t len)
{
	struct mt_prefix gw;
	char field[64];

	if (!*h->dev || strlen(h->dev) >= IFNAMSIZ)
		return bad(why, len,
			   "nexthops[%zu]: dev \"%s\" must be a device name "
			   "of 1-%d characters",
			   i, h->dev, IFNAMSIZ - 1);
	if (h->weight < 1 || h->weight > MT_ROUTE_WEIGHT_MAX)
		return bad(why, len,
			   "nexthops[%zu] (dev %s): weight %u is outside 1-%d",
			   i, h->dev, h->weight, MT_ROUTE_WEIGHT_MAX);
	if (*h->gateway) {
		snprintf(field, sizeof(field), "nexthops[%zu] (dev %s): gateway",
			 i, h->dev);
		return check_addr(field, h->gateway, family, &gw, why, len);
	}
	if (family == AF_INET6)
		return bad(why, len,
			   "nexthops[%zu] (dev %s): an IPv6 multipath nexthop "
			   "needs a gateway (the kernel refuses device-only "
			   "ones)",
			   i, h->dev);
	return 0;
}

int mt_route_check(const Mt__Kernel__Route *r, bool create, char *why,
		   size_t len)
{
	struct mt_prefix dst, a;
	char err[128];
	int e;

	if (mt_prefix_parse(r->dst, true, &dst, err, sizeof(err)) < 0)
		return bad(why, len, "dst \"%s\": %s", r->dst, err);
	if (*r->gateway &&
	    (e = check_addr("gateway", r->gateway, dst.family, &a, why, len)))
		return e;
	if (!create)
		return 0;
	if (*r->prefsrc &&
	    (e = check_addr("prefsrc", r->prefsrc, dst.family, &a, why, len)))
		return e;
	if (!r->n_nexthops)
		return 0;
	if (r->n_nexthops == 1)
		return bad(why, len,
			   "exactly one nexthop (dev \"%s\"): a single-path "
			   "route is written with dev/gateway",
			   r->nexthops[0]->dev);
	if (r->n_nexthops > MT_ROUTE_NEXTHOPS_MAX)
		return bad(why, len, "%zu nexthops: at most %d", r->n_nexthops,
			   MT_ROUTE_NEXTHOPS_MAX);
	if (*r->dev || *r->gateway)
		return bad(why, len,
			   "nexthops together with %s \"%s\": a multipath "
			   "route has neither dev nor gateway",
			   *r->dev ? "dev" : "gateway",
			   *r->dev ? r->dev : r->gateway);
	if (r->type && r->type != RTN_UNICAST)
		return bad(why, len, "route type %u cannot have nexthops",
			   r->type);
	for (size_t i = 0; i < r->n_nexthops; i++)
		if ((e = check_nexthop(r->nexthops[i], i, dst.family, why, len)))
			return e;
	return 0;
}

/* ---- build -------------------------------------------------------------- */

/* One struct rtnexthop inside the RTA_MULTIPATH nest, its RTA_GATEWAY
 * nested after it; rtnh_len covers both. */
static void put_nexthop(struct mt_nlb *b, const Mt__Kernel__Nexthop *h,
			uint32_t ifindex, int family)
{
	size_t sz = RTNH_ALIGN(sizeof(struct rtnexthop));
	struct rtnexthop *nh;
	struct mt_prefix gw;
	char err[64];

	if (b->full)
		return;
	if (b->nlh->nlmsg_len + sz > b->len) {
		b->full = true;
		return;
	}
	nh = mnl_nlmsg_get_payload_tail(b->nlh);
	memset(nh, 0, sz);
	b->nlh->nlmsg_len += (uint32_t)sz;
	nh->rtnh_ifindex = (int)ifindex;
	nh->rtnh_hops = (uint8_t)(h->weight - 1);
	if (*h->gateway && mt_addr_parse(h->gateway, &gw, err, sizeof(err)) == 0)
		mt_nlb_put(b, RTA_GATEWAY, alen(family), gw.addr);
	if (!b->full)
		nh->rtnh_len = (unsigned short)((char *)mnl_nlmsg_get_payload_tail(
						    b->nlh) -
						(char *)nh);
}

int mt_route_build(void *buf, size_t len, Mt__Kernel__Op__Action action,
		   const Mt__Kernel__Route *r, uint32_t ifindex,
		   const uint32_t *nh_ifindex)
{
	bool del = action == MT__KERNEL__OP__ACTION__DELETE;
	bool mp = !del && r->n_nexthops > 0;
	struct mt_prefix dst, gw, src;
	bool has_gw = *r->gateway;
	struct mt_nlb b;
	struct rtmsg *rtm;
	char err[160];

	if (mt_route_check(r, !del, err, sizeof(err)) < 0 ||
	    (mp && !nh_ifindex))
		return -EINVAL;
	mt_prefix_parse(r->dst, true, &dst, err, sizeof(err));
	if (has_gw)
		mt_addr_parse(r->gateway, &gw, err, sizeof(err));
	rtm =
	    mt_nlb_start(&b, buf, len, del ? RTM_DELROUTE : RTM_NEWROUTE,
			 del ? 0 : NLM_F_CREATE | NLM_F_REPLACE, sizeof(*rtm));
	if (rtm) {
		rtm->rtm_family = (uint8_t)dst.family;
		rtm->rtm_dst_len = dst.len;
		rtm->rtm_table =
		    r->table < 256 ? (uint8_t)r->table : RT_TABLE_UNSPEC;
		rtm->rtm_protocol = MT_RTPROT;
		if (del) {
			rtm->rtm_scope = RT_SCOPE_NOWHERE; /* match any */
		} else {
			rtm->rtm_type = r->type ? (uint8_t)r->type : RTN_UNICAST;
			rtm->rtm_scope = has_gw || mp ||
						 rtm->rtm_type != RTN_UNICAST
					     ? RT_SCOPE_UNIVERSE
					     : RT_SCOPE_LINK;
		}
	}
	mt_nlb_u32(&b, RTA_TABLE, r->table);
	if (dst.len)
		mt_nlb_put(&b, RTA_DST, alen(dst.family), dst.addr);
	if (has_gw)
		mt_nlb_put(&b, RTA_GATEWAY, alen(gw.family), gw.addr);
	if (ifindex)
		mt_nlb_u32(&b, RTA_OIF, ifindex);
	mt_nlb_u32(&b, RTA_PRIORITY, r->metric);
	if (!del && *r->prefsrc &&
	    mt_addr_parse(r->prefsrc, &src, err, sizeof(err)) == 0)
		mt_nlb_put(&b, RTA_PREFSRC, alen(src.family), src.addr);
	if (mp) {
		struct nlattr *nest = mt_nlb_nest(&b, RTA_MULTIPATH);

		for (size_t i = 0; i < r->n_nexthops; i++)
			put_nexthop(&b, r->nexthops[i], nh_ifindex[i],
				    dst.family);
		mt_nlb_nest_end(&b, nest);
	}
	return mt_nlb_end(&b);
}

int mt_route_build_dump(void *buf, size_t len, uint8_t family,
			uint8_t protocol, uint32_t table)
{
	struct mt_nlb b;
	struct rtmsg *rtm;

	rtm = mt_nlb_start(&b, buf, len, RTM_GETROUTE, 0, sizeof(*rtm));
	if (rtm) {
		rtm->rtm_family = family;
		rtm->rtm_protocol = protocol;
	}
	if (table)
		mt_nlb_u32(&b, RTA_TABLE, table);
	return mt_nlb_end(&b);
}

/* ---- parse -------------------------------------------------------------- */

struct attrs {
	const struct nlattr *tb[RTA_MAX + 1];
};

static int collect(const struct nlattr *a, void *data)
{
	struct attrs *t = data;
	uint16_t type = mnl_attr_get_type(a);

	if (type <= RTA_MAX)
		t->tb[type] = a;
	return MNL_CB_OK;
}

static int set_addr(char **field, const struct nlattr *a, int family, int plen,
		    bool with_len)
{
	char buf[MT_PREFIX_STRLEN];
	struct mt_prefix p = {.family = family, .len = (uint8_t)plen};

	if (a) {
		if (mnl_attr_get_payload_len(a) != alen(family))
			return -EINVAL;
		memcpy(p.addr, mnl_attr_get_payload(a), alen(family));
	}
	return mt_kstate_set_str(
	    field, with_len ? mt_prefix_format(&p, buf, sizeof(buf))
			    : mt_addr_format(&p, buf, sizeof(buf)));
}

/* The gateway of a route or nexthop: RTA_GATEWAY in the route's family, or
 * RTA_VIA (an IPv4 route via an IPv6 gateway) in its own. */
static int set_gateway(char **field, const struct attrs *t, int family)
{
	const struct rtvia *via;
	size_t n;

	if (t->tb[RTA_GATEWAY])
		return set_addr(field, t->tb[RTA_GATEWAY], family, 0, false);
	if (!t->tb[RTA_VIA])
		return 0;
	via = mnl_attr_get_payload(t->tb[RTA_VIA]);
	n = mnl_attr_get_payload_len(t->tb[RTA_VIA]);
	if (n < sizeof(*via) ||
	    (via->rtvia_family != AF_INET && via->rtvia_family != AF_INET6) ||
	    n - sizeof(*via) != alen(via->rtvia_family))
		return -EINVAL;
	{
		struct mt_prefix p = {.family = via->rtvia_family};
		char buf[MT_PREFIX_STRLEN];

		memcpy(p.addr, via->rtvia_addr, alen(p.family));
		return mt_kstate_set_str(field,
					 mt_addr_format(&p, buf, sizeof(buf)));
	}
}

static int set_dev(char **field, uint32_t ifindex, mt_route_ifname_fn ifname,
		   void *data)
{
	const char *name = ifindex && ifname ? ifname(data, ifindex) : NULL;

	return name ? mt_kstate_set_str(field, name) : 0;
}

/* The rtnexthop at p with left bytes remaining, or NULL when malformed. */
static const struct rtnexthop *nh_at(const char *p, size_t left)
{
	const struct rtnexthop *nh = (const void *)p;

	if (left < sizeof(*nh) || nh->rtnh_len < sizeof(*nh) ||
	    nh->rtnh_len > left)
		return NULL;
	return nh;
}

/* Parses one rtnexthop's dev and gateway into dev/gw. */
static int parse_nh(const struct rtnexthop *nh, int family, char **dev,
		    char **gw, mt_route_ifname_fn ifname, void *data)
{
	size_t hl = RTNH_ALIGN(sizeof(*nh));
	struct attrs t = {0};
	int e;

	if (nh->rtnh_len > hl &&
	    mnl_attr_parse_payload((const char *)nh + hl, nh->rtnh_len - hl,
				   collect, &t) < 0)
		return -EINVAL;
	e = set_dev(dev, (uint32_t)nh->rtnh_ifindex, ifname, data);
	return e < 0 ? e : set_gateway(gw, &t, family);
}

/* RTA_MULTIPATH, in the kernel's order (the order given at creation; a
 * replace installs the new order).
 *
 * What the kernel stores (measured, 6.18): IPv4 keeps a one-nexthop
 * RTA_MULTIPATH as a plain route and dumps it with RTA_OIF/RTA_GATEWAY and
 * no weight; IPv6 makes a plain route of it too. When a nexthop's device
 * is deleted, IPv4 removes the whole multipath route (without an
 * RTM_DELROUTE), IPv6 only that sibling (with one), which can leave a
 * single-path route. A nexthop whose device is down stays listed (flags
 * dead/linkdown) and is reported like the others. So a one-element
 * RTA_MULTIPATH is not expected; should one come it is reported as
 * dev/gateway all the same, as kernel.proto requires. */
static int parse_multipath(const struct nlattr *mp, int family,
			   Mt__Kernel__Route *r, struct mt_route_meta *meta,
			   mt_route_ifname_fn ifname, void *data)
{
	const char *start = mnl_attr_get_payload(mp), *p;
	size_t total = mnl_attr_get_payload_len(mp), left, n = 0;
	const struct rtnexthop *nh;
	int e = 0;

	for (p = start, left = total; (nh = nh_at(p, left)); n++) {
		size_t step = RTNH_ALIGN(nh->rtnh_len);

		if (step >= left)
			left = 0;
		else
			left -= step;
		p += step;
	}
	if (left)
		return -EINVAL; /* trailing garbage */
	if (n == 1) {
		nh = nh_at(start, total);
		meta->oif = (uint32_t)nh->rtnh_ifindex;
		return parse_nh(nh, family, &r->dev, &r->gateway, ifname, data);
	}
	for (p = start, left = total; e == 0 && (nh = nh_at(p, left));) {
		Mt__Kernel__Nexthop *h = mt_route_add_nexthop(r);
		size_t step = RTNH_ALIGN(nh->rtnh_len);

		if (!h)
			return -ENOMEM;
		h->weight = (uint32_t)nh->rtnh_hops + 1;
		e = parse_nh(nh, family, &h->dev, &h->gateway, ifname, data);
		left = step >= left ? 0 : left - step;
		p += step;
	}
	return e;
}

int mt_route_parse(const struct nlmsghdr *nlh, Mt__Kernel__Route *r,
		   struct mt_route_meta *meta, mt_route_ifname_fn ifname,
		   void *data)
{
	const struct rtmsg *rtm = mnl_nlmsg_get_payload(nlh);
	struct attrs t = {0};
	int e;

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*rtm) ||
	    mnl_attr_parse(nlh, sizeof(*rtm), collect, &t) < 0)
		return -EINVAL;
	if (rtm->rtm_family != AF_INET && rtm->rtm_family != AF_INET6)
		return -EAFNOSUPPORT;
	meta->family = rtm->rtm_family;
	meta->protocol = rtm->rtm_protocol;
	meta->type = rtm->rtm_type;
	r->type = rtm->rtm_type == RTN_UNICAST ? 0 : rtm->rtm_type;
	meta->flags = rtm->rtm_flags;
	meta->oif = t.tb[RTA_OIF] ? mnl_attr_get_u32(t.tb[RTA_OIF]) : 0;
	meta->multipath = t.tb[RTA_MULTIPATH] != NULL;
	r->table = t.tb[RTA_TABLE] ? mnl_attr_get_u32(t.tb[RTA_TABLE])
				   : rtm->rtm_table;
	r->metric =
	    t.tb[RTA_PRIORITY] ? mnl_attr_get_u32(t.tb[RTA_PRIORITY]) : 0;
	e = set_addr(&r->dst, t.tb[RTA_DST], rtm->rtm_family, rtm->rtm_dst_len,
		     true);
	if (e == 0)
		e = set_gateway(&r->gateway, &t, rtm->rtm_family);
	if (e == 0 && t.tb[RTA_PREFSRC])
		e = set_addr(&r->prefsrc, t.tb[RTA_PREFSRC], rtm->rtm_family, 0,
			     false);
	if (e == 0)
		e = set_dev(&r->dev, meta->oif, ifname, data);
	if (e == 0 && t.tb[RTA_MULTIPATH])
		e = parse_multipath(t.tb[RTA_MULTIPATH], rtm->rtm_family, r,
				    meta, ifname, data);
	return e;
}
