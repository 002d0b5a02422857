// SPDX-License-Identifier: GPL-2.0
/* GRE tunnels in BPF, for kernels without ip_gre.
 *
 * A tunnel "gre1" in a customer namespace is a veth pair made inside that
 * namespace: "gre1" is what routes, ECMP, nftables and counters see; its
 * peer "gre1.t" is the hidden wire end. Two tc programs (clsact ingress,
 * direct action) do the work:
 *
 *   mt_gre_encap  on the wire end: what the customer namespace routed out of
 *                 gre1 arrives here; it gets an outer IPv4 + GRE header and is
 *                 redirected out of the namespace's uplink veth "metal0".
 *   mt_gre_decap  on metal0: IPv4 protocol 47 addressed to one of this
 *                 namespace's edge endpoints from the matching router endpoint
 *                 is decapsulated and sent out of the wire end, so it arrives
 *                 on gre1 as a received packet. Any other GRE is dropped and
 *                 counted by reason (anti-spoofing); everything that is not
 *                 GRE passes untouched.
 *
 * Offloads (GSO): tx checksum offload and TSO stay ON on gre1, gre1.t and
 * metal0 (veth defaults), so a TCP flow's GSO packet (up to 64 KB, inner
 * checksum CHECKSUM_PARTIAL) crosses gre1 -> gre1.t -> metal0 -> the metal
 * in one piece, the way BPF tunnels keep GSO (the kernel's selftest
 * test_tc_tunnel.c): bpf_skb_adjust_room(ENCAP_L3_IPV4 | ENCAP_L4_GRE)
 * marks it SKB_GSO_GRE with inner headers and skb->encapsulation set, and
 * FIXED_GSO keeps gso_size, the inner payload per segment (TCP's MSS, at
 * most gre1's MTU - 40). It is segmented once, where the packet leaves the
 * machine: gre_gso_segment makes segments of at most gre1's MTU + 24/28 =
 * the uplink's 1500 bytes, completes the inner TCP/UDP checksums (csum_start
 * still points at the inner L4 header) and redoes the outer IPv4 length,
 * checksum and ID per segment. On a real NIC that is TSO with GRE offload
 * (or software GSO before the driver); a veth as the metal's uplink (lab,
 * tests, benchmarks) does not complete checksums, so those scripts run
 * `ethtool -K <uplink> tx off` on it: validate_xmit_skb then segments and
 * checksums in software, once, at the wire. mt never changes the operator's
 * uplink. A packet that is not GSO gets its inner checksum completed the
 * same way (CHECKSUM_PARTIAL is resolved at the uplink). The outer IPv4
 * checksum is computed here (the segmentation recomputes it per segment);
 * no GRE checksum is sent.
 *
 * DF and MTU: packets larger than gre1's MTU get ICMP frag-needed (DF) or
 * are fragmented before gre1, in the customer namespace's forward/output
 * path (for a GSO packet: its segments' length, skb_gso_validate_network_len),
 * so with FIXED_GSO no segment exceeds gre1's MTU + overhead on the wire.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "mt_gre_maps.h"
#include "mt_gre_parse.h"
#include "mt_gre_shared.h"

char LICENSE[] SEC("license") = "GPL";

/* ---- encapsulation --------------------------------------------------- */

struct mt_gre_outer {
	struct iphdr ip;
	struct mt_grehdr gre;
	__be32 key;
};
_Static_assert(sizeof(struct mt_gre_outer) == MT_GRE_OVERHEAD_KEY,
	       "outer header layout");

