/* The customer firewall model: validation, the canonical form of a rule,
 * and the compiled form of a named list (sorted prefixes, digest, delta).
 * Pure code, no I/O: shared by mtctl and mt-agent (which validate and plan)
 * and mt-fastpath (which checks what it is asked to write and parses the
 * kernel's rules back into the same canonical form).
 *
 * The canonical form of a FirewallRule is what planning compares: the agent
 * puts canonical rules in the desired Firewall, mt-fastpath's parser yields
 * canonical rules from the kernel, and two canonical rules are the same rule
 * exactly when mt_fw_rule_equal says so. Canonical means:
 *   - id, description, monitor, fragment as given;
 *   - action "allow", "block" or "rate_limit" (lowercase);
 *   - rate_limit present only with action rate_limit, one of the two rates
 *     nonzero; burst 0 with a packet rate becomes 5 (the kernel's default,
 *     which it reports back); with a byte rate burst stays as given;
 *   - family "ipv4", "ipv6" or "" (both): the given one, else implied by the
 *     prefixes, the lists (a list's family: that of its prefixes, "ipv4"
 *     when empty) or the protocol (icmp: ipv4, icmpv6: ipv6);
 *   - src_prefixes / dst_prefixes: each formatted "addr/len" (mt_prefix_
 *     format), sorted by mt_prefix_cmp, without duplicates or prefixes
 *     covered by another of the same field;
 *   - protocol: the name for the numbers that have one (6 -> "tcp", 17
 *     "udp", 1 "icmp", 58 "icmpv6", 47 "gre", 50 "esp", 51 "ah", 132
 *     "sctp"), else the decimal number; "" = any;
 *   - src_ports / dst_ports: "N" or "A-B" (A < B), sorted, overlapping and
 *     adjacent ranges merged ("80", "81-90" -> "80-90");
 *   - tcp_flags: NULL when both lists are empty, else each list deduplicated
 *     in the order fin syn rst psh ack urg ece cwr;
 *   - icmp, length, ttl: NULL or present as given.
 *
 * Limits (validation): rules per customer MT_FW_RULES_MAX, lists
 * MT_FW_LISTS_MAX, prefixes per list MT_FW_LIST_PREFIXES_MAX, inline
 * prefixes or port entries per field MT_FW_INLINE_MAX.
 */
#ifndef MT_FW_H
#define MT_FW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.pb-c.h"
#include "mt_metal.h"
#include "mt_prefix.h"

#define MT_FW_RULES_MAX 4096
#define MT_FW_RULE_ID_MAX 2147483647u
#define MT_FW_DESC_MAX 64
#define MT_FW_LISTS_MAX 64
#define MT_FW_LIST_NAME_MAX 15 /* a list name is an nft "ifname" key */
#define MT_FW_LIST_PREFIXES_MAX 1048576
#define MT_FW_INLINE_MAX 256
#define MT_FW_DIGEST_STRLEN 17 /* 16 hex digits + NUL */
#define MT_FW_RATE_MAX 10000000000ull /* rate + burst, packets or bytes */

/* Checks a customer's firewall section (called by mt_validate_customer):
 * default_action "", "allow" or "block"; list names [a-z0-9][a-z0-9_-]*
 * of at most 15 characters, unique; list prefixes parse strictly, one
 * family per list; rule ids 1..MT_FW_RULE_ID_MAX and unique; description
 * printable ASCII of at most 64 characters; action known; rate_limit
 * present exactly with rate_limit, exactly one rate nonzero, rate plus
 * burst at most MT_FW_RATE_MAX, burst at most 2^32 - 1; family known
 * and consistent with the prefixes, lists and protocol; inline prefixes
 * strict, of one family; a list name refers to a list of the customer;
 * prefixes and a list not both for one direction; protocol known; ports
 * in 0..65535, ranges A-B with A <= B, only with tcp, udp or sctp;
 * tcp_flags known names, only with tcp, no flag both set and clear; icmp
 * only with icmp or icmpv6, type and code 0..255; length min <= max <=
 * 65535; ttl min <= max <= 255; the limits above. 0 or -EINVAL with err
 * naming the customer, the rule (index and id) or list, the field and the
 * bad value, e.g.
 *   customer 7 "acme": firewall.rules[2] (id 30): dst_ports[0] "70000": port outside 0-65535 */
int mt_validate_firewall(const struct mt_metal *m,
			 const Mt__Config__Customer *c, char *err,
			 size_t errlen);

/* The canonical form of rule r of firewall fw (whose lists give the
 * families of src_list / dst_list). r must be valid (mt_validate_firewall);
 * otherwise -EINVAL with a reason in err. *out is a new heap message,
 * released with protobuf_c_message_free_unpacked(out, NULL). 0, -EINVAL or
 * -ENOMEM. */
int mt_fw_rule_canonical(const Mt__Config__Firewall *fw,
			 const Mt__Config__FirewallRule *r,
			 Mt__Config__FirewallRule **out, char *err,
			 size_t errlen);

/* True when two canonical rules are the same (every field). */
bool mt_fw_rule_equal(const Mt__Config__FirewallRule *a,
		      const Mt__Config__FirewallRule *b);

/* "allow" for "" and "allow", "block" for "block", NULL otherwise. */
const char *mt_fw_default_action(const char *s);

/* ---- named lists ---- */

/* A list compiled: its prefixes parsed, sorted by mt_prefix_cmp, without
 * duplicates and without prefixes covered by another one of the list. */
struct mt_fw_list {
	char name[MT_FW_LIST_NAME_MAX + 1];
	int family;                 /* AF_INET or AF_INET6 (AF_INET when empty) */
	struct mt_prefix *prefixes; /* malloc'd, n entries */
	size_t n;
	char digest[MT_FW_DIGEST_STRLEN];
};

/* Compiles list l (n strings in prefixes; strict parsing; one family).
 * 0, -EINVAL with the bad prefix named in err, or -ENOMEM. The result is
 * released with mt_fw_list_fini. Cost: O(n log n); 100k prefixes take a
 * few milliseconds. */
int mt_fw_list_compile(const char *name, char *const *prefixes, size_t n,
		       struct mt_fw_list *out, char *err, size_t errlen);
void mt_fw_list_fini(struct mt_fw_list *l);

/* The digest of a compiled list's content: 64-bit FNV-1a over family,
 * length and address bytes of every prefix in order, as 16 lowercase hex
 * digits. Equal content <=> equal digest (up to hash collisions). */
void mt_fw_list_digest(int family, const struct mt_prefix *p, size_t n,
		       char out[MT_FW_DIGEST_STRLEN]);

/* What turns compiled list from into to: *add (in to, not in from) and
 * *remove (in from, not in to), each sorted, malloc'd (free(); NULL when
 * empty). A merge walk, O(n). 0 or -ENOMEM. */
int mt_fw_list_delta(const struct mt_fw_list *from, const struct mt_fw_list *to,
		     struct mt_prefix **add, size_t *n_add,
		     struct mt_prefix **remove, size_t *n_remove);

/* "ipv4" / "ipv6" for AF_INET / AF_INET6; the reverse (0 when neither). */
const char *mt_fw_family_name(int family);
int mt_fw_family_parse(const char *s);

#endif
