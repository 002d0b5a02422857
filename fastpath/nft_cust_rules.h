/* mt's nftables table inside a customer namespace: the pure part (building
 * nftnl objects, parsing them back, and the per-namespace plan). No I/O, no
 * root: unit-tested in tests/unit/test_nft_cust.c. fastpath/nft_cust.c does
 * the netlink around it.
 *
 * The table (family inet, named m->cust_nft_table) is a container of
 * chains, each one a separate unit: this file knows the table and the
 * "mss" chain; later chains (the customer firewall) live beside it and are
 * never flushed by anything here.
 *
 *   chain mss { type filter hook forward priority mangle (-150);
 *               policy accept;
 *     oifname "gre1" tcp flags & (syn | rst) == syn
 *         tcp option maxseg size > 1436 tcp option maxseg size set 1436
 *         comment "mt mss gre1 out"
 *     iifname "gre1" tcp flags & (syn | rst) == syn
 *         tcp option maxseg size > 1436 tcp option maxseg size set 1436
 *         comment "mt mss gre1 in"
 *   }
 *
 * One clamp = the two rules of one device (SYNs forwarded into the device,
 * and SYNs / SYN-ACKs forwarded out of it), with the same mss.
 */
#ifndef MT_NFT_CUST_RULES_H
#define MT_NFT_CUST_RULES_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel.pb-c.h"
#include "mt_metal.h"

struct nftnl_chain;
struct nftnl_rule;
struct nftnl_table;

#define MT_NFT_CUST_MSS_CHAIN "mss"
#define MT_NFT_CUST_MSS_PRIO (-150) /* NF_IP_PRI_MANGLE */
#define MT_NFT_CUST_MSS_MIN 536u    /* RFC 879 default / IPv4 minimum */
#define MT_NFT_CUST_MSS_MAX 65495u  /* 65535 - 40 */
#define MT_NFT_CUST_TAG "mt mss"    /* rule comment: "mt mss DEV out|in" */

enum mt_mss_dir {
	MT_MSS_OUT = 0, /* oifname DEV: SYNs into the device */
	MT_MSS_IN = 1,	/* iifname DEV: SYNs and SYN-ACKs out of it */
};

/* True for a name the kernel accepts as an interface name (1..15 bytes, not
 * "." or "..", no '/', ':' or white space) without control characters. */
bool mt_nft_cust_dev_valid(const char *dev);

/* The table, for NEWTABLE with NLM_F_CREATE (no EXCL: idempotent, leaves its
 * chains alone; flags 0 also wakes a dormant table). NULL on ENOMEM. */
struct nftnl_table *mt_nft_cust_table_new(const char *table);

/* The mss base chain of table. NULL on ENOMEM. */
struct nftnl_chain *mt_nft_cust_mss_chain_new(const char *table);

/* True when a dumped chain is the mss chain exactly as mt creates it (type,
 * hook, priority, policy; no device, no flags but "base"). */
bool mt_nft_cust_mss_chain_ok(const struct nftnl_chain *c);

/* One clamp rule of dev (valid name) with mss (536..65495) in table's mss
 * chain, tagged with its comment. NULL on ENOMEM (or invalid arguments, with
 * errno EINVAL). */
struct nftnl_rule *mt_nft_cust_mss_rule_new(const char *table, const char *dev,
					    uint32_t mss, enum mt_mss_dir dir);

/* Recognises a rule built by mt_nft_cust_mss_rule_new: every expression must
 * match, the device comes from the iifname/oifname comparison, the mss from
 * the comparison and the immediate (which must agree), and the comment must
 * be the one mt writes for that device and direction. Returns 0 with dev,
 * mss and dir, or -ENOENT when the rule is not exactly one of mt's. */
int mt_nft_cust_mss_rule_parse(const struct nftnl_rule *r, char dev[IFNAMSIZ],
			       uint32_t *mss, enum mt_mss_dir *dir);

/* ---- the state of one namespace and its plan ---- */

/* One rule of the mss chain as read back. */
struct mt_nft_cust_rule {
	uint64_t handle;
	bool ours;	    /* parsed as an mt clamp rule */
	char dev[IFNAMSIZ]; /* when ours */
	uint32_t mss;
	enum mt_mss_dir dir;
};

