/* The customer firewall in mt's nft table of one customer namespace: the
 * state as read back, the desired firewall of one op, and the pure planner
 * that turns the two into the steps of one nft transaction. No I/O, no
 * root: unit-tested in tests/unit/test_nft_fw_plan.c. fastpath/nft_cust.c
 * reads the namespace (feeding the state builders below with the objects
 * it dumps), plans, turns the steps into messages (mt_nft_fw_step_batch)
 * and sends them in the same transaction as the namespace's MSS clamps.
 * The nft layout is described in nft_fw_rules.h.
 *
 * What the planner does with a CREATE (the kernel's firewall becomes the
 * desired one, touching only what differs; nothing at all when nothing
 * differs):
 *   1. NEWTABLE when the table is missing or dormant. A chain that is not
 *      as mt makes it, or a list set that is not, makes the chains be
 *      rebuilt: DELCHAIN fw, DELCHAIN fw_rules, DELSET of the bad sets,
 *      then everything as in an empty namespace. NEWCHAIN fw_rules / fw
 *      and NEWSET fw_lists when missing (DELSET + NEWSET when not as mt
 *      makes it).
 *   2. Lists, by name. The kernel's digest of a list is that of its
 *      fw_lists element when the set of the element's family exists.
 *      Equal to the desired digest: nothing. Otherwise, delta: when the
 *      kernel's digest is base_digest, DELSETELEM(remove) + NEWSETELEM(add),
 *      else the plan fails with -ESTALE (the kernel holds another
 *      version: a full reload is needed). Full content: NEWSET when the
 *      set is missing, else flush (DELSETELEM without elements), then
 *      NEWSETELEM in chunks of MT_NFT_FW_ELEMS_PER_MSG prefixes. The
 *      fw_lists element is replaced (DELSETELEM old + NEWSETELEM new)
 *      to record the new digest and count.
 *   3. Rules of fw_rules, matched by id: foreign and damaged rules and
 *      duplicates are deleted; of the rules on both sides the longest
 *      increasing subsequence (kernel order vs desired order) stays in
 *      place: unchanged ones are left alone, changed ones with as many
 *      parts are replaced part by part (NEWRULE NLM_F_REPLACE + handle),
 *      the others are deleted and inserted. The rest is inserted (moved:
 *      deleted first): after the previous rule's last part (POSITION =
 *      handle, NLM_F_APPEND), after a rule inserted earlier in the same
 *      transaction (NFTNL_RULE_ID / NFTNL_RULE_POSITION_ID), at the head
 *      of the chain for the first, or appended at the tail when no kept
 *      rule follows (the common case of a load: no id lookups).
 *   4. Chain fw: foreign and duplicate rules deleted; the jump inserted
 *      at the head when missing; the default rule appended when missing,
 *      replaced in place when its action differs.
 *   5. Lists no longer desired (or of another family now): DELSET and
 *      DELSETELEM of their fw_lists element, after the rules.
 * DELETE: DELCHAIN fw, DELCHAIN fw_rules, DELSET of every list set and of
 * fw_lists (whatever exists; the table stays, other chains share it).
 *
 * Every step carries the index of its op and the rule id or list name it
 * is for, so a kernel error maps back to "rule 30" or "list bad".
 */
#ifndef MT_NFT_FW_PLAN_H
#define MT_NFT_FW_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.pb-c.h"
#include "kernel.pb-c.h"
#include "mt_fw.h"
#include "mt_metal.h"
#include "mt_prefix.h"
#include "nft_fw_rules.h"

struct mt_nft_batch;
struct nlmsghdr;
struct nftnl_chain;
struct nftnl_rule;
struct nftnl_set;

#define MT_NFT_FW_KEY_LEN 16 /* fw_lists keys: type ifname */

/* ---- the state of one namespace as read ---- */

/* A rule of chain fw. */
struct mt_nft_fw_base {
	uint64_t handle;
	int kind;   /* enum mt_nft_fw_base_kind, or -1: not one of mt's */
	bool block; /* the default rule's action */
	uint64_t packets, bytes;
};

/* A rule of chain fw_rules: its consecutive parts. */
struct mt_nft_fw_group {
	uint32_t id; /* from the tag; 0: no mt tag (foreign) */
	size_t n;    /* parts (handles) */
	uint64_t handle[MT_NFT_FW_PARTS_MAX];
	/* The canonical rule parsed back; NULL: foreign, damaged (parts
	 * missing, changed by hand) or a second rule with the same id. */
	Mt__Config__FirewallRule *rule;
	uint64_t packets, bytes, limited;
	/* What the kernel returned for the parts and the anonymous sets they
	 * look up, counter values left out (see mt_nft_fw_state_rule_msg);
	 * NULL when not known. A later read whose group has the same key
	 * takes rule over instead of parsing the parts again. */
	uint8_t *key;
	size_t key_len;
};

