#include "route.h"

#include <errno.h>
#include <linux/rtnetlink.h>
#include <string.h>

#include "mt_kstate.h"
#include "mt_metal.h"
#include "mt_prefix.h"

static size_t alen(int family)
{
	return family == AF_INET ? 4 : 16;
}

int mt_route_build(void *buf, size_t len, Mt__Kernel__Op__Action action,
		   const Mt__Kernel__Route *r, uint32_t ifindex)
{
	bool del = action == MT__KERNEL__OP__ACTION__DELETE;
	struct mt_prefix dst, gw;
	bool has_gw = *r->gateway;
	struct mt_nlb b;
	struct rtmsg *rtm;
	char err[128];

	if (mt_prefix_parse(r->dst, true, &dst, err, sizeof(err)) < 0)
		return -EINVAL;
	if (has_gw && (mt_addr_parse(r->gateway, &gw, err, sizeof(err)) < 0 ||
		       gw.family != dst.family))
		return -EINVAL;
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
			rtm->rtm_scope = has_gw || rtm->rtm_type != RTN_UNICAST
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
	return mt_nlb_end(&b);
}

int mt_route_build_dump(void *buf, size_t len, uint8_t protocol, uint32_t table)
{
	struct mt_nlb b;
	struct rtmsg *rtm;

	rtm = mt_nlb_start(&b, buf, len, RTM_GETROUTE, 0, sizeof(*rtm));
	if (rtm) {
		rtm->rtm_family = AF_UNSPEC;
		rtm->rtm_protocol = protocol;
	}
	if (table)
		mt_nlb_u32(&b, RTA_TABLE, table);
	return mt_nlb_end(&b);
}

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

int mt_route_parse(const struct nlmsghdr *nlh, Mt__Kernel__Route *r,
		   struct mt_route_meta *meta)
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
	if (e == 0 && t.tb[RTA_GATEWAY])
		e = set_addr(&r->gateway, t.tb[RTA_GATEWAY], rtm->rtm_family, 0,
			     false);
	return e;
}
