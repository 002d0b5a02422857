#include "rule.h"

#include <errno.h>
#include <linux/fib_rules.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include "mt_metal.h"

int mt_rule_build(void *buf, size_t len, Mt__Kernel__Op__Action action,
		  const Mt__Kernel__Rule *r, int family)
{
	bool del = action == MT__KERNEL__OP__ACTION__DELETE;
	struct fib_rule_hdr *frh;
	struct mt_nlb b;

	if (family != AF_INET && family != AF_INET6)
		return -EAFNOSUPPORT;
	frh = mt_nlb_start(&b, buf, len, del ? RTM_DELRULE : RTM_NEWRULE,
			   del ? 0 : NLM_F_CREATE | NLM_F_EXCL, sizeof(*frh));
	if (frh) {
		frh->family = (uint8_t)family;
		frh->table =
		    r->table < 256 ? (uint8_t)r->table : RT_TABLE_UNSPEC;
		frh->action = FR_ACT_TO_TBL;
	}
	mt_nlb_u32(&b, FRA_PRIORITY, r->priority);
	if (r->fwmark || r->fwmask) {
		mt_nlb_u32(&b, FRA_FWMARK, r->fwmark);
		if (r->fwmask)
			mt_nlb_u32(&b, FRA_FWMASK, r->fwmask);
	}
	mt_nlb_u32(&b, FRA_TABLE, r->table);
	if (!del)
		mt_nlb_u8(&b, FRA_PROTOCOL, MT_RTPROT);
	return mt_nlb_end(&b);
}

int mt_rule_build_dump(void *buf, size_t len)
{
	struct fib_rule_hdr *frh;
	struct mt_nlb b;

	frh = mt_nlb_start(&b, buf, len, RTM_GETRULE, 0, sizeof(*frh));
	if (frh)
		frh->family = AF_UNSPEC;
	return mt_nlb_end(&b);
}

struct attrs {
	const struct nlattr *tb[FRA_MAX + 1];
};

static int collect(const struct nlattr *a, void *data)
{
	struct attrs *t = data;
	uint16_t type = mnl_attr_get_type(a);

	if (type <= FRA_MAX)
		t->tb[type] = a;
	return MNL_CB_OK;
}

int mt_rule_parse(const struct nlmsghdr *nlh, Mt__Kernel__Rule *r,
		  struct mt_rule_meta *meta)
{
	const struct fib_rule_hdr *frh = mnl_nlmsg_get_payload(nlh);
	struct attrs t = {0};

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*frh) ||
	    mnl_attr_parse(nlh, sizeof(*frh), collect, &t) < 0)
		return -EINVAL;
	meta->family = frh->family;
	meta->action = frh->action;
	meta->protocol =
	    t.tb[FRA_PROTOCOL] ? mnl_attr_get_u8(t.tb[FRA_PROTOCOL]) : 0;
	r->priority =
	    t.tb[FRA_PRIORITY] ? mnl_attr_get_u32(t.tb[FRA_PRIORITY]) : 0;
	r->fwmark = t.tb[FRA_FWMARK] ? mnl_attr_get_u32(t.tb[FRA_FWMARK]) : 0;
	r->fwmask = t.tb[FRA_FWMASK] ? mnl_attr_get_u32(t.tb[FRA_FWMASK]) : 0;
	r->table =
	    t.tb[FRA_TABLE] ? mnl_attr_get_u32(t.tb[FRA_TABLE]) : frh->table;
	return 0;
}
