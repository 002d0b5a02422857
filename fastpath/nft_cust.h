/* mt's nftables table inside each customer namespace (family inet, named
 * m->cust_nft_table, "mt0-cust"), written and read in-process over
 * netfilter netlink (libnftnl + nft_batch), never with the nft CLI. It
 * holds the tunnels' TCP MSS clamps in its "mss" chain (the rules are
 * described in nft_cust_rules.h) and the customer's firewall: chains "fw"
 * and "fw_rules", set "fw_lists" and one set per named list (layout in
 * nft_fw_rules.h, planning in nft_fw_plan.h). Nothing here deletes the
 * table; each part only ever touches its own chains and sets.
 *
 * Only namespaces whose name starts with m->prefix are ever listed, opened
 * or written, and only this table in them.
 *
 * The context caches one NETLINK_NETFILTER socket per namespace, created
 * inside it (a netlink socket stays bound to the namespace it was opened
 * in), so a namespace is entered only once. Before a namespace is used its
 * /run/netns entry is compared (dev/ino) with the cached socket's namespace;
 * a replaced namespace gets a new socket, a deleted one loses its socket
 * (a cached socket would keep a deleted namespace alive). The context is
 * not thread-safe; use it from one thread whose network namespace is the
 * metal's (it enters customer namespaces briefly with mt_netns_run, so not
 * the thread running the event loop).
 *
 * Dirty chains. A chain that holds anything but intact clamps (a rule mt
 * did not write, a rule changed by hand, half of a clamp, a duplicate) or
 * that is not the chain mt creates (hook, priority, policy, type), or whose
 * table is dormant, is "dirty". Observe then reports the intact clamps as
 * usual plus one marker MssClamp { netns, dev "", mss 0, owner }. No desired
 * clamp has an empty dev, so a planner that diffs by (netns, dev) sends
 * DELETE for the marker (and CREATE for any clamp that was damaged, since
 * that one is not reported). Any apply to a dirty namespace, the marker's
 * DELETE included, rebuilds the chain in one transaction: delete it, create
 * it again with every clamp that remains. So foreign rules are removed and
 * damaged clamps repaired, also in a namespace whose desired state has no
 * clamps left; afterwards observe reports no marker, and the next reconcile
 * writes nothing.
 */
#ifndef MT_NFT_CUST_H
#define MT_NFT_CUST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel.pb-c.h"
#include "mt_metal.h"

struct mt_nft_cust; /* per-namespace socket cache */

/* A context for metal m (which must outlive it), created on the thread and
 * in the namespace (the metal's) it will be used from. Raises
 * RLIMIT_NOFILE's soft limit to the hard one (one socket per customer
 * namespace). 0 or -errno. */
int mt_nft_cust_new(const struct mt_metal *m, struct mt_nft_cust **out);
/* Closes every cached socket. NULL is fine. */
void mt_nft_cust_free(struct mt_nft_cust *c);
/* Closes the cached socket of namespace name (no-op when none): call
 * before the namespace is deleted, or the socket keeps it (and the veth
 * whose peer is in the metal) alive. */
void mt_nft_cust_forget_netns(struct mt_nft_cust *c, const char *name);

/* Applies n MssClamp and Firewall ops. Per MssClamp op:
 *   CREATE  create the clamp of dev in netns with mss, or replace the clamp
 *           that dev has (same mss: nothing sent); the table and the chain
 *           are created in the same transaction when missing;
 *   DELETE  remove the clamp of dev (absent: 0, nothing sent; mss is not
 *           looked at); the chain is deleted with the last clamp (the table
 *           stays: other chains share it). dev "" (the dirty marker) removes
 *           nothing itself but, like any op, makes a dirty chain be rebuilt.
 * Per Firewall op (at most one per namespace and call; a second one is
 * refused with -EINVAL):
 *   CREATE  make the namespace's firewall exactly the op's: only what
 *           differs is written (a changed rule is replaced in place, an
 *           added one inserted at its position, a list changed by its
 *           delta or refilled; see nft_fw_plan.h); foreign rules, damaged
 *           rules and anything else that makes the observed Firewall dirty
 *           are removed or repaired; the table and chains are created when
 *           missing. Nothing is sent when nothing differs. A delta list
 *           whose base_digest is not the kernel's digest: -ESTALE (the
 *           kernel holds another version: send the full content).
 *   DELETE  remove chains fw and fw_rules, the list sets and fw_lists
 *           (nothing sent when none exists; the table and mss stay).
 *   Refused before anything is sent: a netns that is not an owned
 *   customer namespace (-EPERM); an unknown default action, a rule that
 *   is not valid or not canonical (mt_nft_fw_rule_compile refuses it),
 *   duplicate rule ids, a bad list name, family or prefix (not strict,
 *   or not of the list's family), a digest that does not match the full
 *   content, a delta without digests (-EINVAL). A rule that refers to a
 *   list the op does not have is left to the kernel, which refuses it:
 *   the transaction fails, naming the rule.
 * The ops of one namespace form one atomic nft transaction, planned from a
 * consistent read of the namespace's table and sent with the generation id
 * of that read (a concurrent change makes the kernel refuse it with
 * -ERESTART; it is then read, planned and sent again, a few times, then
 * -EAGAIN). Namespaces are independent of each other.
 * The MssClamp ops and the Firewall op of a namespace form ONE transaction.
 * results[i] (allocated when NULL; error and message are heap strings,
 * released with the result by protobuf_c_message_free_unpacked) gets 0 and
 * "" on success, else -errno and a message naming the clamp (dev, mss,
 * netns), or the firewall op and the rule ("rule 30") or list ("list
 * \"bad\"") the failing message was for, with the reason (the kernel's
 * extended ACK text when it gave one), e.g.
 *   create firewall (3 rules, 1 list, default block) in netns mt0-acme:
 *   rule 30: No such file or directory: <kernel text>
 * When anything fails in a namespace, nothing of its transaction applies:
 * the failing op carries its own error, every other op of the namespace
 * -ECANCELED ("not applied: transaction aborted by ..."). Refused before
 * anything is sent to that namespace: a netns that is not an owned customer
 * namespace (not m->prefix + customer) or a dev that is not a valid
 * interface name (-EPERM), mss outside 536..65495 on CREATE or an unknown
 * action (-EINVAL), an op of another kind (-EOPNOTSUPP). CREATE in a
 * namespace that does not exist: -ENOENT (a DELETE there succeeds).
 * *writes (may be NULL) is increased by the messages of committed
 * transactions (BEGIN/END not counted; 0 when nothing was needed: one
 * changed rule without anonymous sets is 1). Returns 0 when every op
 * succeeded, else the error of the first failed op. */
