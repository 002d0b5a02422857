/* The desired kernel state of a metal: customer configs -> KernelState.
 * Pure code, no I/O.
 *
 * This is the contract with mt-fastpath, which observes the same shapes back:
 * an observed object carries the same field values as the desired one built
 * here (strings in canonical form: addresses as inet_ntop prints them,
 * prefixes as mt_prefix_format prints them). Observed links also carry
 * ifindex, mtu and kind "veth" for both veth ends; the diff ignores those
 * unless the desired object sets them.
 *
 * For each customer with name N and id I, ifname = mt_metal_ifname(m, N)
 * ("mt0-acme": also the namespace name), M/C = the metal/customer side of
 * the customer's /31 (mt_metal_link_addrs(m, I)), every object owner = N:
 *
 *   Netns   {name=ifname}
 *   Link    {netns="", name=ifname, kind="veth", peer_netns=ifname,
 *            peer_name=MT_CUST_VETH, up=true}
 *   Link    {netns=ifname, name=MT_CUST_VETH, kind="", up=true}
 *              the veth peer: only its attributes are asserted
 *   Link    {netns=ifname, name="lo", kind="", up=true}
 *              a new namespace's lo is down; tunnel endpoint addresses
 *              (below) and local delivery need it up. Observe must report
 *              lo in owned namespaces.
 *   Addr    {netns="", dev=ifname, prefix="M/31"}
 *   Addr    {netns=ifname, dev=MT_CUST_VETH, prefix="C/31"}
 *   Addr    {netns=ifname, dev="lo", prefix="E/32" or "E/128"}
 *              for each tunnel endpoint E (GRE is sourced from it later)
 *   Route   {netns="", table=gre_table, dst=P, dev=ifname, gateway="C",
 *            metric=0}
 *              for each customer prefix P and each endpoint E/32 (E/128);
 *              IPv6 destinations get gateway "" (a dev-only route)
 *   Route   {netns=ifname, table=cust_table, dst=P, dev="", gateway="",
 *            type=MT_RTN_BLACKHOLE, metric=MT_LAST_RESORT_METRIC}
 *              for each customer prefix P: what no tunnel route takes is
 *              dropped, not bounced back to the metal
 *   Route   {netns=ifname, table=cust_table, dst="0.0.0.0/0",
 *            dev=MT_CUST_VETH, gateway="M", metric=0, prefsrc=E4}
 *              E4 = the first IPv4 tunnel endpoint ("" when none): the
 *              source of ICMP errors the namespace sends (frag needed)
 *   Rule    {netns=ifname, priority=rule_priority, fwmark=0, fwmask=0,
 *            table=cust_table}
 *   for each tunnel T (defaults applied: mt_tunnel_ttl/mtu/mss):
 *   Tunnel  {netns=ifname, name=T.name, driver=T.driver or "auto",
 *            local=edge_endpoint, remote=router_endpoint, has_key, key,
 *            ttl, mtu}
 *   Addr    {netns=ifname, dev=T.name, prefix=T.inner_address}
 *   MssClamp {netns=ifname, dev=T.name, mss}
 *   for each (prefix P, priority X) of the customer's routes, where X is
 *   the configured priority plus the tunnel's health penalty (0 without
 *   mt_desired_build_health):
 *   Route   {netns=ifname, table=cust_table, dst=P, metric=X,
 *            dev=the tunnel when the group has one route, else
 *            nexthops=[{dev=tunnel, weight}] in config order}
 *   Firewall {netns=ifname, default_action="allow"|"block", rules=the
 *            rules in order, each mt_fw_rule_canonical, lists=[{name,
 *            family, digest, count, prefixes=the compiled content as
 *            mt_prefix_format prints it, in order}] in config order}
 *              (mt_desired_build_memo: lists without prefixes, the
 *              content compiled in the desired set instead)
 *              when the customer's firewall section asks for something
 *              (a rule, a list or default "block"); none otherwise, so
 *              removing every rule removes mt's firewall chains
 *   Sysctl  {netns="", key="net/ipv4/conf/<ifname>/rp_filter", value="0"}
 *   Sysctl  {netns=ifname, key="net/ipv4/ip_forward", value="1"}
 *   Sysctl  {netns=ifname, key="net/ipv4/conf/all/rp_filter", value="0"}
 *   Sysctl  {netns=ifname, key="net/ipv4/conf/default/rp_filter",
 *            value="0"}
 *   Sysctl  {netns=ifname, key="net/ipv4/conf/metal0/rp_filter", value="0"}
 *   Sysctl  {netns=ifname, key="net/ipv4/fib_multipath_hash_policy",
 *            value="1"}
 *   MarkPrefix {prefix=P, owner=N} for each customer prefix P, then
 *            {prefix="E/32" or "E/128", owner=N} for each endpoint E
 *
 * and the metal's shared objects once (owner ""), also when there are no
 * customers (so the first customer does not change them):
 *
 *   Rule    {netns="", priority=rule_priority, fwmark=fwmark,
 *            fwmask=fwmark_mask, table=gre_table}      (IPv4 only for now)
 *   MarkTable {name=mark_table, fwmark=fwmark, fwmask=fwmark_mask}
 *   Sysctl  {netns="", key="net/ipv4/ip_forward", value="1"}
 */
