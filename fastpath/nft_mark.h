/* mt's nftables marking table in the metal namespace.
 *
 * One table, family inet, named m->mark_table ("mt0-mark"), holding
 *
 *   set prefixes4 { type ipv4_addr; flags interval; }
 *   set prefixes6 { type ipv6_addr; flags interval; }
 *       the customer prefixes; the start element of each interval carries
 *       the owning customer's name as its comment (element userdata,
 *       NFTNL_UDATA_SET_ELEM_COMMENT), so observe can attribute it;
 *   chain prerouting { type filter hook prerouting priority mangle (-150);
 *                      policy accept;
 *       ip daddr @prefixes4 meta mark set meta mark & ~fwmask | fwmark
 *           comment "mt mark ip"
 *       ip6 daddr @prefixes6 meta mark set meta mark & ~fwmask | fwmark
 *           comment "mt mark ip6"
 *   }
 *
 * so the fwmark rule can send traffic for customer prefixes to GRE_table.
 * Everything runs in-process over netlink (libnftnl + libmnl), never the nft
 * CLI, and nothing outside mt's own table is ever listed or written.
 *
 * Interval sets hold a prefix as two elements: its first address, and an
 * element flagged NFT_SET_ELEM_INTERVAL_END at the first address after it.
 * A prefix that reaches the top of the address space (255.255.255.255/32,
 * 0.0.0.0/0, ::/0, ...) has no address after it: its interval stays open and
 * it is stored as the start element alone, as nft(8) does.
 */
#ifndef MT_NFT_MARK_H
#define MT_NFT_MARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel.pb-c.h"
#include "mt_metal.h"
#include "mt_prefix.h"

struct nftnl_rule;
struct nftnl_set;
struct mt_nft_batch;

#define MT_NFT_MARK_CHAIN "prerouting"
#define MT_NFT_MARK_SET4 "prefixes4"
#define MT_NFT_MARK_SET6 "prefixes6"
#define MT_NFT_MARK_PRIO (-150)            /* NF_IP_PRI_MANGLE */
#define MT_NFT_MARK_TAG4 "mt mark ip"      /* rule comments (userdata) */
#define MT_NFT_MARK_TAG6 "mt mark ip6"
#define MT_NFT_MARK_OWNER_MAX 63           /* longest owner name stored */

/* Observe: appends to st
 *   - one MarkTable (name, fwmark, fwmask; the mark and mask are parsed back
 *     from the rules' bitwise expressions) when the table exists and is
 *     exactly what mt writes: both sets with their type and flags, the chain
 *     with its type, hook, priority and policy, and exactly the two marking
 *     rules with the same fwmark/fwmask. When the table exists but is
 *     incomplete or altered (a rule missing, changed or added, a set or the
 *     chain missing or different) nothing is appended for the table, so the
 *     planner sends MarkTable CREATE, which rewrites it;
 *   - one MarkPrefix per interval in prefixes4 / prefixes6 (prefix in CIDR
 *     form, "203.0.113.0/24"; owner from the element comment, "" when
 *     absent), also when the table itself is incomplete. Intervals that are
 *     not a single CIDR block (never written by mt) are skipped with a
 *     warning.
 * The table absent is not an error: nothing is appended. The dumps are
 * bracketed by the ruleset generation id and repeated when it changed (or a
 * dump was interrupted), so st never reflects half of a transaction.
 * Returns 0, or -errno: -EAGAIN when the ruleset kept changing, -EPERM
 * without CAP_NET_ADMIN; st is then unchanged (except after -ENOMEM while
 * appending, which may leave part of the objects in st). Must run in the metal namespace (it opens its socket there). */
int mt_nft_mark_observe(const struct mt_metal *m, Mt__Kernel__KernelState *st);
/* The same with an owner filter (rpc.proto ObserveRequest.owners): with
 * n_owners > 0 only the MarkPrefixes of those owners and the ones without
 * an owner ("") are appended; the MarkTable as above. */
int mt_nft_mark_observe_owners(const struct mt_metal *m,
			       const char *const *owners, size_t n_owners,
			       Mt__Kernel__KernelState *st);

