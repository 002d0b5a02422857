/* rtnetlink build -> parse round trips and the apply ownership rules. No
 * root, no socket. */
#include <errno.h>
#include <linux/fib_rules.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <stdlib.h>

#include "addr.h"
#include "link.h"
#include "mt_cleanup.h"
#include "mt_kstate.h"
#include "mt_metal.h"
#include "mt_test.h"
#include "netns.h"
#include "nl.h"
#include "route.h"
#include "rtnl_apply.h"
#include "rule.h"
#include "sysctl.h"

#define CREATE MT__KERNEL__OP__ACTION__CREATE
#define DELETE MT__KERNEL__OP__ACTION__DELETE

static char buf[MT_NL_MSG_MAX];

static struct nlmsghdr *msg(void)
{
	return (struct nlmsghdr *)buf;
}

static void test_link_veth(void)
{
	Mt__Kernel__Link l = MT__KERNEL__LINK__INIT, *o;
	struct mt_link_meta meta;
	int n;

	l.name = "mt0-acme";
	l.kind = "veth";
	l.peer_netns = "mt0-acme";
	l.peer_name = "metal0";
	l.mtu = 1500;
	l.up = true;
	n = mt_link_build(buf, sizeof(buf), CREATE, &l, 7);
	CHECK(n > 0 && (size_t)n == msg()->nlmsg_len);
	CHECK(msg()->nlmsg_type == RTM_NEWLINK);
	CHECK((msg()->nlmsg_flags & (NLM_F_CREATE | NLM_F_EXCL)) ==
	      (NLM_F_CREATE | NLM_F_EXCL));
	o = calloc(1, sizeof(*o));
	mt__kernel__link__init(o);
	CHECK(mt_link_parse(msg(), o, &meta) == 0);
	CHECK_STR(o->name, "mt0-acme");
	CHECK_STR(o->kind, "veth");
	CHECK(o->mtu == 1500);
	CHECK(o->up);
	CHECK_STR(meta.peer_name, "metal0");
	CHECK(meta.peer_nsfd == 7);
	CHECK(meta.peer_mtu == 1500);
	CHECK(!(meta.peer_flags & IFF_UP)); /* brought up separately */
	protobuf_c_message_free_unpacked(&o->base, NULL);

	/* no peer netns fd: peer in the socket's own namespace */
	l.up = false;
	l.mtu = 0;
	CHECK(mt_link_build(buf, sizeof(buf), CREATE, &l, -1) > 0);
	o = calloc(1, sizeof(*o));
	mt__kernel__link__init(o);
	CHECK(mt_link_parse(msg(), o, &meta) == 0);
	CHECK(meta.peer_nsfd == -1);
	CHECK(!o->up && o->mtu == 0 && !(meta.peer_flags & IFF_UP));
	protobuf_c_message_free_unpacked(&o->base, NULL);
}

static void test_link_set_delete(void)
{
	Mt__Kernel__Link l = MT__KERNEL__LINK__INIT, *o;
	struct mt_link_meta meta;
	struct ifinfomsg *ifi;

	l.name = "metal0";
	l.up = false;
	l.mtu = 1400;
	CHECK(mt_link_build(buf, sizeof(buf), CREATE, &l, -1) > 0);
	CHECK(msg()->nlmsg_type == RTM_NEWLINK);
	CHECK(!(msg()->nlmsg_flags & NLM_F_CREATE));
	ifi = mnl_nlmsg_get_payload(msg());
	CHECK(ifi->ifi_change == IFF_UP && ifi->ifi_flags == 0);
	o = calloc(1, sizeof(*o));
	mt__kernel__link__init(o);
	CHECK(mt_link_parse(msg(), o, &meta) == 0);
	CHECK_STR(o->name, "metal0");
	CHECK_STR(o->kind, "");
	CHECK(o->mtu == 1400 && !o->up);
	protobuf_c_message_free_unpacked(&o->base, NULL);

	CHECK(mt_link_build(buf, sizeof(buf), DELETE, &l, -1) > 0);
	CHECK(msg()->nlmsg_type == RTM_DELLINK);

	l.kind = "gre";
	CHECK(mt_link_build(buf, sizeof(buf), CREATE, &l, -1) == -EOPNOTSUPP);
	l.kind = "veth";
	l.peer_name = "";
	CHECK(mt_link_build(buf, sizeof(buf), CREATE, &l, -1) == -EINVAL);
	l.name = "much-too-long-ifname";
	CHECK(mt_link_build(buf, sizeof(buf), DELETE, &l, -1) == -EINVAL);
	l.name = "mt0-acme";
	l.peer_name = "metal0";
	CHECK(mt_link_build(buf, 40, CREATE, &l, -1) == -EMSGSIZE);
	CHECK(mt_link_build(buf, 8, CREATE, &l, -1) == -EMSGSIZE);
}

