/* The benchmark's stand-in for many customer routers (tests/bench/health,
 * probe_cpu_pct_10k_tunnels): a tc ingress program that decapsulates every
 * plain GRE packet (IPv4 in IPv4, optional key) and hands the inner packet
 * back to the stack, which routes it on. A reply-style health probe comes
 * out as an ICMP echo reply to the metal's edge endpoint: what a real
 * router does with its tunnel, for any number of tunnels, without a device
 * per tunnel. Not part of mt. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int gre_reflect(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u8 *gre = (void *)(ip + 1);
	__s32 hl;

	if ((void *)(gre + 4) > end || eth->h_proto != bpf_htons(ETH_P_IP) ||
	    ip->ihl != 5 || ip->protocol != IPPROTO_GRE)
		return TC_ACT_OK;
	/* version 0, no checksum or sequence; the key is all we accept */
	if ((gre[0] & ~0x20) || gre[1] || gre[2] != 0x08 || gre[3] != 0x00)
		return TC_ACT_OK;
	hl = (gre[0] & 0x20) ? 8 : 4;
	if (bpf_skb_adjust_room(skb, -(__s32)sizeof(*ip) - hl, BPF_ADJ_ROOM_MAC,
				BPF_F_ADJ_ROOM_FIXED_GSO) < 0)
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
