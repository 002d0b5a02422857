/* The customer firewall in nftables: building the nftnl objects for a
 * canonical rule (lib/mt_fw.h), a list and the chains, and parsing them
 * back. Pure: no I/O, no root; unit-tested in tests/unit/test_nft_fw_rules.c
 * (through the netlink encoding, as the kernel would return them).
 * fastpath/nft_cust.c plans and sends, with nft_fw_plan.c.
 *
 * Layout, in mt's table in the customer namespace (m->cust_nft_table):
 *
 *   set fw_lists { type ifname; }       one element per named list:
 *       "bad" comment "ipv4 1a2b3c4d5e6f7a8b 100000" (family digest count)
 *   set l4_bad { type ipv4_addr; flags interval; }   list "bad" (ipv4)
 *   set l6_x   { type ipv6_addr; flags interval; }   list "x" (ipv6)
 *   chain fw { type filter hook forward priority filter (0); policy accept;
 *       iifname "metal0" jump fw_rules comment "mt fw jump"
 *       iifname "metal0" counter accept|drop comment "mt fw default"
 *   }
 *   chain fw_rules {
 *       the parts of every rule, in order
 *   }
 *
 * A rule is one or more kernel rules ("parts"), consecutive in fw_rules,
 * each tagged with the comment
 *   "mt fw ID K/N DIGEST[ monitor ACTION][ DESCRIPTION]"
 * (K = 1..N; DIGEST: 16 hex digits of a 64-bit FNV-1a over the canonical
 * rule, so that a part edited by hand into another valid rule, e.g.
 * another port or verdict, is refused; " monitor ACTION" on every part of
 * a monitor rule, whose parts without a verdict would not tell "allow"
 * from "block"):
 *   - family "" with a ttl or fragment match: one part per family (IPv4
 *     first), each guarded by meta nfproto; otherwise one part (guarded by
 *     meta nfproto when the family is given);
 *   - action rate_limit without monitor: per family two parts, the first
 *     drops what is over the rate, the second accepts the rest.
 * Expressions of a part, in this order, each only when the rule has it:
 *   meta nfproto; source (prefix: payload [& mask] == net; several
 *   prefixes: lookup in an anonymous interval set; list: lookup @l4_NAME /
 *   @l6_NAME); destination (same); meta l4proto; th sport (== N, range
 *   A-B, or lookup in an anonymous interval set); th dport; tcp flags &
 *   mask == set; icmp(v6) type, code; meta length (== or range); fragment
 *   (IPv4 frag-off & 0x3fff != 0, IPv6 exthdr frag exists); ip ttl / ip6
 *   hoplimit (== or range); counter; then the verdict: accept (allow),
 *   drop (block), or limit rate over R/second burst B [bytes] + counter +
 *   drop (rate_limit; the second counter counts what is over the rate);
 *   monitor mode: no verdict (a rate_limit keeps limit + counter).
 * The first counter of each part counts the packets and bytes the rule
 * matched; the rule's counters are the sum over its first parts of each
 * family.
 */
#ifndef MT_NFT_FW_RULES_H
#define MT_NFT_FW_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.pb-c.h"
#include "mt_fw.h"
#include "mt_prefix.h"

struct nftnl_chain;
struct nftnl_rule;
struct nftnl_set;
struct nftnl_set_elem;

#define MT_NFT_FW_CHAIN "fw"
#define MT_NFT_FW_RULES_CHAIN "fw_rules"
#define MT_NFT_FW_LISTS_SET "fw_lists"
#define MT_NFT_FW_PRIO 0		  /* NF_IP_PRI_FILTER */
#define MT_NFT_FW_PARTS_MAX 4		  /* 2 families x (limit, pass) */
#define MT_NFT_FW_SETS_MAX 8		  /* anonymous sets per part... */
#define MT_NFT_FW_LIST_SET_NAME_MAX 24	  /* "l4_" + list name + NUL */
/* Prefixes per NEWSETELEM / DELSETELEM message (two elements each). */
#define MT_NFT_FW_ELEMS_PER_MSG 512

/* ---- chains and base rules ---- */

/* The base chain fw (hook forward, priority 0, policy accept) and the
 * regular chain fw_rules of table. NULL on ENOMEM. */
struct nftnl_chain *mt_nft_fw_chain_new(const char *table);
struct nftnl_chain *mt_nft_fw_rules_chain_new(const char *table);
/* True when a dumped chain named fw is exactly as mt_nft_fw_chain_new
 * makes it (type, hook, priority, policy; no device, no flags but base). */
bool mt_nft_fw_chain_ok(const struct nftnl_chain *c);
/* True when a dumped chain named fw_rules is a regular chain (no hook). */
bool mt_nft_fw_rules_chain_ok(const struct nftnl_chain *c);

/* The two rules of chain fw: the jump into fw_rules for what comes in on
 * the namespace's veth (MT_CUST_VETH), and the default action for it
 * ("allow" or "block") with its counter. NULL on ENOMEM or EINVAL. */
struct nftnl_rule *mt_nft_fw_jump_rule_new(const char *table);
struct nftnl_rule *mt_nft_fw_default_rule_new(const char *table,
					      const char *action);

enum mt_nft_fw_base_kind {
	MT_NFT_FW_BASE_JUMP,
	MT_NFT_FW_BASE_DEFAULT,
};

/* Recognises a rule of chain fw built by one of the two above (every
 * expression and the comment). 0 with *kind (and for the default rule
 * *action "allow"/"block", *packets, *bytes from its counter; the pointers
 * may be NULL), or -ENOENT. */