#ifndef MT_DESIRED_H
#define MT_DESIRED_H

#include <stddef.h>
#include <stdint.h>

#include "config.pb-c.h"
#include "kernel.pb-c.h"
#include "mt_metal.h"

struct mt_fw_desired; /* fw_lists.h */

/* Appends the desired objects of the n customers (already validated, e.g.
 * the accepted ones of mt_validate_customers) and of the metal to st (from
 * mt_kstate_new). Returns 0; -EINVAL when a customer does not fit the metal
 * (name too long, id outside the link pool, unparsable prefix, a firewall
 * rule or list mt_validate_firewall refuses: it was not validated);
 * -ENOMEM. On error st holds a partial state: free it. */
int mt_desired_build(const struct mt_metal *m,
		     Mt__Config__Customer *const *cs, size_t n,
		     Mt__Kernel__KernelState *st);

/* ---- memoised: the agent's path ---- */

/* The costly part of one customer's desired state (its firewall: rules
 * in canonical form, lists compiled), kept between builds. A memo belongs
 * to one config object: the caller frees it (mt_desired_memo_free, NULL
 * accepted) when that config is replaced or released, and keeps it
 * otherwise (a config in force is immutable). A memo whose config is
 * not the one built is rebuilt. */
struct mt_desired_memo;
void mt_desired_memo_free(struct mt_desired_memo *memo);

/* mt_desired_build, except for the firewalls: memos[i] is the memo slot
 * of cs[i] (*memos[i] NULL: none yet; the build fills it). The Firewall
 * objects in st are borrowed from the memos, their lists carry name,
 * family, digest and count but no prefixes, and each list's compiled
 * content is added to want (NULL: not recorded), for
 * mt_fw_lists_prepare. A customer whose config is unchanged since its
 * memo was built costs no canonicalisation and no compile.
 *
 * st must be released (mt_desired_release) before it is freed, also
 * after an error, and before any memo it borrows from is freed. Returns
 * as mt_desired_build. */
int mt_desired_build_memo(const struct mt_metal *m,
			  Mt__Config__Customer *const *cs,
			  struct mt_desired_memo **const *memos, size_t n,
			  struct mt_fw_desired *want,
			  Mt__Kernel__KernelState *st);

/* ---- health penalties (issue 5) ---- */

/* The penalty to add to the priority of the routes through one tunnel
 * (0: healthy). Called during the build; must be pure for its duration. */
struct mt_desired_penalties {
	uint32_t (*fn)(void *ctx, const char *customer, const char *tunnel);
	void *ctx;
};

/* mt_desired_build_memo with the tunnels' health penalties (pen NULL: none).
 * mt_desired_build_memo is this with pen NULL. */
int mt_desired_build_health(const struct mt_metal *m,
			    Mt__Config__Customer *const *cs,
			    struct mt_desired_memo **const *memos, size_t n,
			    struct mt_fw_desired *want,
			    const struct mt_desired_penalties *pen,
			    Mt__Kernel__KernelState *st);

/* Only customer c's tunnel routes (cust_table, as above) into st: the
 * health loop diffs these with the old and the new penalties into a tiny
 * plan. 0, -EINVAL, -ENOMEM. */
int mt_desired_build_routes(const struct mt_metal *m,
			    const Mt__Config__Customer *c,
			    const struct mt_desired_penalties *pen,
			    Mt__Kernel__KernelState *st);

/* Hands st's firewalls back to their memos (st no longer holds any). For
 * a state built by mt_desired_build_memo only; NULL accepted. */
void mt_desired_release(Mt__Kernel__KernelState *st);

#endif
