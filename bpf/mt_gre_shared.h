/* Types and constants shared by the BPF GRE programs (mt_gre.bpf.c) and
 * userspace (fastpath/gre_bpf.c, the tests). Fixed-width types only, no
 * pointers, explicit padding: the layout is the map ABI, and the drop reasons
 * are an API (metrics, mtctl, proto): append new values, never renumber.
 *
 * Map layout (see mt_gre_maps.h):
 *   mt_gre_tx     hash (ifindex of the tunnel's wire end)
 *                      -> struct mt_gre_tx_val    used by mt_gre_encap
 *   mt_gre_rx     hash (uplink ifindex, edge endpoint, router endpoint)
 *                      -> struct mt_gre_rx_val    used by mt_gre_decap
 *   mt_gre_drops       per-CPU array [MT_GRE_DROP_MAX] of __u64: all drops
 *   mt_gre_tun_drops   per-CPU hash (wire ifindex, reason) -> __u64: the
 *                      drops that happen once a tunnel is identified
 *
 * Why ifindexes and not the netns cookie: bpf_get_netns_cookie() is allowed
 * in SCHED_CLS on this kernel (6.18), but it answers for skb->sk, and a
 * socket reference survives veth namespace crossings (skb_scrub_packet
 * keeps skb->sk): a packet made by a socket in namespace A and forwarded
 * through B is seen with A's cookie in B (measured: the router side of the
 * wire test saw the customer namespace's cookie). So the key is the device:
 * the loader creates every wire end with an ifindex it picks in
 * [MT_GRE_IFINDEX_MIN, MT_GRE_IFINDEX_MAX], unique across all namespaces
 * (the kernel numbers devices per namespace from 1, so this range is never
 * handed out on its own; the loader checks its maps for collisions). The
 * rx key includes the uplink's ifindex; isolation does not depend on it:
 * bpf_redirect() resolves the target ifindex in the packet's current
 * namespace, so a packet can only ever be delivered to a wire end that
 * exists where it already is.
 */
#ifndef MT_GRE_SHARED_H
#define MT_GRE_SHARED_H

#include <linux/types.h>

/* Why a packet was dropped. Decap reasons first (in the order the checks
 * run), then encap reasons. */
enum mt_gre_drop {
	/* Outer IPv4 or GRE header truncated or inconsistent (IHL < 5,
	 * total length beyond the packet, GRE header cut short, inner
	 * packet not IPv4 or shorter than an IPv4 header). */
	MT_GRE_DROP_MALFORMED = 0,
	/* Outer IPv4 header with options (IHL > 5): not supported. */
	MT_GRE_DROP_IP_OPTIONS = 1,
	/* Outer IPv4 fragment (MF set or offset != 0): GRE is never
	 * reassembled here; routers must not fragment the outer packet. */
	MT_GRE_DROP_FRAGMENT = 2,
	/* No tunnel behind this uplink for (outer daddr, outer saddr): the
	 * anti-spoofing drop. */
	MT_GRE_DROP_NO_TUNNEL = 3,
	/* GRE version != 0 (e.g. PPTP's enhanced GRE, version 1). */
	MT_GRE_DROP_BAD_VERSION = 4,
	/* Routing, strict source route, recursion or reserved bits set. */
	MT_GRE_DROP_BAD_FLAGS = 5,
	/* Sequence number present: sequencing is not supported. */
	MT_GRE_DROP_SEQUENCE = 6,
	/* Protocol type other than IPv4 (0x0800). */
	MT_GRE_DROP_BAD_PROTO = 7,
	/* Key missing, unexpected or different from the tunnel's. */
	MT_GRE_DROP_WRONG_KEY = 8,
	/* Checksum present and wrong. */
	MT_GRE_DROP_BAD_CSUM = 9,
	/* bpf_skb_adjust_room refused the decapsulation. */
	MT_GRE_DROP_DECAP_FAILED = 10,
	/* Encap: the wire end has no tunnel entry (not configured yet). */
	MT_GRE_DROP_ENCAP_NO_TUNNEL = 11,
	/* Encap: not IPv4 (e.g. IPv6 neighbour discovery on the device). */
	MT_GRE_DROP_ENCAP_NOT_IPV4 = 12,
	/* Encap: bpf_skb_adjust_room or the header write failed (e.g. the
	 * packet would exceed the wire end's MTU). */
	MT_GRE_DROP_ENCAP_FAILED = 13,
	MT_GRE_DROP_MAX = 14,
};

