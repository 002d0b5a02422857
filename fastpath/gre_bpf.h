/* The BPF GRE tunnel driver: loads bpf/mt_gre.bpf.c once (libbpf skeleton),
 * pins its maps, and creates, attaches, configures and removes tunnels in
 * customer namespaces.
 *
 * A tunnel NAME in a customer namespace is a veth pair made inside that
 * namespace: NAME (e.g. "gre1") is the device routes, ECMP, nftables and
 * counters refer to; mt_gre_bpf_wire_name(NAME) = NAME + ".t" is its hidden
 * wire end. The encap program sits on the wire end's tc ingress (what is
 * routed out of NAME arrives there), the decap program on the uplink veth
 * ("metal0") ingress of the namespace. Both devices are NOARP (like a kernel
 * gre device: no neighbour resolution, frames are addressed to the device's
 * own MAC), have no IPv6 link-local address (addrgenmode none: no ND/MLD
 * chatter to drop), and keep tx checksum offload and TSO ON (the veth
 * defaults; so does metal0): a TCP flow's GSO packet (CHECKSUM_PARTIAL, up
 * to 64 KB) crosses the tunnel whole, the encap program marks it GRE GSO
 * (bpf/mt_gre.bpf.c, "Offloads"), and it is segmented and its inner
 * checksums completed once, where it leaves the machine: by the NIC (TSO
 * with GRE offload, or software GSO when the driver lacks it). A veth as the
 * metal's uplink (lab, tests) completes nothing: give it `ethtool -K <uplink>
 * tx off` so validate_xmit_skb segments and checksums in software there
 * (KERNEL_NOTES "Checksum offload": partial checksums are wrong on the wire).
 * mt never changes the operator's uplink. Earlier versions turned the
 * offloads off on all three (2 Gbit/s instead of ~16 through the tunnel):
 * link_create and attach_decap turn them back on. NAME's gso_max_size is
 * MT_GRE_GSO_MAX_SIZE, so the outer IPv4 length of a GSO packet fits 16
 * bits (larger ones are segmented before NAME).
 *
 * Names: a tunnel name is 1..MT_GRE_NAME_MAX (13) characters of
 * [A-Za-z0-9_-] (no '.', so NAME + ".t" never collides with another
 * tunnel's name) and must not be "lo" or the uplink's name.
 *
 * Threads and namespaces: every function that takes an nsfd switches the
 * calling thread into that namespace for its netlink/ioctl/tc work
 * (mt_netns_run) and back to the namespace the thread was in at
 * mt_gre_bpf_open. Do not call from the thread running an event loop that
 * must never leave the metal namespace, and not concurrently on one handle.
 *
 * Pins: ip netns exec remounts /sys and /run/netns views; run a daemon that
 * uses pins under nsenter --net= (or setns), never ip netns exec.
 *
 * All functions return 0 (or what is documented) or -errno; when err is
 * non-NULL a failure also leaves an operator-readable message there naming
 * the device and the value (the caller prefixes the customer).
 */
#ifndef MT_FASTPATH_GRE_BPF_H
#define MT_FASTPATH_GRE_BPF_H

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mt_gre_shared.h"

#define MT_GRE_NAME_MAX 13	/* + ".t" = 15 = IFNAMSIZ - 1 */
#define MT_GRE_WIRE_SUFFIX ".t"
#define MT_GRE_DEFAULT_MTU 1476
#define MT_GRE_DEFAULT_TTL 64
/* gso_max_size of a tunnel device: a GSO packet (Ethernet included, at
 * NAME's transmit) must stay below it for the outer IPv4 total length,
 * + 28 - 14, to fit 65535; 64 bytes of margin. */
#define MT_GRE_GSO_MAX_SIZE (65536 - 64)
#define MT_GRE_UPLINK "metal0"
/* The tc filter the programs are attached as, on clsact ingress: our mark
 * for detach/query (other filters on the same hook are left alone). */
#define MT_GRE_TC_HANDLE 0x6d74 /* "mt" */
#define MT_GRE_TC_PRIO 0x6d

struct mt_gre_bpf;

/* One tunnel's parameters. Addresses in network byte order. */
struct mt_gre_tunnel {
	char name[IFNAMSIZ];	/* the customer-visible device, e.g. "gre1" */
	uint32_t local;		/* edge endpoint (outer source) */
	uint32_t remote;	/* router endpoint (outer destination) */
	bool has_key;
	uint32_t key;		/* host byte order */
	uint8_t ttl;		/* outer TTL; 0 = MT_GRE_DEFAULT_TTL */
	/* of NAME; 0 = 1500 - overhead: 1476, or 1472 with a key. The
	 * outer packet (mtu + 24/28) must fit the uplink and the metal's
	 * path: a larger one is dropped (DF) past metal0. */
	uint32_t mtu;
	char uplink[IFNAMSIZ];	/* "" = MT_GRE_UPLINK */
	/* Outer Ethernet destination: the MAC of the uplink's peer (the
	 * metal-side veth; mt_gre_bpf_link_mac reads it). All zero = let the
	 * kernel resolve it per packet with bpf_redirect_neigh (routes the
	 * outer packet in the customer namespace, then ARP). */
	uint8_t peer_mac[6];
	/* Output of mt_gre_bpf_tunnel_get: the wire end's ifindex, which
	 * keys the tunnel's drop counters (mt_gre_bpf_drops). */
	uint32_t wire_ifindex;
};