static void addr_roundtrip(const char *prefix, int family)
{
	Mt__Kernel__Addr a = MT__KERNEL__ADDR__INIT, *o;
	struct mt_ifaddr_meta meta;

	a.dev = "mt0-acme";
	a.prefix = (char *)prefix;
	CHECK(mt_ifaddr_build(buf, sizeof(buf), CREATE, &a, 42) > 0);
	CHECK(msg()->nlmsg_type == RTM_NEWADDR);
	CHECK(msg()->nlmsg_flags & NLM_F_REPLACE);
	o = calloc(1, sizeof(*o));
	mt__kernel__addr__init(o);
	CHECK(mt_ifaddr_parse(msg(), o, &meta) == 0);
	CHECK_STR(o->prefix, prefix);
	CHECK(meta.ifindex == 42 && meta.family == family);
	CHECK(meta.scope == RT_SCOPE_UNIVERSE);
	if (family == AF_INET6)
		CHECK(meta.flags & IFA_F_NODAD);
	protobuf_c_message_free_unpacked(&o->base, NULL);
	CHECK(mt_ifaddr_build(buf, sizeof(buf), DELETE, &a, 42) > 0);
	CHECK(msg()->nlmsg_type == RTM_DELADDR);
}

static void test_addr(void)
{
	Mt__Kernel__Addr a = MT__KERNEL__ADDR__INIT;

	addr_roundtrip("169.254.0.3/31", AF_INET);
	addr_roundtrip("2001:db8::1/64", AF_INET6);
	a.prefix = "169.254.0.300/31";
	CHECK(mt_ifaddr_build(buf, sizeof(buf), CREATE, &a, 1) == -EINVAL);
	a.prefix = "169.254.0.3/31";
	CHECK(mt_ifaddr_build(buf, 30, CREATE, &a, 1) == -EMSGSIZE);
}

static Mt__Kernel__Route *route_rt(const Mt__Kernel__Route *r,
				   struct mt_route_meta *meta)
{
	Mt__Kernel__Route *o = calloc(1, sizeof(*o));

	mt__kernel__route__init(o);
	CHECK(mt_route_build(buf, sizeof(buf), CREATE, r, 9, NULL) > 0);
	CHECK(mt_route_parse(msg(), o, meta, NULL, NULL) == 0);
	return o;
}