int mt_nft_fw_base_rule_parse(const struct nftnl_rule *r,
			      enum mt_nft_fw_base_kind *kind,
			      const char **action, uint64_t *packets,
			      uint64_t *bytes);

/* ---- rules ---- */

/* The parts of one canonical rule, ready to send: first NEWSET (+ its
 * elements, nftnl_set_elems_nlmsg_build_payload) for each anonymous set,
 * then NEWRULE for each part, in the same transaction. Each anonymous set
 * is named "__set%d" with NFTNL_SET_ID set; the lookups in the parts refer
 * to it by that name and id. */
struct mt_nft_fw_compiled {
	struct nftnl_set *sets[MT_NFT_FW_PARTS_MAX * MT_NFT_FW_SETS_MAX];
	size_t n_sets;
	struct nftnl_rule *parts[MT_NFT_FW_PARTS_MAX];
	size_t n_parts;
};

/* Compiles canonical rule r for chain fw_rules of table. *set_id is the
 * next anonymous set id to use in this transaction (advanced by the sets
 * made; never 0, the id of the named sets below). Positions and handles are the caller's (NFTNL_RULE_POSITION,
 * NFTNL_RULE_HANDLE, NFTNL_RULE_ID). 0, -EINVAL (r is not canonical or
 * not valid) or -ENOMEM; out is empty on error. */
int mt_nft_fw_rule_compile(const char *table,
			   const Mt__Config__FirewallRule *r,
			   uint32_t *set_id, struct mt_nft_fw_compiled *out);
void mt_nft_fw_compiled_fini(struct mt_nft_fw_compiled *c);

/* The tag of a rule dumped from fw_rules: 0 with id, part (1..n) and n
 * when its comment starts as mt writes it ("mt fw ID K/N ..."), else
 * -ENOENT. */
int mt_nft_fw_rule_tag(const struct nftnl_rule *r, uint32_t *id,
		       uint32_t *part, uint32_t *n_parts);

/* Finds a dumped anonymous set (with its elements) by name, for the
 * parser; NULL when there is none. */
typedef const struct nftnl_set *(*mt_nft_fw_set_find_fn)(const char *name,
							 void *ctx);

/* Parses the n consecutive parts of one rule (as dumped from fw_rules,
 * tags 1/n..n/n of one id) back into its canonical form: *out (heap,
 * protobuf_c_message_free_unpacked) is a rule that mt_nft_fw_rule_compile
 * turns into exactly these parts (expressions, their order and data, the
 * anonymous sets' contents, the comments). 0, -ENOENT when the parts are
 * not exactly what mt writes for any rule (changed by hand), -ENOMEM.
 * Counters (the parts' packets and bytes, and for rate_limit the packets
 * over the rate) are added to *packets, *bytes, *limited (may be NULL). */
int mt_nft_fw_rule_parse(const struct nftnl_rule *const *parts, size_t n,
			 mt_nft_fw_set_find_fn find, void *ctx,
			 Mt__Config__FirewallRule **out, uint64_t *packets,
			 uint64_t *bytes, uint64_t *limited);

/* ---- lists ---- */

/* "l4_NAME" or "l6_NAME" into buf (MT_NFT_FW_LIST_SET_NAME_MAX). */
void mt_nft_fw_list_set_name(int family, const char *name, char *buf,
			     size_t len);
/* The set of list name (family AF_INET / AF_INET6), and the fw_lists set,
 * for NEWSET. They carry NFTNL_SET_ID 0: the kernel refuses a NEWSET
 * without an id (EINVAL), rules name these sets (never by id), and the
 * anonymous sets of the same transaction never use 0. NULL on ENOMEM. */
struct nftnl_set *mt_nft_fw_list_set_new(const char *table, int family,
					 const char *name);
struct nftnl_set *mt_nft_fw_lists_set_new(const char *table);
/* True when a dumped set is exactly as the builders above make it (key
 * type and length, flags). For a list set, *family gets its family. */
bool mt_nft_fw_list_set_ok(const struct nftnl_set *s, int *family);
bool mt_nft_fw_lists_set_ok(const struct nftnl_set *s);

/* A set object naming list set `set` of table, carrying the interval
 * elements of prefixes p[0..n) (n <= MT_NFT_FW_ELEMS_PER_MSG; a prefix is
 * its start and, unless it reaches the top of the address space, its end
 * + 1 flagged NFT_SET_ELEM_INTERVAL_END), for one NEWSETELEM (add) or
 * DELSETELEM (remove) message. NULL on ENOMEM. */
struct nftnl_set *mt_nft_fw_list_elems_new(const char *table, const char *set,
					   const struct mt_prefix *p, size_t n);

/* The fw_lists element of one list: key = list name, comment = "FAMILY
 * DIGEST COUNT", in a set object for NEWSETELEM / DELSETELEM. */
struct nftnl_set *mt_nft_fw_lists_elem_new(const char *table, const char *name,
					   int family, const char *digest,
					   uint32_t count);
/* Parses a dumped fw_lists element. 0 with name (MT_FW_LIST_NAME_MAX + 1),
 * family, digest and count, or -ENOENT when it is not one mt writes. */
int mt_nft_fw_lists_elem_parse(const struct nftnl_set_elem *e, char *name,
			       int *family, char digest[MT_FW_DIGEST_STRLEN],
			       uint32_t *count);

#endif