/* Bytes as read, for the keys above. */
struct mt_nft_fw_raw {
	uint8_t *p;
	size_t len;
};

/* A list set (l4_NAME / l6_NAME) of the table. */
struct mt_nft_fw_kset {
	char name[MT_FW_LIST_NAME_MAX + 1];
	int family;
	bool ok; /* as mt_nft_fw_list_set_new makes it */
};

/* An element of set fw_lists: one of mt's (name, family, digest, count),
 * or foreign (not parsed: only its raw key, to delete it). */
struct mt_nft_fw_klist {
	char name[MT_FW_LIST_NAME_MAX + 1];
	int family;
	char digest[MT_FW_DIGEST_STRLEN];
	uint32_t count;
	bool foreign;
	uint8_t key[MT_NFT_FW_KEY_LEN];
};

struct mt_nft_fw_state {
	bool table, dormant;	     /* the table exists / is dormant */
	bool chain, chain_ok;	     /* chain fw */
	bool rchain, rchain_ok;	     /* chain fw_rules */
	bool lset, lset_ok;	     /* set fw_lists */
	struct mt_nft_fw_base *base; /* chain fw, in order */
	size_t n_base, cap_base;
	struct mt_nft_fw_group *groups; /* chain fw_rules, in order */
	size_t n_groups, cap_groups;
	struct mt_nft_fw_kset *sets;
	size_t n_sets, cap_sets;
	struct mt_nft_fw_klist *lists;
	size_t n_lists, cap_lists;
	/* While reading (released by mt_nft_fw_state_finish): the dumped
	 * rules of fw_rules and the sets they may refer to. */
	struct nftnl_rule **raw;
	size_t n_raw, cap_raw;
	struct nftnl_set **rsets;
	size_t n_rsets, cap_rsets;
	char **used; /* set names the lookups of fw_rules refer to */
	size_t n_used, cap_used;
	/* Parallel to raw and rsets: the messages they came from (p NULL:
	 * not given; such a rule is always parsed). */
	struct mt_nft_fw_raw *raw_msg, *rset_msg;
	size_t cap_raw_msg, cap_rset_msg;
	/* The previous read of the same namespace (set before feeding the
	 * builders; not owned): finish takes over its parsed rules whose
	 * key is unchanged. mt_nft_fw_state_fini leaves it NULL. */
	struct mt_nft_fw_state *prev;
};

/* Frees everything and zeroes st (a zeroed st is an empty state). */
void mt_nft_fw_state_fini(struct mt_nft_fw_state *st);

/* State builders, fed with what a read dumps, in any order, then
 * mt_nft_fw_state_finish. Each returns 0 or -ENOMEM. */
/* A chain of the table (only fw and fw_rules are looked at). */
int mt_nft_fw_state_chain(struct mt_nft_fw_state *st,
			  const struct nftnl_chain *c);
/* A rule of chain fw or fw_rules (others: ignored). Takes r (freed on
 * error and when not kept). Rules of one chain come in chain order. */
int mt_nft_fw_state_rule(struct mt_nft_fw_state *st, struct nftnl_rule *r);
/* The same, also recording what the kernel returned for r (nlh, the
 * message r was parsed from): every attribute but NFTA_RULE_POSITION
 * (the previous rule's handle, which moves when a rule is inserted
 * before), the expressions with the counters' data (packets, bytes)
 * left out. A rule of fw_rules given this way, whose group's parts and
 * anonymous sets are all byte for byte as in st->prev, is not parsed
 * again: its canonical rule is taken over from st->prev, its counters
 * read from the parts. 0, -EBADMSG or -ENOMEM (r freed). */
int mt_nft_fw_state_rule_msg(struct mt_nft_fw_state *st, struct nftnl_rule *r,
			     const struct nlmsghdr *nlh);
/* A set of the table from a GETSET dump. Takes s (freed on error and
 * when not kept). Anonymous sets are kept to be filled with their
 * elements: see mt_nft_fw_state_set_find. */
int mt_nft_fw_state_set(struct mt_nft_fw_state *st, struct nftnl_set *s);
/* The same, recording the message s was parsed from (its attributes),
 * for the keys of the rules that look it up. */
int mt_nft_fw_state_set_msg(struct mt_nft_fw_state *st, struct nftnl_set *s,
			    const struct nlmsghdr *nlh);
/* Parses one GETSETELEM dump message of the kept set name into it
 * (nothing when it is not kept) and appends the message's attributes to
 * what was recorded for the set. 0, -EBADMSG or -ENOMEM. */