/* What the kernel holds of mt's table in one namespace. */
struct mt_nft_cust_state {
	uint32_t genid; /* the namespace's ruleset generation */
	bool table;	/* the table exists */
	bool dormant;	/* ... with NFT_TABLE_F_DORMANT */
	bool owned;	/* ... with NFT_TABLE_F_OWNER: another socket's
			 * (it vanishes with that socket, and the
			 * generation id does not move) */
	bool chain;	/* the mss chain exists */
	bool chain_ok;	/* ... exactly as mt creates it */
	struct mt_nft_cust_rule *rules;
	size_t n_rules, cap_rules;
};

/* Parses r (a rule dumped from the mss chain) and appends it. 0 or
 * -ENOMEM. */
int mt_nft_cust_state_add(struct mt_nft_cust_state *st,
			  const struct nftnl_rule *r);
/* Frees the rules and zeroes st. */
void mt_nft_cust_state_fini(struct mt_nft_cust_state *st);

/* A clamp found intact: both of its rules exactly as mt writes them. */
struct mt_nft_cust_clamp {
	char dev[IFNAMSIZ];
	uint32_t mss;
	uint64_t handle[2]; /* by enum mt_mss_dir */
};

/* The clamps of st, sorted by device, and whether the chain is dirty: it
 * exists and holds anything else (a foreign or altered rule, half of a
 * clamp, two rules for one device and direction), or is not the chain mt
 * creates, or its table is dormant. *out is malloc'd (free it; NULL when
 * none). 0 or -ENOMEM. */
int mt_nft_cust_clamps(const struct mt_nft_cust_state *st,
		       struct mt_nft_cust_clamp **out, size_t *n, bool *dirty);

/* One step of a namespace's transaction. */
enum mt_nft_cust_act_type {
	MT_NFT_CUST_NEWTABLE,
	MT_NFT_CUST_DELCHAIN, /* the mss chain, with its rules */
	MT_NFT_CUST_NEWCHAIN, /* the mss chain */
	MT_NFT_CUST_DELRULE,  /* by handle */
	MT_NFT_CUST_NEWRULE,  /* a clamp rule (dev, mss, dir) */
};

struct mt_nft_cust_act {
	enum mt_nft_cust_act_type type;
	size_t op;	    /* the op (index into ops) that caused it */
	uint64_t handle;    /* DELRULE */
	char dev[IFNAMSIZ]; /* NEWRULE */
	uint32_t mss;
	enum mt_mss_dir dir;
};

/* Checks one op before anything is planned or sent: an MssClamp op
 * (-EOPNOTSUPP otherwise) with a known action (-EINVAL), in an owned
 * customer namespace (netns = m->prefix + customer, a valid namespace name:
 * -EPERM otherwise), for a valid device name (-EPERM otherwise; DELETE also
 * takes dev "", the dirty-chain marker observe reports), with mss within
 * 536..65495 on CREATE (-EINVAL). The reason goes to err. */
int mt_nft_cust_op_check(const struct mt_metal *m, const Mt__Kernel__Op *op,
			 char *err, size_t errlen);

/* The transaction for ops[idx[0..n)] (checked, all of one namespace, in
 * order) against st: the steps are appended to *acts (malloc'd, grown;
 * *n_acts counts them; each tagged with the index into ops of the op that
 * caused it). Semantics:
 *   - the outcome is the intact clamps of st, then each op in turn: CREATE
 *     sets the clamp of its device, DELETE removes it (dev "" removes
 *     nothing);
 *   - clean chain: only devices whose clamp changes are touched (DELRULE of
 *     the old pair, NEWRULE of the new one); NEWTABLE + NEWCHAIN when the
 *     chain is missing; DELCHAIN instead when no clamp remains; nothing at
 *     all when nothing changes;
 *   - dirty chain (see mt_nft_cust_clamps): the chain is rebuilt, DELCHAIN
 *     + NEWTABLE + NEWCHAIN + every remaining clamp, or only DELCHAIN when
 *     none remains. This is how foreign rules and half clamps go away.
 * Pure. 0 or -ENOMEM. */
int mt_nft_cust_plan(const struct mt_nft_cust_state *st,
		     Mt__Kernel__Op *const *ops, const size_t *idx, size_t n,
		     struct mt_nft_cust_act **acts, size_t *n_acts);

#endif
