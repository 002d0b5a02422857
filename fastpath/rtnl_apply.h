/* Applying a plan's kernel ops (namespaces, links, addresses, routes, rules,
 * sysctls) through rtnetlink, on the context of nl.h (struct mt_rtnl).
 *
 * Ops run in plan order. Consecutive netlink ops for the same namespace go
 * out as one batch (one sendmsg, one NLM_F_ACK message with its own
 * sequence number per op, or two for a rule: IPv4 and IPv6); the batch is
 * flushed when full, when the next op targets another namespace, and
 * before any op that is not a netlink message (netns, sysctl), so a later
 * op always sees the effect of the earlier ones. Every ACK is read, even
 * after an error, and mapped back to its op.
 *
 * Idempotent: benign errors are per op type (EEXIST creating a veth or a
 * rule; ENOENT/ESRCH/EADDRNOTAVAIL/ENODEV deleting anything); addresses and
 * routes use CREATE|REPLACE. A veth that already exists gets its up/MTU
 * settings re-applied on both ends.
 *
 * Routes (route.h): prefsrc as RTA_PREFSRC, nexthops as RTA_MULTIPATH with
 * each nexthop's device resolved in the route's namespace. A route of the
 * same dst/table/metric is replaced in place (a changed nexthop set, weight
 * or prefsrc: no delete, no gap in traffic). An unknown nexthop device
 * fails the op with -ENODEV naming it, and nothing is sent for that op.
 *
 * Ownership: an op on an object mt does not own (mt_rtnl_check_op) fails
 * with -EPERM and sends nothing.
 */
#ifndef MT_FASTPATH_RTNL_APPLY_H
#define MT_FASTPATH_RTNL_APPLY_H

#include <stdint.h>

#include "kernel.pb-c.h"
#include "mt_metal.h"
#include "nl.h"

/* Applies ops[0..n). For every op of a kind this layer handles (Netns, Link,
 * Addr, Route, Rule, Sysctl) results[i] is filled in: error 0 or -errno, and
 * for errors a message naming the object (mt_op_describe), the reason and
 * the kernel's extended ACK text. A NULL results[i] gets a new OpResult
 * (free it with protobuf_c_message_free_unpacked); a non-NULL one is
 * overwritten in place (its message string must be heap or ""). Ops of
 * other kinds (MarkTable, MarkPrefix: nft_mark.c) are skipped and their
 * results[i] left untouched. *kernel_writes (may be NULL) is
 * increased by the mutating netlink messages sent, sysctl writes made and
 * namespaces created or deleted. Returns the number of failed ops, or
 * -ENOMEM (results may then be partly filled). */
int mt_rtnl_apply(struct mt_rtnl *ctx, Mt__Kernel__Op **ops, size_t n,
		  Mt__Kernel__OpResult **results, uint64_t *kernel_writes);

/* The ownership and sanity check apply runs before each op (pure, no I/O):
 * 0 when mt may touch the object; -EPERM when it does not own it, -EINVAL
 * for a malformed op, with the reason in why. The rules:
 *  - namespaces: the name carries the instance prefix and is a valid
 *    /run/netns name;
 *  - in the metal: links carry the prefix (a veth's peer too, when it stays
 *    in the metal), addresses only on such links, routes only in gre_table,
 *    rules only with priority in [rule_priority, +MT_RULE_RANGE), sysctls
 *    only net/ipv4/ip_forward, net/ipv6/conf/all/forwarding and
 *    net/ipv{4,6}/conf/<owned link>/<key>;
 *  - inside an owned namespace everything (route deletes still match only
 *    protocol MT_RTPROT);
 *  - sysctl keys: [a-z0-9_./-]+ without "..";
 *  - routes: mt_route_check (a weight outside 1..256, exactly one nexthop,
 *    nexthops together with dev/gateway, a prefsrc or gateway of the wrong
 *    family, ...: -EINVAL). */
int mt_rtnl_check_op(const struct mt_metal *m, const Mt__Kernel__Op *op,
		     char *why, size_t len);

#endif