static void test_route(void)
{
	Mt__Kernel__Route r = MT__KERNEL__ROUTE__INIT, *o;
	struct mt_route_meta meta;
	struct rtmsg *rtm;

	r.table = 2000;
	r.dst = "203.0.113.0/24";
	r.gateway = "169.254.0.3";
	r.metric = 500000;
	o = route_rt(&r, &meta);
	CHECK(msg()->nlmsg_type == RTM_NEWROUTE);
	CHECK((msg()->nlmsg_flags & (NLM_F_CREATE | NLM_F_REPLACE)) ==
	      (NLM_F_CREATE | NLM_F_REPLACE));
	CHECK(o->table == 2000 && o->metric == 500000);
	CHECK_STR(o->dst, "203.0.113.0/24");
	CHECK_STR(o->gateway, "169.254.0.3");
	CHECK(meta.oif == 9 && meta.protocol == MT_RTPROT);
	CHECK(meta.type == RTN_UNICAST && meta.family == AF_INET);
	rtm = mnl_nlmsg_get_payload(msg());
	CHECK(rtm->rtm_table == RT_TABLE_UNSPEC); /* > 255: RTA_TABLE only */
	CHECK(rtm->rtm_scope == RT_SCOPE_UNIVERSE);
	protobuf_c_message_free_unpacked(&o->base, NULL);

	r.dst = "0.0.0.0/0";
	r.gateway = "";
	r.table = 100;
	o = route_rt(&r, &meta);
	CHECK_STR(o->dst, "0.0.0.0/0");
	CHECK_STR(o->gateway, "");
	CHECK(o->table == 100);
	rtm = mnl_nlmsg_get_payload(msg());
	CHECK(rtm->rtm_table == 100 && rtm->rtm_scope == RT_SCOPE_LINK);
	protobuf_c_message_free_unpacked(&o->base, NULL);

	r.dst = "2001:db8:100::/48";
	r.gateway = "fe80::1";
	r.metric = 1024;
	o = route_rt(&r, &meta);
	CHECK_STR(o->dst, "2001:db8:100::/48");
	CHECK_STR(o->gateway, "fe80::1");
	CHECK(meta.family == AF_INET6 && o->metric == 1024);
	protobuf_c_message_free_unpacked(&o->base, NULL);

	CHECK(mt_route_build(buf, sizeof(buf), DELETE, &r, 0, NULL) > 0);
	CHECK(msg()->nlmsg_type == RTM_DELROUTE);
	rtm = mnl_nlmsg_get_payload(msg());
	CHECK(rtm->rtm_protocol == MT_RTPROT);
	CHECK(rtm->rtm_scope == RT_SCOPE_NOWHERE);

	r.gateway = "169.254.0.3"; /* v4 gateway for a v6 dst */
	CHECK(mt_route_build(buf, sizeof(buf), CREATE, &r, 0, NULL) == -EINVAL);
	r.dst = "203.0.113.1/24"; /* host bits */
	CHECK(mt_route_build(buf, sizeof(buf), CREATE, &r, 0, NULL) == -EINVAL);
	r.dst = "203.0.113.0/24";
	CHECK(mt_route_build(buf, 40, CREATE, &r, 0, NULL) == -EMSGSIZE);

	CHECK(mt_route_build_dump(buf, sizeof(buf), AF_INET, MT_RTPROT, 2000) > 0);
	rtm = mnl_nlmsg_get_payload(msg());
	CHECK(msg()->nlmsg_type == RTM_GETROUTE &&
	      rtm->rtm_protocol == MT_RTPROT);
}

/* ifindex -> name for parsing: 9 = gre1, 10 = gre2, 11 = gre3. */
static const char *test_ifname(void *data, uint32_t ifindex)
{
	static const char *const names[] = {"gre1", "gre2", "gre3"};

	(void)data;
	return ifindex >= 9 && ifindex <= 11 ? names[ifindex - 9] : NULL;
}

static Mt__Kernel__Nexthop *nh(Mt__Kernel__Nexthop *h, const char *dev,
			       const char *gw, uint32_t weight)
{
	mt__kernel__nexthop__init(h);
	h->dev = (char *)dev;
	h->gateway = (char *)gw;
	h->weight = weight;
	return h;
}

static Mt__Kernel__Route *parse_new(struct mt_route_meta *meta)
{
	Mt__Kernel__Route *o = calloc(1, sizeof(*o));

	mt__kernel__route__init(o);
	CHECK(mt_route_parse(msg(), o, meta, test_ifname, NULL) == 0);
	return o;
}

/* The raw RTA_MULTIPATH of the message in buf: rtnh_hops and ifindexes. */
static size_t raw_nexthops(struct rtnexthop *out, size_t max)
{
	const struct nlattr *a;
	size_t n = 0;

	mnl_attr_for_each(a, msg(), sizeof(struct rtmsg))
	{
		const char *p;
		size_t left;

		if (mnl_attr_get_type(a) != RTA_MULTIPATH)
			continue;
		p = mnl_attr_get_payload(a);
		left = mnl_attr_get_payload_len(a);
		while (left >= sizeof(struct rtnexthop) && n < max) {
			const struct rtnexthop *h = (const void *)p;

			size_t step = (size_t)RTNH_ALIGN(h->rtnh_len);

			out[n++] = *h;
			if (step >= left)
				break;
			left -= step;
			p += step;
		}
	}
	return n;
}

static bool has_attr(uint16_t type)
{
	const struct nlattr *a;

	mnl_attr_for_each(a, msg(), sizeof(struct rtmsg))
	{
		if (mnl_attr_get_type(a) == type)
			return true;
	}
	return false;
}

