/* rtnetlink routes: check, build (Route -> RTM_NEWROUTE/RTM_DELROUTE) and
 * parse (RTM_NEWROUTE -> Route). Pure, no socket.
 *
 * A Route is either single-path (dev and/or gateway, nexthops empty) or
 * multipath (two or more nexthops, dev and gateway ""): kernel.proto. */
#ifndef MT_FASTPATH_ROUTE_H
#define MT_FASTPATH_ROUTE_H

#include <stdint.h>

#include "kernel.pb-c.h"
#include "nl.h"

/* The most nexthops a route may have: the worst case (IPv6, every nexthop
 * with a gateway, a prefsrc) must fit one MT_NL_MSG_MAX message. */
#define MT_ROUTE_NEXTHOPS_MAX 32
#define MT_ROUTE_WEIGHT_MAX 256

struct mt_route_meta {
	uint32_t oif; /* RTA_OIF, or the one nexthop of a collapsed
		       * RTA_MULTIPATH; 0 = none */
	uint8_t family;
	uint8_t protocol;
	uint8_t type;	/* RTN_* */
	uint32_t flags; /* rtm_flags */
	bool multipath; /* RTA_MULTIPATH present */
};

/* Checks r before anything is sent for it (pure): dst a strict prefix;
 * gateway, prefsrc and nexthop gateways addresses of dst's family; with
 * nexthops (create only): 2..MT_ROUTE_NEXTHOPS_MAX of them, dev and gateway
 * "", each with a device name and a weight in 1..MT_ROUTE_WEIGHT_MAX, and
 * for IPv6 a gateway each (the kernel refuses device-only IPv6 multipath
 * routes). A delete is checked only for what it sends (dst, gateway).
 * Returns 0 or -EINVAL with the reason in why (naming the field and the
 * value; the caller names the route). */
int mt_route_check(const Mt__Kernel__Route *r, bool create, char *why,
		   size_t len);

/* Builds the message for an op on r (mt_route_check must accept it) with
 * output device ifindex (0 = none) and, for a create with nexthops,
 * nh_ifindex[i] the device of r->nexthops[i]. Table always as RTA_TABLE
 * (0 = main), protocol MT_RTPROT, metric as RTA_PRIORITY.
 * CREATE: CREATE|REPLACE (a changed nexthop set, weight or prefsrc replaces
 * the route in place), unicast unless r->type; scope link for a
 * single-path route without a gateway, universe otherwise (as iproute2);
 * RTA_PREFSRC when set; RTA_MULTIPATH with one rtnexthop per nexthop
 * (rtnh_hops = weight - 1, RTA_GATEWAY nested) when there are nexthops.
 * DELETE matches protocol MT_RTPROT, so only mt's routes can be deleted; it
 * carries no nexthops and no prefsrc: the kernel then deletes the route of
 * that dst/table/metric whatever its nexthops (IPv6: all its siblings).
 * Returns the length, -EINVAL (what mt_route_check refuses) or -EMSGSIZE. */
int mt_route_build(void *buf, size_t len, Mt__Kernel__Op__Action action,
		   const Mt__Kernel__Route *r, uint32_t ifindex,
		   const uint32_t *nh_ifindex);
/* RTM_GETROUTE dump request for family (AF_INET or AF_INET6: per-family
 * dumps run without the RTNL lock, an AF_UNSPEC one holds it throughout),
 * asking the kernel (strict checking) to return only routes of protocol
 * (0 = any) in table (0 = any). Callers still filter: older kernels ignore
 * the filter. */
int mt_route_build_dump(void *buf, size_t len, uint8_t family,
			uint8_t protocol, uint32_t table);

/* Maps an ifindex to a device name (NULL = unknown: dev stays ""). */
typedef const char *(*mt_route_ifname_fn)(void *data, uint32_t ifindex);

/* Parses an RTM_NEWROUTE into r (table, dst, gateway, metric, type,
 * prefsrc, nexthops) and meta. Device names come from ifname(data, ifindex)
 * (RTA_OIF into dev, each nexthop's rtnh_ifindex into its dev); with a NULL
 * ifname they stay "" (meta.oif has the single-path device). Nexthops are
 * in the kernel's order, weight = rtnh_hops + 1, gateway from the nested
 * RTA_GATEWAY (or RTA_VIA). An RTA_MULTIPATH of one nexthop is reported as
 * dev/gateway (kernel.proto: nexthops never has one element). Returns 0,
 * -EINVAL (malformed), -EAFNOSUPPORT (not IPv4/IPv6) or -ENOMEM. */
int mt_route_parse(const struct nlmsghdr *nlh, Mt__Kernel__Route *r,
		   struct mt_route_meta *meta, mt_route_ifname_fn ifname,
		   void *data);

#endif