/* The state cache. Listing both sets costs O(all customers) (3,000
 * elements at 1,000 customers), so observe and apply keep the last state
 * known to be the kernel's in memory (process-wide, mutex-protected),
 * together with the ruleset generation id (mt_nft_genid), the table name
 * and the network namespace it belongs to:
 *   - a full listing (a consistent, genid-bracketed read) stores it;
 *   - a read first asks the kernel for the generation id (one small
 *     message) and uses the cached copy only when the id is the cached one;
 *     otherwise it lists everything (and stores the result);
 *   - an apply made only of MarkPrefix ops that committed stores the state
 *     its plan ends with (mt_nft_mark_plan keeps it current), at the
 *     generation id + 1 (the batch carried the id it was planned at, so the
 *     kernel refused it had anyone else committed in between; a non-empty
 *     commit moves the id by one). Any other apply that reached the kernel
 *     (a MarkTable op, a failure, an abort) drops the cache.
 * So any change by someone else (nft(8), another process) moves the id
 * away from the cached one and forces a full listing: the cache never
 * hides a foreign change. It saves the listing, not the output: observe
 * without owners still appends every prefix. */

/* Apply: executes ops[0..n) (each a MarkTable or MarkPrefix op) as one nft
 * transaction and fills results[i] for every op (results[i] may be NULL, it
 * is then allocated; error and message are heap strings, released with the
 * result by protobuf_c_message_free_unpacked). Semantics per op:
 *   MarkTable CREATE  create table, sets and chain when absent (NLM_F_CREATE
 *                     without EXCL: idempotent), flush the chain and add the
 *                     two rules with the op's fwmark/fwmask. 7 messages.
 *   MarkTable DELETE  delete the table; absent = success, nothing sent.
 *   MarkPrefix CREATE add the prefix to prefixes4/6 of m->mark_table with
 *                     the owner; present with the same owner = success,
 *                     nothing sent; present with another owner = deleted and
 *                     re-added in the same transaction; overlapping a
 *                     different prefix already in the set = -EEXIST (the
 *                     kernel would silently merge or split it).
 *   MarkPrefix DELETE delete the prefix; absent = success, nothing sent.
 * Benign outcomes are decided from a fresh read of the table taken under a
 * generation id that the transaction carries (NFNL_BATCH_GENID): when the
 * ruleset changed in between, the kernel refuses the batch and apply re-reads
 * and retries (a few times, then -EAGAIN for every op).
 * Refused before anything is sent: a MarkTable whose name does not start
 * with m->prefix (-EPERM), an invalid prefix or owner (-EINVAL), an op of
 * another kind (-EOPNOTSUPP). The transaction is atomic: when any op fails
 * (refused, or an error from the kernel, mapped back to its op by sequence
 * number, with the kernel's extended-ACK text), nothing is applied, that op
 * carries its error and every other op -ECANCELED "not applied: transaction
 * aborted by <op>". Messages name the object (mt_op_describe()).
 * *kernel_writes (may be NULL) is increased by the number of messages of a
 * committed transaction (BEGIN/END not counted; 0 when nothing was needed).
 * Returns 0 when every op succeeded, else the failing op's error (local
 * failures such as -ENOMEM are reported on every op). */
int mt_nft_mark_apply(const struct mt_metal *m, Mt__Kernel__Op **ops,
		      size_t n, Mt__Kernel__OpResult **results,
		      uint64_t *kernel_writes);

/* ---- pure building and parsing (no I/O; unit-tested) ---- */

/* The first address after p (the key of p's interval-end element) into end
 * (4 or 16 bytes, network order). Returns 0, or -ERANGE when p reaches the
 * top of its address space and the interval stays open. */
int mt_nft_mark_interval_end(const struct mt_prefix *p, uint8_t end[16]);

/* The marking rule for family (AF_INET or AF_INET6) in table/chain:
 * meta nfproto, cmp, payload daddr, lookup @prefixes4/6, meta mark load,
 * bitwise (mark & ~fwmask) ^ fwmark, meta mark set; tagged with its
 * comment. NULL on ENOMEM. */