static void test_route_multipath(void)
{
	Mt__Kernel__Route r = MT__KERNEL__ROUTE__INIT, *o;
	Mt__Kernel__Nexthop h[3], *hv[3] = {&h[0], &h[1], &h[2]};
	uint32_t idx[3] = {10, 9, 11};
	struct mt_route_meta meta;
	struct rtnexthop raw[4];
	struct rtmsg *rtm;

	r.table = 2001;
	r.dst = "198.51.100.0/24";
	r.prefsrc = "192.0.2.1";
	r.metric = 10;
	r.nexthops = hv;
	r.n_nexthops = 3;
	nh(&h[0], "gre2", "", 1);
	nh(&h[1], "gre1", "", 3);
	nh(&h[2], "gre3", "169.254.9.1", 256);
	CHECK(mt_route_build(buf, sizeof(buf), CREATE, &r, 0, idx) > 0);
	CHECK((msg()->nlmsg_flags & (NLM_F_CREATE | NLM_F_REPLACE)) ==
	      (NLM_F_CREATE | NLM_F_REPLACE));
	rtm = mnl_nlmsg_get_payload(msg());
	CHECK(rtm->rtm_scope == RT_SCOPE_UNIVERSE);
	CHECK(!has_attr(RTA_OIF) && !has_attr(RTA_GATEWAY));
	CHECK(raw_nexthops(raw, 4) == 3);
	CHECK(raw[0].rtnh_ifindex == 10 && raw[0].rtnh_hops == 0);
	CHECK(raw[1].rtnh_ifindex == 9 && raw[1].rtnh_hops == 2);
	CHECK(raw[2].rtnh_ifindex == 11 && raw[2].rtnh_hops == 255);
	CHECK(raw[0].rtnh_len == (int)sizeof(struct rtnexthop));
	CHECK(raw[2].rtnh_len == (int)sizeof(struct rtnexthop) + 8);
	o = parse_new(&meta);
	CHECK(meta.multipath && meta.oif == 0);
	CHECK_STR(o->dev, "");
	CHECK_STR(o->gateway, "");
	CHECK_STR(o->prefsrc, "192.0.2.1");
	CHECK(o->n_nexthops == 3);
	if (o->n_nexthops == 3) {
		CHECK_STR(o->nexthops[0]->dev, "gre2");
		CHECK(o->nexthops[0]->weight == 1);
		CHECK_STR(o->nexthops[0]->gateway, "");
		CHECK_STR(o->nexthops[1]->dev, "gre1");
		CHECK(o->nexthops[1]->weight == 3);
		CHECK_STR(o->nexthops[2]->dev, "gre3");
		CHECK_STR(o->nexthops[2]->gateway, "169.254.9.1");
		CHECK(o->nexthops[2]->weight == 256);
	}
	protobuf_c_message_free_unpacked(&o->base, NULL);

	/* a delete carries neither nexthops nor prefsrc */
	CHECK(mt_route_build(buf, sizeof(buf), DELETE, &r, 0, NULL) > 0);
	CHECK(!has_attr(RTA_MULTIPATH) && !has_attr(RTA_PREFSRC));
	/* a create needs the nexthops' ifindexes */
	CHECK(mt_route_build(buf, sizeof(buf), CREATE, &r, 0, NULL) ==
	      -EINVAL);

	/* IPv6, gateways on every nexthop; an unknown ifindex leaves dev "" */
	r.dst = "2001:db8:100::/48";
	r.prefsrc = "2001:db8::1";
	r.n_nexthops = 2;
	nh(&h[0], "gre1", "fe80::1", 2);
	nh(&h[1], "gre9", "2001:db8:1::2", 5);
	idx[0] = 9;
	idx[1] = 99;
	CHECK(mt_route_build(buf, sizeof(buf), CREATE, &r, 0, idx) > 0);
	o = parse_new(&meta);
	CHECK(meta.family == AF_INET6 && o->n_nexthops == 2);
	CHECK_STR(o->prefsrc, "2001:db8::1");
	if (o->n_nexthops == 2) {
		CHECK_STR(o->nexthops[0]->dev, "gre1");
		CHECK_STR(o->nexthops[0]->gateway, "fe80::1");
		CHECK(o->nexthops[0]->weight == 2);
		CHECK_STR(o->nexthops[1]->dev, "");
		CHECK_STR(o->nexthops[1]->gateway, "2001:db8:1::2");
	}
	protobuf_c_message_free_unpacked(&o->base, NULL);
}