int mt_nft_cust_apply(struct mt_nft_cust *c, Mt__Kernel__Op *const *ops,
		      size_t n, Mt__Kernel__OpResult **results,
		      uint64_t *writes);

/* Appends to st one MssClamp { netns, dev, mss, owner } per intact clamp,
 * and one Firewall per namespace that holds any part of mt's firewall, in
 * the owned namespaces (n_owners == 0: every namespace named m->prefix +
 * something; else only those of the given customers), namespaces in name
 * order, clamps by device, and the dirty marker (dev "", mss 0, first in its
 * namespace; see above) for each namespace whose chain is dirty. Clamps are
 * parsed back from the rules' expressions (the comment must agree, but is
 * not the source). A namespace is read under its ruleset generation id
 * (again when it changed during the read), so a clamp is never seen
 * half-written; the read is kept per namespace and reused while the
 * namespace's generation id stays the same (one small request per
 * namespace). Namespaces without the table, and namespaces that vanish
 * while observed, contribute nothing. Returns 0 or -errno (-EAGAIN: a
 * namespace's ruleset kept changing, -EPERM without CAP_NET_ADMIN); st is
 * unchanged on error.
 * The Firewall (mt_nft_fw_observed in nft_fw_plan.h): netns, owner,
 * default_action ("" when the default rule is missing), the rules parsed
 * back into canonical form in chain order (a rule changed by hand so that
 * it no longer parses, and duplicates, are left out), the lists whose set
 * and fw_lists element agree (name, family, digest, count: the elements
 * of the list sets are never read), dirty when anything else is there or
 * something is missing (see mt_nft_fw_state_dirty). Reading a firewall
 * costs a few more requests than the clamps (the set list, the fw_lists
 * elements, the elements of the rules' anonymous sets), only when the
 * namespace's generation id moved. Parsing a rule back is the costly part
 * of that read, so a rule whose parts and anonymous sets the kernel
 * returns byte for byte as in the previous read (counter values aside)
 * is not parsed again: its canonical form is kept from that read and its
 * counters are read fresh (see mt_nft_fw_state_rule_msg). A rule edited
 * by hand differs in its bytes and is parsed, as is every rule the first
 * time. */
int mt_nft_cust_observe(struct mt_nft_cust *c, const char *const *owners,
			size_t n_owners, Mt__Kernel__KernelState *st);
/* The same; with counters, each namespace is read again whatever its
 * generation id (the rules' counters move without it), and each Firewall
 * carries counters: one per rule (packets, bytes, limited_packets), in
 * order, then id 0 for the default rule. */
int mt_nft_cust_observe_counters(struct mt_nft_cust *c,
				 const char *const *owners, size_t n_owners,
				 bool counters, Mt__Kernel__KernelState *st);

/* Called for each customer namespace whose nftables ruleset changed
 * without mt (owner = the customer, netns = its namespace). */
typedef void (*mt_nft_cust_drift_fn)(void *data, const char *owner,
				     const char *netns);

/* Drift in the customer namespaces' nftables (the firewall, the MSS
 * clamps): asks namespaces the context has a socket for for their ruleset
 * generation id (one small request each) and calls cb for those whose id
 * is not the one mt accounted for (its last read, or the one its own last
 * commit left). Each change is reported once. A poll, not a notification
 * socket per namespace: those would receive one message per element of
 * mt's own large list transactions. Each call asks the next 1/slices of
 * the namespaces (at least one), going round, so that polling a thousand
 * namespaces never holds the caller's loop for long. Not thread-safe, like
 * the rest: call it between observes and applies. Returns how many were
 * reported. */
int mt_nft_cust_poll(struct mt_nft_cust *c, unsigned slices,
		     mt_nft_cust_drift_fn cb, void *data);

#endif
