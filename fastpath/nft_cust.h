/* mt's nftables table inside each customer namespace (family inet, named
 * m->cust_nft_table, "mt0-cust"), written and read in-process over
 * netfilter netlink (libnftnl + nft_batch), never with the nft CLI. For now
 * it holds the tunnels' TCP MSS clamps in its "mss" chain (the rules are
 * described in nft_cust_rules.h); later chains join the same table, and
 * nothing here flushes or deletes the table or any chain but "mss".
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

/* Applies n MssClamp ops. Per op:
 *   CREATE  create the clamp of dev in netns with mss, or replace the clamp
 *           that dev has (same mss: nothing sent); the table and the chain
 *           are created in the same transaction when missing;
 *   DELETE  remove the clamp of dev (absent: 0, nothing sent; mss is not
 *           looked at); the chain is deleted with the last clamp (the table
 *           stays: other chains share it). dev "" (the dirty marker) removes
 *           nothing itself but, like any op, makes a dirty chain be rebuilt.
 * The ops of one namespace form one atomic nft transaction, planned from a
 * consistent read of the namespace's table and sent with the generation id
 * of that read (a concurrent change makes the kernel refuse it with
 * -ERESTART; it is then read, planned and sent again, a few times, then
 * -EAGAIN). Namespaces are independent of each other.
 * results[i] (allocated when NULL; error and message are heap strings,
 * released with the result by protobuf_c_message_free_unpacked) gets 0 and
 * "" on success, else -errno and a message naming the clamp (dev, mss,
 * netns) with the reason (the kernel's extended ACK text when it gave one).
 * When anything fails in a namespace, nothing of its transaction applies:
 * the failing op carries its own error, every other op of the namespace
 * -ECANCELED ("not applied: transaction aborted by ..."). Refused before
 * anything is sent to that namespace: a netns that is not an owned customer
 * namespace (not m->prefix + customer) or a dev that is not a valid
 * interface name (-EPERM), mss outside 536..65495 on CREATE or an unknown
 * action (-EINVAL), an op of another kind (-EOPNOTSUPP). CREATE in a
 * namespace that does not exist: -ENOENT (a DELETE there succeeds).
 * *writes (may be NULL) is increased by the messages of committed
 * transactions (BEGIN/END not counted; 0 when nothing was needed). Returns
 * 0 when every op succeeded, else the error of the first failed op. */
int mt_nft_cust_apply(struct mt_nft_cust *c, Mt__Kernel__Op *const *ops,
		      size_t n, Mt__Kernel__OpResult **results,
		      uint64_t *writes);

/* Appends to st one MssClamp { netns, dev, mss, owner } per intact clamp in
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
 * unchanged on error. */
int mt_nft_cust_observe(struct mt_nft_cust *c, const char *const *owners,
			size_t n_owners, Mt__Kernel__KernelState *st);

#endif