/* The kernel never sends a one-nexthop RTA_MULTIPATH (it stores a plain
 * route); should one come, it is reported as dev/gateway. */
static void test_route_multipath_one(void)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	Mt__Kernel__Route *o;
	struct mt_route_meta meta;
	struct rtnexthop *h;
	struct nlattr *mp, *gw;
	struct rtmsg *rtm;
	uint8_t dst[4] = {198, 51, 100, 0}, via[4] = {169, 254, 9, 1};

	nlh->nlmsg_type = RTM_NEWROUTE;
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = AF_INET;
	rtm->rtm_dst_len = 24;
	rtm->rtm_type = RTN_UNICAST;
	rtm->rtm_protocol = MT_RTPROT;
	mnl_attr_put_u32(nlh, RTA_TABLE, 2001);
	mnl_attr_put(nlh, RTA_DST, 4, dst);
	mp = mnl_attr_nest_start(nlh, RTA_MULTIPATH);
	h = mnl_nlmsg_get_payload_tail(nlh);
	memset(h, 0, sizeof(*h));
	h->rtnh_ifindex = 10;
	h->rtnh_hops = 4;
	nlh->nlmsg_len += RTNH_ALIGN(sizeof(*h));
	gw = mnl_nlmsg_get_payload_tail(nlh);
	mnl_attr_put(nlh, RTA_GATEWAY, 4, via);
	h->rtnh_len = (unsigned short)((char *)mnl_nlmsg_get_payload_tail(nlh) -
				       (char *)h);
	(void)gw;
	mnl_attr_nest_end(nlh, mp);
	o = parse_new(&meta);
	CHECK(o->n_nexthops == 0 && meta.oif == 10);
	CHECK_STR(o->dev, "gre2");
	CHECK_STR(o->gateway, "169.254.9.1");
	CHECK_STR(o->dst, "198.51.100.0/24");
	protobuf_c_message_free_unpacked(&o->base, NULL);

	/* a truncated rtnexthop is malformed */
	h->rtnh_len = 200;
	o = calloc(1, sizeof(*o));
	mt__kernel__route__init(o);
	CHECK(mt_route_parse(msg(), o, &meta, test_ifname, NULL) == -EINVAL);
	protobuf_c_message_free_unpacked(&o->base, NULL);
}

static void test_route_check(void)
{
	Mt__Kernel__Route r = MT__KERNEL__ROUTE__INIT;
	Mt__Kernel__Nexthop h[MT_ROUTE_NEXTHOPS_MAX + 1];
	Mt__Kernel__Nexthop *hv[MT_ROUTE_NEXTHOPS_MAX + 1];
	uint32_t idx[MT_ROUTE_NEXTHOPS_MAX];
	char why[200];

	for (size_t i = 0; i < MT_ARRAY_SIZE(h); i++)
		hv[i] = nh(&h[i], "gre1", "", 1);
	r.table = 2001;
	r.dst = "198.51.100.0/24";
	r.nexthops = hv;
	r.n_nexthops = 2;
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == 0);

	h[1].weight = 0;
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == -EINVAL);
	CHECK_CONTAINS(why, "nexthops[1]");
	CHECK_CONTAINS(why, "weight 0");
	h[1].weight = 257;
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == -EINVAL);
	CHECK_CONTAINS(why, "weight 257");
	CHECK_CONTAINS(why, "1-256");
	/* a delete sends no nexthops: not checked */
	CHECK(mt_route_check(&r, false, why, sizeof(why)) == 0);
	h[1].weight = 1;

	r.n_nexthops = 1;
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == -EINVAL);
	CHECK_CONTAINS(why, "exactly one nexthop");
	r.n_nexthops = 2;

	r.dev = "gre1";
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == -EINVAL);
	CHECK_CONTAINS(why, "nexthops together with dev \"gre1\"");
	r.dev = "";
	r.gateway = "169.254.9.1";
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == -EINVAL);
	CHECK_CONTAINS(why, "together with gateway \"169.254.9.1\"");
	r.gateway = "";

	h[0].dev = "";
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == -EINVAL);
	CHECK_CONTAINS(why, "nexthops[0]: dev \"\"");
	h[0].dev = "gre1";
	h[0].gateway = "2001:db8::1";
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == -EINVAL);
	CHECK_CONTAINS(why, "not an IPv4 address");
	h[0].gateway = "";

	r.prefsrc = "2001:db8::1";
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == -EINVAL);
	CHECK_CONTAINS(why, "prefsrc \"2001:db8::1\"");
	r.prefsrc = "192.0.2.300";
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == -EINVAL);
	CHECK_CONTAINS(why, "prefsrc");
	r.prefsrc = "192.0.2.1";
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == 0);

	r.n_nexthops = MT_ROUTE_NEXTHOPS_MAX + 1;
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == -EINVAL);
	CHECK_CONTAINS(why, "at most");

	r.type = RTN_BLACKHOLE;
	r.n_nexthops = 2;
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == -EINVAL);
	r.type = 0;

	/* IPv6 multipath needs gateways (the kernel refuses dev-only) */
	r.dst = "2001:db8:100::/48";
	r.prefsrc = "";
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == -EINVAL);
	CHECK_CONTAINS(why, "needs a gateway");

	/* the largest route fits one message */
	r.prefsrc = "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff";
	r.metric = 1024;
	r.n_nexthops = MT_ROUTE_NEXTHOPS_MAX;
	for (size_t i = 0; i < MT_ROUTE_NEXTHOPS_MAX; i++) {
		h[i].gateway = "2001:db8:ffff:ffff:ffff:ffff:ffff:fffe";
		h[i].weight = 256;
		idx[i] = 9;
	}
	CHECK(mt_route_check(&r, true, why, sizeof(why)) == 0);
	CHECK(mt_route_build(buf, sizeof(buf), CREATE, &r, 0, idx) > 0);
}