/* ---- the loaded object ------------------------------------------------ */

/* Loads the programs. pin_root NULL: maps are not pinned (tests).
 * Otherwise pin_root (normally MT_BPF_PIN_ROOT) is made a bpffs mount if it
 * is not one already (mkdir -p + mount -t bpf), and the maps are pinned as
 * pin_root/instance/mt_gre_{tx,rx,drops,tun_drops}; existing pins are reused
 * (tunnels and counters survive restarts), a pinned map whose definition no
 * longer matches fails with -EINVAL and a message naming it. */
int mt_gre_bpf_open(const char *pin_root, const char *instance,
		    struct mt_gre_bpf **out, char *err, size_t errlen);
/* Unloads this process's references. Attached programs and pinned maps
 * stay in the kernel: traffic keeps flowing. Accepts NULL. */
void mt_gre_bpf_free(struct mt_gre_bpf *g);

/* Program and map fds (for tests and tools). */
int mt_gre_bpf_encap_fd(const struct mt_gre_bpf *g);
int mt_gre_bpf_decap_fd(const struct mt_gre_bpf *g);
int mt_gre_bpf_tx_map_fd(const struct mt_gre_bpf *g);
int mt_gre_bpf_rx_map_fd(const struct mt_gre_bpf *g);
/* mt_gre_tun_drops: per-CPU hash (struct mt_gre_tun_drop_key) -> __u64,
 * for readers that walk it once rather than ask per tunnel. */
int mt_gre_bpf_tun_drops_map_fd(const struct mt_gre_bpf *g);

/* ---- names and namespace facts ----------------------------------------- */

/* True when name is a valid tunnel name (see the rule above). */
bool mt_gre_bpf_name_valid(const char *name);
/* name + ".t" into buf; -EINVAL when name is not valid, -ENOSPC when buf is
 * shorter than IFNAMSIZ. */
int mt_gre_bpf_wire_name(const char *name, char *buf, size_t len);
/* The netns cookie of nsfd (SO_NETNS_COOKIE): recorded in each map value so
 * the loader can tell namespaces apart (unset, sweep); not a map key. */
int mt_gre_bpf_netns_cookie(struct mt_gre_bpf *g, int nsfd, uint64_t *cookie);
/* The MAC address of ifname in namespace nsfd. -ENODEV if absent. */
int mt_gre_bpf_link_mac(struct mt_gre_bpf *g, int nsfd, const char *ifname,
			uint8_t mac[6]);
/* Turns tx checksum offload (and with it TSO, when the device has it) on,
 * on ifname in nsfd (ETHTOOL_STXCSUM): the state the GRE path wants on the
 * tunnel's devices and metal0 (see above). */
int mt_gre_bpf_tx_csum_on(struct mt_gre_bpf *g, int nsfd,
			  const char *ifname, char *err, size_t errlen);

/* ---- devices ------------------------------------------------------------ */

/* Creates the tunnel's veth pair NAME / NAME.t inside nsfd (both ends made
 * there directly, never moved), MTU mtu on NAME (0 = default) and mtu + 28
 * on the wire end (bpf_skb_adjust_room refuses to grow a packet past the
 * receiving device's MTU), NOARP, addrgenmode none, tx csum and TSO on,
 * gso_max_size MT_GRE_GSO_MAX_SIZE on NAME, both up.
 * The wire end gets an ifindex picked in [MT_GRE_IFINDEX_MIN,
 * MT_GRE_IFINDEX_MAX], unique across namespaces: the maps key on it (see
 * bpf/mt_gre_shared.h for why not the netns cookie).
 * Idempotent: an existing pair is brought to that state; an existing NAME
 * that is not a veth paired with NAME.t is -EEXIST. */
int mt_gre_bpf_link_create(struct mt_gre_bpf *g, int nsfd, const char *name,
			   uint32_t mtu, char *err, size_t errlen);
/* Deletes the pair (deleting NAME deletes NAME.t). 0 when absent. */
int mt_gre_bpf_link_delete(struct mt_gre_bpf *g, int nsfd, const char *name,
			   char *err, size_t errlen);

/* ---- programs ----------------------------------------------------------- */

