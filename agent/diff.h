/* The diff: (desired, observed) KernelState -> Plan. Pure code, no I/O and
 * no netlink: unit-tested with hand-built inputs, the plan is executed by
 * mt-fastpath.
 *
 * Mark and sweep over complete snapshots: both sides are sorted by key and
 * walked once. Keys:
 *   netns (name)                 link (netns, name)
 *   addr (netns, dev, prefix)    route (netns, table, dst, metric)
 *   rule (netns, priority, fwmark, fwmask, table)
 *   sysctl (netns, key)          mark_table (name)
 *   mark_prefix (prefix)         tunnel (netns, name)
 *   mss_clamp (netns, dev)       firewall (netns)
 * A key only in desired -> CREATE. A key on both sides -> CREATE (which
 * replaces) when the attributes differ:
 *   link: up, or mtu when the desired mtu is not 0 (observed-only fields
 *         such as ifindex, kind and peer are not compared);
 *   route: dev, gateway, type, prefsrc or nexthops (dev, gateway, weight,
 *          in order);  sysctl: value;  mark_table: fwmark or fwmask;
 *   mark_prefix: owner;  mss_clamp: mss;
 *   tunnel: local, remote, key, ttl, mtu, or the driver unless the desired
 *           one is "auto";
 *   firewall: default_action, the rules (count, or a pair in order that
 *           is not mt_fw_rule_equal), the lists (the set of names, or the
 *           family or digest of one), or the observed one is dirty. The
 *           CREATE carries the desired firewall, but a list whose observed
 *           family and digest are the desired ones goes without prefixes,
 *           as an empty delta from that digest (mt-fastpath leaves it
 *           alone, or says -ESTALE when the kernel's changed meanwhile);
 *           agent/fw_lists.c then turns the others into deltas or
 *           full reloads (a desired list may come without prefixes, its
 *           content compiled beside the state: the diff reads only
 *           name, family and digest).
 * A key only in observed -> DELETE, except sysctls (never deleted), links
 * named "lo" (cannot be deleted) and addresses the kernel makes by itself
 * (IPv6 link-local fe80::/10 on any device, 127.0.0.0/8 and ::1 on lo).
 *
 * Plan order: first the route creations that need nothing else of the plan
 * (their namespace and devices exist, their prefsrc is unchanged): make
 * before break, so a route that moves to another metric or drops a nexthop
 * whose tunnel goes never leaves a gap. Then all deletions, in reverse
 * dependency order (mark_prefix, route, rule, addr, firewall, mss_clamp,
 * tunnel, link, netns, mark_table), then the other creations in dependency
 * order (mark_table, netns, link, sysctl, tunnel, addr, rule, mss_clamp,
 * firewall, route, mark_prefix); inside a group by key (strings compare bytewise), so plans
 * are stable.
 *
 * Pruning: no deletion is emitted for what vanishes with a namespace deleted
 * in the same plan (objects inside it, its firewall too; a metal-side link
 * whose peer_netns it is) or with a metal-namespace link deleted (explicitly or so) in the same
 * plan (addresses and routes on that dev).
 *
 * Performance: 1000 customers (~20k objects per side) diff in a few
 * milliseconds when little changed (the cost is the sort).
 */
#ifndef MT_DIFF_H
#define MT_DIFF_H

#include <stddef.h>

#include "kernel.pb-c.h"

/* Which owners a diff may touch. Objects of other owners are neither created
 * nor deleted; objects of the shared owner "" always are. A key is in scope
 * when its desired or its observed owner is. */
struct mt_diff_scope {
	const char *const *owners;
	size_t n_owners;
};

/* Appends to plan the ops that turn observed into desired, restricted to
 * scope (NULL = everything). Neither input is modified. Returns the number
 * of ops appended (>= 0), or -ENOMEM (plan then holds a partial list: free
 * it). */
int mt_diff(const Mt__Kernel__KernelState *desired,
	    const Mt__Kernel__KernelState *observed,
	    const struct mt_diff_scope *scope, Mt__Kernel__Plan *plan);

/* Counts a plan's creations and deletions (either pointer may be NULL);
 * returns the total. */
size_t mt_plan_count(const Mt__Kernel__Plan *plan, size_t *n_create,
		     size_t *n_delete);

/* The plan as text, one mt_op_describe line per op, each ending in "\n"
 * ("" for an empty plan). Returns a heap string (free()), or NULL on
 * ENOMEM. */
char *mt_plan_render(const Mt__Kernel__Plan *plan);

#endif
