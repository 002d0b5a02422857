#include "addr.h"

#include <errno.h>
#include <linux/if_addr.h>
#include <linux/rtnetlink.h>
#include <string.h>

#include "mt_kstate.h"
#include "mt_prefix.h"

static size_t alen(int family)
{
	return family == AF_INET ? 4 : 16;
}

int mt_ifaddr_build(void *buf, size_t len, Mt__Kernel__Op__Action action,
		    const Mt__Kernel__Addr *a, uint32_t ifindex)
{
	bool del = action == MT__KERNEL__OP__ACTION__DELETE;
	struct ifaddrmsg *ifa;
	struct mt_prefix p;
	struct mt_nlb b;
	char err[128];

	if (mt_prefix_parse(a->prefix, false, &p, err, sizeof(err)) < 0)
		return -EINVAL;
	ifa =
	    mt_nlb_start(&b, buf, len, del ? RTM_DELADDR : RTM_NEWADDR,
			 del ? 0 : NLM_F_CREATE | NLM_F_REPLACE, sizeof(*ifa));
	if (ifa) {
		ifa->ifa_family = (uint8_t)p.family;
		ifa->ifa_prefixlen = p.len;
		ifa->ifa_scope = RT_SCOPE_UNIVERSE;
		ifa->ifa_index = ifindex;
		if (p.family == AF_INET6 && !del)
			ifa->ifa_flags = IFA_F_NODAD;
	}
	mt_nlb_put(&b, IFA_LOCAL, alen(p.family), p.addr);
	mt_nlb_put(&b, IFA_ADDRESS, alen(p.family), p.addr);
	if (p.family == AF_INET6 && !del)
		mt_nlb_u32(&b, IFA_FLAGS, IFA_F_NODAD);
	return mt_nlb_end(&b);
}

int mt_ifaddr_build_dump(void *buf, size_t len, uint8_t family)
{
	struct ifaddrmsg *ifa;
	struct mt_nlb b;

	ifa = mt_nlb_start(&b, buf, len, RTM_GETADDR, 0, sizeof(*ifa));
	if (ifa)
		ifa->ifa_family = family;
	return mt_nlb_end(&b);
}

struct attrs {
	const struct nlattr *tb[IFA_MAX + 1];
};

static int collect(const struct nlattr *a, void *data)
{
	struct attrs *t = data;
	uint16_t type = mnl_attr_get_type(a);

	if (type <= IFA_MAX)
		t->tb[type] = a;
	return MNL_CB_OK;
}

int mt_ifaddr_parse(const struct nlmsghdr *nlh, Mt__Kernel__Addr *a,
		    struct mt_ifaddr_meta *meta)
{
	const struct ifaddrmsg *ifa = mnl_nlmsg_get_payload(nlh);
	const struct nlattr *addr;
	char buf[MT_PREFIX_STRLEN];
	struct attrs t = {0};
	struct mt_prefix p = {0};

	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifa) ||
	    mnl_attr_parse(nlh, sizeof(*ifa), collect, &t) < 0)
		return -EINVAL;
	if (ifa->ifa_family != AF_INET && ifa->ifa_family != AF_INET6)
		return -EAFNOSUPPORT;
	meta->ifindex = ifa->ifa_index;
	meta->family = ifa->ifa_family;
	meta->scope = ifa->ifa_scope;
	meta->flags = t.tb[IFA_FLAGS] ? mnl_attr_get_u32(t.tb[IFA_FLAGS])
				      : ifa->ifa_flags;
	addr = t.tb[IFA_LOCAL] ? t.tb[IFA_LOCAL] : t.tb[IFA_ADDRESS];
	if (!addr || mnl_attr_get_payload_len(addr) != alen(ifa->ifa_family))
		return -EINVAL;
	p.family = ifa->ifa_family;
	p.len = ifa->ifa_prefixlen;
	memcpy(p.addr, mnl_attr_get_payload(addr), alen(p.family));
	return mt_kstate_set_str(&a->prefix,
				 mt_prefix_format(&p, buf, sizeof(buf)));
}
