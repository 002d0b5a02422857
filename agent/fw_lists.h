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
 * After a plan is built (mt_diff), mt_fw_lists_prepare looks at each
 * Firewall CREATE and each list in it that carries its content (the diff
 * strips the content of lists the kernel already holds). When the observed
 * digest of that list is the digest of the cached content, the list becomes
 * {delta=true, base_digest=observed digest, add, remove} without prefixes;
 * otherwise it stays a full reload. The fastpath refuses a delta whose base
 * is not what the kernel holds (-ESTALE), so a stale cache costs one failed
 * op, never a wrong set.
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
 * about what a cold start costs), and deltas follow from then on. Lists
 * that never change are never held in memory.
 *
 * One plan at a time: prepare records the plan's new contents inside the
 * cache until commit or abort.
 */
#ifndef MT_FW_LISTS_H
#define MT_FW_LISTS_H

#include <stddef.h>

#include "kernel.pb-c.h"
#include "mt_fw.h"

struct mt_fw_lists;

/* NULL on ENOMEM. _free accepts NULL. */
struct mt_fw_lists *mt_fw_lists_new(void);
void mt_fw_lists_free(struct mt_fw_lists *c);

/* The post-pass over plan (built against observed), as described above.
 * Ops are modified in place; nothing else is. Returns the number of lists
 * turned into deltas (>= 0), or -ENOMEM (the plan is then still valid:
 * lists not yet converted stay full reloads). */
int mt_fw_lists_prepare(struct mt_fw_lists *c,
			const Mt__Kernel__KernelState *observed,
			Mt__Kernel__Plan *plan);

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