SEC("tc")
int mt_gre_encap(struct __sk_buff *skb)
{
	struct mt_gre_tx_key k = {.ifindex = skb->ifindex};
	struct mt_gre_outer o = {};
	struct mt_gre_tx_val *t;
	struct mt_cursor c;
	struct ethhdr *eth;
	struct iphdr *ip;
	__u32 hl, len;
	__u8 tos;

	mt_cursor_init(&c, skb);
	eth = MT_CURSOR_PULL(&c, struct ethhdr);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IP))
		return mt_drop(0, MT_GRE_DROP_ENCAP_NOT_IPV4);
	ip = MT_CURSOR_PULL(&c, struct iphdr);
	if (!ip || ip->version != 4)
		return mt_drop(0, MT_GRE_DROP_ENCAP_NOT_IPV4);
	tos = ip->tos;

	t = bpf_map_lookup_elem(&mt_gre_tx, &k);
	if (!t)
		return mt_drop(0, MT_GRE_DROP_ENCAP_NO_TUNNEL);

	hl = (t->flags & MT_GRE_TUN_KEY) ? MT_GRE_OVERHEAD_KEY
					  : MT_GRE_OVERHEAD;
	/* The outer header as RFC 2784/2890 GRE over IPv4: DF set (the
	 * tunnel MTU accounts for the overhead; outer fragments are what
	 * the far end drops), TOS inherited from the inner packet (DSCP and
	 * ECN, as `ip tunnel ... tos inherit`), ID 0 (RFC 6864: atomic
	 * datagrams). */
	len = skb->len - sizeof(struct ethhdr) + hl;
	/* Only a GSO packet can be this long (an inner IPv4 packet of up to
	 * 64 KB, e.g. aggregated by GRO): an outer length that does not fit
	 * tot_len would be trimmed by the next ip_rcv. The loader caps gre1's
	 * gso_max_size (MT_GRE_GSO_MAX_SIZE) so the stack segments such
	 * packets before gre1; anything left is dropped, never truncated. */
	if (len > 0xffff)
		return mt_drop(k.ifindex, MT_GRE_DROP_ENCAP_FAILED);
	o.ip.version = 4;
	o.ip.ihl = 5;
	o.ip.tos = tos;
	o.ip.tot_len = bpf_htons(len);
	o.ip.frag_off = bpf_htons(MT_IP_DF);
	o.ip.ttl = t->ttl;
	o.ip.protocol = MT_GRE_IPPROTO;
	o.ip.saddr = t->local;
	o.ip.daddr = t->remote;
	o.ip.check = mt_ipv4_csum(&o.ip);
	o.gre.proto = bpf_htons(MT_GRE_PROTO_IPV4);
	if (t->flags & MT_GRE_TUN_KEY) {
		o.gre.flags = bpf_htons(MT_GRE_F_KEY);
		o.key = t->key;
	}

	/* A GSO packet becomes SKB_GSO_GRE with its gso_size kept (FIXED_GSO:
	 * the inner MSS already accounts for the tunnel's MTU); the flag is
	 * a no-op for a packet that is not GSO. */
	if (bpf_skb_adjust_room(skb, hl, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_ENCAP_L3_IPV4 |
				    BPF_F_ADJ_ROOM_ENCAP_L4_GRE |
				    BPF_F_ADJ_ROOM_FIXED_GSO) < 0)
		return mt_drop(k.ifindex, MT_GRE_DROP_ENCAP_FAILED);
	if (bpf_skb_store_bytes(skb, sizeof(struct ethhdr), &o, hl, 0) < 0)
		return mt_drop(k.ifindex, MT_GRE_DROP_ENCAP_FAILED);

	if (t->flags & MT_GRE_TUN_NEIGH)
		return bpf_redirect_neigh(t->uplink_ifindex, NULL, 0, 0);
	if (bpf_skb_store_bytes(skb, 0, t->peer_mac, 6, 0) < 0 ||
	    bpf_skb_store_bytes(skb, 6, t->uplink_mac, 6, 0) < 0)
		return mt_drop(k.ifindex, MT_GRE_DROP_ENCAP_FAILED);
	return bpf_redirect(t->uplink_ifindex, 0);
}

/* ---- decapsulation --------------------------------------------------- */

/* Outer Ethernet + IPv4 + the longest GRE header accepted (csum + key):
 * made linear before parsing so the checks see the whole header. */
