#include "link.h"

#include <errno.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <string.h>
#include <sys/ioctl.h>

#include "mt_cleanup.h"
#include "mt_kstate.h"

static bool ifname_ok(const char *name)
{
	size_t n = strlen(name);

	return n > 0 && n < IFNAMSIZ && !strchr(name, '/') &&
	       strcmp(name, ".") != 0 && strcmp(name, "..") != 0;
}

static void fill_ifi(struct ifinfomsg *ifi, bool up, bool set_updown)
{
	ifi->ifi_family = AF_UNSPEC;
	if (set_updown) {
		ifi->ifi_change = IFF_UP;
		ifi->ifi_flags = up ? IFF_UP : 0;
	}
}

/* The veth peer: VETH_INFO_PEER holds a struct ifinfomsg followed by the
 * peer's own attributes. */
static void put_peer(struct mt_nlb *b, const Mt__Kernel__Link *l, int peer_nsfd)
{
	struct nlattr *peer = mt_nlb_nest(b, VETH_INFO_PEER);
	size_t need = MNL_ALIGN(sizeof(struct ifinfomsg));
	struct ifinfomsg *ifi;

	if (b->full)
		return;
	if (b->nlh->nlmsg_len + need > b->len) {
		b->full = true;
		return;
	}
	/* The peer stays down here: the kernel configures it before the
	 * pair is joined, and opening a veth without its peer fails with
	 * ENOTCONN. Bring it up with mt_link_build_set in its namespace. */
	ifi = mnl_nlmsg_get_payload_tail(b->nlh);
	memset(ifi, 0, need);
	ifi->ifi_family = AF_UNSPEC;
	b->nlh->nlmsg_len += need;
	mt_nlb_str(b, IFLA_IFNAME, l->peer_name);
	if (peer_nsfd >= 0)
		mt_nlb_u32(b, IFLA_NET_NS_FD, (uint32_t)peer_nsfd);
	if (l->mtu)
		mt_nlb_u32(b, IFLA_MTU, l->mtu);
	mt_nlb_nest_end(b, peer);
}

int mt_link_build_set(void *buf, size_t len, const char *name, bool up,
		      uint32_t mtu)
{
	struct mt_nlb b;
	struct ifinfomsg *ifi;

	if (!ifname_ok(name))
		return -EINVAL;
	ifi = mt_nlb_start(&b, buf, len, RTM_NEWLINK, 0, sizeof(*ifi));
	if (ifi)
		fill_ifi(ifi, up, true);
	mt_nlb_str(&b, IFLA_IFNAME, name);
	if (mtu)
		mt_nlb_u32(&b, IFLA_MTU, mtu);
	return mt_nlb_end(&b);
}

int mt_link_build(void *buf, size_t len, Mt__Kernel__Op__Action action,
		  const Mt__Kernel__Link *l, int peer_nsfd)
{
	struct nlattr *info, *data;
	struct ifinfomsg *ifi;
	struct mt_nlb b;

	if (!ifname_ok(l->name))
		return -EINVAL;
	if (action == MT__KERNEL__OP__ACTION__DELETE) {
		ifi = mt_nlb_start(&b, buf, len, RTM_DELLINK, 0, sizeof(*ifi));
		if (ifi)
			ifi->ifi_family = AF_UNSPEC;
		mt_nlb_str(&b, IFLA_IFNAME, l->name);
		return mt_nlb_end(&b);
	}
	if (!*l->kind)
		return mt_link_build_set(buf, len, l->name, l->up, l->mtu);
	if (strcmp(l->kind, "veth") != 0)
		return -EOPNOTSUPP;
	if (!ifname_ok(l->peer_name))
		return -EINVAL;
	ifi = mt_nlb_start(&b, buf, len, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL,
			   sizeof(*ifi));
	if (ifi)
		fill_ifi(ifi, l->up, l->up);
	mt_nlb_str(&b, IFLA_IFNAME, l->name);
	if (l->mtu)
		mt_nlb_u32(&b, IFLA_MTU, l->mtu);
	info = mt_nlb_nest(&b, IFLA_LINKINFO);
	mt_nlb_str(&b, IFLA_INFO_KIND, "veth");
	data = mt_nlb_nest(&b, IFLA_INFO_DATA);
	put_peer(&b, l, peer_nsfd);
	mt_nlb_nest_end(&b, data);
	mt_nlb_nest_end(&b, info);
	return mt_nlb_end(&b);
}

