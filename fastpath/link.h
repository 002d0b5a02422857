/* rtnetlink links: build (Link -> RTM_NEWLINK/RTM_DELLINK) and parse
 * (RTM_NEWLINK -> Link). Pure, no socket, except mt_link_ifindex. */
#ifndef MT_FASTPATH_LINK_H
#define MT_FASTPATH_LINK_H

#include <net/if.h>
#include <stdint.h>

#include "kernel.pb-c.h"
#include "nl.h"

/* What a link message carries beyond the Link object. */
struct mt_link_meta {
	uint32_t ifindex;
	uint32_t flags;	      /* ifi_flags */
	uint32_t link;	      /* IFLA_LINK: a veth's peer ifindex, 0 = none */
	int32_t link_netnsid; /* IFLA_LINK_NETNSID, -1 = same namespace */
	/* Only in a veth create request: the peer's VETH_INFO_PEER. */
	char peer_name[IFNAMSIZ];
	int32_t peer_nsfd; /* IFLA_NET_NS_FD, -1 = none */
	uint32_t peer_mtu;
	uint32_t peer_flags;
};

/* Builds the message for an op on l into buf (len bytes). Returns its
 * length, -EMSGSIZE, -EINVAL (bad name) or -EOPNOTSUPP (a kind other than
 * "veth" or "").
 *  - CREATE kind "veth": one RTM_NEWLINK (CREATE|EXCL) that creates the
 *    pair with the peer made directly inside the namespace peer_nsfd (-1 =
 *    the socket's own); MTU on both ends if nonzero; IFF_UP on this end if
 *    l->up. The peer cannot be brought up in the same message (the kernel
 *    opens it before the pair is joined: ENOTCONN): send
 *    mt_link_build_set(peer_name, up) to the peer's namespace after it.
 *  - CREATE kind "": the link exists; RTM_NEWLINK without CREATE sets up/down
 *    and MTU (if nonzero) on the device named l->name.
 *  - DELETE: RTM_DELLINK by name. */
int mt_link_build(void *buf, size_t len, Mt__Kernel__Op__Action action,
		  const Mt__Kernel__Link *l, int peer_nsfd);
/* RTM_NEWLINK without CREATE that sets up/down and MTU (0 = leave) of an
 * existing device by name. */
int mt_link_build_set(void *buf, size_t len, const char *name, bool up,
		      uint32_t mtu);
/* RTM_GETLINK dump request for all links. */
int mt_link_build_dump(void *buf, size_t len);

/* Parses an RTM_NEWLINK into l (name, kind, mtu, up, ifindex; strings
 * through mt_kstate_set_str) and meta. Returns 0, -EINVAL for a malformed
 * message, -ENOMEM. */
int mt_link_parse(const struct nlmsghdr *nlh, Mt__Kernel__Link *l,
		  struct mt_link_meta *meta);

/* The ifindex of name in the namespace of nl's socket (SIOCGIFINDEX on the
 * netlink socket resolves in the socket's namespace). -ENODEV if absent. */
int mt_link_ifindex(struct mt_nl *nl, const char *name);

#endif
