/* rtnetlink addresses: build (Addr -> RTM_NEWADDR/RTM_DELADDR) and parse
 * (RTM_NEWADDR -> Addr). Pure, no socket. */
#ifndef MT_FASTPATH_ADDR_H
#define MT_FASTPATH_ADDR_H

#include <stdint.h>

#include "kernel.pb-c.h"
#include "nl.h"

struct mt_ifaddr_meta {
	uint32_t ifindex;
	uint8_t family;
	uint8_t scope;
	uint32_t flags; /* IFA_FLAGS (or ifa_flags) */
};

/* Builds the message for an op on a (its prefix "addr/len", IPv4 or IPv6,
 * host bits allowed) on device ifindex. CREATE uses CREATE|REPLACE, scope
 * global; IPv6 addresses get IFA_F_NODAD (mt's veths are point-to-point
 * links mt numbers itself; DAD would leave them tentative for seconds).
 * Returns the length, -EINVAL (bad prefix) or -EMSGSIZE. */
int mt_ifaddr_build(void *buf, size_t len, Mt__Kernel__Op__Action action,
		    const Mt__Kernel__Addr *a, uint32_t ifindex);
/* RTM_GETADDR dump request for family (AF_INET or AF_INET6; AF_UNSPEC,
 * both at once, makes the kernel take the RTNL lock for the whole dump,
 * which the per-family dumps do not). */
int mt_ifaddr_build_dump(void *buf, size_t len, uint8_t family);

/* Parses an RTM_NEWADDR into a->prefix ("addr/len": IFA_LOCAL, else
 * IFA_ADDRESS) and meta; dev is left to the caller (meta.ifindex). */
int mt_ifaddr_parse(const struct nlmsghdr *nlh, Mt__Kernel__Addr *a,
		    struct mt_ifaddr_meta *meta);

#endif