#define MT_GRE_PULL_LEN (sizeof(struct ethhdr) + sizeof(struct iphdr) + 12)

SEC("tc")
int mt_gre_decap(struct __sk_buff *skb)
{
	struct mt_gre_rx_key k = {};
	struct mt_gre_rx_val *t;
	struct mt_grehdr *gre;
	struct mt_cursor c;
	struct ethhdr *eth;
	struct iphdr *ip, in;
	__u16 flags, tot_len;
	__u32 hl, l3_len;
	__u32 tun = 0;
	__be32 *opt;

	mt_cursor_init(&c, skb);
	eth = MT_CURSOR_PULL(&c, struct ethhdr);
	if (!eth || eth->h_proto != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	ip = MT_CURSOR_PULL(&c, struct iphdr);
	if (!ip) {
		/* Short linear area? Only GRE is ours: look again. */
		if (skb->len < sizeof(*eth) + sizeof(*ip) ||
		    bpf_skb_pull_data(skb, sizeof(*eth) + sizeof(*ip)) < 0)
			return TC_ACT_OK;
		mt_cursor_init(&c, skb);
		eth = MT_CURSOR_PULL(&c, struct ethhdr);
		ip = MT_CURSOR_PULL(&c, struct iphdr);
		if (!eth || !ip)
			return TC_ACT_OK;
	}
	if (ip->protocol != MT_GRE_IPPROTO)
		return TC_ACT_OK;

	/* From here on it is GRE and ours to accept or drop. */
	if (ip->version != 4 || ip->ihl < 5)
		return mt_drop(0, MT_GRE_DROP_MALFORMED);
	if (ip->ihl > 5)
		return mt_drop(0, MT_GRE_DROP_IP_OPTIONS);
	if (ip->frag_off & bpf_htons(MT_IP_MF | MT_IP_OFFSET))
		return mt_drop(0, MT_GRE_DROP_FRAGMENT);
	tot_len = bpf_ntohs(ip->tot_len);
	if (tot_len < sizeof(*ip) + sizeof(*gre) + sizeof(*ip) ||
	    tot_len > skb->len - sizeof(*eth))
		return mt_drop(0, MT_GRE_DROP_MALFORMED);

	k.uplink_ifindex = skb->ifindex;
	k.local = ip->daddr;
	k.remote = ip->saddr;
	t = bpf_map_lookup_elem(&mt_gre_rx, &k);
	if (!t)
		return mt_drop(0, MT_GRE_DROP_NO_TUNNEL);
	tun = t->ifindex;

	if ((void *)(long)skb->data + MT_GRE_PULL_LEN >
		(void *)(long)skb->data_end &&
	    skb->len >= MT_GRE_PULL_LEN)
		bpf_skb_pull_data(skb, MT_GRE_PULL_LEN);
	mt_cursor_init(&c, skb);
	c.pos += sizeof(struct ethhdr) + sizeof(struct iphdr);
	gre = MT_CURSOR_PULL(&c, struct mt_grehdr);
	if (!gre)
		return mt_drop(tun, MT_GRE_DROP_MALFORMED);
	flags = bpf_ntohs(gre->flags);
	if (flags & MT_GRE_F_VERSION)
		return mt_drop(tun, MT_GRE_DROP_BAD_VERSION);
	if (flags & (MT_GRE_F_ROUTING | MT_GRE_F_STRICT | MT_GRE_F_RECUR |
		     MT_GRE_F_RESERVED))
		return mt_drop(tun, MT_GRE_DROP_BAD_FLAGS);
	if (flags & MT_GRE_F_SEQ)
		return mt_drop(tun, MT_GRE_DROP_SEQUENCE);
	if (gre->proto != bpf_htons(MT_GRE_PROTO_IPV4))
		return mt_drop(tun, MT_GRE_DROP_BAD_PROTO);

	hl = sizeof(*gre);
	if (flags & MT_GRE_F_CSUM) {
		/* checksum + reserved1: verified below over the whole GRE
		 * packet */
		opt = MT_CURSOR_PULL(&c, __be32);
		if (!opt)
			return mt_drop(tun, MT_GRE_DROP_MALFORMED);
		hl += 4;
	}
	if (flags & MT_GRE_F_KEY) {
		opt = MT_CURSOR_PULL(&c, __be32);
		if (!opt)
			return mt_drop(tun, MT_GRE_DROP_MALFORMED);
		if (!(t->flags & MT_GRE_TUN_KEY) || *opt != t->key)
			return mt_drop(tun, MT_GRE_DROP_WRONG_KEY);
		hl += 4;
	} else if (t->flags & MT_GRE_TUN_KEY) {
		return mt_drop(tun, MT_GRE_DROP_WRONG_KEY);
	}
	l3_len = tot_len - sizeof(*ip);
	if (l3_len < hl + sizeof(in))
		return mt_drop(tun, MT_GRE_DROP_MALFORMED);
	/* The inner header may lie past the linear area: copy it. */
	if (bpf_skb_load_bytes(skb, sizeof(*eth) + sizeof(*ip) + hl, &in,
			       sizeof(in)) < 0 ||
	    in.version != 4 || in.ihl < 5 ||
	    bpf_ntohs(in.tot_len) > l3_len - hl)
		return mt_drop(tun, MT_GRE_DROP_MALFORMED);
	/* Defined behaviour for the checksum flag: verify, drop when wrong
	 * (as ip_gre does); a valid checksum is accepted. */
	if ((flags & MT_GRE_F_CSUM) &&
	    !mt_skb_csum_ok(skb, sizeof(*eth) + sizeof(*ip), l3_len))
		return mt_drop(tun, MT_GRE_DROP_BAD_CSUM);

	/* t stays valid across the helpers below: map values are not packet
	 * data. Copy what is needed first anyway, for clarity. */
	{
		__u32 ifindex = t->ifindex;
		__u8 macs[12];

		__builtin_memcpy(macs, t->dev_mac, 6);
		__builtin_memcpy(macs + 6, t->wire_mac, 6);
		/* No BPF_F_ADJ_ROOM_DECAP_L3_IPV4: that flag (6.3+) only
		 * switches skb->protocol when the inner family differs
		 * from the outer one, a no-op for IPv4 in IPv4, and 6.1
		 * rejects it with -EINVAL (every decap failed there).
		 *
		 * GRE from routers is normally MTU-sized, but a GSO GRE
		 * packet can arrive (GRO on the metal's NIC, or a peer on
		 * this machine that keeps GSO): its gso_size is the inner
		 * MSS, so FIXED_GSO (else the kernel grows it by the 24/28
		 * bytes removed and the segments would exceed the MTU; a
		 * no-op without GSO; accepted since 4.x). The packet keeps
		 * SKB_GSO_GRE and skb->encapsulation with inner headers that
		 * are now its outer ones; the stack still segments it
		 * correctly (inet_gso_segment dispatches on the IPv4
		 * protocol, TCP) and receives it as a GRO packet. The flag
		 * that would clear them, BPF_F_ADJ_ROOM_DECAP_L4_GRE, is not
		 * in 6.18 (its BTF has DECAP_L3_IPV4/IPV6 only). */
		if (bpf_skb_adjust_room(skb, -(__s32)(sizeof(*ip) + hl),
					BPF_ADJ_ROOM_MAC,
					BPF_F_ADJ_ROOM_FIXED_GSO) < 0)
			return mt_drop(tun, MT_GRE_DROP_DECAP_FAILED);
		/* The frame must be addressed to gre1 (else the receiving
		 * stack sees PACKET_OTHERHOST and drops it). */
		if (bpf_skb_store_bytes(skb, 0, macs, 12, 0) < 0)
			return mt_drop(tun, MT_GRE_DROP_DECAP_FAILED);
		return bpf_redirect(ifindex, 0);
	}
}