struct nftnl_rule *mt_nft_mark_rule_new(const char *table, int family,
					uint32_t fwmark, uint32_t fwmask);

/* Recognises a rule built by mt_nft_mark_rule_new: its comment and every
 * expression must match. Returns 0 with family, fwmark and fwmask, or
 * -ENOENT when the rule is not exactly one of ours. */
int mt_nft_mark_rule_parse(const struct nftnl_rule *r, int *family,
			   uint32_t *fwmark, uint32_t *fwmask);

/* Adds p's elements to s: the start element (with owner as comment unless
 * owner is NULL) and, unless the interval stays open, the end element.
 * Returns 0, -EINVAL (owner too long), -ENOMEM. */
int mt_nft_mark_elems_add(struct nftnl_set *s, const struct mt_prefix *p,
			  const char *owner);

/* One interval of a marking set: [first, last], inclusive. */
struct mt_nft_mark_range {
	int family;
	uint8_t first[16];
	uint8_t last[16];
	char owner[MT_NFT_MARK_OWNER_MAX + 1];
};

/* The intervals of the elements of s (a dumped set of family AF_INET or
 * AF_INET6, elements in any order), sorted by first address. An interval
 * runs from a start element to the element after it (its end element, as mt
 * writes them), or to the top of the space. *out is malloc'd (free it).
 * Stray end elements are ignored. 0 or -ENOMEM. */
int mt_nft_mark_elems_parse(const struct nftnl_set *s, int family,
			    struct mt_nft_mark_range **out, size_t *n);

/* The prefix r spans. 0, or -EINVAL when r is not one CIDR block. */
int mt_nft_mark_range_prefix(const struct mt_nft_mark_range *r,
			     struct mt_prefix *p);

/* What the kernel holds of mt's table: read by observe and apply, and
 * updated by mt_nft_mark_plan to the state after each planned op. */
struct mt_nft_mark_state {
	uint32_t genid;       /* generation the snapshot was read at */
	bool table;           /* m->mark_table exists */
	bool intact;          /* ... and is exactly what mt writes */
	uint32_t fwmark;      /* the rules' mark and mask, when intact */
	uint32_t fwmask;
	struct mt_nft_mark_range *ranges; /* both sets' intervals, sorted */
	size_t n_ranges, cap_ranges;
	/* Per op index: the table of a MarkTable DELETE naming another table
	 * than m->mark_table exists. NULL = none does. */
	bool *other_exists;
};

/* Drift of the marking table, by polling (no notification socket: a
 * listener to NFNLGRP_NFTABLES in any namespace makes the kernel build a
 * notification for every element of every nftables transaction on the
 * machine, which made a 100k-prefix list load in a customer namespace take
 * 4-6 s instead of 0.4 s). Reads the metal's ruleset generation id; when
 * it moved since what mt last knew of its table (its own last commit or
 * read), reads the table and compares. Call from the metal's namespace.
 * Returns 1 when the table differs from what mt knew (or, knowing nothing
 * yet, exists but is not what mt writes), 0 when not, -errno. */
int mt_nft_mark_poll(const struct mt_metal *m);

/* Inserts r into st's ranges, keeping them sorted. 0 or -ENOMEM. */
int mt_nft_mark_state_add(struct mt_nft_mark_state *st,
			  const struct mt_nft_mark_range *r);

/* Frees st's ranges and zeroes it (other_exists is the caller's). */
void mt_nft_mark_state_fini(struct mt_nft_mark_state *st);

/* The transaction for ops against st, appended to b (each message tagged
 * with its op index); st is updated as the ops would change it. Pure: no
 * I/O. Returns 0, or -errno with *failed = the op index and the reason in
 * err: -EPERM (table not mt's), -EINVAL (malformed op), -EOPNOTSUPP (not a
 * marking op), -EEXIST (prefix overlaps another one), -ENOENT (prefix for a
 * table that does not exist), -ENOMEM. */
int mt_nft_mark_plan(const struct mt_metal *m, Mt__Kernel__Op **ops,
		     size_t n, struct mt_nft_mark_state *st,
		     struct mt_nft_batch *b, size_t *failed, char *err,
		     size_t errlen);

#endif
