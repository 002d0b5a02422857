/* Observing what mt owns in the kernel, on the context of nl.h. */
#ifndef MT_FASTPATH_RTNL_OBSERVE_H
#define MT_FASTPATH_RTNL_OBSERVE_H

#include <stdbool.h>
#include <stddef.h>

#include "kernel.pb-c.h"
#include "nl.h"

/* Appends to st (mt_kstate.h helpers) a complete snapshot of what mt owns:
 *  - the owned namespaces (/run/netns names with the instance prefix),
 *    all of them or, with n_owners > 0, only those of the given customers;
 *  - for the metal and each of those namespaces:
 *    links (in the metal only owned names): name, kind, up, mtu, ifindex,
 *      and for a veth whose peer was found: peer_netns/peer_name (a metal
 *      veth's peer is looked for in the owned namespace of the same name; a
 *      customer-side veth's in the metal; a veth with both ends in one
 *      namespace pairs there);
 *      NOT tunnel devices, which the tunnel module reports as Tunnels (as
 *      Links the agent's diff would delete them as unknown links): in
 *      customer namespaces links of kind gre, gretap, ip6gre and ip6gretap,
 *      and the veth pairs X / X".t" with both ends in the namespace (the
 *      BPF tunnel's device and its wire end, gre_bpf.h);
 *    addresses (global scope; no fe80::/10), "addr/len", on those links
 *      and on tunnel devices (dev = X);
 *    routes of protocol MT_RTPROT (metal: gre_table only; namespaces: all
 *      tables), dev from RTA_OIF (tunnel devices included), IPv6 routes
 *      carry the kernel's metric; prefsrc; a multipath route's nexthops in
 *      the kernel's order (dev, gateway, weight), dev/gateway "" then; the
 *      kernel stores a one-nexthop multipath route as a plain one, which is
 *      reported as dev/gateway (route.c has what the kernel does);
 *      a multipath route in the metal belongs to its first nexthop's owner;
 *    rules with priority in [rule_priority, +MT_RULE_RANGE), reported once
 *      when present in IPv4, IPv6 or both;
 *    sysctls: metal net/ipv4/ip_forward and net/ipv4/conf/<owned
 *      link>/rp_filter; namespaces net/ipv4/ip_forward,
 *      net/ipv4/fib_multipath_hash_policy and
 *      net/ipv4/conf/{all,default,metal0}/rp_filter (keys that do not exist
 *      are left out).
 * owner is set on everything: the customer (from the namespace or metal
 * link name), "" for the metal's shared objects (its rules, ip_forward, a
 * gre_table route through a link mt does not own). With an owner filter the
 * shared objects are still included (rpc.proto ObserveRequest).
 * Interrupted dumps (NLM_F_DUMP_INTR) are repeated. Cached namespace handles
 * whose namespace is gone (or was replaced) are dropped.
 * With a drift monitor attached (ctx->ns_gen), a namespace in which nothing
 * happened since the last observe is answered from the mirror of its last
 * dumps (dump_mirror.h) instead of dumping it again; sysctls are always
 * read. fresh: dump every namespace, mirrors or not (and record new ones).
 * The caller drains the monitor first (mt_monitor_drain). Returns 0 or
 * -errno (then st holds a partial, unusable snapshot). */
int mt_rtnl_observe(struct mt_rtnl *ctx, const char *const *owners,
		    size_t n_owners, bool fresh, Mt__Kernel__KernelState *st);

#endif
