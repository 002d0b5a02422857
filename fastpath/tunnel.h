/* The Tunnel objects of mt-fastpath (proto kernel.Tunnel): GRE tunnel
 * devices in customer namespaces, applied and observed through one of two
 * drivers:
 *   "bpf"    a veth pair NAME / NAME.t with the BPF GRE programs and map
 *            entries (gre_bpf.h);
 *   "kernel" an ip_gre link NAME (gre_kernel.h), on kernels that have it.
 * "auto" (or "") is the driver mt_tunnels_new found this kernel to support:
 * kernel gre where it works, bpf otherwise.
 *
 * A tunnel is in place ("carries traffic") when:
 *   bpf:    NAME is a veth whose peer is NAME.t in the same namespace, both
 *           up, NAME.t's ifindex in the GRE maps' range and its MTU room for
 *           the encapsulation; the encap program (this build's, using these
 *           maps) on NAME.t's tc ingress and the decap program on metal0's;
 *           a tx entry for NAME.t with this namespace's cookie, metal0's
 *           ifindex and MAC and the expected outer destination MAC (the MAC
 *           of the metal-side veth named like the namespace, in the
 *           namespace mt_tunnels_new ran in; zero = bpf_redirect_neigh when
 *           there is no such veth), and the rx entry of its endpoints
 *           pointing back at NAME.t with NAME's and NAME.t's MACs;
 *   kernel: a gre link NAME, up, with both endpoints, PMTU discovery on and
 *           the same key in both directions.
 * Anything less is reported with local and remote "" (so the agent's diff
 * plans a CREATE, which repairs it).
 *
 * Ownership: tunnels live only in owned customer namespaces (name = the
 * metal's prefix + customer); every device there is mt's. Tunnel names are
 * 1-13 characters of [A-Za-z0-9_-] (mt_gre_bpf_name_valid), not "lo" or
 * "metal0"; the kernel driver also refuses the kernel's own gre0, gretap0
 * and erspan0.
 *
 * Threads: like gre_bpf.h, calls switch the calling thread into customer
 * namespaces and back (only to open a namespace's netlink socket, which is
 * then cached, and for the gre_bpf.c steps that need it). One call at a
 * time on a handle: mt-fastpath applies on its loop thread and observes
 * on a helper thread while the loop waits for it.
 *
 * Descriptors: each cached namespace holds two (its netns fd and a netlink
 * socket inside it). A cached fd keeps a deleted namespace, and so its
 * devices, alive: the cache drops a namespace that is gone or was replaced
 * whenever observe, sweep or an op on it notices; mt_tunnels_forget_netns
 * drops one at once.
 */
#ifndef MT_FASTPATH_TUNNEL_H
#define MT_FASTPATH_TUNNEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel.pb-c.h"
#include "mt_gre_shared.h"
#include "mt_metal.h"
#include "nl.h"

struct mt_tunnels;

/* Loads the BPF GRE object (maps pinned under pin_root/instance; pin_root
 * NULL = no pins, for tests) and probes whether this kernel makes gre
 * links (in a private namespace that dies with the probe; never the
 * caller's). Logs which driver "auto" means and why. If the BPF object
 * cannot be loaded but kernel gre works, the call succeeds (a warning is
 * logged; "bpf" tunnels then fail with -EOPNOTSUPP naming the reason); if
 * neither driver is usable it fails with the BPF error in err. m must
 * outlive t. Returns 0 or -errno. */
int mt_tunnels_new(const struct mt_metal *m, const char *pin_root,
		   struct mt_tunnels **out, char *err, size_t errlen);
/* Frees t (accepts NULL). Tunnels, programs and pinned maps stay in the
 * kernel. */
void mt_tunnels_free(struct mt_tunnels *t);
/* "bpf" or "kernel": what a tunnel with driver "auto" or "" becomes. */
const char *mt_tunnels_auto_driver(const struct mt_tunnels *t);
/* Whether this kernel makes gre links (the probe's answer). */
bool mt_tunnels_kernel_gre(const struct mt_tunnels *t);
/* Whether the BPF GRE object is loaded (driver "bpf" usable). */
bool mt_tunnels_bpf_loaded(const struct mt_tunnels *t);

/* Applies the Tunnel ops among ops[0..n) in order (others are skipped and
 * their results left untouched):
 *   CREATE  creates the tunnel or brings it to the described state, and
 *           does nothing (no kernel write) when it already is; a tunnel of
 *           the same name with the other driver, or any other device of
 *           that name, is replaced;
 *   DELETE  removes it (whichever driver); 0 when absent. When a delete
 *           leaves a namespace without bpf tunnels (judged from the kernel
 *           after all ops ran), the decap program is detached from metal0.
 * results[i] is filled like mt_rtnl_apply's (NULL: allocated; else
 * overwritten): error 0 or -errno, and for errors a message naming the
 * tunnel and namespace (mt_op_describe), the reason and the kernel's text.
 * Per op: -EPERM for a netns that is not an owned customer namespace,
 * -EINVAL for a bad netns or tunnel name or field (nothing is done);
 * -ENOENT for a namespace that does not exist (CREATE only); -EOPNOTSUPP
 * for a driver this metal lacks. *writes (may be NULL) is increased by the
 * kernel writes done (netlink changes, attaches, map updates). Returns 0,
 * or -ENOMEM when results could not be filled. */
int mt_tunnels_apply(struct mt_tunnels *t, Mt__Kernel__Op *const *ops, size_t n,
		     Mt__Kernel__OpResult **results, uint64_t *writes);

/* Appends one Tunnel per tunnel device in the owned namespaces (all of
 * them, or those of the given owners = customer names), as the agent would
 * desire it when in sync: netns, name, driver ("bpf"/"kernel"), local and
 * remote (dotted quad; "" when not in place, see above), has_key/key, ttl,
 * mtu (NAME's), owner. With counters also counters: NAME's tx (into the
 * tunnel) and rx packets/bytes, and for bpf tunnels the nonzero drop
 * counters of the tunnel by reason (mt_gre_drop_name). Tunnels come out
 * sorted by namespace, then in the kernel's link order. Interrupted dumps
 * are repeated. Returns 0 or -errno (then st holds a partial snapshot). */
int mt_tunnels_observe(struct mt_tunnels *t, const char *const *owners,
		       size_t n_owners, bool counters,
		       Mt__Kernel__KernelState *st);

/* Drops cached namespaces that are gone, then removes the map entries
 * (and drop counters) of namespaces that no longer exist
 * (mt_gre_bpf_sweep with the live owned namespaces' cookies). Call after
 * a plan that deleted namespaces. Returns the entries removed, or -errno. */
int mt_tunnels_sweep(struct mt_tunnels *t);

/* Forgets the cached handle of namespace name (no-op when not cached):
 * call when it is deleted, so the cache does not keep it alive. */
void mt_tunnels_forget_netns(struct mt_tunnels *t, const char *name);
/* Lets observe answer a namespace's link dump (without counters) from the
 * last one while fn (the drift monitor's, nl.h) says nothing happened in the
 * namespace since; tc filters and BPF maps are always read. */
void mt_tunnels_set_ns_gen(struct mt_tunnels *t, mt_ns_gen_fn fn, void *data);

/* The drop counters of all bpf tunnels summed, out[reason] (all zero when
 * the BPF object is not loaded). 0 or -errno. */
int mt_tunnels_drops_total(struct mt_tunnels *t, uint64_t out[MT_GRE_DROP_MAX]);

#endif