static void test_rule(void)
{
	Mt__Kernel__Rule r = MT__KERNEL__RULE__INIT, o = MT__KERNEL__RULE__INIT;
	struct mt_rule_meta meta;
	struct fib_rule_hdr *frh;

	r.priority = 1000;
	r.fwmark = 0x4d540000;
	r.fwmask = 0xffff0000;
	r.table = 2000;
	CHECK(mt_rule_build(buf, sizeof(buf), CREATE, &r, AF_INET) > 0);
	CHECK(msg()->nlmsg_type == RTM_NEWRULE);
	CHECK(msg()->nlmsg_flags & NLM_F_EXCL);
	CHECK(mt_rule_parse(msg(), &o, &meta) == 0);
	CHECK(o.priority == 1000 && o.fwmark == 0x4d540000 &&
	      o.fwmask == 0xffff0000 && o.table == 2000);
	CHECK(meta.family == AF_INET && meta.action == FR_ACT_TO_TBL &&
	      meta.protocol == MT_RTPROT);
	frh = mnl_nlmsg_get_payload(msg());
	CHECK(frh->table == RT_TABLE_UNSPEC);

	r.fwmark = r.fwmask = 0;
	r.table = 200;
	CHECK(mt_rule_build(buf, sizeof(buf), DELETE, &r, AF_INET6) > 0);
	CHECK(msg()->nlmsg_type == RTM_DELRULE);
	CHECK(mt_rule_parse(msg(), &o, &meta) == 0);
	CHECK(o.fwmark == 0 && o.fwmask == 0 && o.table == 200);
	CHECK(meta.family == AF_INET6 && meta.protocol == 0);
	CHECK(mt_rule_build(buf, sizeof(buf), CREATE, &r, AF_PACKET) ==
	      -EAFNOSUPPORT);
	CHECK(mt_rule_build(buf, 30, CREATE, &r, AF_INET) == -EMSGSIZE);
}

/* An NLMSG_ERROR as the kernel sends it with NETLINK_CAP_ACK and
 * NETLINK_EXT_ACK: header, nlmsgerr, then the TLVs. */
static void test_ext_ack(void)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct nlmsgerr *e;

	nlh->nlmsg_type = NLMSG_ERROR;
	nlh->nlmsg_flags = NLM_F_CAPPED | NLM_F_ACK_TLVS;
	e = mnl_nlmsg_put_extra_header(nlh, sizeof(*e));
	e->error = -ENETDOWN;
	e->msg.nlmsg_len = 64; /* the request's length, payload not echoed */
	mnl_attr_put_strz(nlh, NLMSGERR_ATTR_MSG, "Nexthop device is not up");
	CHECK_STR(mt_nl_ack_msg(nlh), "Nexthop device is not up");
	nlh->nlmsg_flags = NLM_F_CAPPED;
	CHECK(mt_nl_ack_msg(nlh) == NULL);
}

