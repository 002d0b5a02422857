/* The agent's memory of the firewall list contents it last applied, and the
 * post-pass that turns a plan's full list reloads into element deltas.
 * Pure code, no I/O.
 *
 * The kernel never gives a list's elements back (listing a large set is
 * slow); it keeps the digest mt wrote with the set. To send a delta the
 * agent must know the content behind the kernel's digest: this cache holds,
 * per (netns, list name), the compiled content (struct mt_fw_list: sorted
 * prefixes + digest, no strings) of the last successful apply.
 *
 * The desired content of the lists comes compiled (struct mt_fw_content,
 * shared by reference between agent/desired.c's per-customer memos, the
 * set of a plan's desired contents and this cache), so a list is compiled
 * once per config change and never formatted into strings unless it is
 * sent in full.
 *
 * After a plan is built (mt_diff), mt_fw_lists_prepare looks at each
 * Firewall CREATE and each list in it that the diff did not leave alone
 * (the diff makes a list the kernel already holds an empty delta from its
 * digest). The list's desired content is the one in the desired set
 * (mt_desired_build_memo leaves the desired lists without strings), or
 * else the prefixes it carries (mt_desired_build). When the observed
 * digest of that list is the digest of the cached content, the list
 * becomes {delta=true, base_digest=observed digest, add, remove} without
 * prefixes; otherwise it is a full reload with every prefix as a string.
 * The fastpath refuses a delta whose base is not what the kernel holds
 * (-ESTALE), so a stale cache costs one failed op, never a wrong set.
 *
 * After the apply, mt_fw_lists_commit updates the cache from the results:
 * a successful Firewall CREATE stores the new content of each list it
 * carried (full or delta) and forgets the lists the firewall no longer
 * has; a failed one forgets the lists it carried (the next attempt is a
 * full reload); a successful Firewall or Netns DELETE forgets the
 * namespace.
 *
 * After an agent restart the cache is empty: the first change of each list
 * is then a full reload (one atomic nft transaction; with 100k prefixes
 * about what a cold start costs), and deltas follow from then on. A list
 * that never changes is held once, by the customer's desired memo.
 *
 * One plan at a time: prepare records the plan's new contents inside the
 * cache until commit or abort.
 */
#ifndef MT_FW_LISTS_H
#define MT_FW_LISTS_H

#include <stddef.h>

#include "kernel.pb-c.h"
#include "mt_fw.h"

/* ---- compiled contents, shared by reference ---- */

/* A compiled list with a reference count (one thread). */
struct mt_fw_content {
	struct mt_fw_list list;
	unsigned refs;
};

/* mt_fw_list_compile into a new content with one reference. 0, -EINVAL
 * (err says why) or -ENOMEM. */
int mt_fw_content_compile(const char *name, char *const *prefixes, size_t n,
			  struct mt_fw_content **out, char *err, size_t errlen);
/* Takes a reference (returns c); _unref drops one and frees the content
 * with the last. Both accept NULL. */
struct mt_fw_content *mt_fw_content_ref(struct mt_fw_content *c);
void mt_fw_content_unref(struct mt_fw_content *c);

/* ---- the desired contents of a plan ---- */

/* (netns, list name) -> the desired content: what mt_desired_build_memo
 * fills for mt_fw_lists_prepare. */
struct mt_fw_desired;

/* NULL on ENOMEM. _free accepts NULL (and drops every reference). */
struct mt_fw_desired *mt_fw_desired_new(void);
void mt_fw_desired_free(struct mt_fw_desired *d);
/* Records content (taking a new reference) as the desired content of
 * list content->list.name in netns. 0 or -ENOMEM. */
int mt_fw_desired_add(struct mt_fw_desired *d, const char *netns,
		      struct mt_fw_content *content);
/* The desired content of (netns, name), or NULL. */
const struct mt_fw_content *mt_fw_desired_find(struct mt_fw_desired *d,
					       const char *netns,
					       const char *name);

/* ---- the applied cache ---- */

struct mt_fw_lists;

/* NULL on ENOMEM. _free accepts NULL. */
struct mt_fw_lists *mt_fw_lists_new(void);
void mt_fw_lists_free(struct mt_fw_lists *c);

/* The post-pass over plan (built against observed), as described above.
 * want: the desired contents (NULL: every list to send carries its
 * prefixes). Ops are modified in place; nothing else is. Returns the
 * number of lists turned into deltas (>= 0); -ENOMEM (the plan is then
 * still valid: lists not yet converted stay as they were, full reloads
 * with strings or (without strings) to be refused by the fastpath); or
 * -ENOENT when a list without strings has no desired content in want
 * (the plan was not built with it). */
int mt_fw_lists_prepare(struct mt_fw_lists *c,
			const Mt__Kernel__KernelState *observed,
			struct mt_fw_desired *want, Mt__Kernel__Plan *plan);

/* Takes the outcome of applying plan (the one given to prepare):
 * results[i] for plan->ops[i]; an op without a result (i >= n_results,
 * e.g. the apply call failed) counts as failed. */
void mt_fw_lists_commit(struct mt_fw_lists *c, const Mt__Kernel__Plan *plan,
			Mt__Kernel__OpResult *const *results, size_t n_results);

/* Forgets what prepare recorded (a dry run): the cache is unchanged. */
void mt_fw_lists_abort(struct mt_fw_lists *c);

/* The cached content of (netns, name), or NULL. Valid until the next
 * commit. */
const struct mt_fw_list *mt_fw_lists_get(const struct mt_fw_lists *c,
					 const char *netns, const char *name);

/* How many lists and prefixes the cache holds (either may be NULL). */
void mt_fw_lists_stats(const struct mt_fw_lists *c, size_t *n_lists,
		       size_t *n_prefixes);

#endif