/* Attaches the encap program to NAME.t's clsact ingress (creating clsact if
 * needed) as filter MT_GRE_TC_HANDLE/MT_GRE_TC_PRIO, replacing what is
 * there: idempotent, and after a restart swaps in this process's program. */
int mt_gre_bpf_attach_encap(struct mt_gre_bpf *g, int nsfd, const char *name,
			    char *err, size_t errlen);
/* The same with the decap program on uplink ("" = MT_GRE_UPLINK), the
 * customer namespace's veth to the metal (made by mt, not the metal's own
 * uplink); also turns its tx checksum offload on (undoing earlier
 * versions, which turned it off). */
int mt_gre_bpf_attach_decap(struct mt_gre_bpf *g, int nsfd,
			    const char *uplink, char *err, size_t errlen);
/* Removes our filter from ifname's clsact ingress (the qdisc and other
 * filters stay). 0 when it was not there or the device is gone. */
int mt_gre_bpf_detach(struct mt_gre_bpf *g, int nsfd, const char *ifname,
		      char *err, size_t errlen);
/* What is attached at our filter on ifname's ingress: 1 = our encap or
 * decap program (the same code: equal program tag, e.g. attached by an
 * earlier run of the same build), 2 = some other program (attach again),
 * 0 = nothing (or no such device), or -errno. */
int mt_gre_bpf_attached(struct mt_gre_bpf *g, int nsfd, const char *ifname);

/* ---- map entries -------------------------------------------------------- */

/* Writes the tunnel's tx entry (keyed by NAME.t's ifindex) and rx entry
 * (keyed by the uplink's ifindex, local, remote), reading ifindexes and MACs
 * in nsfd. Replaces an earlier entry of the same tunnel (an old rx entry
 * whose endpoints changed is removed). -EEXIST when another tunnel already
 * has (uplink, local, remote), or NAME.t's ifindex belongs to a tunnel of
 * another namespace; -ENODEV when a device is missing; -EINVAL for a bad
 * value or a wire end not made by mt_gre_bpf_link_create (named in err). */
int mt_gre_bpf_tunnel_set(struct mt_gre_bpf *g, int nsfd,
			  const struct mt_gre_tunnel *t, char *err,
			  size_t errlen);
/* Removes NAME's entries, and those of tunnels of this namespace whose wire
 * end no longer exists. 0 when there was nothing. */
int mt_gre_bpf_tunnel_unset(struct mt_gre_bpf *g, int nsfd, const char *name,
			    char *err, size_t errlen);
/* Reads NAME's entry back into t (name, endpoints, key, ttl, peer_mac;
 * mtu and uplink are left 0/""). -ENOENT when it has none. */
int mt_gre_bpf_tunnel_get(struct mt_gre_bpf *g, int nsfd, const char *name,
			  struct mt_gre_tunnel *t);
/* Mark and sweep for namespaces that are gone: deletes every tx and rx
 * entry whose namespace (netns cookie) is not among live[0..n), and the
 * drop counters of tunnels that no longer have a tx entry. Returns the
 * number of entries deleted. */
int mt_gre_bpf_sweep(struct mt_gre_bpf *g, const uint64_t *live, size_t n);

/* ---- the whole tunnel --------------------------------------------------- */

/* link_create + attach_encap + attach_decap + tunnel_set: the tunnel
 * carries traffic when this returns 0. Idempotent. */
int mt_gre_bpf_tunnel_up(struct mt_gre_bpf *g, int nsfd,
			 const struct mt_gre_tunnel *t, char *err,
			 size_t errlen);
/* tunnel_unset + link_delete. The decap program stays on the uplink (it
 * passes everything that is not GRE); detach it when the namespace's last
 * tunnel goes. */
int mt_gre_bpf_tunnel_down(struct mt_gre_bpf *g, int nsfd, const char *name,
			   char *err, size_t errlen);

/* ---- counters ----------------------------------------------------------- */

/* Drop counters summed over CPUs, out[reason] for every enum mt_gre_drop:
 * wire_ifindex 0 = all drops of every namespace; else one tunnel's (its
 * wire end's ifindex, from mt_gre_bpf_tunnel_get), i.e. the drops counted
 * after a packet matched that tunnel: wrong_key, bad_version, bad_flags,
 * sequence, bad_proto, bad_csum, malformed GRE/inner header, decap_failed
 * and encap_failed. Drops before a tunnel is known (no_tunnel, ip_options,
 * fragment, encap_not_ipv4, encap_no_tunnel) are only in the total. */
int mt_gre_bpf_drops(struct mt_gre_bpf *g, uint32_t wire_ifindex,
		     uint64_t out[MT_GRE_DROP_MAX]);
/* Stable snake_case name of a reason ("no_tunnel", ...) for metrics and
 * JSON; "unknown" for a value outside the enum. */
const char *mt_gre_drop_name(unsigned reason);

#endif