#define MT_GRE_IPPROTO 47
#define MT_GRE_PROTO_IPV4 0x0800

/* GRE header bits (RFC 2784/2890), host byte order of the first 16 bits. */
#define MT_GRE_F_CSUM 0x8000
#define MT_GRE_F_ROUTING 0x4000
#define MT_GRE_F_KEY 0x2000
#define MT_GRE_F_SEQ 0x1000
#define MT_GRE_F_STRICT 0x0800
#define MT_GRE_F_RECUR 0x0700
#define MT_GRE_F_RESERVED 0x00f8
#define MT_GRE_F_VERSION 0x0007

/* Outer IPv4 (20) + GRE (4) [+ key (4)]. */
#define MT_GRE_OVERHEAD 24
#define MT_GRE_OVERHEAD_KEY 28

/* struct mt_gre_tx_val.flags / mt_gre_rx_val.flags */
#define MT_GRE_TUN_KEY (1u << 0)   /* the tunnel carries a GRE key */
#define MT_GRE_TUN_NEIGH (1u << 1) /* tx: bpf_redirect_neigh, ignore MACs */

#define MT_GRE_IFINDEX_MIN 0x40000000u
#define MT_GRE_IFINDEX_MAX 0x7fffffffu

struct mt_gre_tx_key {
	__u32 ifindex; /* the wire end (e.g. "gre1.t"), globally unique */
};

struct mt_gre_tx_val {
	__be32 local;  /* outer source: the edge endpoint */
	__be32 remote; /* outer destination: the router endpoint */
	__be32 key;    /* network byte order; used with MT_GRE_TUN_KEY */
	__u32 flags;   /* MT_GRE_TUN_* */
	__u32 uplink_ifindex; /* "metal0" in the same namespace */
	__u8 ttl;	      /* outer TTL, 1..255 */
	__u8 pad[3];
	__u8 uplink_mac[6]; /* outer Ethernet source (metal0's MAC) */
	__u8 peer_mac[6];   /* outer Ethernet destination (metal0's peer) */
	__u64 netns_cookie; /* userspace bookkeeping (SO_NETNS_COOKIE of the
			     * tunnel's namespace); the programs ignore it */
};

struct mt_gre_rx_key {
	__u32 uplink_ifindex; /* "metal0" in the tunnel's namespace */
	__be32 local;  /* outer destination: the edge endpoint */
	__be32 remote; /* outer source: the router endpoint */
};

struct mt_gre_rx_val {
	__u32 ifindex; /* the wire end: decapsulated packets leave through it
			* and arrive on the tunnel device */
	__u32 flags;   /* MT_GRE_TUN_KEY */
	__be32 key;    /* network byte order */
	__u8 dev_mac[6];  /* the tunnel device's MAC: inner Ethernet dst */
	__u8 wire_mac[6]; /* the wire end's MAC: inner Ethernet src */
	__u32 pad;
	__u64 netns_cookie; /* userspace bookkeeping, as in the tx value */
};

struct mt_gre_tun_drop_key {
	__u32 ifindex; /* the tunnel's wire end */
	__u32 reason;  /* enum mt_gre_drop */
};

#define MT_GRE_TX_MAX 65536
#define MT_GRE_RX_MAX 65536
#define MT_GRE_TUN_DROPS_MAX 65536

#endif
