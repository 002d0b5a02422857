/* Validation of customer configs against the metal and against each other.
 * Pure code, no I/O: shared by mt-agent (which validates every store
 * snapshot before planning) and mtctl (which validates before pushing).
 *
 * Every function returns 0 or -EINVAL (or -ENOMEM). On -EINVAL, err holds one
 * line for an operator that names the customer (id and name), the field with
 * its index and the offending value, e.g.
 *   customer 7 "acme": prefixes[1] "10.0.0.0/8": private 10.0.0.0/8 is reserved
 *
 * Rules for one customer (mt_validate_customer):
 *   - id in 1..mt_metal_max_customer_id(m);
 *   - name matches [a-z0-9][a-z0-9-]* and fits an interface name after the
 *     instance prefix (at most mt_metal_name_max(m) characters);
 *   - at least one prefix; every prefix parses strictly (host bits zero),
 *     IPv4 /8 or longer, IPv6 /16 or longer, outside reserved and martian
 *     ranges, outside the metal's own prefixes and link pool; no duplicate
 *     or overlapping prefixes within the customer;
 *   - tunnel_endpoints are host addresses (no "/len"), not reserved, not the
 *     metal's own, no duplicates (an endpoint inside the customer's own
 *     prefixes is allowed);
 *   - tunnels and routes: mt_validate_tunnels (below);
 *   - the firewall section: mt_validate_firewall (lib/mt_fw.h): default
 *     action, lists (names, prefixes, one family each), rules (ids, action
 *     and rate limit, family, prefixes and lists, protocol, ports, TCP
 *     flags, ICMP, length, TTL, limits);
 *   - ddos and flow_tracking are accepted as they are (empty messages).
 * Rules between customers (mt_validate_customer_set, mt_validate_customers):
 *   - names are unique;
 *   - prefixes of different customers do not overlap;
 *   - a tunnel endpoint is used by one customer only and does not lie inside
 *     another customer's prefix.
 */
#ifndef MT_VALIDATE_H
#define MT_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>

#include "config.pb-c.h"
#include "mt_metal.h"

/* Room for any message these functions write (names and values included). */
#define MT_VALIDATE_ERR_MAX 320

/* Checks one customer on its own. 0 or -EINVAL with err set. */
int mt_validate_customer(const struct mt_metal *m,
			 const Mt__Config__Customer *c, char *err,
			 size_t errlen);

/* Checks c on its own (mt_validate_customer) and then against the other
 * customers of the metal: what mtctl and the agent's API run before a new or
 * changed customer is written to the store. Entries of others that are NULL
 * or carry c's id (the old version of c) are skipped; fields of others that
 * do not parse are ignored here (they are rejected on their own). Cost is
 * O(n_others * prefixes^2): meant for one customer at a time; use
 * mt_validate_customers for a whole snapshot. 0, -EINVAL with err set, or
 * -ENOMEM. */
int mt_validate_customer_set(const struct mt_metal *m,
			     const Mt__Config__Customer *c,
			     Mt__Config__Customer *const *others,
			     size_t n_others, char *err, size_t errlen);

/* The verdict on one customer of a snapshot. */
struct mt_validate_verdict {
	bool ok;
	char err[MT_VALIDATE_ERR_MAX]; /* "" when ok */
};

/* Validates a whole snapshot (every customer of the store) and decides, per
 * customer, whether it is accepted, so that one bad customer never blocks the
 * rest. cs[i] must not be NULL; v must have n entries; v[i] is the verdict
 * on cs[i].
 *
 * The rule, deterministic whatever the order of cs:
 *   1. a customer that fails mt_validate_customer is rejected;
 *   2. of several entries with the same id, the first in cs is the one
 *      considered and the later ones are rejected;
 *   3. the remaining customers are taken in ascending id; each is accepted
 *      unless it conflicts (name, prefix overlap, tunnel endpoint) with an
 *      already accepted customer, i.e. the lower id wins. A customer rejected
 *      this way does not block anyone else: if 1 and 2 conflict and 2 and 3
 *      conflict, 1 and 3 are accepted.
 * A rejected customer's message is written from its own point of view and
 * names the customer that won. What to do with a rejected customer (keep its
 * last known good version) is the caller's business.
 *
 * Cost: O(N log N) in the total number of prefixes and endpoints (one sort
 * and one sweep), plus the number of conflicting pairs.
 * Returns the number of rejected customers (>= 0), or -ENOMEM. */
int mt_validate_customers(const struct mt_metal *m,
			  Mt__Config__Customer *const *cs, size_t n,
			  struct mt_validate_verdict *v);

/* Writes 'customer <id> "<name>": ' and the formatted rest into err, for
 * the checks in mt_validate*.c. Returns -EINVAL, so a check can
 * `return mt_validate_fail(...)`. */
int mt_validate_fail(char *err, size_t errlen, const Mt__Config__Customer *c,
		     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ---- tunnels (mt_validate_tunnels.c) ---- */

/* Checks a customer's tunnels and routes on their own: names fit an
 * interface and are unique; edge endpoints are the customer's own; router
 * endpoints are IPv4 unicast hosts outside the customer's prefixes and the
 * metal's addresses; inner addresses are /31 or /30 hosts that overlap no
 * other tunnel's nor the link pool; ttl 1-255; mtu between 576 and what the
 * uplink carries after GRE's overhead; mss fits the mtu; driver auto, bpf
 * or kernel; routes name a known tunnel, lie inside the customer's prefixes,
 * have a weight of 1-256 and a priority that leaves room for health
 * penalties. Called by mt_validate_customer. */
int mt_validate_tunnels(const struct mt_metal *m, const Mt__Config__Customer *c,
			char *err, size_t errlen);

/* A tunnel's settings with the defaults applied: mtu 1476 (1472 with a
 * key: 1500 minus GRE's 24 or 28 bytes), mss = mtu - 40, ttl 64. */
uint32_t mt_tunnel_mtu(const Mt__Config__Tunnel *t);
uint32_t mt_tunnel_mss(const Mt__Config__Tunnel *t);
uint32_t mt_tunnel_ttl(const Mt__Config__Tunnel *t);
bool mt_tunnel_has_key(const Mt__Config__Tunnel *t);
/* This side's inner address (with its length) and the router's. -EINVAL if
 * inner_address is not a /31 or /30 host. */
int mt_tunnel_inner(const Mt__Config__Tunnel *t, struct mt_prefix *local,
		    struct mt_prefix *peer);
const Mt__Config__Tunnel *mt_tunnel_find(const Mt__Config__Customer *c,
					 const char *name);

#endif
