/* What mtctl tunnels shows: a customer's tunnel configs joined with what
 * mt-fastpath observed. Pure code, no I/O. */
#ifndef MT_TUNNEL_STATUS_H
#define MT_TUNNEL_STATUS_H

#include "config.pb-c.h"
#include "kernel.pb-c.h"
#include "mt_metal.h"
#include "rpc.pb-c.h"

/* Appends one TunnelStatus per tunnel of c to list, in config order:
 *   - driver, and counters (a copy), from the observed Tunnel of the same
 *     name in the customer's namespace ("" and no counters when the kernel
 *     has none);
 *   - the configured fields with defaults applied (mt_tunnel_ttl/mtu/mss);
 *   - one TunnelRouteStatus per configured route through it: the
 *     effective priority is the metric of the observed cust_table route for
 *     that prefix that carries the tunnel (dev or a nexthop), the lowest
 *     when several do; installed says whether one does.
 * observed may hold other customers' objects. 0 or -ENOMEM. */
int mt_tunnel_status_build(const struct mt_metal *m,
			   const Mt__Config__Customer *c,
			   const Mt__Kernel__KernelState *observed,
			   Mt__Rpc__TunnelList *list);

#endif