int mt_nft_fw_state_set_elems_msg(struct mt_nft_fw_state *st,
				  const char *name, const struct nlmsghdr *nlh);
/* The kept set named name (to parse its elements into), or NULL. */
struct nftnl_set *mt_nft_fw_state_set_find(const struct mt_nft_fw_state *st,
					   const char *name);
/* The name of the i-th anonymous set kept (used by a rule of fw_rules, so
 * its elements must be read for the rules to parse back), NULL past the
 * last. Call after every rule was added. */
const char *mt_nft_fw_state_anon(const struct mt_nft_fw_state *st, size_t i);
/* The elements of set fw_lists (s holds some of them: call once per
 * dumped message). */
int mt_nft_fw_state_lists_elems(struct mt_nft_fw_state *st,
				const struct nftnl_set *s);
/* Groups the rules of fw_rules by their tags, parses each complete group
 * back (mt_nft_fw_rule_parse), marks duplicates, and releases the raw
 * objects. 0 or -ENOMEM. */
int mt_nft_fw_state_finish(struct mt_nft_fw_state *st);

/* True when the namespace holds any part of mt's firewall (chain fw or
 * fw_rules, set fw_lists, a list set). */
bool mt_nft_fw_state_present(const struct mt_nft_fw_state *st);
/* True when it holds something mt would not have written (see
 * Firewall.dirty in proto/kernel.proto): a foreign, damaged or duplicate
 * rule, a missing jump or default rule, a chain or set not as mt makes
 * it, a list set without its fw_lists element or the reverse, a foreign
 * element, a dormant table. A CREATE repairs all of it. */
bool mt_nft_fw_state_dirty(const struct mt_nft_fw_state *st);

/* The observed Firewall of st (a new heap message, free with
 * protobuf_c_message_free_unpacked): netns, owner, the default action
 * ("allow"/"block", "" when missing), the intact rules in chain order,
 * the lists whose fw_lists element and set agree (name, family, digest,
 * count; sorted by name), dirty, and with counters one FirewallCounters
 * per rule then id 0 for the default rule. 0 or -ENOMEM. */
int mt_nft_fw_observed(const struct mt_nft_fw_state *st, const char *netns,
		       const char *owner, bool counters,
		       Mt__Kernel__Firewall **out);

/* ---- the desired firewall of one op ---- */

struct mt_nft_fw_want_rule {
	const Mt__Config__FirewallRule *rule; /* the op's */
	size_t n_parts;			      /* as compiled */
};

struct mt_nft_fw_want_list {
	char name[MT_FW_LIST_NAME_MAX + 1];
	int family;
	char digest[MT_FW_DIGEST_STRLEN];
	uint32_t count;
	bool delta;
	char base_digest[MT_FW_DIGEST_STRLEN];
	struct mt_prefix *prefixes; /* full content (!delta), sorted */
	size_t n;
	struct mt_prefix *add, *remove; /* delta */
	size_t n_add, n_remove;
};

struct mt_nft_fw_want {
	size_t op; /* index of the op (into the applier's ops) */
	bool del;
	bool block; /* default action */
	struct mt_nft_fw_want_rule *rules;
	size_t n_rules;
	struct mt_nft_fw_want_list *lists; /* sorted by name */
	size_t n_lists;
};

/* The Firewall of op (CREATE or DELETE), checked and prepared for
 * planning against table: netns an owned customer namespace (-EPERM);
 * default action "", "allow" or "block"; at most MT_FW_RULES_MAX rules
 * with unique ids, each valid and canonical (mt_nft_fw_rule_compile
 * accepts it); at most MT_FW_LISTS_MAX lists, names valid and unique,
 * family "ipv4"/"ipv6", full content: the prefixes parse strictly, all
 * of the list's family (compiled: sorted, covered ones dropped; the
 * digest and count are those of the content, and a digest given must
 * agree), delta: digest and base_digest given, add and remove parse and
 * are of the family (-EINVAL for all of these). A rule referring to a
 * list that is not in the op is not refused here: the kernel refuses it
 * and the transaction fails naming the rule. The reason goes to err
 * (naming rule index and id, or the list). out refers to op (which must
 * outlive it); release it with mt_nft_fw_want_fini (also after an
 * error). 0, -EPERM, -EINVAL or -ENOMEM. */
int mt_nft_fw_want_prepare(const struct mt_metal *m, const char *table,
			   const Mt__Kernel__Op *op, size_t op_index,
			   struct mt_nft_fw_want *out, char *err,
			   size_t errlen);
void mt_nft_fw_want_fini(struct mt_nft_fw_want *w);