int mt_link_build_dump(void *buf, size_t len)
{
	struct ifinfomsg *ifi;
	struct mt_nlb b;

	ifi = mt_nlb_start(&b, buf, len, RTM_GETLINK, 0, sizeof(*ifi));
	if (ifi)
		ifi->ifi_family = AF_UNSPEC;
	/* Counters are most of a link message and observe needs none. */
	mt_nlb_u32(&b, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	return mt_nlb_end(&b);
}

/* ---- parse -------------------------------------------------------------- */

struct attrs {
	const struct nlattr *tb[IFLA_MAX + 1];
};

static int collect(const struct nlattr *a, void *data)
{
	struct attrs *t = data;
	uint16_t type = mnl_attr_get_type(a);

	if (type <= IFLA_MAX)
		t->tb[type] = a;
	return MNL_CB_OK;
}

static void copy_name(const struct nlattr *a, char *dst, size_t len)
{
	size_t n = mnl_attr_get_payload_len(a);
	const char *s = mnl_attr_get_payload(a);

	n = strnlen(s, n);
	if (n >= len)
		n = len - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

static int parse_peer(const struct nlattr *peer, struct mt_link_meta *meta)
{
	const struct ifinfomsg *ifi = mnl_attr_get_payload(peer);
	size_t plen = mnl_attr_get_payload_len(peer);
	size_t hl = MNL_ALIGN(sizeof(*ifi));
	struct attrs t = {0};

	if (plen < hl)
		return -EINVAL;
	meta->peer_flags = ifi->ifi_flags;
	mnl_attr_parse_payload((const char *)ifi + hl, plen - hl, collect, &t);
	if (t.tb[IFLA_IFNAME])
		copy_name(t.tb[IFLA_IFNAME], meta->peer_name,
			  sizeof(meta->peer_name));
	if (t.tb[IFLA_NET_NS_FD])
		meta->peer_nsfd =
		    (int32_t)mnl_attr_get_u32(t.tb[IFLA_NET_NS_FD]);
	if (t.tb[IFLA_MTU])
		meta->peer_mtu = mnl_attr_get_u32(t.tb[IFLA_MTU]);
	return 0;
}

static int parse_linkinfo(const struct nlattr *info, Mt__Kernel__Link *l,
			  struct mt_link_meta *meta)
{
	const struct nlattr *kind = NULL, *data = NULL, *a;
	char buf[32] = "";
	int r;

	mnl_attr_for_each_nested (a, info) {
		if (mnl_attr_get_type(a) == IFLA_INFO_KIND)
			kind = a;
		else if (mnl_attr_get_type(a) == IFLA_INFO_DATA)
			data = a;
	}
	if (kind)
		copy_name(kind, buf, sizeof(buf));
	r = mt_kstate_set_str(&l->kind, buf);
	if (r < 0 || !data || strcmp(buf, "veth") != 0)
		return r;
	mnl_attr_for_each_nested (a, data)
		if (mnl_attr_get_type(a) == VETH_INFO_PEER)
			return parse_peer(a, meta);
	return 0;
}

int mt_link_parse(const struct nlmsghdr *nlh, Mt__Kernel__Link *l,
		  struct mt_link_meta *meta)
{
	const struct ifinfomsg *ifi = mnl_nlmsg_get_payload(nlh);
	char name[IFNAMSIZ] = "";
	struct attrs t = {0};
	int r;

	memset(meta, 0, sizeof(*meta));
	meta->link_netnsid = -1;
	meta->peer_nsfd = -1;
	if (mnl_nlmsg_get_payload_len(nlh) < sizeof(*ifi))
		return -EINVAL;
	if (mnl_attr_parse(nlh, sizeof(*ifi), collect, &t) < 0)
		return -EINVAL;
	meta->ifindex = (uint32_t)ifi->ifi_index;
	meta->flags = ifi->ifi_flags;
	if (t.tb[IFLA_IFNAME])
		copy_name(t.tb[IFLA_IFNAME], name, sizeof(name));
	if (t.tb[IFLA_LINK])
		meta->link = mnl_attr_get_u32(t.tb[IFLA_LINK]);
	if (t.tb[IFLA_LINK_NETNSID])
		meta->link_netnsid =
		    (int32_t)mnl_attr_get_u32(t.tb[IFLA_LINK_NETNSID]);
	l->ifindex = meta->ifindex;
	l->up = (ifi->ifi_flags & IFF_UP) != 0;
	l->mtu = t.tb[IFLA_MTU] ? mnl_attr_get_u32(t.tb[IFLA_MTU]) : 0;
	r = mt_kstate_set_str(&l->name, name);
	if (r == 0 && t.tb[IFLA_LINKINFO])
		r = parse_linkinfo(t.tb[IFLA_LINKINFO], l, meta);
	return r;
}

int mt_link_ifindex(struct mt_nl *nl, const char *name)
{
	struct ifreq ifr = {0};

	if (!ifname_ok(name))
		return -ENODEV;
	strncpy(ifr.ifr_name, name, IFNAMSIZ - 1);
	if (ioctl(mt_nl_fd(nl), SIOCGIFINDEX, &ifr) < 0)
		return mt_neg_errno();
	return ifr.ifr_ifindex;
}