static void test_batch_overflow(void)
{
	Mt__Kernel__Route r = MT__KERNEL__ROUTE__INIT;
	struct mt_nl_batch *b;
	size_t added = 0;
	bool full = false;

	CHECK(mt_nl_batch_new(&b) == 0);
	r.table = 2000;
	r.dst = "203.0.113.0/24";
	while (!full) {
		size_t room;
		void *p = mt_nl_batch_current(b, &room);

		CHECK(room >= MT_NL_MSG_MAX);
		CHECK(mt_route_build(p, room, CREATE, &r, 3, NULL) > 0);
		full = mt_nl_batch_add(b, (uint32_t)added++);
	}
	CHECK(added == MT_NL_BATCH_MSGS); /* the count cap comes first */
	CHECK(mt_nl_batch_count(b) == MT_NL_BATCH_MSGS);
	mt_nl_batch_free(b);
}

static Mt__Kernel__Op op_of(Mt__Kernel__Op__Action action)
{
	Mt__Kernel__Op op = MT__KERNEL__OP__INIT;

	op.action = action;
	return op;
}

static int check(const struct mt_metal *m, Mt__Kernel__Op *op, char *why)
{
	return mt_rtnl_check_op(m, op, why, 200);
}

static void test_ownership(void)
{
	Mt__Kernel__Netns ns = MT__KERNEL__NETNS__INIT;
	Mt__Kernel__Link l = MT__KERNEL__LINK__INIT;
	Mt__Kernel__Addr a = MT__KERNEL__ADDR__INIT;
	Mt__Kernel__Route r = MT__KERNEL__ROUTE__INIT;
	Mt__Kernel__Rule ru = MT__KERNEL__RULE__INIT;
	Mt__Kernel__Sysctl s = MT__KERNEL__SYSCTL__INIT;
	Mt__Kernel__Op op = op_of(CREATE);
	struct mt_metal m;
	char why[200];

	CHECK(mt_metal_init(&m, NULL, why, sizeof(why)) == 0);

	op.object_case = MT__KERNEL__OP__OBJECT_NETNS;
	op.netns = &ns;
	ns.name = "mt0-acme";
	CHECK(check(&m, &op, why) == 0);
	ns.name = "blue";
	CHECK(check(&m, &op, why) == -EPERM);
	CHECK_CONTAINS(why, "\"blue\"");
	CHECK_CONTAINS(why, "mt0-");
	ns.name = "mt0-";
	CHECK(check(&m, &op, why) == -EPERM);
	ns.name = "mt0-../../etc";
	CHECK(check(&m, &op, why) == -EINVAL);

	op.object_case = MT__KERNEL__OP__OBJECT_LINK;
	op.link = &l;
	l.name = "mt0-acme";
	l.kind = "veth";
	l.peer_netns = "mt0-acme";
	l.peer_name = "metal0";
	CHECK(check(&m, &op, why) == 0);
	l.peer_netns = "other";
	CHECK(check(&m, &op, why) == -EPERM);
	l.peer_netns = ""; /* peer stays in the metal: needs the prefix */
	CHECK(check(&m, &op, why) == -EPERM);
	CHECK_CONTAINS(why, "metal0");
	l.peer_name = "mt0-acme-p";
	CHECK(check(&m, &op, why) == 0);
	l.name = "eth0";
	l.kind = "";
	CHECK(check(&m, &op, why) == -EPERM);
	CHECK_CONTAINS(why, "eth0");
	op.action = DELETE;
	CHECK(check(&m, &op, why) == -EPERM);
	l.netns = "mt0-acme"; /* inside a customer namespace: owned */
	CHECK(check(&m, &op, why) == 0);
	l.netns = "cust-x";
	CHECK(check(&m, &op, why) == -EPERM);
	op.action = CREATE;

	op.object_case = MT__KERNEL__OP__OBJECT_ADDR;
	op.addr = &a;
	a.dev = "mt0-acme";
	a.prefix = "169.254.0.2/31";
	CHECK(check(&m, &op, why) == 0);
	a.dev = "eth0";
	CHECK(check(&m, &op, why) == -EPERM);
	a.netns = "mt0-acme";
	CHECK(check(&m, &op, why) == 0);

	op.object_case = MT__KERNEL__OP__OBJECT_ROUTE;
	op.route = &r;
	r.table = 2000;
	r.dst = "203.0.113.0/24";
	CHECK(check(&m, &op, why) == 0);
	r.table = 254;
	CHECK(check(&m, &op, why) == -EPERM);
	CHECK_CONTAINS(why, "table 254");
	r.netns = "mt0-acme";
	CHECK(check(&m, &op, why) == 0);
	{
		Mt__Kernel__Nexthop h = MT__KERNEL__NEXTHOP__INIT, *hv[] = {&h};

		h.dev = "gre1";
		h.weight = 1;
		r.nexthops = hv;
		r.n_nexthops = 1;
		CHECK(check(&m, &op, why) == -EINVAL);
		CHECK_CONTAINS(why, "exactly one nexthop");
		r.n_nexthops = 0;
		r.nexthops = NULL;
	}

	op.object_case = MT__KERNEL__OP__OBJECT_RULE;
	op.rule = &ru;
	ru.priority = 1000;
	CHECK(check(&m, &op, why) == 0);
	ru.priority = 1099;
	CHECK(check(&m, &op, why) == 0);
	ru.priority = 1100;
	CHECK(check(&m, &op, why) == -EPERM);
	CHECK_CONTAINS(why, "1000-1099");
	ru.priority = 0;
	CHECK(check(&m, &op, why) == -EPERM);
	ru.netns = "mt0-acme";
	CHECK(check(&m, &op, why) == 0);

	op.object_case = MT__KERNEL__OP__OBJECT_SYSCTL;
	op.sysctl = &s;
	s.value = "1";
	s.key = "net/ipv4/ip_forward";
	CHECK(check(&m, &op, why) == 0);
	s.key = "net/ipv6/conf/all/forwarding";
	CHECK(check(&m, &op, why) == 0);
	s.key = "net/ipv4/conf/mt0-acme/rp_filter";
	CHECK(check(&m, &op, why) == 0);
	s.key = "net/ipv6/conf/mt0-acme/disable_ipv6";
	CHECK(check(&m, &op, why) == 0);
	s.key = "net/ipv4/conf/eth0/rp_filter";
	CHECK(check(&m, &op, why) == -EPERM);
	s.key = "net/ipv4/conf/all/rp_filter";
	CHECK(check(&m, &op, why) == -EPERM);
	s.key = "net/ipv4/conf/mt0-acme/";
	CHECK(check(&m, &op, why) == -EPERM);
	s.key = "kernel/panic";
	CHECK(check(&m, &op, why) == -EPERM);
	s.key = "net/ipv4/conf/mt0-acme/../../../kernel/panic";
	CHECK(check(&m, &op, why) == -EINVAL);
	s.netns = "mt0-acme";
	s.key = "net/ipv4/conf/all/rp_filter";
	CHECK(check(&m, &op, why) == 0);
	s.key = "net/IPV4/x";
	CHECK(check(&m, &op, why) == -EINVAL);

	op.object_case = MT__KERNEL__OP__OBJECT_MARK_PREFIX;
	CHECK(check(&m, &op, why) == -EINVAL);
	mt_metal_fini(&m);
}

static void test_names(void)
{
	CHECK(mt_netns_name_valid("mt0-acme"));
	CHECK(mt_netns_name_valid("a.b_c-D"));
	CHECK(!mt_netns_name_valid(""));
	CHECK(!mt_netns_name_valid(".."));
	CHECK(!mt_netns_name_valid(".hidden"));
	CHECK(!mt_netns_name_valid("a/b"));
	CHECK(!mt_netns_name_valid("a b"));
	CHECK(mt_sysctl_key_valid("net/ipv4/conf/mt0-a.b/rp_filter"));
	CHECK(!mt_sysctl_key_valid("/net/ipv4/ip_forward"));
	CHECK(!mt_sysctl_key_valid("net/../kernel"));
	CHECK(!mt_sysctl_key_valid(""));
}

int main(void)
{
	RUN(test_link_veth);
	RUN(test_link_set_delete);
	RUN(test_addr);
	RUN(test_route);
	RUN(test_route_multipath);
	RUN(test_route_multipath_one);
	RUN(test_route_check);
	RUN(test_rule);
	RUN(test_ext_ack);
	RUN(test_batch_overflow);
	RUN(test_ownership);
	RUN(test_names);
	TEST_MAIN_END();
}