/* "create firewall (3 rules, 1 list, default block) in netns mt0-acme" */
char *mt_nft_fw_op_describe(const Mt__Kernel__Op *op, char *buf, size_t len);

/* ---- the plan ---- */

enum mt_nft_fw_step_type {
	MT_NFT_FW_NEWTABLE,
	MT_NFT_FW_NEWCHAIN, /* chain (fw or fw_rules) */
	MT_NFT_FW_DELCHAIN, /* chain, with its rules */
	MT_NFT_FW_NEWSET,   /* list set (list, family), or fw_lists (list "") */
	MT_NFT_FW_DELSET,
	MT_NFT_FW_FLUSHSET, /* list set: DELSETELEM without elements */
	MT_NFT_FW_ADDELEMS, /* list set: prefixes[0..n) */
	MT_NFT_FW_DELELEMS,
	MT_NFT_FW_ADDLISTELEM, /* fw_lists element (list, family, digest, count)
				*/
	MT_NFT_FW_DELLISTELEM, /* fw_lists element with key */
	MT_NFT_FW_NEWRULE,     /* rule (all its parts) at pos */
	MT_NFT_FW_REPLACERULE, /* rule: part k replaces handle[k] */
	MT_NFT_FW_DELRULE,     /* chain, handle */
	MT_NFT_FW_NEWJUMP,     /* the jump rule, at the head of fw */
	MT_NFT_FW_NEWDEFAULT,  /* the default rule, at the tail of fw */
	MT_NFT_FW_REPLACEDEFAULT, /* ... in place of handle */
};

enum mt_nft_fw_pos {
	MT_NFT_FW_POS_HEAD,   /* no NLM_F_APPEND, no position */
	MT_NFT_FW_POS_TAIL,   /* NLM_F_APPEND, no position */
	MT_NFT_FW_POS_HANDLE, /* after rule pos_handle */
	MT_NFT_FW_POS_ID,     /* after the rule with NFTNL_RULE_ID pos_id */
};

struct mt_nft_fw_step {
	enum mt_nft_fw_step_type type;
	size_t op;			    /* index of the op it is for */
	uint32_t rule_id;		    /* the rule it is for (0: none) */
	char list[MT_FW_LIST_NAME_MAX + 1]; /* the list it is for ("") */
	const char *chain;		    /* MT_NFT_FW_CHAIN / _RULES_CHAIN */
	int family;			    /* list sets and elements */
	uint64_t handle[MT_NFT_FW_PARTS_MAX]; /* DELRULE [0], REPLACE* */
	/* NEWRULE / REPLACERULE: the desired rule and its parts; part k
	 * gets NFTNL_RULE_ID uid + k (NEWRULE); part 0 goes at pos, the
	 * others after the part before (TAIL: appended). */
	const Mt__Config__FirewallRule *rule;
	size_t n_parts;
	enum mt_nft_fw_pos pos;
	uint64_t pos_handle;
	uint32_t pos_id, uid;
	const struct mt_prefix *prefixes; /* ADDELEMS / DELELEMS */
	size_t n;
	char digest[MT_FW_DIGEST_STRLEN]; /* ADDLISTELEM */
	uint32_t count;
	uint8_t key[MT_NFT_FW_KEY_LEN]; /* DELLISTELEM */
	bool block;			/* NEWDEFAULT / REPLACEDEFAULT */
};

/* Appends to *steps (malloc'd, grown; *n_steps counts them) the steps that
 * make st's firewall w (see the top of this file). *next_uid is the next
 * NFTNL_RULE_ID free in the transaction (advanced). Pure. 0, -ENOMEM, or
 * -ESTALE (a delta against another version than the kernel's) with the
 * reason in err; on error nothing is appended. */
int mt_nft_fw_plan(const struct mt_nft_fw_state *st,
		   const struct mt_nft_fw_want *w, uint32_t *next_uid,
		   struct mt_nft_fw_step **steps, size_t *n_steps, char *err,
		   size_t errlen);

/* Appends the messages of step s for table to b, each tagged tag. *set_id
 * is the next NFTNL_SET_ID free in the transaction (advanced). 0, -ENOMEM,
 * -EINVAL (a rule that does not compile), -EMSGSIZE. */
int mt_nft_fw_step_batch(struct mt_nft_batch *b, const char *table,
			 const struct mt_nft_fw_step *s, uint32_t *set_id,
			 long tag);

/* What s is for, for messages: "rule 30", "list \"bad\"", "chain fw",
 * "set fw_lists", "the table". */
char *mt_nft_fw_step_what(const struct mt_nft_fw_step *s, char *buf,
			  size_t len);

#endif
