/* rtnetlink routes: build (Route -> RTM_NEWROUTE/RTM_DELROUTE) and parse
 * (RTM_NEWROUTE -> Route). Pure, no socket. */
#ifndef MT_FASTPATH_ROUTE_H
#define MT_FASTPATH_ROUTE_H

#include <stdint.h>

#include "kernel.pb-c.h"
#include "nl.h"

struct mt_route_meta {
	uint32_t oif; /* RTA_OIF, 0 = none */
	uint8_t family;
	uint8_t protocol;
	uint8_t type;	/* RTN_* */
	uint32_t flags; /* rtm_flags */
	bool multipath; /* RTA_MULTIPATH present (not representable) */
};

/* Builds the message for an op on r (family from r->dst; r->gateway must be
 * of the same family) with output device ifindex (0 = none). Table always
 * as RTA_TABLE (0 = main), protocol MT_RTPROT, metric as RTA_PRIORITY.
 * CREATE: CREATE|REPLACE, unicast, scope link without a gateway. DELETE
 * matches protocol MT_RTPROT, so only mt's routes can be deleted. Returns
 * the length, -EINVAL (bad dst/gateway) or -EMSGSIZE. */
int mt_route_build(void *buf, size_t len, Mt__Kernel__Op__Action action,
		   const Mt__Kernel__Route *r, uint32_t ifindex);
/* RTM_GETROUTE dump request, both families, asking the kernel (strict
 * checking) to return only routes of protocol (0 = any) in table (0 = any).
 * Callers still filter: older kernels ignore the filter. */
int mt_route_build_dump(void *buf, size_t len, uint8_t protocol,
			uint32_t table);

/* Parses an RTM_NEWROUTE into r (table, dst, gateway, metric; dev is left to
 * the caller: meta.oif) and meta. */
int mt_route_parse(const struct nlmsghdr *nlh, Mt__Kernel__Route *r,
		   struct mt_route_meta *meta);

#endif
